"""GitHub's secondary rate limit on content creation: at most N creations per rolling minute."""

from __future__ import annotations

import math
import time

from tests.github_emulator.errors import GitHubError
from tests.github_emulator.state import World

WINDOW = 60.0
MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later."
)


def count_creation(world: World) -> None:
    """Count one comment, pull or reply; 403 with `retry-after` when over `content_limit`."""
    if world.content_limit is None:
        return
    with world.lock:
        moment = time.monotonic()
        world.content_created = [t for t in world.content_created if moment - t < WINDOW]
        if len(world.content_created) >= world.content_limit:
            retry_after = math.ceil(WINDOW - (moment - world.content_created[0]))
            raise GitHubError(403, MESSAGE, headers={"retry-after": str(max(retry_after, 1))})
        world.content_created.append(moment)
