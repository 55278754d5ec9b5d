"""Which image a job's sandbox runs: devcontainer.json as it is written (comments, trailing
commas), the choice order, and the content hash a dev container build is cached by."""

from __future__ import annotations

import json
import re

import pytest

from sandbox.config import STANDARD_PATH, SandboxConfig
from workers.sandbox_image import (
    Devcontainer,
    DevcontainerBuild,
    DevcontainerError,
    SandboxImage,
    build_tag,
    choose_image,
    image_search_path,
    parse_devcontainer,
    parse_jsonc,
)

DEFAULT = "qwen-fix-sandbox:latest"
PATH = ".devcontainer/devcontainer.json"

# What VS Code writes: comments of both kinds, trailing commas, slashes inside strings.
WRITTEN_BY_AN_EDITOR = """\
// For format details, see https://aka.ms/devcontainer.json.
{
  "name": "calc /* not a comment */",
  /* The image, pinned. */
  "image": "mcr.microsoft.com/devcontainers/python:3.12", // trailing comment
  "customizations": {"vscode": {"extensions": ["ms-python.python",],},},
  "remoteUser": "vscode",
}
"""


def test_jsonc_comments_and_trailing_commas_are_read_as_vs_code_reads_them() -> None:
    assert parse_jsonc(WRITTEN_BY_AN_EDITOR) == {
        "name": "calc /* not a comment */",
        "image": "mcr.microsoft.com/devcontainers/python:3.12",
        "customizations": {"vscode": {"extensions": ["ms-python.python"]}},
        "remoteUser": "vscode",
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"url": "https://example.com//x", "list": [1, 2]}',
        '{"quote": "a \\" , ] // b", "n": 1}',
        '{"backslash": "C:\\\\", "n": [1,\n\n]}',
        "[]",
    ],
)
def test_jsonc_leaves_strings_alone(text: str) -> None:
    assert parse_jsonc(text) == json.loads(text.replace(",\n\n]", "]"))


def test_jsonc_errors_point_at_the_line_of_the_written_file() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        parse_jsonc('// one\n/* two\n three */\n{"image": node}\n')
    assert caught.value.lineno == 4


def test_a_dev_container_image() -> None:
    found = parse_devcontainer(PATH, WRITTEN_BY_AN_EDITOR)
    assert found == Devcontainer(PATH, image="mcr.microsoft.com/devcontainers/python:3.12")


def test_a_dev_container_build_is_relative_to_the_devcontainer_folder() -> None:
    text = """{
      "build": {"dockerfile": "Dockerfile", "context": "..", "args": {"V": "3.12"},
                "target": "dev",},
      "image": "ignored:when-there-is-a-build",
      "features": {"ghcr.io/devcontainers/features/node:1": {}},
      "postCreateCommand": "pip install -e .",
    }"""
    assert parse_devcontainer(PATH, text) == Devcontainer(
        PATH,
        build=DevcontainerBuild(".devcontainer/Dockerfile", "", (("V", "3.12"),), "dev"),
        not_run=("features", "postCreateCommand"),
    )


def test_the_context_defaults_to_the_devcontainer_folder_and_the_older_keys_still_work() -> None:
    assert parse_devcontainer(PATH, '{"build": {"dockerfile": "../docker/dev.Dockerfile"}}') == (
        Devcontainer(PATH, build=DevcontainerBuild("docker/dev.Dockerfile", ".devcontainer"))
    )
    legacy = '{"dockerFile": "Dockerfile", "context": "."}'
    assert parse_devcontainer(".devcontainer.json", legacy) == Devcontainer(
        ".devcontainer.json", build=DevcontainerBuild("Dockerfile", "")
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '{"dockerComposeFile": "compose.yml", "service": "app"}',
            f"{PATH} runs Docker Compose services, which qwen-fix does not start",
        ),
        ('{"name": "only a name"}', f"{PATH} names no image and no Dockerfile"),
    ],
)
def test_dev_containers_a_sandbox_cannot_be_made_of_say_why(text: str, reason: str) -> None:
    found = parse_devcontainer(PATH, text)
    assert (found.image, found.build, found.unusable) == (None, None, reason)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{\n  "image": node:20\n}', f"{PATH} line 2, column 12: not valid JSON"),
        ('["node:20"]', f"{PATH}: the file must be a JSON object"),
        ('{"image": 20}', f'{PATH}: "image" must be an image name'),
        ('{"build": "Dockerfile"}', f'{PATH}: "build" must be an object'),
        ('{"build": {"dockerfile": ["a"]}}', f'{PATH}: "build.dockerfile" must be a path'),
        ('{"build": {"dockerfile": "D", "args": {"A": 1}}}', '"build.args" must map names'),
        ('{"build": {"dockerfile": "../../D"}}', f"{PATH}: ../../D is outside the repository"),
        ('{"build": {"dockerfile": "D", "context": "/"}}', "/ is outside the repository"),
    ],
)
def test_invalid_dev_containers_are_named_with_the_problem(text: str, message: str) -> None:
    with pytest.raises(DevcontainerError, match=re.escape(message)):
        parse_devcontainer(PATH, text)


