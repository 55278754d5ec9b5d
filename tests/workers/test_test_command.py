"""Which test command a repository gets: the candidates its files suggest, in order, each with
why; the first whose tool the image has; and what people and the agent are told."""

from __future__ import annotations

import json

import pytest

from workers.test_command import (
    PYTEST_PROBE,
    TestChoice,
    TestCommand,
    candidate_commands,
    choose,
    configured,
    detect_test_command,
)

PYTHON_TESTS = {"calc.py": "", "test_calc.py": ""}
MAKEFILE = {"Makefile": "build:\n\tcc x.c\ntest:\n\t./run\n"}
PACKAGE_JSON = {"package.json": json.dumps({"scripts": {"test": "node test.js"}})}


def candidates(files: dict[str, str]) -> list[TestCommand]:
    return candidate_commands(list(files), lambda path: files[path])


def commands(files: dict[str, str]) -> list[str]:
    return [candidate.command for candidate in candidates(files)]


def detect(files: dict[str, str]) -> str | None:
    return detect_test_command(list(files), lambda path: files[path])


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({**MAKEFILE, "x.c": ""}, "make test"),
        ({"package.json": json.dumps({"scripts": {"test": "vitest run"}})}, "npm test"),
        ({"Cargo.toml": "[package]\n", "src/lib.rs": ""}, "cargo test"),
        ({"go.mod": "module x\n", "x_test.go": ""}, "go test ./..."),
        ({"pyproject.toml": "[tool.pytest.ini_options]\n", "pkg/a.py": ""}, "python3 -m pytest -q"),
        ({"setup.py": "", "tests/test_a.py": ""}, "python3 -m pytest -q"),
        (PYTHON_TESTS, "python3 -m pytest -q"),
        ({"pytest.ini": "", "a.py": ""}, "python3 -m pytest -q"),
        ({"GNUmakefile": "test: all\n"}, "make test"),
        ({"makefile": "test::\n\ttrue\n"}, "make test"),
    ],
)
def test_the_most_likely_command_comes_first(files: dict[str, str], expected: str) -> None:
    assert commands(files)[0] == expected
    assert detect(files) == expected


def test_every_recognised_command_is_a_candidate_in_order() -> None:
    files = {
        **MAKEFILE,
        **PACKAGE_JSON,
        "Cargo.toml": "",
        "go.mod": "",
        **PYTHON_TESTS,
    }
    assert commands(files) == [
        "make test",
        "npm test",
        "cargo test",
        "go test ./...",
        "python3 -m pytest -q",
        "python3 -m unittest",
    ]


def test_each_candidate_says_why_and_what_it_needs() -> None:
    make, npm, pytest_, unittest = candidates({**MAKEFILE, **PACKAGE_JSON, **PYTHON_TESTS})
    assert (make.why, make.tool, make.probe) == (
        "the Makefile has a test target",
        "make",
        "command -v make",
    )
    assert (npm.why, npm.tool) == ("package.json has a test script", "npm")
    assert (pytest_.tool, pytest_.probe) == ("pytest", PYTEST_PROBE)
    assert (unittest.why, unittest.tool) == ("the repository has Python tests", "python3")


def test_a_makefile_without_a_test_target_is_passed_over() -> None:
    files = {"Makefile": "build:\n\tcc x.c\ntest := unit\ntesting:\n\ttrue\n", **PYTHON_TESTS}
    assert commands(files) == ["python3 -m pytest -q", "python3 -m unittest"]


def test_npm_inits_placeholder_is_no_test_suite() -> None:
    placeholder = 'echo "Error: no test specified" && exit 1'
    assert candidates({"package.json": json.dumps({"scripts": {"test": placeholder}})}) == []
    assert candidates({"package.json": "{broken"}) == []


def test_nothing_recognisable() -> None:
    assert candidates({"README.md": "hi", "main.py": ""}) == []
    assert detect({"README.md": "hi", "main.py": ""}) is None


def test_the_first_candidate_the_image_has_is_chosen_and_the_others_named() -> None:
    found = candidates({**MAKEFILE, **PACKAGE_JSON, **PYTHON_TESTS})
    choice = choose(found, present={1, 3})
    assert choice.command == "npm test"
    assert choice.missing == (found[0],)
    assert choice.summary() == (
        "tests: `npm test` — package.json has a test script"
        " (`make test` skipped: no make in the image)"
    )
    assert choice.agent_note() == ""


def test_an_image_with_every_tool_takes_the_first_candidate() -> None:
    found = candidates({**MAKEFILE, **PYTHON_TESTS})
    choice = choose(found, present={0, 1, 2})
    assert (choice.command, choice.missing) == ("make test", ())
    assert choice.summary() == "tests: `make test` — the Makefile has a test target"


def test_with_no_tool_in_the_image_nothing_is_chosen_and_people_learn_how_to_set_one() -> None:
    found = candidates({**MAKEFILE, **PYTHON_TESTS})
    choice = choose(found, present=set())
    assert choice.command is None
    assert choice.summary() == (
        "tests: none known (`make test` skipped: no make in the image; `python3 -m pytest -q`"
        " skipped: no pytest in the image; `python3 -m unittest` skipped: no python3 in the"
        " image); set `test:` in .github/qwen-fix.yml"
    )
    note = choice.agent_note()
    assert "`make test` needs make" in note
    assert "set `test:` in .github/qwen-fix.yml" in note


def test_a_repository_with_no_candidates_is_told_so() -> None:
    choice = choose([], present=set())
    assert choice.summary() == "tests: none known; set `test:` in .github/qwen-fix.yml"
    assert choice.agent_note() == (
        "none is configured and none could be detected from the repository's files. "
        "A maintainer can set `test:` in .github/qwen-fix.yml."
    )


def test_the_configured_command_is_taken_as_it_is() -> None:
    choice = configured("tox -e py311")
    assert choice == TestChoice(
        TestCommand("tox -e py311", "set by `test:` in .github/qwen-fix.yml")
    )
    assert choice.summary() == "tests: `tox -e py311` — set by `test:` in .github/qwen-fix.yml"
    assert choice.chosen is not None and choice.chosen.probe == ""
