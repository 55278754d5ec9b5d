"""The per-repository config `.github/qwen-fix.yml`: its model, a parser with line-exact errors."""

from __future__ import annotations

import difflib
import json
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

CONFIG_PATH = ".github/qwen-fix.yml"
"""Where the config lives in the repository, on the default branch."""

CONFIG_ERROR_MARKER = "<!-- qwen-fix:config-error -->"
"""Hidden first line of the invalid-config comment, so it is found and updated, not repeated."""


@dataclass(frozen=True, slots=True)
class Expect:
    """Annotation metadata: what a field must be, in a maintainer's words."""

    phrase: str


_HOST = re.compile(
    r"(?=[^:]{1,253}(:|$))"
    r"(\*\.)?"  # `*.example.com`: any subdomain of example.com (not example.com itself)
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)
_BRANCH_PREFIX = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]*")


def _host(value: str) -> str:
    match = _HOST.fullmatch(value)
    port = match and match.group("port")
    if match is None or (port is not None and not 1 <= int(port) <= 65535):
        raise ValueError("not a host name")
    return value.lower()


def _branch_prefix(value: str) -> str:
    # git check-ref-format rejects "..", "//", "@{" and names ending in ".lock"; keep it simple.
    if not _BRANCH_PREFIX.fullmatch(value) or ".." in value or "//" in value:
        raise ValueError("not a branch prefix")
    return value


