"""`.github/qwen-fix.yml`: defaults, every field, and errors that name the line and the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.repo_config import (
    CONFIG_ERROR_MARKER,
    EXAMPLE_CONFIG,
    MAX_NODES,
    ConfigProblem,
    Limits,
    RepoConfig,
    RepoConfigError,
    parse_repo_config,
    render_config_error_comment,
)

FULL = """\
label: bot-fix
setup: pip install -e .
test: pytest -q tests/unit
image: registry.internal/python:3.12
branch_prefix: bots/qwen/
draft: always
limits:
  max_steps: 40
  max_tokens: 2000000
  wall_time: 12.5
egress:
  - Files.Example.com
  - proxy.internal:8080
instructions: |
  Use tabs.
signed_commits: true
reviewers: false
"""


def problem(text: str) -> ConfigProblem:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_an_empty_file_gives_the_defaults(text: str) -> None:
    assert parse_repo_config(text) == RepoConfig()


def test_the_defaults() -> None:
    config = RepoConfig()
    assert (config.label, config.branch_prefix, config.draft) == (
        None,
        "qwen-fix/",
        "on_failure",
    )
    assert (config.setup, config.test, config.image) == (None, None, None)
    assert config.limits == Limits(max_steps=None, max_tokens=None, wall_time=None)
    assert (config.egress, config.instructions) == ((), "")
    assert (config.signed_commits, config.reviewers) == (False, True)


def test_every_field_is_read() -> None:
    config = parse_repo_config(FULL)
    assert config.label == "bot-fix"
    assert config.setup == "pip install -e ."
    assert config.test == "pytest -q tests/unit"
    assert config.image == "registry.internal/python:3.12"
    assert config.branch_prefix == "bots/qwen/"
    assert config.draft == "always"
    assert config.limits == Limits(max_steps=40, max_tokens=2_000_000, wall_time=12.5)
    assert config.limits.wall_time_seconds() == 750.0
    assert config.egress == ("files.example.com", "proxy.internal:8080")
    assert config.instructions == "Use tabs.\n"
    assert (config.signed_commits, config.reviewers) == (True, False)


def test_the_config_is_frozen_and_fields_are_documented() -> None:
    config = parse_repo_config(FULL)
    with pytest.raises(ValidationError):
        config.label = "other"  # type: ignore[misc]
    undocumented = [
        name
        for model in (RepoConfig, Limits)
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []


def test_the_example_shown_to_maintainers_is_valid() -> None:
    config = parse_repo_config(EXAMPLE_CONFIG)
    assert config.limits.max_steps == 80
    assert "http" not in EXAMPLE_CONFIG


def test_the_message_names_line_column_field_and_value() -> None:
    text = "label: x\n\nlimits:\n  max_steps: lots\n"
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text)
    assert str(caught.value) == (
        '.github/qwen-fix.yml line 4, column 14: "limits.max_steps" must be a whole number '
        'greater than 0, got "lots"'
    )


HOST = "a host name or host:port, like example.com or proxy.example.com:8080"
PREFIX = 'a branch name prefix of letters, digits and . _ - /, like "qwen-fix/"'
DRAFT = '"draft" must be one of "on_failure", "always" or "never"'
POSITIVE = "a whole number greater than 0"


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("limits:\n  max_steps: 0\n", 2, 14, f'"limits.max_steps" must be {POSITIVE}, got 0'),
        ("limits:\n  max_tokens: 1.5\n", 2, 15, f'"limits.max_tokens" must be {POSITIVE}, got 1.5'),
        (
            "limits:\n  wall_time: -3\n",
            2,
            14,
            '"limits.wall_time" must be a number of minutes greater than 0, got -3',
        ),
        ("limits: 5\n", 1, 9, '"limits" must be a mapping of settings, indented under it, got 5'),
        ("draft: sometimes\n", 1, 8, f'{DRAFT}, got "sometimes"'),
        ("draft: true\n", 1, 8, f"{DRAFT}, got true"),
        ("reviewers: maybe\n", 1, 12, '"reviewers" must be true or false, got "maybe"'),
        (
            "egress: a.example\n",
            1,
            9,
            '"egress" must be a list, one `- item` per line, got "a.example"',
        ),
        (
            "egress:\n  - a.example\n  - https://b.example\n",
            3,
            5,
            f'"egress[1]" must be {HOST}, got "https://b.example"',
        ),
        (
            "egress:\n  - a.example:70000\n",
            2,
            5,
            f'"egress[0]" must be {HOST}, got "a.example:70000"',
        ),
        ("test: 5\n", 1, 7, '"test" must be a shell command (text), got 5'),
        ("setup: ''\n", 1, 8, '"setup" must be a shell command (text), got ""'),
        ('label: ""\n', 1, 8, '"label" must be a label name of 1 to 50 characters, got ""'),
        ("branch_prefix: a b\n", 1, 16, f'"branch_prefix" must be {PREFIX}, got "a b"'),
        ("branch_prefix: x/../y\n", 1, 16, f'"branch_prefix" must be {PREFIX}, got "x/../y"'),
        ("instructions: [a]\n", 1, 15, '"instructions" must be text, got a list'),
    ],
)
def test_invalid_values_are_explained(text: str, line: int, column: int, message: str) -> None:
    assert problem(text) == ConfigProblem(line, column, message)


def test_unknown_settings_point_at_the_key_and_suggest_the_right_one() -> None:
    assert problem("draft: never\nlable: x\n") == ConfigProblem(
        2, 1, '"lable" is not a setting qwen-fix knows; did you mean "label"?'
    )
    assert problem("limits:\n  turns: 3\n") == ConfigProblem(
        2,
        3,
        '"limits.turns" is not a setting qwen-fix knows; '
        "the settings here are max_steps, max_tokens, wall_time",
    )


def test_repeated_and_non_text_keys_are_errors() -> None:
    assert problem("label: a\ntest: t\nlabel: b\n") == ConfigProblem(
        3, 1, '"label" is set twice; keep one'
    )
    assert problem("1: x\n") == ConfigProblem(1, 1, "setting names are words like label, got 1")


def test_every_problem_is_reported_in_line_order() -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config("reviewers: 3\nlimits:\n  max_steps: x\nlabel: [1]\n")
    assert [(p.line, p.column) for p in caught.value.problems] == [(1, 12), (3, 14), (4, 8)]
    assert str(caught.value).count("\n") == 2


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("a: b: c\n", 1, 5, "mapping values are not allowed here"),
        ("label: x\n\tlimits: 1\n", 2, 1, "found character '\\t' that cannot start any token"),
        ("egress: [a,\n", 2, 1, "expected the node content, but found '<stream end>'"),
        ("label: x\n---\nlabel: y\n", 2, 1, "but found another document"),
    ],
)
def test_yaml_syntax_errors_carry_the_parser_position(
    text: str, line: int, column: int, reason: str
) -> None:
    found = problem(text)
    assert (found.line, found.column) == (line, column)
    assert found.text.startswith("this is not valid YAML: ")
    assert reason in found.text


@pytest.mark.parametrize(
    ("text", "got"), [("- a\n- b\n", "a list"), ("just words\n", '"just words"'), ("3\n", '"3"')]
)
def test_a_top_level_that_is_not_a_mapping_is_an_error_on_line_1(text: str, got: str) -> None:
    assert problem("# a comment first\n" + text) == ConfigProblem(
        1, 1, f"the file must be a mapping of settings, one `name: value` per line, got {got}"
    )


def test_long_values_are_cut_in_messages() -> None:
    found = problem("reviewers: " + "y" * 500 + "\n")
    assert found.text == '"reviewers" must be true or false, got "' + "y" * 60 + '…"'


def test_the_comment_shows_the_marker_the_problems_and_a_valid_example() -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config("limits:\n  max_steps: lots\ndraft: maybe\n")
    comment = render_config_error_comment(caught.value)
    assert comment.startswith(CONFIG_ERROR_MARKER + "\n")
    assert (
        '- .github/qwen-fix.yml line 2, column 14: "limits.max_steps" must be a whole number '
        'greater than 0, got "lots"\n'
        '- .github/qwen-fix.yml line 3, column 8: "draft" must be one of'
    ) in comment
    assert "remove and add the label again" in comment
    assert f"```yaml\n{EXAMPLE_CONFIG}```" in comment
    assert "http" not in comment


def test_key_problems_at_every_level_are_reported_together() -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config("limits:\n  max_steps: 1\n  max_steps: 2\n3: x\nlabel: y\n")
    assert [(p.line, p.column) for p in caught.value.problems] == [(3, 3), (4, 1)]
    assert caught.value.problems[0].text == '"limits.max_steps" is set twice; keep one'


def test_a_file_that_aliases_expand_past_the_bound_is_refused_before_validation() -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    assert problem("\n".join(rows) + "\n") == ConfigProblem(
        1, 1, f"the file has over {MAX_NODES} values"
    )


def test_egress_accepts_subdomain_wildcards_the_proxy_understands() -> None:
    from sandbox.allowlist import EgressAllowlist

    config = parse_repo_config('egress: ["*.Example.com", "files.example.org:8443"]\n')
    assert config.egress == ("*.example.com", "files.example.org:8443")
    allowlist = EgressAllowlist(config.egress)
    assert allowlist.decide("cdn.example.com", 443).allowed
    assert not allowlist.decide("example.com", 443).allowed
    with pytest.raises(RepoConfigError):
        parse_repo_config('egress: ["*"]\n')
