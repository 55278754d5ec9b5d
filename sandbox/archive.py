"""Single-file tar archives, the format of docker's container archive API."""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Iterable


def pack_file(name: str, data: bytes, *, uid: int, gid: int, mode: int) -> bytes:
    """A tar holding one regular file `name` (a bare file name) owned by uid:gid."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_file(chunks: Iterable[bytes], path: str) -> bytes | str:
    """The content of the single entry docker sent for `path`, or its link target if a symlink."""
    archive_bytes = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r") as archive:
        member = archive.next()
        if member is None:
            raise FileNotFoundError(path)
        if member.isdir():
            raise IsADirectoryError(path)
        if member.issym():
            return posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
        extracted = archive.extractfile(member)
        if extracted is None:
            raise OSError(f"not a regular file: {path}")
        return extracted.read()