BUILT = Devcontainer(PATH, build=DevcontainerBuild(".devcontainer/Dockerfile", ""))
PULLED = Devcontainer(PATH, image="node:20")
COMPOSED = Devcontainer(PATH, unusable=f"{PATH} runs Docker Compose services, which …")


def test_the_configs_image_comes_first() -> None:
    for devcontainer in (None, BUILT, PULLED):
        choice = choose_image("ghcr.io/acme/ci:3.12", devcontainer, DEFAULT)
        assert (choice.image, choice.build) == ("ghcr.io/acme/ci:3.12", None)
        assert choice.summary("ghcr.io/acme/ci:3.12") == (
            "sandbox: `ghcr.io/acme/ci:3.12` — from `image:` in .github/qwen-fix.yml"
        )
        assert choice.remedy.endswith("or remove `image:`")


def test_then_the_dev_containers_image_or_build() -> None:
    pulled = choose_image(None, PULLED, DEFAULT)
    assert pulled.image == "node:20"
    assert pulled.summary("node:20") == f"sandbox: `node:20` — from {PATH}"
    built = choose_image(None, BUILT, DEFAULT)
    assert (built.image, built.build) == (None, BUILT.build)
    assert built.summary("qwen-fix-devcontainer:0123456789ab") == (
        "sandbox: `qwen-fix-devcontainer:0123456789ab` — built from .devcontainer/Dockerfile"
        f" ({PATH})"
    )


def test_what_a_dev_container_asks_that_is_not_run_is_said() -> None:
    devcontainer = Devcontainer(PATH, image="node:20", not_run=("features", "postCreateCommand"))
    assert choose_image(None, devcontainer, DEFAULT).why == (
        f"from {PATH}; not run: features, postCreateCommand (`setup:` in .github/qwen-fix.yml "
        "runs a command before the agent)"
    )


def test_then_the_operators_default_with_the_reason() -> None:
    plain = choose_image(None, None, DEFAULT)
    assert plain.image == DEFAULT
    assert plain.summary(DEFAULT) == (
        f"sandbox: `{DEFAULT}` — the app's default image (no `image:` in .github/qwen-fix.yml,"
        " no dev container)"
    )
    composed = choose_image(None, COMPOSED, DEFAULT)
    assert composed.image == DEFAULT
    assert COMPOSED.unusable in composed.why
    assert "SANDBOX_IMAGE" in composed.remedy


def test_a_build_is_tagged_by_the_content_of_its_dockerfile_and_context() -> None:
    build = DevcontainerBuild(".devcontainer/Dockerfile", "")
    tag = build_tag("octo-org/calc", build, "a" * 40, "b" * 40)
    assert tag.startswith("qwen-fix-devcontainer:") and len(tag.split(":")[1]) == 12
    assert build_tag("Octo-Org/Calc", build, "a" * 40, "b" * 40) == tag
    assert build_tag("octo-org/calc", build, "c" * 40, "b" * 40) != tag
    assert build_tag("octo-org/calc", build, "a" * 40, "c" * 40) != tag
    with_args = DevcontainerBuild(build.dockerfile, "", (("V", "1"),))
    assert build_tag("octo-org/calc", with_args, "a" * 40, "b" * 40) != tag


def test_the_same_dev_container_in_another_repository_is_built_for_it() -> None:
    build = DevcontainerBuild(".devcontainer/Dockerfile", "")
    assert build_tag("octo-org/calc", build, "a" * 40, "b" * 40) != build_tag(
        "mallory/calc", build, "a" * 40, "b" * 40
    )


def test_the_images_own_path_is_kept() -> None:
    rust = ["PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/bin", "RUSTUP_HOME=/usr/local/rustup"]
    assert image_search_path(rust) == "/usr/local/cargo/bin:/usr/local/sbin:/usr/bin"
    assert image_search_path(["LANG=C.UTF-8"]) is None
    assert image_search_path(None) is None
    config = SandboxConfig()
    assert SandboxImage("rust:1", "", image_search_path(rust)).apply(config).search_path == (
        rust[0].removeprefix("PATH=")
    )
    assert SandboxImage("x:1", "").apply(config) == config.model_copy(update={"image": "x:1"})
    assert config.search_path == STANDARD_PATH
