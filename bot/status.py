"""The reply to a `status` command: what the app is doing on an issue or pull request."""

from __future__ import annotations

import time
from typing import Any


def status_reply(
    number: int, active: str | None, status: dict[str, Any] | None, now: float | None = None
) -> str:
    """Markdown for the status comment, from the work registry's records."""
    now = time.time() if now is None else now
    if status is None:
        if active is None:
            return f"Nothing is running on #{number}, and nothing has run yet."
        return f"A job for #{number} is queued (`{active}`) and has not started yet."
    lines = [f"**qwen-fix on #{number}**: {status.get('state', 'unknown')}"]
    if "started" in status:
        lines.append(f"- started {_ago(now - float(status['started']))} ago")
    if status.get("steps") is not None:
        lines.append(f"- {status['steps']} agent steps, {int(status.get('tokens', 0)):,} tokens")
    if status.get("held"):
        lines.append(f"- {status['held']}")
    if status.get("tracking_url"):
        lines.append(f"- progress: {status['tracking_url']}")
    if status.get("run_url"):
        lines.append(f"- what it did, step by step: {status['run_url']}")
    if status.get("pr_url"):
        lines.append(f"- pull request: {status['pr_url']}")
    if active is None and status.get("state") not in ("done", "failed", "stopped"):
        lines.append("- no job is running now")
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    minutes, secs = divmod(max(int(seconds), 0), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
