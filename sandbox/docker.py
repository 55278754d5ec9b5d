"""DockerSandbox: a locked-down container around a host checkout, driven through one shell."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import os
import posixpath
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound

from sandbox import forwarder
from sandbox import labels as label
from sandbox.allowlist import EgressAllowlist
from sandbox.archive import pack_file, unpack_file
from sandbox.base_commit import NotACheckout, read_head_commit
from sandbox.config import SandboxConfig
from sandbox.egress import EgressProxy
from sandbox.fresh_exec import FINAL_DIFF_SCRIPT, SWEEP_SCRIPT, FreshExec
from sandbox.protocol import ExecResult
from sandbox.shell import STATE_FILE, ShellChannel

DIFF_INDEX = "/tmp/.qwen-fix-diff-index"
DIFF_PATCH = "/tmp/.qwen-fix-diff.patch"
MAX_SYMLINK_HOPS = 8
RUN_MOUNT = "/run/qwen-fix"
"""Read-only bind mount of the sandbox's run directory: the shell channel's FIFOs and command
files, and the setup proxy's socket."""
OBJECTS_MOUNT = "/run/qwen-fix-objects"
"""Read-only bind mount of the sandbox's share of its repository's objects (a host directory
the worker fills, see workers/object_share.py): the workspace's git borrows from it through
`objects/info/alternates`, and the final diff reads the base commit from it."""
RUN_DIR_PREFIX = "qwen-fix-run-"
EGRESS_SOCKET = "proxy.sock"
BASELINE_MARK = "baseline"
"""File in the run directory whose change time marks the end of setup (see `sweep`)."""
RELAY_TIMEOUT = 30.0


class SandboxError(RuntimeError):
    """A sandbox operation failed for a reason other than the command's own exit status."""


def sandbox_environment(config: SandboxConfig) -> dict[str, str]:
    """The whole environment of the container: nothing from the worker, so no secrets."""
    return {
        "PATH": config.search_path,
        "HOME": config.home,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        # Tests run by the agent must not litter the diff with __pycache__ directories.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # No network: npm must not look for a newer npm, or ask for funding, on every run.
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
        "NPM_CONFIG_FUND": "false",
        "DEBIAN_FRONTEND": "noninteractive",
    }


