"""Which image a job's sandbox runs, and getting it onto the worker's engine.

The order: the repository config's `image:`; else the repository's dev container
(`.devcontainer/devcontainer.json` or `.devcontainer.json` on the default branch), its `image`
or the image built from its `build` Dockerfile; else the operator's SANDBOX_IMAGE. An image the
engine does not have is pulled, with the engine's registry credentials when it has some; one
that cannot be pulled fails the job with the engine's reason and what to do.

Trust: a dev container's Dockerfile is built by the worker host's Docker engine, with network,
outside any sandbox. It is read from the default branch (never from the sandbox's tree or a
branch under change), so it is trusted as the default branch's `.github/qwen-fix.yml` is: anyone
who can push there can already choose the sandbox's image and its setup command. But a build is
more than a sandbox: its RUN steps run in the engine's ordinary build containers, with network
and without the sandbox's limits. An operator who does not extend that trust to every
repository the app is installed on should run workers on an engine that holds nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
import shutil
import tarfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, ImageNotFound
from docker.models.images import Image
from docker.utils import parse_repository_tag

from bot.repo_config import CONFIG_PATH
from sandbox.config import SandboxConfig
from workers.git import GitError, git, git_bytes
from workers.workspace import REGULAR_FILES, Checkout, read_trusted

DEVCONTAINER_PATHS = (".devcontainer/devcontainer.json", ".devcontainer.json")
"""Where a dev container is looked for on the default branch, in this order."""
BUILD_REPOSITORY = "qwen-fix-devcontainer"
BUILD_LABEL = "qwen-fix.devcontainer"
"""Set on images built from dev containers: the repository (`docker image prune --filter`)."""
BUILD_KEY_VERSION = "1"
"""Bump when the build changes in a way the content hash does not show."""
NOT_RUN = (
    "features",
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
    "postAttachCommand",
)
"""Dev container settings qwen-fix does not act on (they need the dev container CLI)."""
LOG_LINES = 30


class SandboxImageError(Exception):
    """The job's image cannot be had; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class DevcontainerBuild:
    """How a dev container's image is built; paths are relative to the repository's root."""

    dockerfile: str
    context: str
    """The build context directory; "" for the repository's root."""
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Devcontainer:
    """What a devcontainer.json asks for, as far as a sandbox can give it."""

    path: str
    image: str | None = None
    build: DevcontainerBuild | None = None
    unusable: str = ""
    """Why qwen-fix cannot use it (then `image` and `build` are None)."""
    not_run: tuple[str, ...] = ()
    """Settings it has that qwen-fix does not act on (features, lifecycle commands)."""


@dataclass(frozen=True, slots=True)
class ImageChoice:
    """The image a job runs (or the build that makes it), why, and what to do if it is missing."""

    image: str | None
    """None when it is built from `build`."""
    why: str
    remedy: str
    build: DevcontainerBuild | None = None

    def summary(self, name: str) -> str:
        """One line for the tracking comment."""
        return f"sandbox: `{name}` — {self.why}"


@dataclass(frozen=True, slots=True)
class SandboxImage:
    """The image a job's sandbox runs, ready on the engine."""

    name: str
    summary: str
    search_path: str | None = None
    """The PATH the image sets, if any."""

    def apply(self, config: SandboxConfig) -> SandboxConfig:
        update: dict[str, str] = {"image": self.name}
        if self.search_path:
            update["search_path"] = self.search_path
        return config.model_copy(update=update)


class DevcontainerError(ValueError):
    """A devcontainer.json that cannot be read; the message names the file and the problem."""


def parse_jsonc(text: str) -> Any:
    """JSON with comments (`//`, `/* */`) and trailing commas, as devcontainer.json is written.

    Raises json.JSONDecodeError; its line and column are those of `text`."""
    return json.loads(_drop_trailing_commas(_blank_comments(text)))


def _blank_comments(text: str) -> str:
    """`text` with every comment outside strings turned into spaces (newlines kept)."""
    out = list(text)
    i = 0
    while i < len(text):
        if text[i] == '"':
            i = _string_end(text, i)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end == -1 else end + 2
            out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
            i = end
        else:
            i += 1
    return "".join(out)


