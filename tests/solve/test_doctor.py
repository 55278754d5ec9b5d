"""`qwen-fix doctor` against the scripted server in good and broken configurations: every check
says ok, or what is wrong and the exact fix."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.agent.xml import turn
from tests.conftest import free_port
from tests.model_server import VLLM, Reply, ScriptedModelServer, ServerConfig
from tests.solve.test_loop_paths import StartServer
from workers.doctor import DoctorSettings, run_doctor

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ECHO = turn("Calling it.", "echo", text="ok")
PROBES = [Reply(ECHO), Reply("ok"), Reply("ok")]
"""What doctor asks: the tool probe, then the same long prompt twice (cache and latency)."""


async def doctor(server_url: str, model: str = VLLM.model, **settings: object) -> tuple[str, str]:
    values = {"model_base_url": server_url, "model_name": model} | settings
    out = io.StringIO()
    status = await run_doctor(DoctorSettings(**values), out, infrastructure=False)
    return status, out.getvalue()


def line(report: str, name: str) -> str:
    found = [text for text in report.splitlines() if f"  {name}:" in text]
    assert found, f"no {name} line in:\n{report}"
    index = report.splitlines().index(found[0])
    lines = report.splitlines()
    fix = lines[index + 1] if index + 1 < len(lines) and "fix:" in lines[index + 1] else ""
    return f"{found[0]}\n{fix}".strip()


async def test_a_well_set_up_vllm_passes_every_check(scripted_server: StartServer) -> None:
    server = scripted_server(PROBES, config=replace(VLLM, max_model_len=131_072))
    status, report = await doctor(server.base_url)
    assert status == "ok", report
    assert "131,072 tokens (from /v1/models)" in line(report, "window")
    assert "native tool calls (echo)" in line(report, "tool calls")
    assert "qwen3-coder (picked from" in line(report, "profile")
    assert "were cached" in line(report, "prefix cache")
    assert "tokens/s" in line(report, "latency")
    assert report.rstrip().endswith("qwen-fix doctor: all checks passed")


async def test_a_server_without_the_tool_parser_is_told_the_flags(
    scripted_server: StartServer,
) -> None:
    server = scripted_server(PROBES, config=replace(VLLM, tool_parser=False))
    status, report = await doctor(server.base_url)
    assert status == "warn", report
    tools = line(report, "tool calls")
    assert tools.startswith("warn") and "come back as text" in tools
    assert "--enable-auto-tool-choice --tool-call-parser qwen3_coder" in tools


@pytest.mark.parametrize(
    "config",
    [replace(VLLM, prefix_caching=False), replace(VLLM, prompt_tokens_details=False)],
    ids=["caching off", "no token details"],
)
async def test_a_cache_that_reports_no_hits_is_told_the_flags(
    scripted_server: StartServer, config: ServerConfig
) -> None:
    server = scripted_server(PROBES, config=config)
    status, report = await doctor(server.base_url)
    assert status == "warn", report
    cache = line(report, "prefix cache")
    assert cache.startswith("warn") and "--enable-prompt-tokens-details" in cache


async def test_a_reasoning_model_without_the_reasoning_parser_is_told_the_flag(
    scripted_server: StartServer,
) -> None:
    model = "Qwen/Qwen3.6-35B-A3B-FP8"
    config = replace(VLLM, model=model, reasoning_parser=False)
    probes = [Reply(ECHO, reasoning="The tool wants ok."), Reply("ok"), Reply("ok")]
    server = scripted_server(probes, config=config)
    status, report = await doctor(server.base_url, model)
    assert status == "warn", report
    assert "--reasoning-parser qwen3" in line(report, "reasoning")


async def test_a_model_the_server_does_not_serve_is_named_with_what_it_does(
    scripted_server: StartServer,
) -> None:
    server = scripted_server(PROBES, config=VLLM)
    status, report = await doctor(server.base_url, "Qwen/Qwen3-Coder-Next-FP8")
    assert status == "fail", report
    model = line(report, "model")
    assert "MODEL_NAME=Qwen/Qwen3-Coder-Next-FP8 is not served" in model
    assert f"set MODEL_NAME to one of: {VLLM.model}" in model


async def test_an_unreachable_server_says_where_it_looked() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    status, report = await doctor(url)
    assert status == "fail"
    server = line(report, "model server")
    assert f"no answer from {url}" in server and "MODEL_BASE_URL" in server
    assert len(report.splitlines()) == 3  # the one check, its fix, the summary


@pytest.mark.docker
def test_the_command_checks_the_engine_the_image_and_redis(
    sandbox_image: str, redis_url: str
) -> None:
    with ScriptedModelServer(PROBES, config=replace(VLLM, max_model_len=131_072)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "APP_"))}
        env |= {"MODEL_BASE_URL": server.base_url, "SANDBOX_IMAGE": sandbox_image}
        env |= {"REDIS_URL": redis_url, "PYTHONPATH": str(PROJECT_ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli", "doctor"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok    sandbox image: {sandbox_image}" in done.stdout
    assert f"ok    redis: {redis_url} answers" in done.stdout
    broken = env | {
        "SANDBOX_IMAGE": "qwen-fix-sandbox:no-such-tag",
        "MODEL_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "doctor"],
        env=broken, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "FAIL  sandbox image: qwen-fix-sandbox:no-such-tag is not on this engine" in done.stdout
    assert "fix: run `bash scripts/bootstrap`" in done.stdout
