"""The tools over a real DockerSandbox: editor, search, bash, run_tests, todo and submit."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.agent.repo import TEST_COMMAND, make_buggy_repo
from tests.agent.sandboxes import docker_sandbox
from workers.agent.exits import Submitted
from workers.agent.toolcall import ToolCall
from workers.agent.tools import Toolbox, ToolContext

pytestmark = pytest.mark.docker


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall("id", name, dict(arguments))


async def test_tools_in_a_real_sandbox(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    async with docker_sandbox(docker_client, sandbox_image, repo) as sandbox:
        box = Toolbox(ToolContext(sandbox, test_command=TEST_COMMAND, observation_limit=2000))

        async def text(name: str, **arguments: object) -> str:
            return (await box.execute(call(name, **arguments))).text

        listing = await text("str_replace_editor", command="view", path=".")
        assert "calc.py" in listing and "/.git/" not in listing
        view = await text("str_replace_editor", command="view", path="calc.py", view_range=[5, -1])
        assert view.splitlines()[0] == '     5\t    """Return the sum of a and b."""'

        twice = await box.execute(
            call(
                "str_replace_editor",
                command="str_replace",
                path="calc.py",
                old_str="return a",
                new_str="x",
            )
        )
        assert twice.is_error and "occurs 2 times (lines [6, 10])" in twice.text
        missing = await text(
            "str_replace_editor",
            command="str_replace",
            path="calc.py",
            old_str="return b - a",
            new_str="x",
        )
        assert "does not occur verbatim" in missing

        broken = await text(
            "str_replace_editor",
            command="str_replace",
            path="calc.py",
            old_str="    return a - b",
            new_str="    return (a + b",
        )
        assert "introduced a Python syntax error" in broken
        undone = await text("str_replace_editor", command="undo_edit", path="calc.py")
        assert "Reverted" in undone
        fixed = await text(
            "str_replace_editor",
            command="str_replace",
            path="calc.py",
            old_str="    return a - b",
            new_str="    return a + b",
        )
        assert "     6\t    return a + b" in fixed and "syntax error" not in fixed

        inserted = await text(
            "str_replace_editor", command="insert", path="calc.py", insert_line=0, new_str="# calc"
        )
        assert "     1\t# calc" in inserted
        created = await text(
            "str_replace_editor", command="create", path="pkg/new.py", file_text="def f(:\n"
        )
        assert "Created" in created and "syntax error" in created
        exists = await text("str_replace_editor", command="create", path="calc.py", file_text="")
        assert "already exists" in exists

        found = await text("search", pattern="def (add|mul)", glob="*.py")
        assert "./calc.py:5:def add" in found and "./calc.py:10:def mul" in found
        assert "No matches" in await text("search", pattern="no_such_identifier_zz")

        bash = await text("bash", command="seq 1 5000")
        assert "characters cut from the middle" in bash and bash.rstrip().endswith("[exit code 0]")
        slow = await text("bash", command="sleep 5", timeout=1)
        assert "killed after 1 s timeout" in slow

        tests = await text("run_tests")
        assert "tests PASSED" in tests and box.context.last_test_run is not None
        assert box.context.last_test_run.passed

        plan = await text("todo", command="set", items=[{"content": "fix"}, "test"])
        assert plan == "1. [ ] fix\n2. [ ] test"
        bad = await box.execute(call("todo", command="update", index=3, status="done"))
        assert bad.is_error and "from 1 to 2" in bad.text

        review = await text("submit", summary="fixed add")
        assert "Review this diff" in review and "+    return a + b" in review
        with pytest.raises(Submitted):
            await box.execute(call("submit", summary="fixed add"))


async def test_plan_mode_is_read_only(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    async with docker_sandbox(docker_client, sandbox_image, repo) as sandbox:
        box = Toolbox(ToolContext(sandbox, read_only=True))
        assert "run_tests" not in {s["function"]["name"] for s in box.schemas}
        refused = await box.execute(
            call("str_replace_editor", command="create", path="x.py", file_text="")
        )
        assert refused.is_error and "read-only" in refused.text
        assert await sandbox.diff() == ""
