"""The exec channel: state, framing, timeouts, output cap, binary output, stdin."""

from __future__ import annotations

import asyncio
import shlex
import time

from sandbox.docker import DockerSandbox


async def test_cd_and_export_persist_and_unset_sticks(sandbox: DockerSandbox) -> None:
    await sandbox.run("mkdir -p sub/dir && cd sub/dir && export GREETING='hi there'")
    result = await sandbox.run('pwd; echo "$GREETING"')
    assert result.output == "/workspace/sub/dir\nhi there\n"
    await sandbox.run("unset GREETING PAGER")
    assert (await sandbox.run('echo "[${GREETING-unset}] [${PAGER-unset}]"')).output == (
        "[unset] [unset]\n"
    )


async def test_cwd_and_env_arguments_apply_to_one_command(sandbox: DockerSandbox) -> None:
    result = await sandbox.run('pwd; echo "$ONLY_HERE"', cwd="/tmp", env={"ONLY_HERE": "x y"})
    assert result.output == "/tmp\nx y\n"
    after = await sandbox.run('pwd; echo "[$ONLY_HERE]"')
    assert after.output == "/workspace\n[]\n"


async def test_exit_status_and_stderr_are_reported(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("echo out; echo err >&2; exit 7")
    assert (result.exit_code, result.output, result.ok) == (7, "out\nerr\n", False)
    assert (await sandbox.run("ls /no/such/path")).exit_code == 2
    assert (await sandbox.run("true")).ok


async def test_output_without_trailing_newline_is_exact(sandbox: DockerSandbox) -> None:
    assert (await sandbox.run("printf 'no newline'")).output == "no newline"
    assert (await sandbox.run("printf ''")).output == ""


async def test_timeout_kills_the_whole_process_group(sandbox: DockerSandbox) -> None:
    started = time.monotonic()
    result = await sandbox.run("(sleep 301 &); sleep 302 & echo started; sleep 303", timeout=1.0)
    assert result.timed_out and result.exit_code == -1
    assert "started" in result.output
    assert time.monotonic() - started < 5
    processes = await sandbox.run("ps -eo args")
    assert processes.ok
    for leftover in ("sleep 301", "sleep 302", "sleep 303"):
        assert leftover not in processes.output
    assert (await sandbox.run("echo still here")).output == "still here\n"


async def test_shell_builtin_loop_times_out_and_channel_survives(sandbox: DockerSandbox) -> None:
    await sandbox.run("export KEPT=yes")
    result = await sandbox.run("while :; do :; done", timeout=0.5)
    assert result.timed_out
    assert (await sandbox.run('echo "$KEPT"')).output == "yes\n"


async def test_commands_reading_stdin_get_end_of_file(sandbox: DockerSandbox) -> None:
    result = await sandbox.run(
        "cat; read line; echo read=$?; python3 -c 'input()' 2>&1 | tail -1", timeout=10
    )
    assert not result.timed_out
    assert "read=1" in result.output
    assert "EOFError" in result.output
    assert (await sandbox.run("echo next")).output == "next\n"


async def test_large_output_keeps_head_and_tail(sandbox: DockerSandbox) -> None:
    body = 1024 * 1024
    script = f"import sys; sys.stdout.write('HEAD' + 'x' * {body} + 'TAIL')"
    result = await sandbox.run(f'python3 -c "{script}"')
    cap = sandbox.config.output_cap
    cut = body + 8 - cap
    assert result.ok and result.truncated
    assert result.output.startswith("HEADxxx") and result.output.endswith("xxxTAIL")
    assert f"[... {cut} bytes of output cut ...]" in result.output
    assert len(result.output.encode()) < cap + 100


async def test_binary_output_does_not_break_the_channel(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("head -c 65536 /dev/urandom; printf '\\377\\376\\000end'")
    assert result.ok
    assert result.output.endswith("\ufffd\ufffd\x00end")
    assert (await sandbox.run("echo after")).output == "after\n"


async def test_duration_is_measured(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("sleep 0.3")
    assert 0.25 < result.duration < 3


async def test_finished_commands_leave_no_processes_behind(sandbox: DockerSandbox) -> None:
    for number in range(30):
        assert (await sandbox.run(f"echo {number}")).output == f"{number}\n"
    processes = await sandbox.run("ps -eo stat=,args=")
    # The previous command's wrapper may not be reaped yet (it is, at the next command).
    assert processes.output.count("<defunct>") <= 1, processes.output
    shells = [line for line in processes.output.splitlines() if "/bin/sh" in line]
    # The long-lived shell, this command's wrapper and shell, the next command's pair.
    assert len(shells) <= 5, processes.output


async def test_a_command_replacing_the_exit_trap_still_ends(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("trap 'echo bye' EXIT; echo hi", timeout=10)
    assert (result.exit_code, result.output, result.timed_out) == (0, "hi\nbye\n", False)
    assert (await sandbox.run("echo next")).output == "next\n"


async def test_background_output_between_commands_is_dropped(sandbox: DockerSandbox) -> None:
    started = await sandbox.run("(sleep 0.2; echo late) & echo now")
    assert started.output == "now\n"
    await asyncio.sleep(0.6)  # "late" is printed while no command runs
    assert (await sandbox.run("echo next")).output == "next\n"


async def test_a_waiting_shell_killed_by_an_earlier_command_is_replaced(
    sandbox: DockerSandbox,
) -> None:
    """A background job of one command kills the shell waiting for the next command; the next
    command still runs, once, in a fresh shell with the session's state."""
    await sandbox.run("cd /tmp && export KEPT=yes && echo 0 >runs")
    # Command shells are `sh -c <script mentioning qf_token>`; this one's own text does not.
    killer = (
        "sleep 0.3; pids=$(ps -eo pid=,args= | grep '[q]f_token' | awk '{print $1}');"
        " kill -9 $pids; echo $pids >/tmp/killed"
    )
    await sandbox.run(f"sh -c {shlex.quote(killer)} >/dev/null 2>&1 &")
    await asyncio.sleep(0.8)
    result = await sandbox.run('echo $(( $(cat runs) + 1 )) >runs; echo "$PWD $KEPT"; cat runs')
    assert (result.exit_code, result.output) == (0, "/tmp yes\n1\n")
    killed = (await sandbox.run("cat /tmp/killed")).output.split()
    assert len(killed) == 1, killed  # exactly the shell that was waiting


async def test_the_run_directory_is_read_only_to_the_sandbox(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("ls /run/qwen-fix; touch /run/qwen-fix/planted")
    assert result.exit_code != 0 and "Read-only" in result.output, result.output
    assert not (sandbox.run_dir / "planted").exists()