class DockerSandbox:
    """One container per job: --network none, read-only root, no capabilities, uid 1000."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        config: SandboxConfig,
        base_commit: str | None,
        run_dir: Path,
        objects_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.config = config
        self.workspace = config.workspace
        self.base_commit = base_commit
        """Commit (or empty tree) `diff` compares against; None until the shell reads it."""
        self.run_dir = run_dir
        """Host directory mounted read-only at RUN_MOUNT: the shell's FIFOs, the setup proxy."""
        self.objects_dir = objects_dir
        """Host directory mounted read-only at OBJECTS_MOUNT, if any."""
        self._closed = False
        self._shell = ShellChannel(
            self._open_exec_socket,
            run_dir=run_dir,
            run_mount=RUN_MOUNT,
            owner=(config.uid, config.gid),
            workspace=config.workspace,
            home=config.home,
            baseline_names=sandbox_environment(config),
            output_cap=config.output_cap,
        )
        self._fresh = FreshExec(client, container_id, config.user, sandbox_environment(config))

    @classmethod
    async def start(
        cls,
        client: docker.DockerClient,
        config: SandboxConfig,
        workspace_dir: Path,
        *,
        labels: Mapping[str, str],
        name: str | None = None,
        base_commit: str | None = None,
        objects_dir: Path | None = None,
    ) -> DockerSandbox:
        """Start a container over `workspace_dir` and return once its shell answers; `name`
        is the container's name (see `labels.container_name`). `objects_dir`, a host directory
        the sandbox must not write to, is mounted read-only at OBJECTS_MOUNT."""
        workspace_dir = await asyncio.to_thread(workspace_dir.resolve)
        if objects_dir is not None:
            objects_dir = await asyncio.to_thread(objects_dir.resolve)
        if base_commit is None:
            try:
                base_commit = read_head_commit(workspace_dir)
            except (NotACheckout, OSError):
                base_commit = None  # read inside the container below instead
        await asyncio.to_thread(give_tree_to, workspace_dir, config.uid, config.gid)
        run_dir = await asyncio.to_thread(make_run_dir, config)
        try:
            container_id = await asyncio.to_thread(
                _create_container, client, config, workspace_dir, labels, run_dir, name,
                objects_dir,
            )  # fmt: skip
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)
            raise
        sandbox = cls(client, container_id, config, base_commit, run_dir, objects_dir)
        try:
            await sandbox._shell.start()
            if sandbox.base_commit is None:
                sandbox.base_commit = await sandbox._read_base_in_container()
        except BaseException:
            await sandbox.close()
            raise
        return sandbox

    async def rename(self, name: str) -> None:
        """Give the container a new name: how a pooled sandbox takes on its job."""
        await asyncio.to_thread(self.client.api.rename, self.container_id, name)

    async def adopt_checkout(self, workspace_dir: Path) -> None:
        """Take over a checkout made in the (bind-mounted) workspace after the container started,
        as a pooled sandbox does: own it, and diff against its HEAD from now on."""
        workspace_dir = await asyncio.to_thread(workspace_dir.resolve)
        await asyncio.to_thread(give_tree_to, workspace_dir, self.config.uid, self.config.gid)
        try:
            self.base_commit = await asyncio.to_thread(read_head_commit, workspace_dir)
        except (NotACheckout, OSError):
            self.base_commit = await self._read_base_in_container()

    @property
    def shell_alive(self) -> bool:
        """Whether the session shell's exec stream is still open: it closes when the container
        stops or the engine restarts."""
        return self._shell.alive

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run `command` in the session shell; state persists unless cwd/env are given."""
        self._check_open()
        limit = self.config.command_timeout if timeout is None else timeout
        return await self._shell.run(command, timeout=limit, cwd=cwd, env=env)

    async def run_setup(self, command: str, *, allow: Sequence[str], timeout: float) -> ExecResult:
        """Run the setup phase: `command` with a proxy that reaches only the hosts in `allow`.

        With `allow` empty the command runs with no network at all. Otherwise an allowlisting
        proxy listens on a socket in the egress directory and a relay inside the container
        serves it at 127.0.0.1:PORT; both are gone when this returns, so later commands have
        no network. The hosts contacted and refused are appended to the output. With `allow`,
        exports and `cd` in `command` do not outlive it, since the proxy variables must not.
        """
        self._check_open()
        allowlist = EgressAllowlist(allow)
        if not allowlist:
            return await self.run(command, timeout=timeout)
        proxy = EgressProxy(allowlist, self.run_dir / EGRESS_SOCKET)
        await proxy.start()
        try:
            result = await self._run_through_relay(command, timeout)
        finally:
            await proxy.close()
        return _with_output(
            result, result.output + _line_break(result.output) + proxy.report.summary() + "\n"
        )

    async def _run_through_relay(self, command: str, timeout: float) -> ExecResult:
        socket_path = posixpath.join(RUN_MOUNT, EGRESS_SOCKET)
        started = await self._shell.run(
            forwarder.start_script(socket_path), timeout=RELAY_TIMEOUT, cwd="/"
        )
        if not started.ok:
            return started
        relay_pid = int(started.output.split()[-1])
        try:
            return await self.run(command, timeout=timeout, env=forwarder.proxy_environment())
        finally:
            await self._shell.run(forwarder.stop_script(relay_pid), timeout=RELAY_TIMEOUT, cwd="/")

    async def run_fresh(self, command: str, *, timeout: float) -> ExecResult:
        """Run `command` in a shell of its own: a new exec with the container's baseline
        environment, in the workspace, with nothing of the session's state (its directory, its
        variables, its state file). On a timeout every process of the sandbox is stopped."""
        self._check_open()
        script = f"exec 2>&1\ncd -- {shlex.quote(self.workspace)} || exit 1\n{command}\n"
        result, timed_out = await asyncio.to_thread(
            self._fresh.run, ["/bin/sh", "-c", script],
            workdir=self.workspace, timeout=timeout, cap=self.config.output_cap,
        )  # fmt: skip
        if timed_out:
            await self.stop_processes()
        return result

    async def stop_processes(self) -> None:
        """Kill everything the session left running: background jobs, daemons, the session
        shell itself. The next `run` starts a fresh session shell."""
        self._check_open()
        result = await asyncio.to_thread(self._fresh.stop_all)
        self._shell.close()
        if not result.ok:
            raise SandboxError(f"could not stop the sandbox's processes: {result.output[-500:]}")

    def mark_baseline(self) -> None:
        """Note now (the end of setup) as the time after which `sweep` removes stray files."""
        (self.run_dir / BASELINE_MARK).touch()

    async def final_diff(self) -> str:
        """The workspace's change against the base commit, read as `diff` reads it but in a
        fresh exec and through a git directory of our own: nothing the sandbox wrote into the
        workspace's `.git` (config, filters, index, excludes, replace refs) shapes it."""
        self._check_open()
        base, ws = self.base_commit or "HEAD", self.workspace
        argv = ["/bin/sh", "-c", FINAL_DIFF_SCRIPT, "final-diff", base, ws, self._base_objects()]
        result, _ = await asyncio.to_thread(
            self._fresh.run, argv, workdir=ws, timeout=self.config.command_timeout, cap=None
        )
        if not result.ok:
            raise SandboxError(f"git diff failed in the sandbox: {result.output[-2000:]}")
        return base64.b64decode(result.output).decode("utf-8", errors="surrogateescape")

    async def sweep(self) -> list[str]:
        """Remove the files changed since `mark_baseline` that the workspace's change does not
        carry: anything under /tmp (HOME is there) and the workspace's ignored files. Returns
        their paths, or one note when the image cannot tell (its find lacks -cnewer)."""
        self._check_open()
        mark = posixpath.join(RUN_MOUNT, BASELINE_MARK)
        if not (self.run_dir / BASELINE_MARK).exists():
            return []
        base, ws = self.base_commit or "HEAD", self.workspace
        argv = ["/bin/sh", "-c", SWEEP_SCRIPT, "sweep", base, ws, self._base_objects(), mark]
        result, _ = await asyncio.to_thread(
            self._fresh.run, argv, workdir=ws, timeout=self.config.command_timeout, cap=None
        )
        if not result.ok:
            raise SandboxError(f"could not sweep the sandbox: {result.output[-2000:]}")
        # The session shell's own files under /tmp go too, unreported.
        own = posixpath.dirname(STATE_FILE) + "/.qwen-fix-"
        return [path for path in result.output.split("\0") if path and not path.startswith(own)]

    async def read_file(self, path: str) -> bytes:
        """The bytes of a file; relative paths are relative to the workspace."""
        self._check_open()
        target = self._absolute(path)
        if not self._in_workspace(target):
            return await self._read_via_shell(target)
        for _ in range(MAX_SYMLINK_HOPS):
            content = await asyncio.to_thread(self._get_archive, target)
            if isinstance(content, bytes):
                return content
            target = content
            if not self._in_workspace(target):
                return await self._read_via_shell(target)
        raise OSError(f"too many levels of symbolic links: {path}")

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (owned by the sandbox user), making parent directories."""
        self._check_open()
        target = self._absolute(path)
        if not self._in_workspace(target):
            await self._write_via_shell(target, data)
            return
        parent, name = posixpath.split(target)
        mode = await asyncio.to_thread(self._existing_mode, target)
        archive = pack_file(name, data, uid=self.config.uid, gid=self.config.gid, mode=mode)
        try:
            await asyncio.to_thread(self.client.api.put_archive, self.container_id, parent, archive)
        except NotFound:
            await self._check_ok(await self.run(f"mkdir -p -- {shlex.quote(parent)}"), path)
            await asyncio.to_thread(self.client.api.put_archive, self.container_id, parent, archive)

    async def diff(self) -> str:
        """`git diff --binary` of the workspace against the base commit, untracked files included.

        Runs inside the container (never git on the host over sandbox-writable files). Bytes
        that are not UTF-8 are kept as surrogate escapes: encode with "surrogateescape".
        """
        self._check_open()
        base = shlex.quote(self.base_commit or "HEAD")
        ws = shlex.quote(self.workspace)
        git = "git -c core.fsmonitor=false -c core.quotepath=off"
        script = (
            f"cp -f {ws}/.git/index {DIFF_INDEX} 2>/dev/null || {git} read-tree {base} || exit\n"
            f"GIT_INDEX_FILE={DIFF_INDEX} {git} add -A || exit\n"
            f"GIT_INDEX_FILE={DIFF_INDEX} {git} diff --cached --binary --no-color --no-ext-diff"
            f" --no-textconv --src-prefix=a/ --dst-prefix=b/ {base} >{DIFF_PATCH} || exit\n"
            f"rm -f {DIFF_INDEX}; base64 <{DIFF_PATCH}; status=$?; rm -f {DIFF_PATCH}; exit $status"
        )
        result = await self._shell.run(
            script, timeout=self.config.command_timeout, cwd=self.workspace, capped=False
        )
        if not result.ok:
            raise SandboxError(f"git diff failed in the sandbox: {result.output[-2000:]}")
        return base64.b64decode(result.output).decode("utf-8", errors="surrogateescape")

    async def close(self) -> None:
        """Remove the container; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._shell.close()
        await asyncio.to_thread(remove_container, self.client, self.container_id)
        await asyncio.to_thread(shutil.rmtree, self.run_dir, True)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")

    def _base_objects(self) -> str:
        """Where the fresh exec's git reads the base commit: the read-only share when the
        checkout borrows from it (then nothing the sandbox can write is read for the base),
        else the workspace's own store."""
        shared = self.objects_dir
        if shared is not None and shared.is_dir() and any(shared.iterdir()):
            return OBJECTS_MOUNT
        return posixpath.join(self.workspace, ".git", "objects")

    def _absolute(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workspace, path))

    def _in_workspace(self, path: str) -> bool:
        return path == self.workspace or path.startswith(self.workspace.rstrip("/") + "/")

    async def _open_exec_socket(self) -> socket.socket:
        return await asyncio.to_thread(self._open_exec_socket_blocking)

    def _open_exec_socket_blocking(self) -> socket.socket:
        api = self.client.api
        exec_id = api.exec_create(
            self.container_id,
            ["/bin/sh"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=self.config.user,
            workdir=self.workspace,
        )["Id"]
        stream = api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)
        if not isinstance(raw, socket.socket):
            raise SandboxError("the docker exec stream is not a plain socket (TLS/ssh engines)")
        # Our own descriptor: the HTTP response object may close its one when collected.
        own = raw.dup()
        stream.close()
        raw.close()
        return own

    def _get_archive(self, path: str) -> bytes | str:
        try:
            chunks, _ = self.client.api.get_archive(self.container_id, path)
        except NotFound:
            raise FileNotFoundError(path) from None
        return unpack_file(chunks, path)

    def _existing_mode(self, path: str) -> int:
        """Permission bits of the file being replaced (so +x survives an edit), else 0644."""
        api = self.client.api
        # docker-py has no call for the archive HEAD (stat) endpoint; unversioned paths
        # are served at the engine's own API version.
        url = f"{api.base_url}/containers/{self.container_id}/archive"
        response = api.head(url, params={"path": path})
        header = response.headers.get("X-Docker-Container-Path-Stat")
        if response.status_code != 200 or not header:
            return 0o644
        stat: dict[str, Any] = json.loads(base64.b64decode(header))
        go_file_type_bits = 0xFFF00000
        if int(stat.get("mode", 0)) & go_file_type_bits:
            return 0o644
        return int(stat["mode"]) & 0o777

    async def _read_via_shell(self, path: str) -> bytes:
        # The archive API cannot see tmpfs mounts such as /tmp, so go through the shell.
        result = await self._shell.run(
            f"base64 <{shlex.quote(path)}", timeout=self.config.command_timeout, capped=False
        )
        await self._check_ok(result, path)
        return base64.b64decode(result.output)

    async def _write_via_shell(self, path: str, data: bytes) -> None:
        target = shlex.quote(path)
        parent = shlex.quote(posixpath.dirname(path))
        encoded = base64.b64encode(data).decode()
        script = f"mkdir -p -- {parent} && printf '%s' '{encoded}' | base64 -d >{target}"
        result = await self._shell.run(script, timeout=self.config.command_timeout)
        await self._check_ok(result, path)

    async def _check_ok(self, result: ExecResult, path: str) -> None:
        if result.ok:
            return
        message = result.output.strip()
        if "No such file" in message or "nonexistent" in message:
            raise FileNotFoundError(path)
        if "Permission denied" in message or "Read-only" in message:
            raise PermissionError(f"{path}: {message}")
        raise OSError(f"{path}: {message}")

    async def _read_base_in_container(self) -> str:
        result = await self._shell.run(
            "git rev-parse --verify -q HEAD || git hash-object -t tree /dev/null",
            timeout=self.config.command_timeout,
            cwd=self.workspace,
        )
        return result.output.strip().splitlines()[-1] if result.ok else "HEAD"


