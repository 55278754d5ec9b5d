"""The trajectory: one JSON line per event of a run (start, each step, exit), for audit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.redaction import redact_value
from workers.agent.model import Usage


@dataclass
class StepRecord:
    """Everything one step did: the messages it appended, its calls, observations and costs."""

    step: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model_seconds: float = 0.0
    tool_seconds: float = 0.0
    tool_call_seconds: list[float] = field(default_factory=list)
    """Seconds of each tool call, in the order of `tool_calls`."""
    note: str | None = None


EventSink = Callable[[dict[str, Any]], None]
"""Receives each event as it is written (the run viewer's stream: workers/run_log.py)."""


class Trajectory:
    """Appends JSON lines to `path` (nothing when None), and hands each to `sink` too."""

    def __init__(self, path: Path | None, sink: EventSink | None = None) -> None:
        self.path = path
        self.sink = sink
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def write(self, kind: str, **fields: Any) -> None:
        if self.path is None and self.sink is None:
            return
        line = {"type": kind, "time": time.time(), **redact_value(fields)}
        if self.sink is not None:
            self.sink(line)
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")

    def write_step(self, record: StepRecord) -> None:
        fields = asdict(record)
        fields["usage"]["total_tokens"] = record.usage.total_tokens
        self.write("step", **fields)
