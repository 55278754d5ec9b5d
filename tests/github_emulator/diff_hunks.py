"""Where a line of a pull's diff sits: its hunk (GitHub's `diff_hunk`) and its `position`."""

from __future__ import annotations

import re
from dataclasses import dataclass

HUNK_HEADER = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class DiffLine:
    diff_hunk: str
    """From the line's hunk header down to the line itself, as GitHub stores it."""
    position: int
    """Lines below the file's first hunk header; later hunk headers count too."""


def locate(diff: str, line: int, side: str = "RIGHT") -> DiffLine | None:
    """The diff line showing file line `line` on `side` (RIGHT: new file, LEFT: old file)."""
    lines = diff.splitlines()
    position, hunk_start, old, new = -1, -1, 0, 0
    for index, text in enumerate(lines):
        header = HUNK_HEADER.match(text)
        if header:
            position += 1
            hunk_start, old, new = index, int(header[1]), int(header[2])
            continue
        if hunk_start < 0 or text.startswith("\\"):
            continue
        position += 1
        shown = {"+": {"RIGHT": new}, "-": {"LEFT": old}}.get(text[:1], {"RIGHT": new, "LEFT": old})
        if shown.get(side) == line:
            return DiffLine("\n".join(lines[hunk_start : index + 1]), position)
        old += text[:1] != "+"
        new += text[:1] != "-"
    return None
