"""Job preparation on a small and a large repository: the old way and the new, side by side.

For each repository, from a scratch copy served over `file://` (git's pack protocol, as over
HTTPS, without the network): the mirror's cold clone, its warm update with nothing new and with
a few new commits (and a new pull request ref, as GitHub adds them); then three jobs, each two
commits after the last: the sandbox's checkout for the repository's first job and for a warm
job into a fresh sandbox (checkout, then `DockerSandbox.start` until its shell answers), and for
a warm job into a pool slot (checkout, then `Slot.ready`); what of that is the objects' copy or
share; and the publish tree (made, a patch staged, the change guard run). Also what a warm job
wrote before its sandbox started: git bytes not linked to the mirror, and work tree files.

- old: `clone --mirror` (every ref, `refs/pull/*` included), `fetch --prune` of all of them,
  `clone --no-hardlinks` of the mirror into each workspace and `clone --shared` plus a full
  checkout for the publish tree: what workers/git.py did before.
- new: `MirrorCache` fetching the default branch only; `sandbox_checkout`: the mirror's packs
  hard-linked into a read-only share, and a workspace that borrows from it, made from the spare
  checkout left by the previous job (workers/spare_checkouts.py); `stage` on an index-only
  worker tree.

The large repository is tests/fixtures/large_repo.py's (built on first use, ~15 s, then kept).
Before each timed step the page cache is flushed (`sync`), so no step pays for an earlier one's
writes.

    python -m benchmarks.job_prep [--runs 3] [--image TAG] [--skip-large]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker

from sandbox.base_commit import EMPTY_TREE
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image
from sandbox.pool import SandboxPool
from tests.fixtures import large_repo
from workers import spare_checkouts
from workers.change_guard import guard_staged_change
from workers.git import GitAuth, MirrorCache, git, resolve
from workers.object_share import share_objects
from workers.publish import stage
from workers.workspace import Checkout, sandbox_checkout

LABELS = {"qwen-fix.benchmark": "job_prep"}
NEW_COMMITS = 5
EPOCH = 1_800_000_000
AUTH = GitAuth("unused")


@dataclass
class Row:
    """One step measured the old way and the new way."""

    name: str
    old: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)


@dataclass
class Repository:
    """A scratch remote standing in for GitHub's copy of one repository."""

    name: str
    remote: Path
    scratch: Path

    @property
    def url(self) -> str:
        return f"file://{self.remote}"


async def timed(step: Awaitable[object]) -> float:
    await settle()
    started = time.perf_counter()
    await step
    return time.perf_counter() - started


async def settle() -> None:
    """Flush what earlier steps wrote, so a step does not pay for their writeback."""
    await asyncio.to_thread(os.sync)


# The old way, as workers/git.py did it before the shares.


async def old_mirror(url: str, mirror: Path) -> None:
    await git("clone", "--mirror", "--quiet", url, str(mirror))


async def old_update(mirror: Path) -> None:
    await git("fetch", "--prune", "--quiet", "origin", cwd=mirror)


async def old_checkout(mirror: Path, dest: Path, commit: str, *, shared: bool = False) -> None:
    link = "--shared" if shared else "--no-hardlinks"
    trust = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
             "GIT_CONFIG_VALUE_0": str(dest)}  # fmt: skip
    await git("clone", "--quiet", "--no-checkout", link, str(mirror), str(dest), env=trust)
    await git("checkout", "--quiet", "-B", "qwen-fix-work", commit, cwd=dest, env=trust)
    await git("remote", "remove", "origin", cwd=dest, env=trust)


async def old_objects(mirror: Path, dest: Path) -> None:
    """The part of the old checkout that copied the history."""
    await git("clone", "--quiet", "--no-checkout", "--no-hardlinks", str(mirror), str(dest))


async def old_stage(found: Checkout, patch: str) -> None:
    tree = found.publish_tree
    await old_checkout(found.mirror, tree, found.base, shared=True)
    await git("apply", "--index", "--binary", "-", cwd=tree, stdin=patch.encode())
    await guard_staged_change(tree, found.base)


# The repositories.


