"""What the user domain does after its events commit. Safe to run twice.

user.followed   cache.invalidate (strict): both profiles' counts changed
"""

from __future__ import annotations

import uuid

from potluck.cache.cache import Cache
from potluck.cache.keys import user_key
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import USER_FOLLOWED


def install_user_handlers(registry: HandlerRegistry, *, cache: Cache) -> HandlerRegistry:
    async def invalidate_follow(event: Event) -> None:
        follower = uuid.UUID(str(event.payload["follower_id"]))
        await cache.invalidate_strict([user_key(follower), user_key(event.aggregate_id)])

    registry.register(USER_FOLLOWED, "cache.invalidate", invalidate_follow)
    return registry
