"""Saturation: the model server's /metrics hold new runs back; unreadable metrics never do."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bot.settings import Settings
from tests.conftest import free_port
from tests.github_emulator.auth import new_key_pair
from workers.admission import Admission, AdmissionLimits, Ticket
from workers.model_slot import ModelSlot
from workers.saturation import (
    SaturationProbe,
    SaturationThresholds,
    ServerLoad,
    metrics_url,
    parse_load,
    saturation_reason,
)
from workers.tracking import Held

KEY = new_key_pair()[0]

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} {waiting}
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} 0.0
# HELP vllm:{kv_name} KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:{kv_name} gauge
vllm:{kv_name}{engine="0",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} 0.2
vllm:{kv_name}{engine="1",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} {kv}
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} 12.0
"""
SGLANG = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} 5.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} {waiting}
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"} {kv}
"""


def exposition(server: str, waiting: float = 0, kv: float = 0.1) -> str:
    template = SGLANG if server == "sglang" else VLLM
    kv_name = "gpu_cache_usage_perc" if server == "vllm-0.9" else "kv_cache_usage_perc"
    return (
        template.replace("{waiting}", f"{waiting:.1f}")
        .replace("{kv_name}", kv_name)
        .replace("{kv}", str(kv))
    )


@pytest.mark.parametrize("server", ["vllm", "vllm-0.9", "sglang"])
def test_the_load_is_read_from_each_servers_names(server: str) -> None:
    load = parse_load(exposition(server, waiting=3, kv=0.97))
    assert load == ServerLoad(waiting=3.0, kv_cache=0.97)


def test_text_that_is_no_exposition_or_names_no_load_is_an_error() -> None:
    for text in ("<html>Not Found</html>", 'up{job="x"} 1\n', ""):
        with pytest.raises(ValueError):
            parse_load(text)


def test_saturated_above_either_threshold_only() -> None:
    thresholds = SaturationThresholds(waiting=2, kv_cache=0.95)
    assert saturation_reason(ServerLoad(waiting=2, kv_cache=0.95), thresholds) is None
    assert saturation_reason(ServerLoad(waiting=3), thresholds) == "3 requests waiting"
    assert saturation_reason(ServerLoad(kv_cache=0.99), thresholds) == "KV cache 99% full"
    both = saturation_reason(ServerLoad(waiting=9, kv_cache=1.0), thresholds)
    assert both == "9 requests waiting, KV cache 100% full"


def test_the_metrics_url_derives_from_the_model_url() -> None:
    assert metrics_url("http://gpu:8000/v1", None) == "http://gpu:8000/metrics"
    assert metrics_url("http://gpu:8000/v1/", None) == "http://gpu:8000/metrics"
    assert metrics_url("https://llm.example/qwen", None) == "https://llm.example/qwen/metrics"
    assert metrics_url("http://gpu:8000/v1", "http://gpu:9090/metrics") == "http://gpu:9090/metrics"
    assert metrics_url("http://gpu:8000/v1", "") is None


def test_the_settings_say_unset_derive_and_empty_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    required = {"app_id": 1, "webhook_secret": "s", "private_key": KEY}
    settings = Settings(**required)  # type: ignore[arg-type]
    assert settings.model_metrics_url is None
    assert (settings.model_max_runs, settings.model_max_runs_per_installation) == (8, 4)
    monkeypatch.setenv("MODEL_METRICS_URL", "")
    assert Settings(**required).model_metrics_url == ""  # type: ignore[arg-type]


class MetricsServer:
    """A model server's /metrics on loopback, its body and status set by the test."""

    def __init__(self, body: str, status: int = 200) -> None:
        self.body, self.status = body, status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = owner.body.encode()
                self.send_response(owner.status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/metrics"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def admission(redis: Redis) -> Iterator[Admission]:
    yield Admission(redis, AdmissionLimits(max_runs=4), prefix=f"test:{uuid.uuid4().hex}:")


def slot(admission: Admission, probe: SaturationProbe, name: str = "job") -> ModelSlot:
    return ModelSlot(admission, Ticket(name, 1, "w1", 4, time.time()), probe=probe, poll=0.05)


@pytest.mark.parametrize(
    ("server", "busy"),
    [
        ("vllm", {"waiting": 5}),
        ("vllm", {"kv": 0.99}),
        ("vllm-0.9", {"kv": 0.99}),
        ("sglang", {"waiting": 3}),
        ("sglang", {"kv": 0.97}),
    ],
)
async def test_no_run_starts_while_the_server_is_saturated_and_one_starts_once_it_clears(
    admission: Admission, server: str, busy: dict[str, float]
) -> None:
    with MetricsServer(exposition(server, **busy)) as metrics:
        probe = SaturationProbe(admission, metrics.url, SaturationThresholds(), cache_seconds=0.1)
        seen: list[Held | None] = []

        async def observe(held: Held | None) -> None:
            seen.append(held)

        waiting = asyncio.create_task(slot(admission, probe).acquire(observe))
        await asyncio.sleep(0.6)
        assert not waiting.done()
        assert seen == [Held(ahead=0, busy=True)]
        assert probe.reason is not None
        metrics.body = exposition(server)
        cleared = time.monotonic()
        await asyncio.wait_for(waiting, timeout=1.0)
        assert time.monotonic() - cleared < 1.0
        assert seen[-1] is None
        await probe.close()


async def test_a_saturated_server_never_holds_a_run_already_admitted(
    admission: Admission,
) -> None:
    with MetricsServer(exposition("vllm")) as metrics:
        probe = SaturationProbe(admission, metrics.url, SaturationThresholds(), cache_seconds=0.05)
        running = slot(admission, probe, "running")
        await running.acquire()
        metrics.body = exposition("vllm", waiting=10)
        await asyncio.sleep(0.1)
        await probe.refresh()
        assert (await admission.snapshot()).busy
        assert not await admission.keep(running.ticket, agent=True)  # still its slot
        await running.agent_done()
        await running.release()
        await probe.close()


@pytest.mark.parametrize("answer", ["refused", "not found", "not metrics"])
async def test_unreadable_metrics_hold_nothing_and_are_logged_once(
    admission: Admission, answer: str
) -> None:
    with MetricsServer(
        "<html>hello</html>", status=404 if answer == "not found" else 200
    ) as server:
        url = f"http://127.0.0.1:{free_port()}/metrics" if answer == "refused" else server.url
        probe = SaturationProbe(admission, url, SaturationThresholds(), cache_seconds=0.0)
        with capture_logs() as logs:
            first, second = slot(admission, probe, "first"), slot(admission, probe, "second")
            await asyncio.wait_for(first.acquire(), timeout=3)
            await asyncio.wait_for(second.acquire(), timeout=3)
        warnings = [entry for entry in logs if entry["event"] == "saturation.unreadable"]
        assert len(warnings) == 1, logs
        assert "not saturated" in warnings[0]["verdict"]
        assert probe.reason is None
        for held in (first, second):
            await held.release()
        await probe.close()
