"""ShellChannel: a stateful shell session in a container, without the engine on the hot path.

Three parties take part:
- the *control shell*, one long-lived `/bin/sh` on a docker exec socket. It starts each
  command's shell ahead of time and, on a timeout, kills the command's process group with
  its `kill` builtin, which works even when the pids limit leaves no room to fork. The exec
  socket also tells the worker when the container's shells are gone (end of stream).
- a *command shell* per command: `setsid /bin/sh` (its own session and process group, stdin
  from /dev/null), started as soon as the previous command ends, blocked on a FIFO until the
  worker hands it the next command.
- the worker, which talks to both through FIFOs in the sandbox's run directory: a host
  directory bind-mounted read-only into the container. To run a command it writes the text
  to a file there and one line into the command shell's FIFO; all output of the shells goes
  into the output FIFO, which the worker reads directly. Neither the engine nor any other
  process relays a command or its output: a round trip is two process wake-ups and a few
  shell builtins.

Output is framed by random per-command tokens: `<token>S<pgid>` before, `<token>E<status>`
after. The working directory and exported variables persist through a state file that each
command shell sources when it starts and rewrites when it exits. Only POSIX sh features are
used, so busybox images work too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from sandbox.framing import StreamDemuxer
from sandbox.output import CappedOutput
from sandbox.protocol import ExecResult

SocketOpener = Callable[[], Awaitable[socket.socket]]
"""Opens a fresh exec socket running /bin/sh (docker's multiplexed framing, tty off)."""

STATE_FILE = "/tmp/.qwen-fix-shell-state"
ENDED_FILE = "/tmp/.qwen-fix-shell-ended"
"""Token of the last command whose shell printed its own end marker."""
STALE_TOKENS = 8
"""Earlier commands whose late duplicate end markers are still dropped from the stream."""
LANES = (0, 1)
"""Each lane has its own go FIFO and command file. Successive commands alternate lanes, so a
shell started ahead of time never reads the go line or the command meant for the one before."""
KILL_GRACE = 10.0
"""Seconds to wait for a killed command's end marker before giving the channel up."""
START_TIMEOUT = 30.0
READ_SIZE = 256 * 1024
RESTART_NOTE = (
    "[sandbox: the shell had exited or was abandoned and was restarted; exported variables"
    " and the working directory were restored]\n"
)
NOT_STARTED_NOTE = "[sandbox: the command's shell could not be started; try again]\n"
DIED_NOTE = "\n[sandbox: the shell exited; it is restarted on the next command]\n"
# Shell variables the environment starts with; each command unsets them before sourcing
# the state file so that an `unset` in an earlier command sticks.
SHELL_SET_NAMES = ("HOSTNAME", "PWD", "OLDPWD")


class ShellError(RuntimeError):
    """The shell channel could not be started or answered nonsense."""


def _runner_script(workspace: str, baseline_names: Iterable[str]) -> str:
    """Script of a command shell: `$1` its token, `$2` its go FIFO, `$3` its command file.

    Everything that does not depend on the command happens before the go line: restoring the
    state (final by then, as the shell is started only once the previous command has ended),
    changing directory, printing the start marker. The go line is the keep-state flag followed
    by the token: a go line left behind for a shell that died before reading it is skipped,
    never taken for a newer command. The shell prints its own end marker on exit (one process
    wake-up fewer than leaving it to the waiting wrapper) and notes its token in ENDED_FILE,
    so the wrapper prints the marker only for a shell that could not: killed, or its EXIT
    trap replaced.
    """
    names = " ".join(sorted(set(baseline_names) | set(SHELL_SET_NAMES)))
    template = """qf_token=$1 qf_command=$3
exec 3<"$2" || exit 125
set --
if [ -r STATE ]; then unset NAMES; . STATE; fi
cd -- "${PWD:-WORKSPACE}" 2>/dev/null || cd -- WORKSPACE
printf '%sS%d\\n' "$qf_token" "$$"
while read qf_go <&3 && [ "${qf_go#?}" != "$qf_token" ]; do :; done
[ "${qf_go#?}" = "$qf_token" ] || exit 0
exec 3<&-
qf_save=:
[ "${qf_go%"$qf_token"}" = 1 ] && qf_save='export PWD; export -p >STATE'
trap 'qf_status=$?; eval "$qf_save"; printf "%s\\n" "$qf_token" >ENDED; \\
printf "%sE%d\\n" "$qf_token" "$qf_status"; exit $qf_status' EXIT
. "$qf_command"
"""
    replacements = {
        "STATE": shlex.quote(STATE_FILE),
        "ENDED": shlex.quote(ENDED_FILE),
        "NAMES": names,
        "WORKSPACE": shlex.quote(workspace),
    }
    for placeholder, value in replacements.items():
        template = template.replace(placeholder, value)
    return template


def _init_script(
    workspace: str, home: str, runner: str, output: str, first_spawn: str, ready: str
) -> str:
    """Sent once to the control shell: send all output to the output FIFO, define `qf_spawn`,
    write the first state, start the first command shell and say it is ready.

    The control shell forks only between commands (`qf_spawn` is sent once a command has
    ended): a shell that cannot fork exits, and during a fork bomb it must stay alive to kill
    the bomb. `jobs` makes it reap the wrappers of earlier commands.
    """
    ws = shlex.quote(workspace)
    state = shlex.quote(STATE_FILE)
    return (
        "exec 2>&1\n"
        f"mkdir -p {shlex.quote(home)} 2>/dev/null\n"
        f"cd -- {ws}\n"
        f"exec >{shlex.quote(output)} 2>&1 || exit 1\n"
        "if command -v setsid >/dev/null 2>&1; then qf_setsid=setsid; else qf_setsid=; fi\n"
        f"qf_runner={shlex.quote(runner)}\n"
        "qf_spawn() {\n"
        "  jobs >/dev/null\n"
        '  { $qf_setsid /bin/sh -c "$qf_runner" qf "$1" "$2" "$3" </dev/null; qf_s=$?; '
        f"read qf_e 2>/dev/null <{ENDED_FILE}; "
        '[ "$qf_e" = "$1" ] || printf \'%sE%d\\n\' "$1" "$qf_s"; } &\n'
        "}\n"
        f"[ -f {state} ] || {{ export PWD; export -p >{state}; }}\n"
        f"{first_spawn}\n"
        f"printf '%s\\n' {ready}\n"
    )


class _Session:
    """One start of the shells: the exec socket, the FIFOs' host ends and the output read so far.

    `buffer` holds what the shells wrote to the output FIFO and has not been parsed yet;
    `lost` turns true when the exec socket ends (the control shell is gone) or on close.
    """

    def __init__(self, run_dir: Path, run_mount: str, owner: tuple[int, int] | None) -> None:
        generation = secrets.token_hex(4)
        self.run_dir = run_dir
        self.run_mount = run_mount
        self.output_name = f"out-{generation}"
        self.go_names = [f"go-{generation}.{lane}" for lane in LANES]
        self.command_names = [f"cmd-{generation}.{lane}" for lane in LANES]
        self.buffer = bytearray()
        self.socket_output = bytearray()
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._fds: list[int] = []
        for name in (self.output_name, *self.go_names):
            path = run_dir / name
            os.mkfifo(path, 0o600)
            if owner is not None and os.getuid() != owner[0]:
                os.chown(path, *owner)
        # Read-write ends: opening never blocks, reads never see end of file and go lines
        # never get lost while the command shell is still starting.
        self._output_fd = self._open(self.output_name)
        self._go_fds = [self._open(name) for name in self.go_names]
        self._command_fds = [self._open(name, create=True) for name in self.command_names]
        asyncio.get_running_loop().add_reader(self._output_fd, self._on_output)

    def in_container(self, name: str) -> str:
        return f"{self.run_mount.rstrip('/')}/{name}"

    async def connect(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(lambda: _ControlProtocol(self), sock)
        self._transport = transport

    def tell_control_shell(self, line: str) -> None:
        if self._transport is not None and not self.lost:
            self._transport.write(line.encode())

    def hand_over(self, lane: int, token: str, script: str, keep_state: bool) -> None:
        """Give the command shell waiting on `lane` (with `token`) its command."""
        data = script.encode(errors="surrogateescape")
        # Overwritten in place, never truncated to zero or renamed over: on ext4 either makes
        # the kernel flush the file (auto_da_alloc), which costs more than the whole command.
        # The shell that read this lane's last command has ended: lanes alternate.
        fd = self._command_fds[lane]
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.write(self._go_fds[lane], f"{int(keep_state)}{token}\n".encode())

    def _open(self, name: str, *, create: bool = False) -> int:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else os.O_NONBLOCK)
        fd = os.open(self.run_dir / name, flags, 0o644)
        self._fds.append(fd)
        if create:
            os.fchmod(fd, 0o644)  # whatever the worker's umask: the sandbox user reads it
        return fd

    def _on_output(self) -> None:
        while True:
            try:
                data = os.read(self._output_fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.lost = True
                break
            self.buffer += data
            if len(data) < READ_SIZE:
                break
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_for_data(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        """Drop the socket and the FIFOs: the control shell exits on end of input, and a
        command shell still writing output gets EPIPE once no reader is left."""
        self.lost = True
        self.wake()
        if self._transport is not None:
            self._transport.close()
        if self._fds:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._output_fd)
            for fd in self._fds:
                os.close(fd)
            self._fds = []
        for name in (self.output_name, *self.go_names, *self.command_names):
            with contextlib.suppress(OSError):
                os.unlink(self.run_dir / name)


class _ControlProtocol(asyncio.Protocol):
    """The exec socket of the control shell: keeps what it prints before its output moves to
    the FIFO (start-up errors) and notices when it ends."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.demuxer = StreamDemuxer()

    def data_received(self, data: bytes) -> None:
        self.session.socket_output += self.demuxer.feed(data)
        self.session.wake()

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.lost = True
        self.session.wake()


class _CommandRead:
    """Parses one command's frame out of the stream: start marker, output, end marker.

    A waiting wrapper prints an end marker when `ENDED_FILE` does not hold its token. On a
    loaded machine it may read that file only after the next command's shell has written its
    own token there, and so print a duplicate end marker in the middle of the next command's
    output: end markers of the last few tokens (`stale_tokens`) are dropped.
    """

    def __init__(self, token: bytes, cap: int | None, stale_tokens: Iterable[bytes] = ()) -> None:
        self.start_mark = token + b"S"
        self.end_mark = token + b"E"
        self.stale_marks = tuple(stale + b"E" for stale in stale_tokens)
        self.output = CappedOutput(cap)
        self.pgid: int | None = None
        self.exit_code: int | None = None

    def begin(self, buffer: bytearray) -> None:
        """Called just before the go line: the waiting shell has usually printed its start
        marker already. Output that came after it came before the command did (background
        jobs of earlier commands): drop it, unless it holds this command's end marker (the
        waiting shell died)."""
        if not self._consume_start(buffer) or not self.pgid:
            return
        end = buffer.find(self.end_mark)
        if end >= 0:
            self.pgid = 0  # the command never started
        del buffer[: end if end >= 0 else len(buffer)]

    def consume(self, buffer: bytearray) -> bool:
        """Eat what can be parsed from `buffer`; True once the end marker has been read."""
        if self.pgid is None and not self._consume_start(buffer):
            return False
        return self._consume_body(buffer)

    def _consume_start(self, buffer: bytearray) -> bool:
        index = buffer.find(self.start_mark)
        if index < 0:
            # The command could not even start (e.g. fork failed): its end marker comes alone.
            if buffer.find(self.end_mark) >= 0:
                self.pgid = 0
                return True
            # Stray output of background jobs from earlier commands is dropped.
            del buffer[: max(0, len(buffer) - len(self.start_mark))]
            return False
        newline = buffer.find(b"\n", index)
        if newline < 0:
            return False
        self.pgid = int(buffer[index + len(self.start_mark) : newline])
        del buffer[: newline + 1]
        return True

    def _consume_body(self, buffer: bytearray) -> bool:
        complete = self._drop_stale_marks(buffer)
        index = buffer.find(self.end_mark, 0, complete)
        if index < 0:
            # A marker may be split across reads: hold back what could be its beginning.
            fed = min(complete, len(buffer) - (len(self.end_mark) - 1))
            if fed > 0:
                self.output.feed(bytes(buffer[:fed]))
                del buffer[:fed]
            return False
        newline = buffer.find(b"\n", index)
        if newline < 0:
            self.output.feed(bytes(buffer[:index]))
            del buffer[:index]
            return False
        self.output.feed(bytes(buffer[:index]))
        self.exit_code = int(buffer[index + len(self.end_mark) : newline])
        del buffer[: newline + 1]
        return True

    def _drop_stale_marks(self, buffer: bytearray) -> int:
        """Delete earlier commands' end-marker lines; return where an unfinished one starts."""
        complete = len(buffer)
        for mark in self.stale_marks:
            index = buffer.find(mark)
            while index >= 0:
                newline = buffer.find(b"\n", index)
                if newline < 0:
                    complete = min(complete, index)
                    break
                del buffer[index : newline + 1]
                index = buffer.find(mark, index)
        return complete


class ShellChannel:
    """A stateful shell session: `run` frames each command and reads back its output and status.

    `run_dir` is a host directory the container sees (read-only is enough) at `run_mount`;
    `owner` is the uid and gid of the sandbox user, who must be able to open the FIFOs.
    """

    def __init__(
        self,
        open_socket: SocketOpener,
        *,
        run_dir: Path,
        run_mount: str,
        owner: tuple[int, int] | None,
        workspace: str,
        home: str,
        baseline_names: Iterable[str],
        output_cap: int,
    ) -> None:
        self._open_socket = open_socket
        self._run_dir = run_dir
        self._run_mount = run_mount
        self._owner = owner
        self._workspace = workspace
        self._home = home
        self._runner = _runner_script(workspace, baseline_names)
        self._output_cap = output_cap
        self._lock = asyncio.Lock()
        self._session: _Session | None = None
        self._next_token = ""
        self._next_lane = LANES[0]
        self._stale_tokens: deque[bytes] = deque(maxlen=STALE_TOKENS)

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._session.lost

    async def start(self) -> None:
        """Open the exec socket and initialise the control shell; returns once it answers."""
        session = _Session(self._run_dir, self._run_mount, self._owner)
        self._session = session
        try:
            await session.connect(await self._open_socket())
        except BaseException:
            session.close()
            raise
        ready = _new_token().encode() + b"R"
        self._next_token, self._next_lane = _new_token(), LANES[0]
        init = _init_script(
            self._workspace,
            self._home,
            self._runner,
            session.in_container(session.output_name),
            self._spawn_line(session),
            ready.decode(),
        )
        session.tell_control_shell(init)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while session.buffer.find(ready + b"\n") < 0:
            if session.lost or loop.time() > deadline:
                output = bytes(session.socket_output + session.buffer).decode(errors="replace")
                self.close()
                raise ShellError(f"the sandbox shell did not start: {output[-2000:]!r}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await session.wait_for_data()
        del session.buffer[: session.buffer.find(ready + b"\n") + len(ready) + 1]

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        capped: bool = True,
    ) -> ExecResult:
        """Run `command`; a `cwd` or `env` given here applies to this command only."""
        if "\x00" in command:
            raise ValueError("a shell command cannot contain NUL bytes")
        prelude = _prelude(cwd, env)
        async with self._lock:
            note = await self._ensure_started()
            result = await self._run_framed(command, timeout, prelude, capped, last_try=False)
            if result is None:
                # The shells were gone before the command reached them: (re)start, run it now.
                note = await self._ensure_started() or note
                result = await self._run_framed(command, timeout, prelude, capped, last_try=True)
        if result is None:
            raise ShellError("the sandbox shell exits as soon as it starts")
        if note:
            return _with_note(result, note)
        return result

    async def _ensure_started(self) -> str:
        if self.alive:
            return ""
        was_started = self._session is not None
        self.close()
        await self.start()
        return RESTART_NOTE if was_started else ""

    async def _run_framed(
        self, command: str, timeout: float, prelude: str, capped: bool, *, last_try: bool
    ) -> ExecResult | None:
        """The command's result, or None when its shell was gone before the command started
        (always None, on the last try, when the control shell is gone)."""
        session = self._session
        assert session is not None
        token, lane = self._next_token, self._next_lane
        script = f"{prelude}\n{command}\n" if prelude else f"{command}\n"
        cap = self._output_cap if capped else None
        read = _CommandRead(token.encode(), cap, self._stale_tokens)
        self._stale_tokens.append(token.encode())
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        read.begin(session.buffer)
        session.hand_over(lane, token, script, keep_state=not prelude)
        try:
            timed_out = await self._read_until_end(session, read, loop.time() + timeout)
            if timed_out:
                self._kill(read)
                if await self._read_until_end(session, read, loop.time() + KILL_GRACE):
                    self.close()
        except BaseException:
            # Cancelled mid-command: stop it and start clean next time, since the output
            # stream is somewhere inside this command's frame.
            self._kill(read)
            self.close()
            raise
        never_started = not read.pgid and (session.lost or read.exit_code is not None)
        if not session.lost:
            self._spawn_next_runner(session)
        if never_started and (session.lost or not last_try):
            # The control shell died, or the waiting shell was killed (by an earlier command,
            # or it could not be forked) before its go line came.
            return None
        output = read.output.text()
        if never_started:
            output += NOT_STARTED_NOTE
        elif session.lost and read.exit_code is None:
            output += DIED_NOTE
        exit_code = -1 if timed_out or read.exit_code is None else read.exit_code
        return ExecResult(
            exit_code=exit_code,
            output=output,
            truncated=read.output.truncated,
            timed_out=timed_out,
            duration=time.perf_counter() - started,
        )

    def _kill(self, read: _CommandRead) -> None:
        """SIGKILL the command's process group with the control shell's `kill` builtin."""
        if read.pgid and self._session is not None:
            self._session.tell_control_shell(f"kill -9 -{read.pgid} 2>/dev/null\n")

    def _spawn_line(self, session: _Session) -> str:
        lane = self._next_lane
        go = session.in_container(session.go_names[lane])
        command = session.in_container(session.command_names[lane])
        return f"qf_spawn {self._next_token} {shlex.quote(go)} {shlex.quote(command)}"

    def _spawn_next_runner(self, session: _Session) -> None:
        """Start the next command's shell now, while nothing runs and the agent thinks.

        The line goes out once this command's result has been handed back: writing to the
        exec socket wakes the engine, which the caller need not wait for."""
        self._next_token = _new_token()
        self._next_lane = LANES[1] if self._next_lane == LANES[0] else LANES[0]
        line = self._spawn_line(session) + "\n"
        asyncio.get_running_loop().call_soon(session.tell_control_shell, line)

    async def _read_until_end(self, session: _Session, read: _CommandRead, deadline: float) -> bool:
        """Read until the end marker (False) or until `deadline` passes (True)."""
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, session.wake)
        try:
            while not read.consume(session.buffer):
                if session.lost:
                    return False
                if loop.time() >= deadline:
                    return True
                await session.wait_for_data()
            return False
        finally:
            timer.cancel()

    def close(self) -> None:
        """Drop the socket and the FIFOs; the control shell exits on end of input."""
        if self._session is not None:
            self._session.close()


def _new_token() -> str:
    return "QF" + secrets.token_hex(8)


def _prelude(cwd: str | None, env: Mapping[str, str] | None) -> str:
    """Shell text that sets up one command's own cwd and variables."""
    parts = []
    if cwd is not None:
        parts.append(f"cd -- {shlex.quote(cwd)} || exit 1")
    for name, value in (env or {}).items():
        if not name.isidentifier() or not name.isascii():
            raise ValueError(f"not a valid environment variable name: {name!r}")
        parts.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(parts)


def _with_note(result: ExecResult, note: str) -> ExecResult:
    return ExecResult(
        exit_code=result.exit_code,
        output=note + result.output,
        truncated=result.truncated,
        timed_out=result.timed_out,
        duration=result.duration,
    )
