"""Job preparation on a large repository (tests/fixtures/large_repo.py: 30,000 commits, 12,000
files, 400 pull request refs): the sandbox gets the right commit, exactly, without a copy of the
history; a warm job fetches only what is new and writes only the files that changed.

`bash tests/fixtures/fetch.sh` builds the repository once (CI keeps it with the other fixtures);
without it the first test here builds it (about 15 s)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.pool import SandboxPool
from tests.fixtures import large_repo
from workers import spare_checkouts
from workers.git import GitAuth, MirrorCache, git, resolve
from workers.publish import stage
from workers.workspace import Checkout, sandbox_checkout

pytestmark = pytest.mark.docker

LABELS = {"qwen-fix.test": "pytest"}
AUTH = GitAuth("unused")


@pytest.fixture(scope="session")
def large_origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GitHub's copy of the large repository: its refs, borrowing the fixture's objects, so a
    test can add commits without touching the fixture."""
    fixture = large_repo.build(large_repo.DEFAULT_DEST)
    origin = tmp_path_factory.mktemp("large") / "origin.git"
    clone = ["git", "clone", "--quiet", "--mirror", "--shared", str(fixture), str(origin)]
    subprocess.run(clone, check=True)
    return origin


def add_commit(origin: Path, path: str, text: str) -> str:
    stream = (
        "commit refs/heads/main\ncommitter T <t@example.com> 1900000000 +0000\ndata 4\nnew\n"
        f"from refs/heads/main^0\nM 100644 inline {path}\ndata {len(text)}\n{text}\n\n"
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=origin, input=stream.encode(), check=True)
    return subprocess.run(
        ["git", "rev-parse", "main"], cwd=origin, capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_a_job_on_the_large_repository_checks_out_the_right_commit(
    large_origin: Path, docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    url = f"file://{large_origin}"
    mirrors = MirrorCache(tmp_path / "mirrors")
    mirror = await mirrors.update(url, AUTH, ["main"])
    refs = (await git("for-each-ref", "--format=%(refname)", cwd=mirror)).split()
    assert "refs/heads/main" in refs and not [r for r in refs if r.startswith("refs/pull/")]
    base = await resolve(mirror, "refs/heads/main")
    found = Checkout("o/big", url, "main", base, base, mirror, AUTH, tmp_path / "job")
    await asyncio.to_thread(found.job_dir.mkdir)
    shared = await sandbox_checkout(mirrors, found, found.sandbox_tree, found.sandbox_objects)
    assert shared.copied == 0 and shared.linked > 50_000_000
    config = SandboxConfig(image=sandbox_image, memory="1g", lifetime=600)
    box = await DockerSandbox.start(
        docker_client, config, found.sandbox_tree, labels=LABELS, objects_dir=found.sandbox_objects
    )
    try:
        assert box.base_commit == base
        seen = await box.run(
            "git rev-parse HEAD && git rev-list --count HEAD && git status --porcelain | wc -l"
            " && git describe --tags && git ls-files | wc -l && du -sk .git/objects",
            timeout=300,
        )
        head, count, dirty, described, files, objects = seen.output.split("\n")[:6]
        expected = await git("rev-list", "--count", base, cwd=large_origin)
        assert (head, count, dirty) == (base, expected.strip(), "0"), seen.output
        assert described.startswith("v29.0-"), seen.output
        assert int(files) > 11_000
        assert int(objects.split()[0]) < 100, "the history was copied into the workspace"
        # Every file is the base's: the final diff hashes them all afresh, against the base.
        assert await box.final_diff() == ""
        await box.run("echo changed >> README.extra && sed -i '1d' data/generated_0.json")
        patch = await box.final_diff()
        assert "+changed" in patch and "data/generated_0.json" in patch
        assert patch.count("diff --git") == 2
    finally:
        await box.close()
        await spare_checkouts.made(mirror)
    await stage(found, patch)
    staged = await git("diff", "--cached", "--name-only", cwd=found.publish_tree)
    assert staged.split() == ["README.extra", "data/generated_0.json"]


async def test_a_warm_job_fetches_and_writes_only_whats_new_in_a_pooled_sandbox(
    large_origin: Path, docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    url = f"file://{large_origin}"
    mirrors = MirrorCache(tmp_path / "mirrors")
    mirror = await mirrors.update(url, AUTH, ["main"])
    base = await resolve(mirror, "refs/heads/main")
    first = Checkout("o/big", url, "main", base, base, mirror, AUTH, tmp_path / "job-1")
    await sandbox_checkout(mirrors, first, first.sandbox_tree, first.sandbox_objects)
    await spare_checkouts.made(mirror)
    (spare,) = spare_checkouts.spares_of(mirror).glob("ready-*")
    kept = spare / "data" / "generated_0.json"
    inode = kept.stat().st_ino
    packs = set((mirror / "objects" / "pack").glob("*.pack"))
    head = await asyncio.to_thread(add_commit, large_origin, "src/new_module.py", "x = 1\n")
    await mirrors.update(url, AUTH, ["main"])
    new_packs = set((mirror / "objects" / "pack").glob("*.pack")) - packs
    assert len(new_packs) == 1 and next(iter(new_packs)).stat().st_size < 100_000
    assert await resolve(mirror, "refs/heads/main") == head
    found = Checkout("o/big", url, "main", head, head, mirror, AUTH, tmp_path / "job-2")
    config = SandboxConfig(image=sandbox_image, memory="1g", lifetime=600)
    pool = SandboxPool(docker_client, config, size=0, root=tmp_path / "pool", labels=LABELS)
    slot = await pool.take()
    try:
        await sandbox_checkout(mirrors, found, slot.workspace_dir, slot.objects_dir)
        # The spare became the workspace: its files were moved, not written again.
        assert (slot.workspace_dir / "data" / "generated_0.json").stat().st_ino == inode
        box = await slot.ready("qwen-fix-test-large-pooled")
        seen = await box.run("git log -1 --format=%H%n%s && cat src/new_module.py")
        assert seen.output.split("\n")[:3] == [head, "new", "x = 1"], seen.output
        assert box.base_commit == head
        assert await box.final_diff() == ""
    finally:
        await slot.discard()
        await pool.close()
        await spare_checkouts.made(mirror)
