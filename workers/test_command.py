"""Which command runs a repository's tests: its config's, else the first detected one whose
tool the sandbox image has.

Detection is pure (the files at the root → ordered candidates, each with why it was guessed);
only the check that a candidate's tool is in the image looks inside the started sandbox.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bot.repo_config import CONFIG_PATH
from sandbox.protocol import Sandbox

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
"""In the order make itself looks for them."""
READ_FOR_DETECTION = (*MAKEFILES, "package.json", "pyproject.toml")
"""The files whose text detection reads; for the others their presence is enough."""
PROBE_TIMEOUT = 30.0
HOW_TO_CONFIGURE = f"set `test:` in {CONFIG_PATH}"

_MAKE_TEST_TARGET = re.compile(r"^test\s*::?(?!=)", re.MULTILINE)
"""A rule for `test` (`test:` or `test::`), not an assignment (`test := …`)."""


@dataclass(frozen=True, slots=True)
class TestCommand:
    """A command that runs the tests, with why it was chosen."""

    __test__ = False  # a name pytest would otherwise try to collect

    command: str
    why: str
    """e.g. "the Makefile has a test target"."""
    tool: str = ""
    """What must be in the image for the command to run, as said to people (e.g. `make`);
    empty for a configured command, which is never second-guessed."""
    probe: str = ""
    """Shell command that succeeds when `tool` is in the image."""


@dataclass(frozen=True, slots=True)
class TestChoice:
    """The test command a run uses (None: none is known) and the candidates passed over."""

    __test__ = False

    chosen: TestCommand | None
    missing: tuple[TestCommand, ...] = ()
    """Detected candidates whose tool the image lacks, in detection order."""

    @property
    def command(self) -> str | None:
        return self.chosen.command if self.chosen is not None else None

    def summary(self) -> str:
        """One line for the tracking comment."""
        skipped = "; ".join(
            f"`{c.command}` skipped: no {c.tool} in the image" for c in self.missing
        )
        note = f" ({skipped})" if skipped else ""
        if self.chosen is None:
            return f"tests: none known{note}; {HOW_TO_CONFIGURE}"
        return f"tests: `{self.chosen.command}` — {self.chosen.why}{note}"

    def agent_note(self) -> str:
        """Why no test command is known and how one is set; empty when there is one."""
        if self.chosen is not None:
            return ""
        if self.missing:
            found = "; ".join(f"`{c.command}` needs {c.tool}" for c in self.missing)
            reason = f"the sandbox image lacks what the detected ones need ({found})"
        else:
            reason = "none is configured and none could be detected from the repository's files"
        return f"{reason}. A maintainer can {HOW_TO_CONFIGURE}."


def configured(command: str) -> TestChoice:
    """The repository's own `test:`: used as it is, never checked against the image."""
    return TestChoice(TestCommand(command, f"set by `test:` in {CONFIG_PATH}"))


def candidate_commands(files: Collection[str], read: Callable[[str], str]) -> list[TestCommand]:
    """The commands a maintainer would most likely run, most likely first.

    `files` are the repository's paths relative to its root; `read` returns one file's text.
    """
    roots = {path.split("/", 1)[0] for path in files}
    found = []
    makefile = next((name for name in MAKEFILES if name in roots), None)
    if makefile is not None and _MAKE_TEST_TARGET.search(read(makefile)):
        found.append(_needs("make test", f"the {makefile} has a test target", "make"))
    if "package.json" in roots and _npm_has_test(read("package.json")):
        found.append(_needs("npm test", "package.json has a test script", "npm"))
    if "Cargo.toml" in roots:
        found.append(_needs("cargo test", "there is a Cargo.toml", "cargo"))
    if "go.mod" in roots:
        found.append(_needs("go test ./...", "there is a go.mod", "go"))
    if _is_python(files, roots, read):
        why = "the repository has Python tests"
        found.append(TestCommand("python3 -m pytest -q", why, "pytest", PYTEST_PROBE))
        found.append(_needs("python3 -m unittest", why, "python3"))
    return found


PYTEST_PROBE = (
    "python3 -c 'import importlib.util, sys; "
    'sys.exit(importlib.util.find_spec("pytest") is None)\''
)
"""Finds pytest without importing it: ~15 ms where `import pytest` took ~115 ms of each job's
start (benchmarks/first_request_latency.py)."""


def detect_test_command(files: Collection[str], read: Callable[[str], str]) -> str | None:
    """The most likely test command, unchecked against any image; None when nothing fits."""
    candidates = candidate_commands(files, read)
    return candidates[0].command if candidates else None


def choose(candidates: Sequence[TestCommand], present: Collection[int]) -> TestChoice:
    """The first candidate whose tool is present (`present`: indexes into `candidates`)."""
    for index, candidate in enumerate(candidates):
        if index in present:
            return TestChoice(candidate, tuple(candidates[:index]))
    return TestChoice(None, tuple(candidates))


async def choose_in_sandbox(sandbox: Sandbox, candidates: Sequence[TestCommand]) -> TestChoice:
    """`choose`, with the candidates' tools looked for in the started sandbox (one command)."""
    if not candidates:
        return TestChoice(None)
    script = "\n".join(
        f"if {c.probe} >/dev/null 2>&1; then echo {index}; fi" for index, c in enumerate(candidates)
    )
    result = await sandbox.run(script, timeout=PROBE_TIMEOUT, cwd=sandbox.workspace)
    present = {int(word) for word in result.output.split() if word.isdigit()}
    return choose(candidates, present)


def _needs(command: str, why: str, program: str) -> TestCommand:
    return TestCommand(command, why, program, f"command -v {shlex.quote(program)}")


def _npm_has_test(package_json: str) -> bool:
    try:
        script = json.loads(package_json).get("scripts", {}).get("test", "")
    except (ValueError, AttributeError):
        return False
    # npm init's placeholder fails on purpose; it is no test suite.
    return bool(script) and "no test specified" not in script


def _is_python(files: Collection[str], roots: set[str], read: Callable[[str], str]) -> bool:
    if roots & {"pytest.ini", "tox.ini", "setup.cfg", "conftest.py"}:
        return True
    if "pyproject.toml" in roots and "[tool.pytest" in read("pyproject.toml"):
        return True
    return any(
        path.endswith(".py")
        and (path.startswith("tests/") or path.split("/")[-1].startswith("test_"))
        for path in files
    )
