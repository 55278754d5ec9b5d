"""A small real git repository with a failing unittest, for end-to-end agent runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

CALC = '''"""Arithmetic helpers."""


def add(a, b):
    """Return the sum of a and b."""
    return a - b


def mul(a, b):
    return a * b
'''

TEST_CALC = """import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
"""

TEST_COMMAND = "python3 -m unittest -v"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_buggy_repo(root: Path) -> Path:
    """A committed repo whose `add` subtracts, so `python3 -m unittest` fails."""
    repo = root / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    (repo / "AGENTS.md").write_text("Run the tests with python3 -m unittest.\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    return repo
