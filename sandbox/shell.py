"""ShellChannel: one persistent /bin/sh on an exec socket, running framed commands.

Every command runs in its own `setsid /bin/sh` (own session and process group, stdin
from /dev/null), so a timeout can kill the whole group with the `kill` builtin of the
long-lived shell, which stays usable even when the pids limit leaves no room to fork.
Starting a shell costs two execs (milliseconds), so the next command's shell is started
as soon as a command ends and blocks on a FIFO until the long-lived shell hands it the
next command; the round trip of a command is then a FIFO write and a few builtins.
Output is framed by random per-command tokens: `<token>S<pgid>` before, `<token>E<status>`
after. The working directory and exported variables persist through a state file that
each command sources when it starts and rewrites when it exits.
Only POSIX sh features are used, so busybox images work too.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping

from sandbox.framing import StreamDemuxer
from sandbox.output import CappedOutput
from sandbox.protocol import ExecResult

SocketOpener = Callable[[], Awaitable[socket.socket]]
"""Opens a fresh exec socket running /bin/sh (docker's multiplexed framing, tty off)."""

STATE_FILE = "/tmp/.qwen-fix-shell-state"
COMMAND_FILE = "/tmp/.qwen-fix-shell-command"
"""The long-lived shell writes each command here with the printf builtin: an exec argument
could not exceed 128 KiB, a file can."""
ENDED_FILE = "/tmp/.qwen-fix-shell-ended"
"""Token of the last command whose shell printed its own end marker."""
STALE_TOKENS = 8
"""Earlier commands whose late duplicate end markers are still dropped from the stream."""
GO_FDS = (4, 5)
"""Descriptors of the two FIFOs that hand out commands. They alternate, so a shell started
ahead of time never reads the go line meant for the one before it."""
KILL_GRACE = 10.0
"""Seconds to wait for a killed command's end marker before giving the channel up."""
RESTART_NOTE = (
    "[sandbox: the shell had exited or was abandoned and was restarted; exported variables"
    " and the working directory were restored]\n"
)
DIED_NOTE = "\n[sandbox: the shell exited; it is restarted on the next command]\n"
# Shell variables the environment starts with; each command unsets them before sourcing
# the state file so that an `unset` in an earlier command sticks.
SHELL_SET_NAMES = ("HOSTNAME", "PWD", "OLDPWD")


class ShellError(RuntimeError):
    """The shell channel could not be started or answered nonsense."""


def _runner_script(workspace: str, baseline_names: Iterable[str]) -> str:
    """Script of a per-command shell: `$1` its token, `$2` the FIFO its go line comes on.

    The go line is the keep-state flag; the command is sourced from COMMAND_FILE. The
    shell prints its own end marker on exit (one process wake-up fewer than leaving it to
    the waiting wrapper) and notes its token in ENDED_FILE, so the wrapper prints the
    marker only for a shell that could not: killed, or its EXIT trap replaced.
    """
    names = " ".join(sorted(set(baseline_names) | set(SHELL_SET_NAMES)))
    template = """qf_token=$1
exec 3<"$2" || exit 125
set --
read qf_keep <&3 || exit 0
exec 3<&-
printf '%sS%d\\n' "$qf_token" "$$"
if [ -r STATE ]; then unset NAMES; . STATE; fi
cd -- "${PWD:-WORKSPACE}" 2>/dev/null || cd -- WORKSPACE
qf_save=:
[ "$qf_keep" = 1 ] && qf_save='export PWD; export -p >STATE'
trap 'qf_status=$?; eval "$qf_save"; printf "%s\\n" "$qf_token" >ENDED; \
printf "%sE%d\\n" "$qf_token" "$qf_status"; exit $qf_status' EXIT
. COMMAND
"""
    replacements = {
        "STATE": shlex.quote(STATE_FILE),
        "ENDED": shlex.quote(ENDED_FILE),
        "COMMAND": shlex.quote(COMMAND_FILE),
        "NAMES": names,
        "WORKSPACE": shlex.quote(workspace),
    }
    for placeholder, value in replacements.items():
        template = template.replace(placeholder, value)
    return template


def _init_script(
    workspace: str, home: str, runner: str, fifo: str, first_token: str, ready: str
) -> str:
    """Sent once to the long-lived shell: FIFOs, `qf_spawn`, `qf_go`, the first state.

    The long-lived shell forks only between commands (`qf_spawn` is sent once a command
    has ended): a shell that cannot fork exits, and during a fork bomb it must stay alive
    to kill the bomb.
    """
    ws = shlex.quote(workspace)
    state = shlex.quote(STATE_FILE)
    first, second = GO_FDS
    return (
        "exec 2>&1\n"
        f"mkdir -p {shlex.quote(home)} 2>/dev/null\n"
        f"mkfifo -m 600 {fifo}.{first} {fifo}.{second} || exit 1\n"
        # Held open read-write here, so writing a go line never blocks or gets lost.
        f"exec {first}<>{fifo}.{first} {second}<>{fifo}.{second}\n"
        f"cd -- {ws}\n"
        "if command -v setsid >/dev/null 2>&1; then qf_setsid=setsid; else qf_setsid=; fi\n"
        f"qf_runner={shlex.quote(runner)}\n"
        f"qf_fifo={fifo}\n"
        "qf_spawn() {\n"
        "  qf_waiting=\n"
        f"  {{ exec {first}>&- {second}>&-; "
        '$qf_setsid /bin/sh -c "$qf_runner" qf "$1" "$qf_fifo.$2" </dev/null; qf_s=$?; '
        f"read qf_e 2>/dev/null <{ENDED_FILE}; "
        '[ "$qf_e" = "$1" ] || printf \'%sE%d\\n\' "$1" "$qf_s"; } &\n'
        "  qf_waiting=$!\n"
        "}\n"
        "qf_go() {\n"
        "  jobs >/dev/null\n"
        '  kill -0 "$qf_waiting" 2>/dev/null || qf_spawn "$2" "$3"\n'
        '  printf \'%s\\n\' "$1" >&"$3"\n'
        "}\n"
        f"[ -f {state} ] || {{ export PWD; export -p >{state}; }}\n"
        f"qf_spawn {first_token} {first}\n"
        f"printf '%s\\n' {ready}\n"
    )


class _ShellProtocol(asyncio.Protocol):
    """Collects demultiplexed output and wakes the one reader waiting on it."""

    def __init__(self) -> None:
        self.demuxer = StreamDemuxer()
        self.buffer = bytearray()
        self.lost = False
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += self.demuxer.feed(data)
        self.wake()

    def eof_received(self) -> bool:
        self.lost = True
        self.wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_for_data(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


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
    """A stateful shell session: `run` frames each command and reads back its output and status."""

    def __init__(
        self,
        open_socket: SocketOpener,
        *,
        workspace: str,
        home: str,
        baseline_names: Iterable[str],
        output_cap: int,
    ) -> None:
        self._open_socket = open_socket
        self._workspace = workspace
        self._home = home
        self._runner = _runner_script(workspace, baseline_names)
        self._output_cap = output_cap
        self._lock = asyncio.Lock()
        self._transport: asyncio.Transport | None = None
        self._protocol: _ShellProtocol | None = None
        self._next_token = ""
        self._next_fd = GO_FDS[0]
        self._stale_tokens: deque[bytes] = deque(maxlen=STALE_TOKENS)

    @property
    def alive(self) -> bool:
        return self._protocol is not None and not self._protocol.lost

    async def start(self) -> None:
        """Open the exec socket and initialise the long-lived shell; returns once it answers."""
        sock = await self._open_socket()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_accepted_socket(_ShellProtocol, sock)
        self._transport, self._protocol = transport, protocol
        ready = _new_token().encode() + b"R"
        fifo = f"/tmp/.qwen-fix-go-{secrets.token_hex(6)}"
        self._next_token, self._next_fd = _new_token(), GO_FDS[0]
        init = _init_script(
            self._workspace, self._home, self._runner, fifo, self._next_token, ready.decode()
        )
        transport.write(init.encode())
        deadline = loop.time() + 30.0
        while protocol.buffer.find(ready + b"\n") < 0:
            if protocol.lost or loop.time() > deadline:
                output = bytes(protocol.buffer).decode(errors="replace")
                self.close()
                raise ShellError(f"the sandbox shell did not start: {output[-2000:]!r}")
            async with asyncio.timeout_at(deadline):
                await protocol.wait_for_data()
        protocol.buffer.clear()

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
            result = await self._run_framed(command, timeout, prelude, capped)
            if result is None:
                # The shell had died before the command reached it: restart, run it now.
                note = await self._ensure_started()
                result = await self._run_framed(command, timeout, prelude, capped)
        if result is None:
            raise ShellError("the sandbox shell exits as soon as it starts")
        if note:
            return _with_note(result, note)
        return result

    async def _ensure_started(self) -> str:
        if self.alive:
            return ""
        was_started = self._protocol is not None
        self.close()
        await self.start()
        return RESTART_NOTE if was_started else ""

    async def _run_framed(
        self, command: str, timeout: float, prelude: str, capped: bool
    ) -> ExecResult | None:
        """The command's result, or None when the shell was gone before the command started."""
        assert self._transport is not None and self._protocol is not None
        protocol = self._protocol
        token, fd = self._next_token, self._next_fd
        keep_state = "0" if prelude else "1"
        script = f"{prelude}\n{command}" if prelude else command
        line = (
            f"printf '%s' {shlex.quote(script)} >{COMMAND_FILE}; qf_go {keep_state} {token} {fd}\n"
        )
        cap = self._output_cap if capped else None
        read = _CommandRead(token.encode(), cap, self._stale_tokens)
        self._stale_tokens.append(token.encode())
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._transport.write(line.encode())
        try:
            timed_out = await self._read_until_end(read, loop.time() + timeout)
            if timed_out:
                self._kill(read)
                if await self._read_until_end(read, loop.time() + KILL_GRACE):
                    self.close()
        except BaseException:
            # Cancelled mid-command: stop it and start a clean shell next time, since the
            # stream is somewhere inside this command's frame.
            self._kill(read)
            self.close()
            raise
        if protocol.lost and read.pgid is None:
            return None
        if not protocol.lost:
            self._spawn_next_runner()
        output = read.output.text()
        if protocol.lost and read.exit_code is None:
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
        """SIGKILL the command's process group with the long-lived shell's `kill` builtin."""
        if read.pgid and self.alive:
            assert self._transport is not None
            self._transport.write(f"kill -9 -{read.pgid} 2>/dev/null\n".encode())

    def _spawn_next_runner(self) -> None:
        """Start the next command's shell now, while nothing runs and the agent thinks."""
        assert self._transport is not None
        self._next_token = _new_token()
        self._next_fd = GO_FDS[1] if self._next_fd == GO_FDS[0] else GO_FDS[0]
        self._transport.write(f"qf_spawn {self._next_token} {self._next_fd}\n".encode())

    async def _read_until_end(self, read: _CommandRead, deadline: float) -> bool:
        """Read until the end marker (False) or until `deadline` passes (True)."""
        assert self._protocol is not None
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, protocol.wake)
        try:
            while not read.consume(protocol.buffer):
                if protocol.lost:
                    return False
                if loop.time() >= deadline:
                    return True
                await protocol.wait_for_data()
            return False
        finally:
            timer.cancel()

    def close(self) -> None:
        """Drop the socket; the long-lived shell exits on end of input."""
        if self._transport is not None:
            self._transport.close()
        if self._protocol is not None:
            self._protocol.lost = True


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
