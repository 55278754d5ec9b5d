"""CappedOutput: keeps the head and the tail of a command's output and counts what was cut."""

from __future__ import annotations


class CappedOutput:
    """Accumulates bytes, keeping the first and last `cap // 2` bytes of everything fed."""

    def __init__(self, cap: int | None) -> None:
        self._half = None if cap is None else cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.cut = 0
        """Bytes dropped from the middle so far."""

    def feed(self, data: bytes) -> None:
        if self._half is None:
            self._head += data
            return
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self._half
        # Trim in large steps only, so a stream of small chunks stays linear.
        if excess > self._half:
            del self._tail[:excess]
            self.cut += excess

    @property
    def truncated(self) -> bool:
        return self.cut > 0 or self._overflow() > 0

    def _overflow(self) -> int:
        if self._half is None:
            return 0
        return max(0, len(self._tail) - self._half)

    def text(self) -> str:
        """The kept output, decoded with replacement, with a marker line where bytes were cut."""
        overflow = self._overflow()
        cut = self.cut + overflow
        tail = self._tail[overflow:]
        if not cut:
            return (self._head + tail).decode("utf-8", errors="replace")
        head = self._head.decode("utf-8", errors="replace")
        marker = f"\n[... {cut} bytes of output cut ...]\n"
        return head + marker + tail.decode("utf-8", errors="replace")
