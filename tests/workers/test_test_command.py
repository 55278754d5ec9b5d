"""Which test command a repository gets when its config names none."""

from __future__ import annotations

import json

import pytest

from workers.test_command import detect_test_command


def detect(files: dict[str, str]) -> str | None:
    return detect_test_command(list(files), lambda path: files[path])


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"Makefile": "build:\n\tcc x.c\ntest:\n\t./run\n", "x.c": ""}, "make test"),
        ({"package.json": json.dumps({"scripts": {"test": "vitest run"}})}, "npm test"),
        ({"Cargo.toml": "[package]\n", "src/lib.rs": ""}, "cargo test"),
        ({"go.mod": "module x\n", "x_test.go": ""}, "go test ./..."),
        ({"pyproject.toml": "[tool.pytest.ini_options]\n", "pkg/a.py": ""}, "python3 -m pytest -q"),
        ({"setup.py": "", "tests/test_a.py": ""}, "python3 -m pytest -q"),
        ({"calc.py": "", "test_calc.py": ""}, "python3 -m pytest -q"),
        ({"pytest.ini": "", "a.py": ""}, "python3 -m pytest -q"),
    ],
)
def test_recognised_layouts(files: dict[str, str], expected: str) -> None:
    assert detect(files) == expected


def test_a_makefile_without_a_test_target_is_passed_over() -> None:
    assert detect({"Makefile": "build:\n\tcc x.c\n", "calc.py": "", "test_calc.py": ""}) == (
        "python3 -m pytest -q"
    )


def test_npm_inits_placeholder_is_no_test_suite() -> None:
    placeholder = 'echo "Error: no test specified" && exit 1'
    assert detect({"package.json": json.dumps({"scripts": {"test": placeholder}})}) is None
    assert detect({"package.json": "{broken"}) is None


def test_nothing_recognisable() -> None:
    assert detect({"README.md": "hi", "main.py": ""}) is None