PositiveWhole = Annotated[int, Field(gt=0), Expect("a whole number greater than 0")]
Minutes = Annotated[float, Field(gt=0), Expect("a number of minutes greater than 0")]
Command = Annotated[str, Field(min_length=1), Expect("a shell command (text)")]
Host = Annotated[
    str,
    AfterValidator(_host),
    Expect("a host name or host:port, like example.com or proxy.example.com:8080"),
]
LabelName = Annotated[
    str, Field(min_length=1, max_length=50), Expect("a label name of 1 to 50 characters")
]
BranchPrefix = Annotated[
    str,
    AfterValidator(_branch_prefix),
    Expect('a branch name prefix of letters, digits and . _ - /, like "qwen-fix/"'),
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Limits(_Section):
    """Per-repository caps on one agent run. They can only lower the app's own settings (the
    operator's are ceilings); unset ones keep them."""

    max_steps: PositiveWhole | None = None
    """Most model turns the agent may take."""
    max_tokens: PositiveWhole | None = None
    """Most tokens (prompt + completion, summed over turns) the agent may use."""
    wall_time: Minutes | None = None
    """Most minutes the agent may run."""

    def wall_time_seconds(self) -> float | None:
        return None if self.wall_time is None else self.wall_time * 60


class CiFix(_Section):
    """Fixing the pull request's CI when its checks fail."""

    attempts: Annotated[int, Field(ge=0, le=10), Expect("a whole number from 0 to 10")] = 2
    """Most automatic fix commits per pull request; 0 turns automatic CI fixing off. The app's
    CI_FIX_MAX_ATTEMPTS is the ceiling. `/qwen-fix fix-ci` asks for a fix at any time."""


class RepoConfig(_Section):
    """What a repository asks of qwen-fix; every field has a default, so no file is fine."""

    label: LabelName | None = None
    """Label that starts a job when put on an issue, besides the app's own (TRIGGER_LABEL)."""
    setup: Command | None = None
    """Command run in the sandbox before the agent starts, e.g. installing dependencies; the only
    phase with network access, and only to the hosts in `egress`."""
    test: Command | None = None
    """Command that runs the tests, used as it is; unset, the worker detects one from the
    repository's files and checks that the sandbox image has its tool."""
    image: Annotated[str, Field(min_length=1), Expect("a Docker image name")] | None = None
    """Sandbox image to use instead of the repository's dev container or the app's default;
    pulled when the worker's engine does not have it."""
    branch_prefix: BranchPrefix = "qwen-fix/"
    """Start of the name of each branch the app pushes."""
    draft: Literal["on_failure", "always", "never"] = "on_failure"
    """When the pull request is opened as a draft: when tests fail, always, or never."""
    limits: Limits = Limits()
    """Caps on one agent run."""
    egress: tuple[Host, ...] = ()
    """Hosts the setup command may reach (host or host:port); nothing else is reachable."""
    instructions: Annotated[str, Expect("text")] = ""
    """Extra instructions for the agent, added to its prompt (coding style, where tests live…)."""
    signed_commits: bool = False
    """Create commits through the API so GitHub signs them, for branches that require it."""
    reviewers: bool = True
    """Request a review of the pull request from the user who triggered the job."""
    follow_ups: Literal["own", "any"] = "own"
    """Pull requests whose branch follow-ups may push to: `own`, the app's own; `any`, people's
    pull requests in this repository too (never a fork's, the default or a protected branch)."""
    ci_fix: CiFix = CiFix()
    """When the pull request's checks fail."""


EXAMPLE_CONFIG = """\
# .github/qwen-fix.yml: every setting is optional.
label: qwen-fix
setup: pip install -e .[test]
test: pytest -q
draft: on_failure
limits:
  max_steps: 80
  wall_time: 45        # minutes
egress:
  - files.example.com
instructions: |
  Keep changes small and add a test for every fix.
reviewers: true
ci_fix:
  attempts: 2          # 0: never fix failed CI on its own
"""
"""A valid file with no links in it, shown to maintainers whose file is invalid."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the file, at a 1-based line and column."""

    line: int
    column: int
    text: str

    def __str__(self) -> str:
        return f"{CONFIG_PATH} line {self.line}, column {self.column}: {self.text}"


class RepoConfigError(ValueError):
    """The config file is invalid; the message names the line and the problem of each error."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.column)))
        super().__init__("\n".join(map(str, self.problems)))


_NOT_A_MAPPING = "the file must be a mapping of settings, one `name: value` per line"


def parse_repo_config(text: str) -> RepoConfig:
    """The config in `text`; an empty file gives the defaults. Raises RepoConfigError."""
    node, data = _load_yaml(text)
    if node is None or data is None:
        return RepoConfig()
    if not isinstance(node, yaml.MappingNode):
        got = _describe_node(node)
        raise RepoConfigError([ConfigProblem(1, 1, _NOT_A_MAPPING + f", got {got}")])
    if _too_big(node):
        raise RepoConfigError([ConfigProblem(1, 1, f"the file has over {MAX_NODES} values")])
    problems = _key_problems(node)
    if problems:
        raise RepoConfigError(problems)
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:
        raise RepoConfigError([_problem(error, node) for error in exc.errors()]) from None


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its Python value, from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "unreadable"
        problem = ConfigProblem(line, column, f"this is not valid YAML: {reason}")
        raise RepoConfigError([problem]) from None
    except yaml.YAMLError as exc:
        raise RepoConfigError([ConfigProblem(1, 1, f"this is not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _key_problems(node: yaml.Node, path: str = "") -> list[ConfigProblem]:
    """What YAML accepts but a maintainer would not mean: repeated keys, keys that are not text."""
    if not isinstance(node, yaml.MappingNode):
        return []
    seen: set[str] = set()
    problems = []
    for key, value in node.value:
        name = f"{path}.{key.value}" if path else str(key.value)
        if key.tag != _TEXT_TAG:
            problems.append(_at(key, f"setting names are words like label, got {key.value}"))
        elif key.value in seen:
            # YAML would keep the last of the two silently.
            problems.append(_at(key, f'"{name}" is set twice; keep one'))
        else:
            seen.add(key.value)
        problems.extend(_key_problems(value, name))
    return problems


def _too_big(node: yaml.Node) -> bool:
    """True when the document expands past MAX_NODES; aliases can make a short file huge."""
    budget = MAX_NODES
    stack = [node]
    while stack:
        budget -= 1
        if budget < 0:
            return True
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            stack.extend(part for pair in current.value for part in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return False


MAX_NODES = 10_000
"""More YAML nodes than any sensible config has; a bound on the work a hostile file causes."""

_TEXT_TAG = "tag:yaml.org,2002:str"


def _problem(error: ErrorDetails, root: yaml.MappingNode) -> ConfigProblem:
    loc = error["loc"]
    node = _node_at(root, loc, key=error["type"] == "extra_forbidden")
    return _at(node, _explain(error, _dotted(loc)))


def _at(node: yaml.Node, text: str) -> ConfigProblem:
    return ConfigProblem(node.start_mark.line + 1, node.start_mark.column + 1, text)


def _node_at(root: yaml.Node, loc: tuple[int | str, ...], *, key: bool) -> yaml.Node:
    """The deepest node `loc` reaches: the value, or the key itself when `key` is set."""
    node = root
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            pair = next((p for p in node.value if str(p[0].value) == str(part)), None)
            if pair is None:
                break
            node = pair[0] if key and last else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
        else:
            break
    return node


def _dotted(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _explain(error: ErrorDetails, name: str) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_setting(error["loc"])
    got = _describe_value(error["input"])
    if kind == "literal_error":
        choices = str(error["ctx"]["expected"]).replace("'", '"')
        return f'"{name}" must be one of {choices}, got {got}'
    if kind in ("bool_type", "bool_parsing"):
        return f'"{name}" must be true or false, got {got}'
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f'"{name}" must be a mapping of settings, indented under it, got {got}'
    if kind in ("tuple_type", "list_type"):
        return f'"{name}" must be a list, one `- item` per line, got {got}'
    expected = _expected(error["loc"])
    if expected is not None:
        return f'"{name}" must be {expected}, got {got}'
    if kind in ("string_type", "string_too_short"):
        return f'"{name}" must be text, got {got}'
    return f'"{name}" {error["msg"][0].lower()}{error["msg"][1:]}, got {got}'


def _unknown_setting(loc: tuple[int | str, ...]) -> str:
    *parent, last = loc
    section = _model_at(tuple(parent))
    known = list(section.model_fields) if section else []
    name = _dotted(tuple(loc))
    text = f'"{name}" is not a setting qwen-fix knows'
    close = difflib.get_close_matches(str(last), known, n=1)
    if close:
        text += f'; did you mean "{close[0]}"?'
    elif known:
        text += "; the settings here are " + ", ".join(known)
    return text


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RepoConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        inner = field and _submodel(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _expected(loc: tuple[int | str, ...]) -> str | None:
    """The `Expect` phrase of the field at `loc`, looking inside Optional and tuple types."""
    names = [part for part in loc if isinstance(part, str)]
    model = _model_at(tuple(names[:-1])) if names else None
    field = model.model_fields.get(names[-1]) if model and names else None
    if field is None:
        return None
    for item in field.metadata:
        if isinstance(item, Expect):
            return item.phrase
    return _find_expect(field.annotation)


def _find_expect(annotation: Any) -> str | None:
    for item in getattr(annotation, "__metadata__", ()):
        if isinstance(item, Expect):
            return item.phrase
    for arg in typing.get_args(annotation):
        found = _find_expect(arg)
        if found is not None:
            return found
    return None


_SHOWN_CHARACTERS = 60
"""Longer values are cut in error messages: the line number points at the rest."""


def _describe_value(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and len(value) > _SHOWN_CHARACTERS:
        return json.dumps(value[:_SHOWN_CHARACTERS] + "…", ensure_ascii=False)
    if isinstance(value, str | int | float):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _describe_node(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return json.dumps(str(node.value))


def render_config_error_comment(error: RepoConfigError) -> str:
    """The issue comment saying the config is invalid, what is wrong and how a valid file looks."""
    problems = "\n".join(f"- {problem}" for problem in error.problems)
    return (
        f"{CONFIG_ERROR_MARKER}\n"
        f"qwen-fix did not start: `{CONFIG_PATH}` on the default branch is invalid.\n\n"
        f"{problems}\n\n"
        f"Fix the file on the default branch, then remove and add the label again to retry. "
        f"Every setting is optional; a valid file looks like this:\n\n"
        f"```yaml\n{EXAMPLE_CONFIG}```\n"
    )
