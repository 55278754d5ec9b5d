"""Registry-free build of the sandbox image: debootstrap a Debian rootfs and `docker import` it.

For machines that cannot pull images. The tag is a hash of the recipe, so a changed recipe
builds a new image and an unchanged one is never rebuilt.

The image is a development image: the toolchains most repositories' tests need (Python with pip
and venv, make and a C/C++ compiler, Node.js with npm, git). debootstrap lays down a minimal
Debian and apt, run in that root, installs the rest: debootstrap's own resolver cannot install
npm (its dependencies name virtual packages), apt's can, and downloads faster.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

RECIPE_VERSION = "4"
"""Bump when the build steps below change in a way the recipe fields do not show."""

REPOSITORY = "qwen-fix-sandbox"
SUITE = "bookworm"
PACKAGES = (
    # the shell channel, diff() and the agent's tools
    "ca-certificates",
    "git",
    "procps",
    # Python: `python` and `python3`, pip, venv; pytest for repositories without a setup step
    "python3",
    "python-is-python3",
    "python3-pip",
    "python3-venv",
    "python3-pytest",
    # make, gcc, g++, libc headers: Makefiles and native extensions (pip and node-gyp build them)
    "build-essential",
    # JavaScript and TypeScript projects
    "nodejs",
    "npm",
)
"""Installed with apt (no recommends) on top of debootstrap's minbase variant."""
SANDBOX_UID = 1000
SANDBOX_USER = "sandbox"
SANDBOX_HOME = "/home/sandbox"
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    f"ENV HOME={SANDBOX_HOME}",
    f"USER {SANDBOX_UID}:{SANDBOX_UID}",
    "WORKDIR /workspace",
    'CMD ["/bin/sh"]',
)
# Trimmed from the rootfs: package lists and caches, and docs and translations nobody reads
# inside a sandbox (LANG is C.UTF-8).
PRUNED_DIRS = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
APT_OPTIONS = (
    "-y",
    "-qq",
    "--no-install-recommends",
    "-o",
    "Acquire::Retries=3",
    "-o",
    "Dpkg::Use-Pty=0",
    # The rootfs is tarred up right after: dpkg need not fsync each file it unpacks.
    "-o",
    "Dpkg::Options::=--force-unsafe-io",
)
# Files dpkg never unpacks (same as PRUNED_DIRS, for the packages apt installs).
DPKG_EXCLUDES = "".join(
    f"path-exclude=/{directory}/*\n" for directory in PRUNED_DIRS if directory.startswith("usr/")
)


class ImageBuildError(RuntimeError):
    """The sandbox image could not be built; the message says why and what to install."""


def recipe_tag() -> str:
    """The content-hash tag of the current recipe, e.g. `qwen-fix-sandbox:3f2a…` (12 hex)."""
    recipe = {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": PACKAGES,
        "user": [SANDBOX_USER, SANDBOX_UID, SANDBOX_HOME],
        "changes": IMAGE_CHANGES,
        "pruned": PRUNED_DIRS,
        "apt": APT_OPTIONS,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{REPOSITORY}:{digest[:12]}"


def ensure_image(client: docker.DockerClient) -> str:
    """Return the recipe's tag, building the image only when that tag is missing.

    Blocking (a build takes about a minute); call it at process start or via asyncio.to_thread.
    """
    tag = recipe_tag()
    try:
        image = client.images.get(tag)
    except ImageNotFound:
        build_image(client, tag)
        image = client.images.get(tag)
    image.tag(REPOSITORY, "latest")
    return tag


def build_image(client: docker.DockerClient, tag: str) -> None:
    """debootstrap the rootfs, add the sandbox user, import it into the engine as `tag`."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError(
            "debootstrap is not installed: `apt-get install -y debootstrap` "
            "(or build deploy/sandbox/Dockerfile where a registry is reachable)"
        )
    with tempfile.TemporaryDirectory(prefix="qwen-fix-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _debootstrap(debootstrap, rootfs)
        _install_packages(rootfs)
        _add_sandbox_user(rootfs)
        _configure_git(rootfs)
        _prune(rootfs)
        tarball = Path(scratch) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."])
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=version, changes=list(IMAGE_CHANGES)
        )


def _debootstrap(debootstrap: str, rootfs: Path) -> None:
    # No mirror argument: debootstrap's default mirror is the one that works everywhere here.
    _run([debootstrap, "--variant=minbase", SUITE, str(rootfs)])


def _install_packages(rootfs: Path) -> None:
    """apt-get install PACKAGES inside the rootfs (chroot: debootstrap already needs root)."""
    excludes = rootfs / "etc/dpkg/dpkg.cfg.d/qwen-fix-excludes"
    excludes.write_text(DPKG_EXCLUDES)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    chroot = ["chroot", str(rootfs)]
    _run([*chroot, "apt-get", "-qq", "update"], env=environment)
    _run([*chroot, "apt-get", "install", *APT_OPTIONS, *PACKAGES], env=environment)
    _run([*chroot, "apt-get", "clean"], env=environment)


def _add_sandbox_user(rootfs: Path) -> None:
    # Written directly rather than via chroot+useradd: no mounts or chroot needed.
    uid = SANDBOX_UID
    _append(rootfs / "etc/passwd", f"{SANDBOX_USER}:x:{uid}:{uid}::{SANDBOX_HOME}:/bin/sh\n")
    _append(rootfs / "etc/group", f"{SANDBOX_USER}:x:{uid}:\n")
    _append(rootfs / "etc/shadow", f"{SANDBOX_USER}:!:19000:0:99999:7:::\n")
    for directory in (rootfs / SANDBOX_HOME.lstrip("/"), rootfs / "workspace"):
        directory.mkdir(parents=True, exist_ok=True)
        _run(["chown", f"{uid}:{uid}", str(directory)])


def _configure_git(rootfs: Path) -> None:
    # Workspaces are bind mounts whose owner may differ from the caller's uid; the sandbox
    # is single-tenant, so git's ownership check only gets in the way here.
    (rootfs / "etc/gitconfig").write_text("[safe]\n\tdirectory = *\n")


def _prune(rootfs: Path) -> None:
    for relative in PRUNED_DIRS:
        directory = rootfs / relative
        if directory.is_dir():
            shutil.rmtree(directory)
            directory.mkdir()


def _append(path: Path, line: str) -> None:
    with path.open("a") as file:
        file.write(line)


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout)[-2000:]
        raise ImageBuildError(f"{argv[0]} failed ({completed.returncode}):\n{tail}")


def main() -> int:
    """`python -m sandbox.image`: ensure the image exists and print its tag."""
    try:
        print(ensure_image(docker.from_env()))
    except (ImageBuildError, docker.errors.DockerException) as exc:
        print(f"sandbox image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
