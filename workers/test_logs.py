"""Reading a test run's log into a status per test, as SWE-bench's harness reads it.

When the `swebench` package is installed (`pip install qwen-fix[eval]`), its own log parsers are
used, by the name an instance gives (`log_parser`, as SWE-bench's dataset rows carry it) or the
one that fits its test command; otherwise the built-in parsers below, which read the same lines
the official ones read for the three layouts most Python instances use:
- pytest with `-rA`: summary lines `PASSED tests/test_x.py::test_y` (FAILED lines add ` - why`);
- unittest verbose output, as `python -m unittest -v` and Django's `runtests.py -v 2` print it:
  `test_y (module.Class.test_y) ... ok` (or the test's docstring line instead of its name), then
  `FAIL`, `ERROR`, `skipped '…'`, `expected failure`;
- sympy's `bin/test`: `test_y ok`, `test_y F`, `test_y E`.
Statuses are SWE-bench's: PASSED, FAILED, SKIPPED, ERROR, XFAIL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PASSED, FAILED, SKIPPED, ERROR, XFAIL = "PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL"
PYTEST_STATUSES = (PASSED, FAILED, SKIPPED, ERROR, XFAIL, "XPASS")
PYTEST_LINE = re.compile(rf"^({'|'.join(PYTEST_STATUSES)}) (\S+)")
UNITTEST_LINE = re.compile(r"^(.+?) \.\.\. ?(.*)$")
"""`name ... outcome`; the name is the docstring's first line for a test that has one."""
SYMPY_LINE = re.compile(r"^(test_\S+) (ok|F|E)$")

Parser = Callable[[str], dict[str, str]]


def parse_pytest(log: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for line in log.splitlines():
        match = PYTEST_LINE.match(line.strip())
        # `SKIPPED [2] tests/x.py:9: why` sums up skips; it names no test.
        if match and not match.group(2).startswith("["):
            status, test = match.groups()
            statuses[test] = FAILED if status == "XPASS" else status
    return statuses


UNITTEST_OUTCOMES = {
    "ok": PASSED,
    "FAIL": FAILED,
    "ERROR": ERROR,
    "expected failure": XFAIL,
    "unexpected success": FAILED,
}


def parse_unittest(log: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    pending: str | None = None
    for raw in log.splitlines():
        line = raw.strip()
        match = UNITTEST_LINE.match(line)
        if match:
            test, outcome = match.groups()
            status = unittest_status(outcome)
            if status is None:
                pending = test  # the outcome follows on a later line (output in between)
            else:
                statuses[test] = status
            continue
        if pending is not None and (status := unittest_status(line)) is not None:
            statuses[pending] = status
            pending = None
    return statuses


def unittest_status(outcome: str) -> str | None:
    outcome = outcome.strip()
    if outcome.startswith("skipped"):
        return SKIPPED
    return UNITTEST_OUTCOMES.get(outcome)


def parse_sympy(log: str) -> dict[str, str]:
    # Only these three, as the official parser reads them: an expected failure (f) is missing.
    codes = {"ok": PASSED, "F": FAILED, "E": ERROR}
    statuses: dict[str, str] = {}
    for line in log.splitlines():
        match = SYMPY_LINE.match(line.strip())
        if match:
            statuses[match.group(1)] = codes[match.group(2)]
    return statuses


BUILT_IN: dict[str, Parser] = {
    "pytest": parse_pytest,
    "unittest": parse_unittest,
    "sympy": parse_sympy,
}
"""Ours, by family."""
FAMILY_OF_SWEBENCH_PARSER = {
    "parse_log_pytest": "pytest",
    "parse_log_pytest_options": "pytest",
    "parse_log_pytest_v2": "pytest",
    "parse_log_django": "unittest",
    "parse_log_sympy": "sympy",
}
"""The official parsers whose logs the built-in ones read, for runs without the package."""
SWEBENCH_PARSER_OF_FAMILY = {"pytest": "parse_log_pytest", "unittest": "parse_log_django",
                             "sympy": "parse_log_sympy"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogReader:
    """How one instance's log is read; `name` goes in the report."""

    name: str
    parse: Parser


def family_of(command: str, log_parser: str | None) -> str:
    """The log layout a test command prints: pytest, unittest or sympy."""
    if log_parser in FAMILY_OF_SWEBENCH_PARSER:
        return FAMILY_OF_SWEBENCH_PARSER[log_parser]
    if "bin/test" in command:
        return "sympy"
    if "unittest" in command or "runtests.py" in command:
        return "unittest"
    return "pytest"


def reader_for(command: str, log_parser: str | None = None) -> LogReader:
    """SWE-bench's own parser when the package is installed, else the built-in one."""
    family = family_of(command, log_parser)
    official = swebench_parsers()
    name = log_parser or SWEBENCH_PARSER_OF_FAMILY[family]
    if official is not None and name in official:
        parser = official[name]
        return LogReader(f"swebench:{name}", lambda log: dict(parser(log, None)))
    if log_parser is not None and log_parser not in FAMILY_OF_SWEBENCH_PARSER:
        raise UnknownParser(
            f"log_parser {log_parser!r} needs the swebench package (pip install 'qwen-fix[eval]')"
        )
    return LogReader(f"built-in:{family}", BUILT_IN[family])


class UnknownParser(ValueError):
    """The instance names a parser only the swebench package has, and it is not installed."""


def swebench_parsers() -> dict[str, Any] | None:
    """The official parsers by name, or None without the package."""
    try:
        from swebench.harness.log_parsers import PARSER_REGISTRY
    except ImportError:
        return None
    return dict(PARSER_REGISTRY)
