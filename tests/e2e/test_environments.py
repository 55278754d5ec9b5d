"""The repository's own toolchain in the sandbox, through every real part: a Makefile, an npm
test script and a dev container each give the agent a `run_tests` that runs the tests, and the
tracking comment says which image and which test command, and why. An `image:` the worker
cannot get stops the run with the reason."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, call
from tests.model_server.script import Reply, Turn

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DEFAULT_IMAGE_WHY = (
    "— the app's default image (no `image:` in .github/qwen-fix.yml, no dev container)"
)


def fix_and_test(path: str, old: str, new: str, tests_ran: str) -> list[Turn]:
    """Edit one line, run the tests, and submit only if their output shows they ran."""
    summary = f"Fixed {path}."
    return [
        call("str_replace_editor", command="str_replace", path=path, old_str=old, new_str=new),
        call("run_tests"),
        Reply(call("submit", summary=summary), expect_in_last_message=tests_ran),
        call("submit", summary=summary),
    ]


FIX_CALC_PY = ("calc.py", "    return a - b", "    return a + b")


def test_a_python_repository_with_a_makefile_runs_make_test(
    make_harness: MakeHarness, sandbox_image: str
) -> None:
    files = {**FILES, "Makefile": "test:\n\tpython -m pytest -q\n"}
    h = make_harness(fix_and_test(*FIX_CALC_PY, tests_ran="1 passed"), files=files)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Opened #")
    assert f"sandbox: `{sandbox_image}` {DEFAULT_IMAGE_WHY}" in body
    assert "tests: `make test` — the Makefile has a test target" in body
    assert "The project's tests run with: `make test`" in first_prompt(h.model.requests)
    assert "✅ `make test` passed." in h.emulator.pulls(REPO)[0]["body"]
    assert (h.model.failures, h.model.remaining) == ([], 0)


def test_a_node_repository_runs_npm_test(make_harness: MakeHarness, sandbox_image: str) -> None:
    files = {
        "package.json": json.dumps(
            {"name": "calc", "version": "1.0.0", "scripts": {"test": "node test.js"}}
        ),
        "calc.js": "exports.add = (a, b) => a - b;\n",
        "test.js": (
            'const assert = require("assert");\nconst { add } = require("./calc");\n'
            'assert.strictEqual(add(2, 3), 5);\nconsole.log("node tests passed");\n'
        ),
    }
    fix = ("calc.js", "a - b", "a + b")
    h = make_harness(fix_and_test(*fix, tests_ran="node tests passed"), files=files)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Opened #")
    assert f"sandbox: `{sandbox_image}` {DEFAULT_IMAGE_WHY}" in body
    assert "tests: `npm test` — package.json has a test script" in body
    pull = h.emulator.pulls(REPO)[0]
    assert "✅ `npm test` passed." in pull["body"]
    assert h.emulator.file_at(REPO, pull["head"], "calc.js") == "exports.add = (a, b) => a + b;\n"
    assert (h.model.failures, h.model.remaining) == ([], 0)


@pytest.fixture
def devcontainer_images() -> Iterator[list[str]]:
    """Dev container images the test's worker built; removed after it."""
    built: list[str] = []
    yield built
    client = docker.from_env()
    try:
        for tag in built:
            client.images.remove(tag, force=True)
    finally:
        client.close()


def test_a_repository_with_a_dev_container_runs_in_the_image_built_from_it(
    make_harness: MakeHarness, sandbox_image: str, devcontainer_images: list[str]
) -> None:
    nonce = uuid.uuid4().hex  # its own content, so this run builds rather than reuses
    files = {
        **FILES,
        ".devcontainer/devcontainer.json": (
            '{\n  // the environment contributors work in\n  "name": "calc",\n'
            '  "build": {"dockerfile": "Dockerfile", "context": "..",},\n}\n'
        ),
        # FROM the default image, so it builds with no registry.
        ".devcontainer/Dockerfile": (
            f"FROM {sandbox_image}\nCOPY .devcontainer/marker /etc/devcontainer-marker\n"
        ),
        ".devcontainer/marker": f"dev container {nonce}\n",
        "test_env.py": (
            "def test_runs_in_the_dev_container():\n"
            "    with open('/etc/devcontainer-marker') as marker:\n"
            f"        assert marker.read() == 'dev container {nonce}\\n'\n"
        ),
    }
    h = make_harness(fix_and_test(*FIX_CALC_PY, tests_ran="2 passed"), files=files)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Opened #")
    built = re.search(r"sandbox: `(qwen-fix-devcontainer:[0-9a-f]{12})`", body)
    assert built is not None, body
    devcontainer_images.append(built.group(1))
    assert (
        f"sandbox: `{built.group(1)}` — built from .devcontainer/Dockerfile"
        " (.devcontainer/devcontainer.json)"
    ) in body
    assert "tests: `python3 -m pytest -q` — the repository has Python tests" in body
    assert "✅ `python3 -m pytest -q` passed." in h.emulator.pulls(REPO)[0]["body"]
    assert (h.model.failures, h.model.remaining) == ([], 0)


def test_an_image_the_worker_cannot_get_stops_the_run_with_the_reason(
    make_harness: MakeHarness,
) -> None:
    absent = "registry.invalid/octo-org/ci:1"
    h = make_harness([], files={**FILES, ".github/qwen-fix.yml": f"image: {absent}\n"})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Could not finish")
    assert f"could not pull {absent}: " in body
    assert (
        "; push it to a registry the worker can reach, or build it on the worker, or remove"
        " `image:`"
    ) in body
    assert h.model.requests == []


def first_prompt(requests: list[dict[str, object]]) -> str:
    messages = requests[0]["messages"]
    assert isinstance(messages, list)
    return "\n".join(str(message.get("content")) for message in messages)