def make_remote(source: Path, scratch: Path, name: str) -> Repository:
    """A copy of `source` (its refs; objects borrowed) that new commits can be added to."""
    remote = scratch / f"{name}-remote.git"
    subprocess.run(
        ["git", "clone", "--quiet", "--mirror", "--shared", str(source), str(remote)], check=True
    )
    return Repository(name, remote, scratch)


def add_commits(remote: Path, count: int, pull: int) -> None:
    """`count` commits on main, two files changed in each, and a new pull request's head."""
    paths = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "main"],
        cwd=remote, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    refs = ["refs/heads/main"] * count + [f"refs/pull/{pull}/head"]
    stream = []
    for number, ref in enumerate(refs):
        content = f"changed by commit {pull}-{number}\n" * 20
        stream.append(
            f"commit {ref}\ncommitter Bench <bench@example.com> {EPOCH + number} +0000\n"
            f"data 10\nnew commit\n"
        )
        if number in (0, count):  # main's first new commit, and the pull's: from main's head
            stream.append("from refs/heads/main^0\n")
        for path in (paths[(pull + number) % len(paths)], paths[(3 * pull + number) % len(paths)]):
            stream.append(f"M 100644 inline {path}\ndata {len(content)}\n{content}\n")
        stream.append("\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=remote, input="".join(stream).encode(), check=True
    )


def unshared_bytes(*roots: Path) -> int:
    """Bytes of the regular files under `roots` whose only name is there (not hard links to
    the mirror's files): what a job wrote."""
    total = 0
    for root in roots:
        for path in walk_files(root):
            status = path.lstat()
            if status.st_nlink == 1:
                total += status.st_size
    return total


def walk_files(root: Path) -> Iterator[Path]:
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def describe(remote: Path) -> str:
    def count(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=remote, capture_output=True, text=True)
        return done.stdout

    commits = count("rev-list", "--count", "main").strip()
    files = len(count("ls-tree", "-r", "--name-only", "main").splitlines())
    refs = len(count("for-each-ref").splitlines())
    pulls = len(count("for-each-ref", "refs/pull").splitlines())
    return f"{int(commits):,} commits on main, {files:,} files, {refs} refs ({pulls} refs/pull)"


# The measurements.


FIRST = "sandbox checkout, first job (fresh sandbox)"
WARM = "sandbox checkout, warm job (fresh sandbox)"
POOLED = "sandbox checkout, warm job (pool slot)"
OBJECTS = "  of which the objects (copy / share)"
PUBLISH = "publish tree (stage a patch)"


