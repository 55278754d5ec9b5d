"""SWE-bench instances as the dataset ships them, where their repositories come from, and the
checks that run before any model time is spent on one.

A row of SWE-bench (or SWE-bench Verified, Lite, or a file of your own) is one JSON object per
line with at least `instance_id`, `repo`, `base_commit`, `problem_statement` and `FAIL_TO_PASS`.
`repo` is SWE-bench's `owner/name`, cloned from a Git base URL (`--repos-from`, GitHub by
default) or found in a directory of local mirrors (`--mirrors DIR`: `DIR/owner/name[.git]` or
`DIR/owner__name[.git]`); a local path or a full Git URL works too. `FAIL_TO_PASS` and
`PASS_TO_PASS` are lists or, as in the dataset, JSON-encoded lists. Optional: `test_patch`,
`version`, `environment_setup_commit` (recorded), `image` (the instance's sandbox image),
`test_cmd` (the command its tests run with), `log_parser` (the name of SWE-bench's parser for
its log) and `eval_type` (`pass_and_fail`, or `fail_only`: PASS_TO_PASS is not checked).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

OWNER_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
DEFAULT_REPOS_FROM = "https://github.com"


class Instance(BaseModel):
    """One task; fields SWE-bench has and qwen-fix does not use (created_at, hints_text, …) are
    ignored."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str = Field(min_length=1)
    repo: str = Field(min_length=1)
    base_commit: str = Field(min_length=4)
    problem_statement: str
    FAIL_TO_PASS: list[str] = Field(min_length=1)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    test_patch: str | None = None
    version: str | None = None
    environment_setup_commit: str | None = None
    image: str | None = None
    test_cmd: str | None = None
    """The command the instance's tests run with (its test files are appended when judging)."""
    log_parser: str | None = None
    eval_type: Literal["pass_and_fail", "fail_only"] = "pass_and_fail"

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_json_list(cls, value: Any) -> Any:
        # The SWE-bench dataset stores these lists as JSON-encoded strings.
        return json.loads(value) if isinstance(value, str) else value

    @property
    def required_tests(self) -> list[str]:
        tests = [*self.FAIL_TO_PASS]
        if self.eval_type == "pass_and_fail":
            tests += self.PASS_TO_PASS
        return list(dict.fromkeys(tests))


class InstanceFileError(ValueError):
    """A line of the instances file is not an instance; the message names the line."""


def load_instances(path: Path) -> list[Instance]:
    """Every instance of a JSONL file; a bad line is an error naming its number and problem."""
    instances, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            instance = Instance.model_validate_json(line)
        except ValidationError as exc:
            raise InstanceFileError(f"{path} line {number}: {describe(exc)}") from None
        if instance.instance_id in seen:
            raise InstanceFileError(
                f"{path} line {number}: instance_id {instance.instance_id!r} appears twice"
            )
        seen.add(instance.instance_id)
        instances.append(instance)
    if not instances:
        raise InstanceFileError(f"{path} holds no instance")
    return instances


def describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            problems.append(f"not valid JSON ({error['msg']})")
        elif error["type"] == "missing":
            problems.append(f"`{where}` is missing")
        else:
            problems.append(f"`{where}`: {error['msg']}")
    return "; ".join(problems)


@dataclass(frozen=True, slots=True)
class RepoSource:
    """Where `owner/name` repositories are cloned from."""

    repos_from: str = DEFAULT_REPOS_FROM
    mirrors: Path | None = None

    def clone_url(self, repo: str) -> str:
        """A URL or path git can clone for the instance's `repo`."""
        local = Path(repo).expanduser()
        if "://" in repo or repo.startswith("git@") or local.is_absolute() or local.exists():
            return repo
        if not OWNER_NAME.fullmatch(repo):
            raise ValueError(f"repo {repo!r} is neither owner/name, a Git URL, nor a local path")
        if self.mirrors is not None:
            owner, name = repo.split("/", 1)
            for candidate in (
                self.mirrors / owner / name,
                self.mirrors / owner / f"{name}.git",
                self.mirrors / f"{owner}__{name}",
                self.mirrors / f"{owner}__{name}.git",
            ):
                if candidate.exists():
                    return str(candidate)
            raise ValueError(
                f"no mirror of {repo} in {self.mirrors} (looked for {owner}/{name}[.git] and "
                f"{owner}__{name}[.git])"
            )
        return f"{self.repos_from.rstrip('/')}/{repo}.git"
