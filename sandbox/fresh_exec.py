"""One command on a fresh `docker exec`: nothing of the session shell's state comes along.

The session shell (sandbox/shell.py) restores the working directory and exported variables from a
state file the sandbox can write, so whatever ran in the session can steer its next command. A
fresh exec starts from the container's baseline environment, in a directory the worker names,
and sources nothing. The worker uses it where the model must have no say: stopping every process
the session left running, reading the final diff, and the test run that decides the verdict.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import docker

from sandbox.framing import StreamDemuxer
from sandbox.output import CappedOutput
from sandbox.protocol import ExecResult

READ_SIZE = 256 * 1024

STOP_ALL_SCRIPT = r"""
# Every process of the sandbox user but pid 1 (docker-init), the container's main command (the
# first child of pid 1, whose end would end the container) and this shell: SIGKILL, in rounds,
# since a process may fork while the list is walked. Builtins only: no fork in the loop.
main=
for stat in /proc/[0-9]*/stat; do
  read -r line 2>/dev/null <"$stat" || continue
  rest=${line##*) }
  set -- $rest
  [ "$2" = 1 ] || continue
  pid=${stat#/proc/}; pid=${pid%/stat}
  if [ -z "$main" ] || [ "$pid" -lt "$main" ]; then main=$pid; fi
done
round=0
while [ "$round" -lt 50 ]; do
  killed=
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}; pid=${pid%/stat}
    case "$pid" in 1|"$$"|"$main") continue ;; esac
    read -r line 2>/dev/null <"$stat" || continue
    rest=${line##*) }
    # A zombie is already dead: its parent (docker-init, for orphans) reaps it.
    [ "${rest%% *}" = Z ] && continue
    kill -9 "$pid" 2>/dev/null && killed=1
  done
  [ -n "$killed" ] || exit 0
  round=$((round + 1))
done
exit 1
"""


@dataclass(frozen=True, slots=True)
class FreshExec:
    """Where and as whom fresh execs run in one container."""

    client: docker.DockerClient
    container_id: str
    user: str
    environment: Mapping[str, str]

    def run(
        self, argv: Sequence[str], *, workdir: str, timeout: float, cap: int | None
    ) -> tuple[ExecResult, bool]:
        """Run `argv` (blocking); returns its result and whether the deadline passed first.

        On a timeout the command is left running: the caller stops it (`stop_all`).
        """
        api = self.client.api
        exec_id = api.exec_create(
            self.container_id,
            list(argv),
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            user=self.user,
            workdir=workdir,
            environment=dict(self.environment),
        )["Id"]
        started = time.perf_counter()
        stream = api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)
        if not isinstance(raw, socket.socket):
            stream.close()
            raise RuntimeError("the docker exec stream is not a plain socket (TLS/ssh engines)")
        output = CappedOutput(cap)
        try:
            timed_out = _read_until_closed(raw, output, started + timeout)
        finally:
            stream.close()
        exit_code = -1 if timed_out else self._exit_code(exec_id)
        result = ExecResult(
            exit_code=exit_code,
            output=output.text(),
            truncated=output.truncated,
            timed_out=timed_out,
            duration=time.perf_counter() - started,
        )
        return result, timed_out

    def _exit_code(self, exec_id: str) -> int:
        """The exec's status: the engine may still say it runs just after its stream ended."""
        for _ in range(200):
            state = self.client.api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            time.sleep(0.005)
        return -1

    def stop_all(self) -> ExecResult:
        """SIGKILL every process of the sandbox user except the container's own (blocking)."""
        result, _ = self.run(["/bin/sh", "-c", STOP_ALL_SCRIPT], workdir="/", timeout=60, cap=4096)
        return result


def _read_until_closed(sock: socket.socket, output: CappedOutput, deadline: float) -> bool:
    """Feed the exec's payload into `output` until it ends (False) or `deadline` (True)."""
    demuxer = StreamDemuxer()
    sock.setblocking(False)
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return True
        readable, _, _ = select.select([sock], [], [], min(left, 1.0))
        if not readable:
            continue
        try:
            data = sock.recv(READ_SIZE)
        except BlockingIOError:
            continue
        if not data:
            return False
        output.feed(demuxer.feed(data))


PRISTINE_GIT = r"""
# A git directory of our own over the workspace: its config, hooks, index, excludes and replace
# refs are the sandbox's to forge, so none of them is read. The base commit's objects come from
# $3: the read-only share of the repository's objects when the checkout borrows from it (then
# no file the sandbox can write, not even the workspace's alternates, is read), else the
# workspace's store. $1 the base commit, $2 the workspace, $3 that object directory.
base=$1 ws=$2 objects=$3
d=$(mktemp -d /tmp/.qwen-fix-git.XXXXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
git init -q "$d/repo" || exit 1
printf '%s\n' "$objects" >"$d/repo/.git/objects/info/alternates"
export GIT_DIR="$d/repo/.git" GIT_WORK_TREE="$ws" GIT_INDEX_FILE="$d/index" \
  GIT_NO_REPLACE_OBJECTS=1 GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_OPTIONAL_LOCKS=0
qf_git() {
  git -c core.fsmonitor=false -c core.quotepath=off -c core.excludesFile=/dev/null \
    -c core.attributesFile=/dev/null -c core.hooksPath=/dev/null "$@"
}
qf_git read-tree "$base" || exit 1
"""

FINAL_DIFF_SCRIPT = (
    PRISTINE_GIT
    + r"""
qf_git add -A || exit 1
qf_git diff --cached --binary --no-color --no-ext-diff --no-textconv \
  --src-prefix=a/ --dst-prefix=b/ "$base" >"$d/patch" || exit 1
base64 <"$d/patch"
"""
)

SWEEP_SCRIPT = (
    PRISTINE_GIT
    + r"""
# Files changed after the baseline mark (the end of setup) that the change will not carry: any
# under /tmp (HOME is there), and the workspace's ignored ones. ctime, unlike mtime, cannot be
# set back by the sandbox user. $4 the mark.
mark=$4
if ! find "$mark" -maxdepth 0 -cnewer "$mark" >/dev/null 2>&1; then
  echo "[not swept: this image's find has no -cnewer]"; exit 0
fi
find /tmp -xdev ! -type d -cnewer "$mark" ! -path "$d/*" -print0 >"$d/tmp" || exit 1
(cd "$ws" && find . -path ./.git -prune -o ! -type d -cnewer "$mark" -print0) >"$d/ws" || exit 1
qf_git check-ignore --no-index -z --stdin <"$d/ws" >"$d/ignored"
[ $? -le 1 ] || exit 1
xargs -0 rm -f -- <"$d/tmp" || exit 1
(cd "$ws" && xargs -0 rm -f -- <"$d/ignored") || exit 1
cat "$d/tmp" "$d/ignored"
"""
)
