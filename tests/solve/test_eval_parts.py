"""The pure parts of `qwen-fix eval`: reading instances as SWE-bench ships them, where their
repositories come from, what the judge runs, and how logs are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.eval import directives_from, grade, is_resolved, judging_command, unittest_target
from workers.eval_instances import Instance, InstanceFileError, RepoSource, load_instances
from workers.test_logs import BUILT_IN, family_of, parse_pytest, parse_sympy, parse_unittest

ROW = {
    "instance_id": "owner__name-1",
    "repo": "owner/name",
    "base_commit": "abc1234",
    "problem_statement": "It breaks.",
    "FAIL_TO_PASS": json.dumps(["tests/test_a.py::test_x"]),
    "PASS_TO_PASS": json.dumps(["tests/test_a.py::test_y"]),
    "version": "1.2",
    "environment_setup_commit": "def5678",
    "created_at": "2024-01-01T00:00:00Z",
    "hints_text": "",
}
PATCH = (
    "diff --git a/tests/test_a.py b/tests/test_a.py\n--- a/tests/test_a.py\n+++ b/tests/test_a.py\n"
    "diff --git a/tests/data/x.json b/tests/data/x.json\n"
)


def test_a_swebench_row_is_read_as_it_is() -> None:
    instance = Instance.model_validate(ROW)
    assert instance.FAIL_TO_PASS == ["tests/test_a.py::test_x"]
    assert instance.required_tests == ["tests/test_a.py::test_x", "tests/test_a.py::test_y"]
    assert Instance.model_validate(ROW | {"eval_type": "fail_only"}).required_tests == [
        "tests/test_a.py::test_x"
    ]


def test_a_bad_line_is_named_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "instances.jsonl"
    good = json.dumps(ROW)
    path.write_text(f"{good}\n\n{{not json\n")
    with pytest.raises(InstanceFileError, match=r"instances.jsonl line 3: not valid JSON"):
        load_instances(path)
    missing = {k: v for k, v in ROW.items() if k != "base_commit"}
    path.write_text(f"{good}\n{json.dumps(missing | {'instance_id': 'b'})}\n")
    with pytest.raises(InstanceFileError, match=r"line 2: `base_commit` is missing"):
        load_instances(path)
    path.write_text(f"{good}\n{good}\n")
    with pytest.raises(InstanceFileError, match=r"line 2: instance_id 'owner__name-1' appears"):
        load_instances(path)


def test_repositories_come_from_a_base_url_or_local_mirrors(tmp_path: Path) -> None:
    assert RepoSource().clone_url("psf/requests") == "https://github.com/psf/requests.git"
    assert (
        RepoSource("https://git.example.com/").clone_url("a/b") == "https://git.example.com/a/b.git"
    )
    (tmp_path / "django__django.git").mkdir()
    mirrors = RepoSource(mirrors=tmp_path)
    assert mirrors.clone_url("django/django") == str(tmp_path / "django__django.git")
    with pytest.raises(ValueError, match="no mirror of psf/requests"):
        mirrors.clone_url("psf/requests")
    assert RepoSource().clone_url(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match="neither owner/name"):
        RepoSource().clone_url("not a repo")


@pytest.mark.parametrize(
    ("test_cmd", "log_parser", "expected"),
    [
        (None, None, "python3 -m pytest -rA tests/test_a.py"),
        ("pytest -rA", "parse_log_pytest", "pytest -rA tests/test_a.py"),
        ("./tests/runtests.py --verbosity 2", "parse_log_django",
         "./tests/runtests.py --verbosity 2 test_a"),
        (None, "parse_log_sympy", "bin/test -C --verbose tests/test_a.py"),
    ],
)  # fmt: skip
def test_the_judge_runs_the_test_files_of_the_test_patch(
    test_cmd: str | None, log_parser: str | None, expected: str
) -> None:
    instance = Instance.model_validate(
        ROW | {"test_patch": PATCH, "test_cmd": test_cmd, "log_parser": log_parser}
    )
    command, reader = judging_command(instance)
    assert command == expected
    assert reader.name.endswith(log_parser or "pytest")


def test_without_a_test_patch_pytest_gets_node_ids_and_unittest_dotted_names() -> None:
    command, _ = judging_command(Instance.model_validate(ROW))
    assert command == "python3 -m pytest -rA tests/test_a.py::test_x tests/test_a.py::test_y"
    unittest_row = ROW | {
        "FAIL_TO_PASS": ["test_add (test_calc.CalcTest.test_add)"],
        "PASS_TO_PASS": ["test_mul (test_calc.CalcTest)"],
        "test_cmd": "python3 -m unittest -v",
    }
    command, _ = judging_command(Instance.model_validate(unittest_row))
    assert (
        command == "python3 -m unittest -v test_calc.CalcTest.test_add test_calc.CalcTest.test_mul"
    )
    assert unittest_target("not a unittest id") == "not a unittest id"
    assert directives_from(None, "x") == []


PYTEST_LOG = """\
============================= test session starts ==============================
tests/test_a.py .F
=========================== short test summary info ============================
PASSED tests/test_a.py::test_y
PASSED tests/test_a.py::test_z[1-2]
FAILED tests/test_a.py::test_x - AssertionError: assert 1 == 2
ERROR tests/test_b.py::test_w - NameError
XFAIL tests/test_a.py::test_v - reason
SKIPPED [1] tests/test_a.py:9: no network
"""
UNITTEST_LOG = """\
test_add (test_calc.CalcTest.test_add) ... ok
test_div (test_calc.CalcTest.test_div) ... FAIL
test_mul (test_calc.CalcTest.test_mul) ... ERROR
test_pow (test_calc.CalcTest.test_pow) ... skipped 'later'
test_sub (test_calc.CalcTest.test_sub) ... expected failure
Check that run_pending() runs pending jobs. ... ok
test_noisy (test_calc.CalcTest.test_noisy) ... some output
ok

