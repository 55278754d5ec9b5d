"""Pure parts of the sandbox: stream demultiplexing, output cap, HEAD reading, reaping rules."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from sandbox import labels
from sandbox.base_commit import EMPTY_TREE, NotACheckout, read_head_commit
from sandbox.framing import StreamDemuxer
from sandbox.labels import container_name, job_name_filter
from sandbox.output import CappedOutput
from sandbox.reaper import is_orphan
from tests.sandbox.conftest import make_checkout


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


@pytest.mark.parametrize("step", [1, 3, 8, 9, 1000])
def test_demuxer_joins_frames_split_anywhere(step: int) -> None:
    raw = frame(1, b"hello ") + frame(2, b"") + frame(2, b"err ") + frame(1, b"world" * 50)
    demuxer = StreamDemuxer()
    out = b"".join(demuxer.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    assert out == b"hello err " + b"world" * 50


def test_capped_output_keeps_everything_under_the_cap() -> None:
    output = CappedOutput(100)
    for _ in range(10):
        output.feed(b"0123456789")
    assert (output.text(), output.truncated) == ("0123456789" * 10, False)


def test_capped_output_keeps_head_and_tail_and_counts_the_cut() -> None:
    output = CappedOutput(100)
    output.feed(b"H" * 50)
    for _ in range(1000):
        output.feed(b"m")
    output.feed(b"T" * 50)
    assert output.truncated
    assert output.text() == "H" * 50 + "\n[... 1000 bytes of output cut ...]\n" + "T" * 50


def test_capped_output_without_cap_keeps_all() -> None:
    output = CappedOutput(None)
    output.feed(b"x" * 100_000)
    assert len(output.text()) == 100_000 and not output.truncated


def test_head_commit_from_loose_ref_packed_ref_and_unborn(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "repo")
    commit = (checkout / ".git/refs/heads/main").read_text().strip()
    assert read_head_commit(checkout) == commit
    (checkout / ".git/refs/heads/main").unlink()
    (checkout / ".git/packed-refs").write_text(f"# pack-refs\n{commit} refs/heads/main\n")
    assert read_head_commit(checkout) == commit
    (checkout / ".git/HEAD").write_text("ref: refs/heads/unborn\n")
    assert read_head_commit(checkout) == EMPTY_TREE
    (checkout / ".git/HEAD").write_text(commit + "\n")
    assert read_head_commit(checkout) == commit
    with pytest.raises(NotACheckout):
        read_head_commit(tmp_path)


def listing(state: str = "running", created: int = 150, **values: str) -> dict[str, object]:
    labelled = {labels.SANDBOX: "1", **values}
    return {"Id": "c", "State": state, "Created": created, "Labels": labelled}


@pytest.mark.parametrize(
    ("container", "worker_id", "live", "orphan"),
    [
        (listing(**{labels.WORKER: "w1"}), "w1", None, True),
        (listing(**{labels.WORKER: "w2"}), "w1", None, False),
        (listing("exited", **{labels.WORKER: "w2"}), None, None, True),
        (listing("dead"), None, None, True),
        (listing("created"), None, None, False),
        (listing("created", created=-1000), None, None, True),
        (listing(**{labels.EXPIRES_AT: "100"}), None, None, True),
        (listing(**{labels.EXPIRES_AT: "300"}), None, None, False),
        (listing(**{labels.WORKER: "gone"}), None, {"w1"}, True),
        (listing(**{labels.WORKER: "w1"}), None, {"w1"}, False),
        (listing(), None, {"w1"}, False),
    ],
)
def test_orphan_rules(
    container: dict[str, object], worker_id: str | None, live: set[str] | None, orphan: bool
) -> None:
    assert is_orphan(container, now=200, worker_id=worker_id, live_workers=live) is orphan


def test_a_late_end_marker_of_an_earlier_command_is_dropped_even_split_across_reads() -> None:
    from sandbox.shell import _CommandRead

    read = _CommandRead(b"QFnewtoken", None, stale_tokens=[b"QFoldtoken"])
    buffer = bytearray(b"QFnewtokenS42\nhi\nQFoldto")
    assert not read.consume(buffer)
    buffer += b"kenE0\nthere\nQFnewtokenE3\n"
    assert read.consume(buffer)
    assert (read.pgid, read.exit_code) == (42, 3)
    assert read.output.text() == "hi\nthere\n"
    assert buffer == bytearray()


def test_only_known_dead_workers_lose_their_sandboxes() -> None:
    from sandbox.reaper import is_orphan

    def entry(worker: str) -> dict[str, object]:
        return {"State": "running", "Labels": {"qwen-fix.sandbox": "1", "qwen-fix.worker": worker}}

    now = 1_000.0
    assert is_orphan(entry("w-dead"), now=now, worker_id=None, live_workers=None,
                     dead_workers={"w-dead"})  # fmt: skip
    # A worker this Redis never heard of (another deployment on the same engine) is left alone.
    assert not is_orphan(entry("w-elsewhere"), now=now, worker_id=None, live_workers=None,
                         dead_workers={"w-dead"})  # fmt: skip


@pytest.mark.parametrize(
    "job_id", ["solve_issue:1f2e-77", "follow_up:octo/repo#12:review:9", "::", "a" * 300]
)
def test_container_names_are_valid_and_the_filter_finds_only_that_job(job_id: str) -> None:
    name = container_name(job_id)
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name), name
    assert re.search(job_name_filter(job_id), "/" + name)
    assert container_name(job_id) != name  # a job may start more than one sandbox
    assert not re.search(job_name_filter(job_id), "/" + container_name(job_id + "-other"))
    assert not re.search(job_name_filter("other" + job_id), "/" + name)
