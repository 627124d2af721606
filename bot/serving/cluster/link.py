"""The cluster's Redis connection and whether it works, decided in one place.

Every shared operation goes through :class:`ClusterLink`: a failure marks the link down (logged
once) and tells its listeners, so the pool falls back to its own stock and pacer at once; the
batch feed probes it every second and marks it up again (logged once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

__all__ = ["REDIS_ERRORS", "ClusterLink"]

log = logging.getLogger(__name__)

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What a Redis call raises when the server is unreachable, restarting or refusing."""


class ClusterLink:
    """One Redis client, the cluster's key names, and the up/down state."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, owner: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.owner = owner
        self.up = True
        self._closed = False
        self._on_down: list[Callable[[], None]] = []

    @classmethod
    def from_url(cls, url: str, *, prefix: str, owner: str) -> ClusterLink:
        # socket_timeout above the feed's blocking read (1 s), so only a dead server times out.
        # One retry on a fresh connection: after a Redis restart every pooled connection is
        # dead, and the first use of each would otherwise fail (redis-py's Retry does it).
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        return cls(client, prefix=prefix, owner=owner)

    def key(self, *parts: str) -> str:
        """``<prefix>pool:{parts}``: every key of the shared pool."""
        return f"{self.prefix}pool:{':'.join(parts)}"

    def on_down(self, listener: Callable[[], None]) -> None:
        self._on_down.append(listener)

    def failed(self, error: BaseException) -> None:
        """A shared operation failed: serve locally until Redis answers again."""
        if not self.up:
            return
        self.up = False
        log.warning("Shared image pool: Redis failed (%s); serving from this process alone", error)
        for listener in self._on_down:
            listener()

    async def probe(self) -> bool:
        """Ping Redis; mark the link up if it answers. Whether it is up."""
        try:
            await self.redis.ping()
        except REDIS_ERRORS:
            return False
        if not self.up:
            self.up = True
            log.warning("Shared image pool: Redis answers again; sharing resumed")
        return True

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.redis.aclose()