----------------------------------------------------------------------
Ran 6 tests in 0.001s
"""
SYMPY_LOG = "test_add ok\ntest_sub F\ntest_mul E\ntest_div f\n"


def test_the_built_in_parsers_read_what_the_official_ones_read() -> None:
    assert parse_pytest(PYTEST_LOG) == {
        "tests/test_a.py::test_y": "PASSED",
        "tests/test_a.py::test_z[1-2]": "PASSED",
        "tests/test_a.py::test_x": "FAILED",
        "tests/test_b.py::test_w": "ERROR",
        "tests/test_a.py::test_v": "XFAIL",
    }
    assert parse_unittest(UNITTEST_LOG) == {
        "test_add (test_calc.CalcTest.test_add)": "PASSED",
        "test_div (test_calc.CalcTest.test_div)": "FAILED",
        "test_mul (test_calc.CalcTest.test_mul)": "ERROR",
        "test_pow (test_calc.CalcTest.test_pow)": "SKIPPED",
        "test_sub (test_calc.CalcTest.test_sub)": "XFAIL",
        "Check that run_pending() runs pending jobs.": "PASSED",
        "test_noisy (test_calc.CalcTest.test_noisy)": "PASSED",
    }
    assert parse_sympy(SYMPY_LOG) == {
        "test_add": "PASSED", "test_sub": "FAILED", "test_mul": "ERROR"
    }  # fmt: skip
    try:
        from swebench.harness.log_parsers import PARSER_REGISTRY
    except ImportError:  # pragma: no cover - the dev lock installs it
        pytest.fail("the swebench package (a dev dependency) is not installed")
    for name, log in [("parse_log_pytest", PYTEST_LOG), ("parse_log_sympy", SYMPY_LOG)]:
        official = PARSER_REGISTRY[name](log, None)
        ours = BUILT_IN[family_of("", name)](log)
        assert {k: v for k, v in official.items() if k in ours} == ours, name


def test_grading_counts_a_missing_test_as_not_passing() -> None:
    instance = Instance.model_validate(ROW)
    tests = grade(instance, {"tests/test_a.py::test_x": "PASSED"})
    assert tests == {"tests/test_a.py::test_x": "PASSED", "tests/test_a.py::test_y": "MISSING"}
    assert not is_resolved(tests)
    assert is_resolved({"a": "PASSED", "b": "XFAIL"})
