"""Reads a Prometheus text exposition with prometheus_client's own parser, for assertions."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """Every sample of one scrape, by sample name and label set."""

    samples: dict[str, dict[Labels, float]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[str, dict[Labels, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = frozenset(sample.labels.items())
                samples.setdefault(sample.name, {})[labels] = sample.value
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when it was never recorded."""
        return self.samples.get(name, {}).get(frozenset(labels.items()), 0.0)

    def series(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """All samples of `name` keyed by the values of `keys`, histogram buckets left out."""
        return {
            tuple(dict(labels)[key] for key in keys): value
            for labels, value in self.samples.get(name, {}).items()
            if "le" not in dict(labels)
        }