def _drop_trailing_commas(text: str) -> str:
    """`text` with each comma outside strings that only whitespace separates from a closing
    bracket turned into a space."""
    out = list(text)
    i, last_comma = 0, -1
    while i < len(text):
        char = text[i]
        if char == '"':
            i, last_comma = _string_end(text, i), -1
            continue
        if char in "}]" and last_comma >= 0:
            out[last_comma] = " "
        if char == ",":
            last_comma = i
        elif not char.isspace():
            last_comma = -1
        i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string that opens at `start`."""
    i = start + 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def parse_devcontainer(path: str, text: str) -> Devcontainer:
    """The dev container of the devcontainer.json at `path` (repository-relative) with `text`.

    Raises DevcontainerError for a file that is not valid or points outside the repository."""
    try:
        data = parse_jsonc(text)
    except json.JSONDecodeError as exc:
        raise DevcontainerError(
            f"{path} line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise DevcontainerError(f"{path}: the file must be a JSON object")
    not_run = tuple(key for key in NOT_RUN if data.get(key))
    if data.get("dockerComposeFile"):
        reason = f"{path} runs Docker Compose services, which qwen-fix does not start"
        return Devcontainer(path, unusable=reason, not_run=not_run)
    build = _build_of(path, data)
    if build is not None:
        return Devcontainer(path, build=build, not_run=not_run)
    image = data.get("image")
    if image is None:
        reason = f"{path} names no image and no Dockerfile"
        return Devcontainer(path, unusable=reason, not_run=not_run)
    if not isinstance(image, str) or not image.strip():
        raise DevcontainerError(f'{path}: "image" must be an image name')
    return Devcontainer(path, image=image.strip(), not_run=not_run)


def _build_of(path: str, data: Mapping[str, Any]) -> DevcontainerBuild | None:
    """`build.dockerfile` (+ `context`, `args`, `target`), or the older top-level `dockerFile`."""
    build = data.get("build", {})
    if not isinstance(build, dict):
        raise DevcontainerError(f'{path}: "build" must be an object')
    legacy = "dockerfile" not in build
    dockerfile = data.get("dockerFile") if legacy else build.get("dockerfile")
    if dockerfile is None:
        return None
    context = (data.get("context") if legacy else build.get("context")) or "."
    for name, value in (("dockerfile", dockerfile), ("context", context)):
        if not isinstance(value, str) or not value.strip():
            raise DevcontainerError(f'{path}: "build.{name}" must be a path')
    args = build.get("args", {})
    if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
        raise DevcontainerError(f'{path}: "build.args" must map names to text')
    target = build.get("target")
    if target is not None and not isinstance(target, str):
        raise DevcontainerError(f'{path}: "build.target" must be a stage name')
    folder = posixpath.dirname(path)
    return DevcontainerBuild(
        dockerfile=_in_repository(path, folder, dockerfile),
        context=_in_repository(path, folder, context),
        args=tuple(sorted(args.items())),
        target=target or None,
    )


def _in_repository(path: str, folder: str, relative: str) -> str:
    """`relative` (to the devcontainer.json's folder) as a path from the repository's root."""
    joined = posixpath.normpath(posixpath.join(folder, relative))
    if relative.startswith("/") or joined == ".." or joined.startswith("../"):
        raise DevcontainerError(f"{path}: {relative} is outside the repository")
    return "" if joined == "." else joined


def choose_image(
    configured: str | None, devcontainer: Devcontainer | None, default: str
) -> ImageChoice:
    """`image:` from the config, else the dev container's image or build, else the default."""
    if configured:
        return ImageChoice(
            configured,
            f"from `image:` in {CONFIG_PATH}",
            "push it to a registry the worker can reach, or build it on the worker, "
            "or remove `image:`",
        )
    if devcontainer is not None and not devcontainer.unusable:
        not_run = _not_run_note(devcontainer)
        if devcontainer.build is not None:
            return ImageChoice(
                None,
                f"built from {devcontainer.build.dockerfile} ({devcontainer.path}){not_run}",
                f"fix the Dockerfile on the default branch, or set `image:` in {CONFIG_PATH}",
                devcontainer.build,
            )
        return ImageChoice(
            devcontainer.image,
            f"from {devcontainer.path}{not_run}",
            "push it to a registry the worker can reach, or build it on the worker, "
            f"or set `image:` in {CONFIG_PATH} to one it has",
        )
    reason = (
        devcontainer.unusable if devcontainer else f"no `image:` in {CONFIG_PATH}, no dev container"
    )
    return ImageChoice(
        default,
        f"the app's default image ({reason})",
        "the operator can build it on the worker (`python -m sandbox.image`, which "
        "scripts/bootstrap runs) or set SANDBOX_IMAGE to an image the worker has",
    )


def _not_run_note(devcontainer: Devcontainer) -> str:
    if not devcontainer.not_run:
        return ""
    names = ", ".join(devcontainer.not_run)
    return f"; not run: {names} (`setup:` in {CONFIG_PATH} runs a command before the agent)"


def build_tag(
    repository: str, build: DevcontainerBuild, dockerfile_id: str, context_id: str
) -> str:
    """`qwen-fix-devcontainer:<12 hex>`: a hash of the Dockerfile's and the context's git ids
    (content hashes themselves) and of the build's settings. The repository is part of it: a
    build may fetch things, so one repository never runs an image another one built."""
    key = {
        "version": BUILD_KEY_VERSION,
        "repository": repository.casefold(),
        "dockerfile": [build.dockerfile, dockerfile_id],
        "context": [build.context, context_id],
        "args": build.args,
        "target": build.target,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return f"{BUILD_REPOSITORY}:{digest[:12]}"


def with_image_path(client: docker.DockerClient, config: SandboxConfig) -> SandboxConfig:
    """`config` with its image's own PATH, when the engine has the image and it sets one: for
    the worker's default config, so its pooled sandboxes match what a job would start."""
    try:
        env = client.images.get(config.image).attrs.get("Config", {}).get("Env")
    except APIError:
        return config
    return SandboxImage(config.image, "", image_search_path(env)).apply(config)


def image_search_path(env: list[str] | None) -> str | None:
    """The PATH an image's config sets, if it sets one."""
    for entry in env or ():
        name, _, value = entry.partition("=")
        if name == "PATH" and value:
            return value
    return None


Announce = Callable[[str], Awaitable[None]]


async def prepare_image(
    client: docker.DockerClient,
    found: Checkout,
    configured: str | None,
    default: str,
    *,
    announce: Announce | None = None,
) -> SandboxImage:
    """Choose the job's image and make sure the engine has it (pull or build).

    `announce` is told, in one line, of a pull or build about to start. Raises
    SandboxImageError with the reason and what to do."""
    devcontainer = None if configured else await read_devcontainer(found)
    choice = choose_image(configured, devcontainer, default)
    if choice.build is not None:
        name = await build_devcontainer(client, found, choice, announce)
    else:
        assert choice.image is not None
        name = choice.image
    image = await asyncio.to_thread(_local_image, client, name, choice.remedy)
    if image is None:
        if announce is not None:
            await announce(f"sandbox: pulling `{name}` — {choice.why}")
        image = await asyncio.to_thread(pull, client, name, choice.remedy)
    search_path = image_search_path(image.attrs.get("Config", {}).get("Env"))
    return SandboxImage(name, choice.summary(name), search_path)


async def read_devcontainer(found: Checkout) -> Devcontainer | None:
    """The default branch's dev container, if it has one; SandboxImageError when it is invalid."""
    for path in DEVCONTAINER_PATHS:
        text = await read_trusted(found, path)
        if text is not None:
            try:
                return parse_devcontainer(path, text)
            except DevcontainerError as exc:
                raise SandboxImageError(
                    f"The repository's dev container is invalid, so the run did not start.\n\n"
                    f"{exc}\n\nFix it on the default branch, or set `image:` in {CONFIG_PATH}."
                ) from None
    return None


def _local_image(client: docker.DockerClient, name: str, remedy: str) -> Image | None:
    try:
        return client.images.get(name)
    except ImageNotFound:
        return None
    except APIError as exc:
        if exc.is_client_error():
            raise SandboxImageError(f"could not use {name}: {_reason(exc)}; {remedy}") from None
        raise


def pull(client: docker.DockerClient, name: str, remedy: str) -> Image:
    """Pull `name` with the engine's credentials for its registry (docker-py sends those of the
    worker's Docker config); SandboxImageError with the engine's reason when it cannot."""
    repository, tag = parse_repository_tag(name)
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise SandboxImageError(f"could not pull {name}: {event['error']}; {remedy}")
        return client.images.get(name)
    except APIError as exc:
        raise SandboxImageError(f"could not pull {name}: {_reason(exc)}; {remedy}") from None


async def build_devcontainer(
    client: docker.DockerClient, found: Checkout, choice: ImageChoice, announce: Announce | None
) -> str:
    """Build the dev container's image from the default branch's files, unless an image of the
    same content is there already; its tag."""
    build = choice.build
    assert build is not None
    dockerfile_id = await _dockerfile_id(found, build)
    context_id = await _tree_id(found, build.context)
    if context_id is None:
        raise SandboxImageError(
            f"could not build the dev container: its context {build.context or '.'} is not a "
            f"directory on the default branch; {choice.remedy}"
        )
    tag = build_tag(found.repository, build, dockerfile_id, context_id)
    if await asyncio.to_thread(_local_image, client, tag, choice.remedy) is not None:
        return tag
    if announce is not None:
        await announce(f"sandbox: building `{tag}` — {choice.why}")
    scratch = found.job_dir / "devcontainer"
    try:
        context, dockerfile = await _materialize(found, build, dockerfile_id, scratch)
        labels = {BUILD_LABEL: found.repository}
        await asyncio.to_thread(_build, client, context, dockerfile, tag, build, labels, choice)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return tag


async def _dockerfile_id(found: Checkout, build: DevcontainerBuild) -> str:
    entry = await git("ls-tree", "-z", found.trusted, "--", build.dockerfile, cwd=found.mirror)
    mode, kind, sha = entry.split("\t", 1)[0].split(" ") if entry else ("", "", "")
    if kind != "blob" or mode not in REGULAR_FILES:
        raise SandboxImageError(
            f"could not build the dev container: {build.dockerfile} is not a file on the "
            f"default branch; fix the dev container, or set `image:` in {CONFIG_PATH}"
        )
    return sha


async def _tree_id(found: Checkout, path: str) -> str | None:
    """The git id of the default branch's directory at `path` ("" for the root), if it is one."""
    spec = f"{found.trusted}^{{tree}}" if not path else f"{found.trusted}:{path}"
    try:
        if (await git("cat-file", "-t", spec, cwd=found.mirror)).strip() != "tree":
            return None
        return (await git("rev-parse", "--verify", spec, cwd=found.mirror)).strip()
    except GitError:
        return None


async def _materialize(
    found: Checkout, build: DevcontainerBuild, dockerfile_id: str, scratch: Path
) -> tuple[Path, str]:
    """The context directory, written from the default branch's tree, and the Dockerfile as
    docker-py takes it: a path in the context, or an absolute path outside it."""
    archive, context = scratch / "context.tar", scratch / "context"
    await asyncio.to_thread(_fresh_dirs, scratch, context)
    treeish = f"{found.trusted}:{build.context}" if build.context else found.trusted
    await git("archive", "--format=tar", "-o", str(archive), treeish, cwd=found.mirror)
    await asyncio.to_thread(_extract, archive, context)
    prefix = f"{build.context}/" if build.context else ""
    if build.dockerfile.startswith(prefix):
        return context, build.dockerfile[len(prefix) :]
    outside = scratch / "Dockerfile"
    blob = await git_bytes("cat-file", "blob", dockerfile_id, cwd=found.mirror)
    await asyncio.to_thread(outside.write_bytes, blob)
    return context, str(outside)


def _fresh_dirs(*paths: Path) -> None:
    shutil.rmtree(paths[0], ignore_errors=True)
    for path in paths:
        path.mkdir(parents=True)


def _extract(archive: Path, destination: Path) -> None:
    with tarfile.open(archive) as tar:
        # "tar": no member lands outside `destination`, and no setuid bits.
        tar.extractall(destination, filter="tar")


def _build(
    client: docker.DockerClient,
    context: Path,
    dockerfile: str,
    tag: str,
    build: DevcontainerBuild,
    labels: dict[str, str],
    choice: ImageChoice,
) -> None:
    try:
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(build.args),
            target=build.target,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
        )
    except BuildError as exc:
        raise SandboxImageError(
            f"could not build the dev container image from {build.dockerfile}: {exc.msg}\n\n"
            f"```\n{_log_tail(exc.build_log)}\n```\n\nTo go on: {choice.remedy}."
        ) from None
    except APIError as exc:
        raise SandboxImageError(
            f"could not build the dev container image from {build.dockerfile}: "
            f"{_reason(exc)}; {choice.remedy}"
        ) from None


def _log_tail(log: Any) -> str:
    lines = "".join(
        str(entry.get("stream") or entry.get("error") or "")
        for entry in log or ()
        if isinstance(entry, dict)
    ).splitlines()
    return "\n".join(lines[-LOG_LINES:])


def _reason(exc: APIError) -> str:
    return str(exc.explanation or exc).strip()