def give_tree_to(root: Path, uid: int, gid: int) -> None:
    """chown a host directory tree to the sandbox user, skipping entries already theirs."""
    try:
        for directory, _, files in os.walk(root):
            for entry in (directory, *(os.path.join(directory, f) for f in files)):
                status = os.lstat(entry)
                if status.st_uid != uid or status.st_gid != gid:
                    os.lchown(entry, uid, gid)
    except PermissionError as exc:
        raise SandboxError(
            f"cannot hand {root} to uid {uid}: run the worker as root or create the checkout"
            f" as that user ({exc})"
        ) from None


def make_run_dir(config: SandboxConfig) -> Path:
    """A fresh host directory for the shell's FIFOs and the setup proxy's socket, reachable by
    the sandbox user only.

    It is mounted read-only, so the sandbox can open the FIFOs and connect to the socket but
    never plant a file there.
    """
    if config.scratch_dir is not None:
        config.scratch_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=config.scratch_dir))
    try:
        give_tree_to(path, config.uid, config.gid)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def _create_container(
    client: docker.DockerClient,
    config: SandboxConfig,
    workspace_dir: Path,
    extra_labels: Mapping[str, str],
    run_dir: Path,
    name: str | None = None,
    objects_dir: Path | None = None,
) -> str:
    """Create and start the container; its id.

    A network-less sandbox is first tried in the default network mode: on an engine without
    a bridge network (dockerd --bridge=none) that gives a new namespace with only loopback,
    as `none` does, and starts about 130 ms sooner (with `none` the engine prepares the
    namespace itself before runc starts the container). The container is checked before it
    starts; on an engine where it would join a network it is removed, and that engine gets
    `none` from then on.
    """
    if config.network == "none" and _DEFAULT_MODE_IS_BARE.get(client.api.base_url, True):
        try:
            return _create_container_in(
                client, config, workspace_dir, extra_labels, run_dir, "default", name, objects_dir
            )
        except _NetworkAttached:
            _DEFAULT_MODE_IS_BARE[client.api.base_url] = False
    return _create_container_in(
        client, config, workspace_dir, extra_labels, run_dir, config.network, name, objects_dir
    )