@dataclass
class Written:
    """What one warm job wrote before its sandbox started, the old way and the new."""

    git_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes of git directories and shares not linked to the mirror (sandbox and publish)."""
    files: dict[str, int] = field(default_factory=dict)
    """Work tree files written (not moved from a spare checkout)."""
    pack: int = 0


class Bench:
    def __init__(self, client: docker.DockerClient, config: SandboxConfig, runs: int) -> None:
        self.client = client
        self.config = config
        self.runs = runs

    async def repository(self, repo: Repository) -> tuple[list[Row], Written]:
        names = (
            "cold mirror clone",
            "warm update, nothing new",
            f"warm update, {NEW_COMMITS} new commits",
            FIRST,
            WARM,
            POOLED,
            OBJECTS,
            PUBLISH,
        )
        rows = {name: Row(name) for name in names}  # fmt: skip
        written = Written()
        for run in range(self.runs):
            await self.once(repo, run, rows, written)
        return list(rows.values()), written

    async def once(
        self, repo: Repository, run: int, rows: dict[str, Row], written: Written
    ) -> None:
        work = repo.scratch / f"{repo.name}-run{run}"
        (work / "old").mkdir(parents=True)
        mirrors = MirrorCache(work / "new" / "mirrors")
        old, new = work / "old" / "mirror.git", mirrors.path_for(repo.url)
        await self.mirror_steps(repo, run, rows, old, mirrors)
        old_found, new_found = await self.job_steps(repo, work, rows, written, old, mirrors)
        rows[OBJECTS].old.append(await timed(old_objects(old, work / "old-objects")))
        rows[OBJECTS].new.append(await timed(share_objects(mirrors, new, work / "new-objects")))
        patch = await git("diff", "--binary", new_found.base, "refs/heads/main", cwd=new)
        rows[PUBLISH].old.append(await timed(old_stage(old_found, patch)))
        rows[PUBLISH].new.append(await timed(stage(new_found, patch)))
        written.git_bytes = {"old": job_bytes(old_found), "new": job_bytes(new_found)}
        written.pack = sum(p.stat().st_size for p in walk_files(old / "objects"))
        await asyncio.to_thread(shutil.rmtree, work, True)

    async def mirror_steps(
        self, repo: Repository, run: int, rows: dict[str, Row], old: Path, mirrors: MirrorCache
    ) -> None:
        cold, nothing = rows["cold mirror clone"], rows["warm update, nothing new"]
        cold.old.append(await timed(old_mirror(repo.url, old)))
        cold.new.append(await timed(mirrors.update(repo.url, AUTH, ["main"])))
        nothing.old.append(await timed(old_update(old)))
        nothing.new.append(await timed(mirrors.update(repo.url, AUTH, ["main"])))
        await asyncio.to_thread(add_commits, repo.remote, NEW_COMMITS, 10_000 + run)
        some = rows[f"warm update, {NEW_COMMITS} new commits"]
        some.old.append(await timed(old_update(old)))
        some.new.append(await timed(mirrors.update(repo.url, AUTH, ["main"])))

    async def job_steps(
        self, repo: Repository, work: Path, rows: dict[str, Row], written: Written, old: Path,
        mirrors: MirrorCache,
    ) -> tuple[Checkout, Checkout]:  # fmt: skip
        """Three jobs, each two commits after the last; the first finds no spare checkout.
        Returns the old and new checkouts of the warm fresh one."""
        new = mirrors.path_for(repo.url)
        warm: tuple[Checkout, Checkout] | None = None
        for number, (name, back) in enumerate(((FIRST, 4), (WARM, 2), (POOLED, 0))):
            base = await resolve(new, f"refs/heads/main~{back}")
            old_found = self.found(repo, old, base, work / "old" / f"job-{number}")
            new_found = self.found(repo, new, base, work / "new" / f"job-{number}")
            await spare_checkouts.made(new)
            spare = await asyncio.to_thread(tree_files, ready_spare(new))
            if name == POOLED:
                await self.pooled(rows[name], work, old_found, new_found, mirrors)
            else:
                await self.fresh(rows[name], old_found, new_found, mirrors)
            if name == WARM:
                warm = old_found, new_found
                written.files = {
                    "old": len(await asyncio.to_thread(tree_files, old_found.sandbox_tree)),
                    "new": files_written(new_found.sandbox_tree, spare),
                }
        await spare_checkouts.made(new)
        assert warm is not None
        return warm

    def found(self, repo: Repository, mirror: Path, base: str, job_dir: Path) -> Checkout:
        job_dir.mkdir(parents=True)
        return Checkout(repo.name, repo.url, "main", base, base, mirror, AUTH, job_dir)

    async def fresh(self, row: Row, old: Checkout, new: Checkout, mirrors: MirrorCache) -> None:
        async def old_way() -> DockerSandbox:
            await old_checkout(old.mirror, old.sandbox_tree, old.base)
            return await DockerSandbox.start(
                self.client, self.config, old.sandbox_tree, labels=LABELS
            )

        async def new_way() -> DockerSandbox:
            await sandbox_checkout(mirrors, new, new.sandbox_tree, new.sandbox_objects)
            return await DockerSandbox.start(
                self.client, self.config, new.sandbox_tree, labels=LABELS,
                objects_dir=new.sandbox_objects,
            )  # fmt: skip

        for way, samples in ((old_way, row.old), (new_way, row.new)):
            await settle()
            started = time.perf_counter()
            box = await way()
            samples.append(time.perf_counter() - started)
            await self.check(box, old.base)
            await box.close()

    async def pooled(
        self, row: Row, work: Path, old: Checkout, new: Checkout, mirrors: MirrorCache
    ) -> None:
        # An empty pool starts each slot on the spot (untimed) and never refills behind us.
        pool = SandboxPool(self.client, self.config, size=0, root=work / "pool", labels=LABELS)
        try:
            slot = await pool.take()
            await settle()
            started = time.perf_counter()
            await old_checkout(old.mirror, slot.workspace_dir, old.base)
            box = await slot.ready("qwen-fix-bench-old")
            row.old.append(time.perf_counter() - started)
            await self.check(box, old.base)
            await slot.discard()
            slot = await pool.take()
            await settle()
            started = time.perf_counter()
            await sandbox_checkout(mirrors, new, slot.workspace_dir, slot.objects_dir)
            box = await slot.ready("qwen-fix-bench-new")
            row.new.append(time.perf_counter() - started)
            await self.check(box, new.base)
            await slot.discard()
        finally:
            await pool.close()

    async def check(self, box: DockerSandbox, base: str) -> None:
        head = await box.run("git rev-parse HEAD && git status --porcelain | head -3")
        if head.output.split() != [base] or box.base_commit in (None, EMPTY_TREE):
            raise RuntimeError(f"the sandbox is not at {base}: {head.output!r}")


def ready_spare(mirror: Path) -> Path | None:
    return next(iter(spare_checkouts.spares_of(mirror).glob("ready-*")), None)


def tree_files(root: Path | None) -> dict[str, int]:
    """The work tree's files (not `.git`), each with its inode."""
    if root is None:
        return {}
    found = {}
    for directory, directories, files in os.walk(root):
        if directory == str(root) and ".git" in directories:
            directories.remove(".git")
        for name in files:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = path.lstat().st_ino
    return found


