"""The test run that decides the verdict (draft or ready, the check run's conclusion).

The model drives the sandbox's session shell and reads text from strangers, so it must not be
able to shape this run except through the files it changed: by then every process it started
is stopped and the change has been read (`DockerSandbox.stop_processes`, `final_diff`). Here the
files changed after setup that the change does not carry are removed (under /tmp, HOME among
them, and ignored files of the workspace), and the tests run in a fresh exec: the container's
baseline environment, the workspace as working directory, nothing of the session's state.
"""

from __future__ import annotations

import structlog

from sandbox.docker import DockerSandbox
from workers.metrics import WorkerMetrics
from workers.pr_body import Verification

log = structlog.get_logger("qwen_fix.verification")

SWEPT_SHOWN = 20


async def verify(
    sandbox: DockerSandbox, command: str | None, limit: float, *, metrics: WorkerMetrics
) -> Verification:
    """Run the tests on the change as it will be published; the log says what was swept."""
    swept = await sandbox.sweep()
    preface = sweep_note(swept)
    if command is None:
        return Verification(command=None, passed=None, log=preface + "No test command was found.")
    result = await sandbox.run_fresh(command, timeout=limit)
    metrics.tests_ran(result)
    log.info(
        "job.verified",
        command=command,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        swept=len(swept),
    )
    note = f"\n[timed out after {limit:.0f} s]" if result.timed_out else ""
    return Verification(command=command, passed=result.ok, log=preface + result.output + note)


def sweep_note(swept: list[str]) -> str:
    """A line for the test log naming the files removed before the tests ran."""
    if not swept:
        return ""
    names = ", ".join(swept[:SWEPT_SHOWN]) + (" …" if len(swept) > SWEPT_SHOWN else "")
    return (
        f"[qwen-fix: before this run, removed {len(swept)} file(s) that the agent's session "
        f"left outside its change: {names}]\n"
    )