class _NetworkAttached(Exception):
    """A container meant to have no network was given one; it was removed before it started."""


_DEFAULT_MODE_IS_BARE: dict[str, bool] = {}
"""Per engine (API URL): False once a default-mode container turned out to join a network."""


def _existing_networks(client: docker.DockerClient, container_id: str) -> list[str]:
    """Networks a created container would join that exist on the engine (`none` aside).

    In the default mode a container names `bridge`, which on an engine without one joins
    nothing: its namespace keeps only loopback."""
    named = client.api.inspect_container(container_id)["NetworkSettings"]["Networks"] or {}
    wanted = set(named) - {"none"}
    if not wanted:
        return []
    existing = {network["Name"] for network in client.api.networks(names=sorted(wanted))}
    return sorted(wanted & existing)


def _create_container_in(
    client: docker.DockerClient,
    config: SandboxConfig,
    workspace_dir: Path,
    extra_labels: Mapping[str, str],
    run_dir: Path,
    network_mode: str,
    name: str | None = None,
    objects_dir: Path | None = None,
) -> str:
    api = client.api
    lifetime = math.ceil(config.lifetime)
    host_config = api.create_host_config(
        binds=_binds(config, workspace_dir, run_dir, objects_dir),
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={config.tmpfs_size},mode=1777"},
        network_mode=network_mode,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=config.memory,
        memswap_limit=config.memory,
        nano_cpus=int(config.cpus * 1e9),
        pids_limit=config.pids,
        # docker-init as pid 1 reaps the orphans of killed process groups.
        init=True,
        auto_remove=True,
    )
    all_labels = {
        **extra_labels,
        label.SANDBOX: "1",
        label.EXPIRES_AT: str(int(time.time()) + lifetime),
    }
    container = api.create_container(
        config.image,
        # The lifetime is enforced by pid 1 itself: the container ends when sleep does.
        command=["sleep", str(lifetime)],
        user=config.user,
        working_dir=config.workspace,
        environment=sandbox_environment(config),
        labels=all_labels,
        hostname="sandbox",
        host_config=host_config,
        name=name,
    )
    container_id: str = container["Id"]
    try:
        if config.network == "none" and network_mode != "none":
            attached = _existing_networks(client, container_id)
            if attached:
                remove_container(client, container_id)
                raise _NetworkAttached(attached)
        api.start(container_id)
    except BaseException:
        remove_container(client, container_id)
        raise
    return container_id


def _binds(
    config: SandboxConfig, workspace_dir: Path, run_dir: Path, objects_dir: Path | None
) -> dict[str, Mapping[str, str]]:
    binds: dict[str, Mapping[str, str]] = {
        str(workspace_dir): {"bind": config.workspace, "mode": "rw"},
        str(run_dir): {"bind": RUN_MOUNT, "mode": "ro"},
    }
    if objects_dir is not None:
        binds[str(objects_dir)] = {"bind": OBJECTS_MOUNT, "mode": "ro"}
    return binds


def remove_container(client: docker.DockerClient, container_id: str) -> None:
    """Force-remove a container; already gone (or being removed) counts as done."""
    try:
        client.api.remove_container(container_id, force=True)
    except NotFound:
        pass
    except APIError as exc:
        if exc.status_code != 409:  # removal already in progress (auto-remove)
            raise


def _with_output(result: ExecResult, output: str) -> ExecResult:
    return dataclasses.replace(result, output=output)


def _line_break(text: str) -> str:
    return "\n" if text and not text.endswith("\n") else ""