def files_written(workspace: Path, spare: dict[str, int]) -> int:
    """Files of `workspace` that are not the spare checkout's, moved: written by the job."""
    return sum(1 for path, inode in tree_files(workspace).items() if spare.get(path) != inode)


def job_bytes(found: Checkout) -> int:
    """Object bytes a job wrote: its fresh sandbox's git directory and share, and its publish
    tree's git directory."""
    return unshared_bytes(
        found.sandbox_tree / ".git", found.sandbox_objects, found.publish_tree / ".git"
    )


def ratio(old: float, new: float) -> str:
    return f"{old / new:8.1f}×" if new > 0 else "       ∞"


def print_table(
    repo: Repository, description: str, rows: list[Row], written: Written, runs: int
) -> None:
    print(f"\n{repo.name} repository: {description}; median of {runs}")
    print(f"  {'step':<46} {'old':>10} {'new':>10} {'old/new':>9}")
    for row in rows:
        old, new = statistics.median(row.old), statistics.median(row.new)
        print(f"  {row.name:<46} {old * 1000:7.0f} ms {new * 1000:7.0f} ms {ratio(old, new)}")
    git_bytes, files = written.git_bytes, written.files
    print(
        f"  {'warm job: git bytes written (MB)':<46} {git_bytes['old'] / 1e6:10.1f} "
        f"{git_bytes['new'] / 1e6:10.2f}   (the mirror's pack: {written.pack / 1e6:.1f} MB)"
    )
    print(
        f"  {'warm job: work tree files written':<46} {files['old']:10,} {files['new']:10,}"
        "   (new: plus one tree in the background, the next spare)"
    )


async def main(arguments: argparse.Namespace) -> None:
    client = docker.from_env()
    image = arguments.image or await asyncio.to_thread(ensure_image, client)
    bench = Bench(client, SandboxConfig(image=image), arguments.runs)
    with tempfile.TemporaryDirectory(prefix="job-prep-bench-") as directory:
        scratch = Path(directory)
        sources = {"small": large_repo.build(scratch / "small-source", large_repo.SMALL)}
        if not arguments.skip_large:
            sources["large"] = large_repo.build(large_repo.DEFAULT_DEST)
        for name, source in sources.items():
            repo = make_remote(source, scratch, name)
            description = describe(repo.remote)
            rows, written = await bench.repository(repo)
            print_table(repo, description, rows, written, arguments.runs)
    client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", help="sandbox image (default: build or reuse the recipe's)")
    parser.add_argument("--skip-large", action="store_true", help="the small repository only")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
