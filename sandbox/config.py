"""SandboxConfig: the limits and layout of one sandbox container."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxConfig(BaseModel):
    """How a sandbox container is made; built by the worker from its settings."""

    model_config = ConfigDict(frozen=True)

    image: str = "qwen-fix-sandbox:latest"
    """Image to run; it must provide /bin/sh (and git, for `diff`)."""
    search_path: str = STANDARD_PATH
    """PATH inside the container: the image's own when it sets one, since toolchain images
    (Go's, Rust's, dev containers) keep their tools off the standard path."""
    memory: str = "4g"
    """Memory limit (docker syntax: 512m, 4g); swap is capped at the same value."""
    cpus: Annotated[float, Field(gt=0)] = 2.0
    """CPU quota in cores."""
    pids: Annotated[int, Field(gt=0)] = 512
    """Most processes and threads alive at once; stops fork bombs."""
    lifetime: Annotated[float, Field(gt=0)] = 3600.0
    """Wall-clock seconds after which the container ends itself, whatever the worker does."""
    user: str = "1000:1000"
    """uid:gid every process in the container runs as; also the owner of the workspace."""
    workspace: str = "/workspace"
    """Where the repository checkout is mounted inside the container."""
    network: str = "none"
    """Docker network mode; `none` means loopback only."""
    scratch_dir: Path | None = None
    """Host directory for per-sandbox files that are bind-mounted (the shell's FIFOs, the egress
    socket); None: the system temp dir. A containerised worker must use a path that is the same
    on the host."""
    tmpfs_size: str = "1g"
    """Size of the writable tmpfs at /tmp (HOME lives under it); counts against memory."""
    output_cap: Annotated[int, Field(gt=1024)] = 64 * 1024
    """Bytes of a command's output kept: the first and last halves; the middle is cut."""
    command_timeout: Annotated[float, Field(gt=0)] = 120.0
    """Default seconds a command may run before its process group is killed."""

    @property
    def uid(self) -> int:
        """Numeric uid part of `user`."""
        return int(self.user.split(":", 1)[0])

    @property
    def gid(self) -> int:
        """Numeric gid part of `user` (the uid when no group is given)."""
        _, _, gid = self.user.partition(":")
        return int(gid) if gid else self.uid

    @property
    def home(self) -> str:
        """HOME inside the container: under the tmpfs, since the root filesystem is read-only."""
        return "/tmp/home"
