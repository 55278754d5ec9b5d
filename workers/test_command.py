"""Guess a repository's test command from the files at its root, when its config names none."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection


def detect_test_command(files: Collection[str], read: Callable[[str], str]) -> str | None:
    """The command a maintainer would most likely run, or None when nothing is recognisable.

    `files` are the repository's paths relative to its root; `read` returns one file's text.
    """
    roots = {path.split("/", 1)[0] for path in files}
    if "Makefile" in roots and _make_has_test(read("Makefile")):
        return "make test"
    if "package.json" in roots and _npm_has_test(read("package.json")):
        return "npm test"
    if "Cargo.toml" in roots:
        return "cargo test"
    if "go.mod" in roots:
        return "go test ./..."
    if _is_python(files, roots, read):
        return "python3 -m pytest -q"
    return None


def _make_has_test(makefile: str) -> bool:
    return any(line.startswith("test:") for line in makefile.splitlines())


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
