"""DATA_DIR full in the middle of the work: the job fails with the reason, the worker stays
up, and once there is room again the next job runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script
from tests.reliability.conftest import as_root, failed_comment, until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SIZE_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB file system of its own (tmpfs) for DATA_DIR."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    # Owned by whoever runs the tests, as DATA_DIR is the worker's.
    options = f"size={SIZE_MB}m,uid={os.getuid()},gid={os.getgid()}"
    done = as_root(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs, as root: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        as_root(["umount", "-l", str(mount)])


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; returns it."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_the_job_with_its_reason_and_the_next_job_runs(
    make_harness: MakeHarness, small_disk: Path
) -> None:
    data = small_disk / "data"
    h = make_harness(fix_add_script(), per_conversation=True, start=False)
    h.env["DATA_DIR"] = str(data)
    h.start()
    first = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    filler = fill(small_disk)
    h.label(first)
    failed = until(h, "the job on a full disk to fail", lambda: failed_comment(h.tracking(first)))
    os.remove(filler)
    second = h.emulator.add_issue(REPO, "add() still subtracts", "It does.", "watcher")
    h.label(second)
    opened = until(h, "the next job", lambda: "Opened #" in (h.tracking(second) or ""))
    print(f"\ndisk full: 1 job failed with the reason, worker up, next job opened: {opened}")
    assert "No space left on device" in failed
    assert "DATA_DIR" in failed
