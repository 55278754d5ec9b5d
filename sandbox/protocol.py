"""The small protocol through which the agent and the pipeline see a sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one command did inside a sandbox."""

    exit_code: int
    """The command's exit status; -1 when it was killed for a timeout."""
    output: str
    """stdout and stderr interleaved, decoded as UTF-8 with replacement;
    capped (head and tail kept)."""
    truncated: bool = False
    """True when the middle of the output was cut to respect the cap."""
    timed_out: bool = False
    """True when the command ran past its timeout and its process group was killed."""
    duration: float = 0.0
    """Wall-clock seconds from sending the command to reading its exit status."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Sandbox(Protocol):
    """A stateful shell session in an isolated workspace.

    State (cwd, exported variables) persists between `run` calls, as in a shell.
    Paths may be absolute or relative to the workspace root.
    """

    workspace: str
    """Absolute path of the repository checkout inside the sandbox."""

    async def run(
        self,
        command: str,
        *,
        timeout: float = 120.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult: ...

    async def read_file(self, path: str) -> bytes: ...

    async def write_file(self, path: str, data: bytes) -> None: ...

    async def diff(self) -> str:
        """The workspace's changes against the base commit, as a `git diff --binary` patch,
        new untracked files included."""
        ...

    async def close(self) -> None: ...
