"""Docker's multiplexed exec stream: an 8-byte header (stream, 0, 0, 0, size) per payload."""

from __future__ import annotations

import struct

HEADER = struct.Struct(">BxxxL")


class StreamDemuxer:
    """Turns the raw bytes of a non-tty exec socket back into payload bytes.

    stdout and stderr frames are joined in arrival order; the shell merges stderr into
    stdout itself, so order is exact.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Consume raw socket bytes; return the payload bytes of every complete frame part."""
        self._pending += data
        payload = bytearray()
        offset = 0
        pending = self._pending
        while len(pending) - offset >= HEADER.size:
            _, size = HEADER.unpack_from(pending, offset)
            start = offset + HEADER.size
            available = len(pending) - start
            if available >= size:
                payload += pending[start : start + size]
                offset = start + size
                continue
            # Hand out what has arrived of a partial frame; keep a shrunken header for the rest.
            payload += pending[start:]
            HEADER.pack_into(pending, offset, 1, size - available)
            del pending[offset + HEADER.size :]
            break
        del pending[:offset]
        return bytes(payload)
