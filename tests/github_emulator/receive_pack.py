"""The smart-HTTP push exchange (git-receive-pack) as far as refusing single ref updates needs:
the request's commands and pack, a quarantine to read the pushed objects from, and the
report-status answer git prints as ` ! [remote rejected] <ref> (<reason>)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.github_emulator import bare_repos

FLUSH = b"0000"
SIDEBAND_PAYLOAD = 995
"""Largest payload of a band-1 packet that fits plain `side-band` (1000 bytes) as well."""


@dataclass(frozen=True)
class Command:
    old: str
    new: str
    ref: str


@dataclass(frozen=True)
class PushRequest:
    """A parsed git-receive-pack request body."""

    shallow: list[bytes]
    commands: list[Command]
    capabilities: list[str]
    rest: bytes
    """Everything after the command list: push options, if any, then the pack."""

    @property
    def pack(self) -> bytes:
        if "push-options" not in self.capabilities:
            return self.rest
        _, end = pkt_lines(self.rest)
        return self.rest[end:]

    def without(self, refs: set[str]) -> bytes:
        """The request minus the commands for `refs`, asking for an answer without side-band
        so its report can be read (and then re-framed as the client asked)."""
        kept = [c for c in self.commands if c.ref not in refs]
        capabilities = [c for c in self.capabilities if not c.startswith("side-band")]
        lines = [*self.shallow]
        for index, command in enumerate(kept):
            line = f"{command.old} {command.new} {command.ref}"
            if index == 0:
                line += "\0" + " ".join(capabilities)
            lines.append(line.encode() + b"\n")
        return b"".join(pkt_line(line) for line in lines) + FLUSH + self.rest


def parse_request(body: bytes) -> PushRequest:
    lines, end = pkt_lines(body)
    shallow = [line for line in lines if line.startswith(b"shallow ")]
    commands: list[Command] = []
    capabilities: list[str] = []
    for line in lines:
        if line.startswith(b"shallow "):
            continue
        text, _, caps = line.rstrip(b"\n").decode().partition("\0")
        if caps:
            capabilities = caps.split()
        old, new, ref = text.split(" ", 2)
        commands.append(Command(old, new, ref))
    return PushRequest(shallow, commands, capabilities, body[end:])


def pkt_lines(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of pkt-lines up to the first flush packet, and the offset after it."""
    lines: list[bytes] = []
    offset = 0
    while offset + 4 <= len(data):
        length = int(data[offset : offset + 4], 16)
        if length == 0:
            return lines, offset + 4
        lines.append(data[offset + 4 : offset + length])
        offset += length
    return lines, offset


def pkt_line(payload: bytes) -> bytes:
    return f"{len(payload) + 4:04x}".encode() + payload


def quarantine(repo: Path, pack: bytes, directory: Path) -> dict[str, str]:
    """Index the pushed pack into `directory`, apart from the repository as receive-pack does
    before its hooks run; returns the environment under which git sees both object stores."""
    objects = directory / "objects"
    (objects / "pack").mkdir(parents=True)
    env = {
        "GIT_OBJECT_DIRECTORY": str(objects),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo / "objects"),
    }
    if pack:
        bare_repos.git_bytes("index-pack", "--stdin", "--fix-thin", cwd=repo, env=env, stdin=pack)
    return env


def report_lines(answer: bytes) -> list[bytes]:
    """The report-status lines (`unpack ok`, `ok <ref>`, `ng <ref> <reason>`) of an answer
    given without side-band."""
    return pkt_lines(answer)[0]


def report(lines: list[bytes], capabilities: list[str], messages: Sequence[str] = ()) -> bytes:
    """The report-status answer, on band 1 when the client asked for side-band, after the
    server's `messages` on band 2 (which git prints as `remote: ...`; without side-band, they
    have no way to the client)."""
    status = b"".join(pkt_line(line) for line in lines) + FLUSH
    if not any(c.startswith("side-band") for c in capabilities):
        return status
    remote = b"".join(pkt_line(b"\2" + f"{line}\n".encode()) for line in messages)
    chunks = (status[i : i + SIDEBAND_PAYLOAD] for i in range(0, len(status), SIDEBAND_PAYLOAD))
    return remote + b"".join(pkt_line(b"\1" + chunk) for chunk in chunks) + FLUSH


def refused_line(ref: str, reason: str) -> bytes:
    return f"ng {ref} {reason}\n".encode()
