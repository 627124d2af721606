"""One Redis connection for the shared serving state, behind a circuit breaker.

Every call goes through :meth:`RedisLink.call`. While Redis answers it is used; the first
failure (refused, reset, a timeout: the client's socket timeouts are short) opens the circuit:
for :attr:`RedisLink.retry_after` seconds every caller is told at once that Redis is not there
(:class:`SharedUnavailable`), so it serves from this process's memory without waiting on a
socket. Then one call tries again; when it succeeds the circuit closes and sharing resumes.
The loss and the recovery are each logged once, naming where Redis is, never its password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..caching import Clock

__all__ = ["RedisLink", "SharedUnavailable"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SOCKET_TIMEOUT = 0.25
"""Seconds a Redis command may take before Redis counts as unreachable (it answers in ~0.1 ms)."""
RETRY_AFTER = 3.0
"""Seconds between attempts to reach Redis again while it is unreachable."""


class SharedUnavailable(Exception):
    """Redis cannot be used right now: serve from this process's memory instead."""


class RedisLink:
    """A Redis client, its key prefix and the circuit that keeps a dead Redis out of the way."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "nekos:",
        location: str = "Redis",
        retry_after: float = RETRY_AFTER,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.location = location
        """Where Redis is, for log lines (``host:port``; never the URL with its password)."""
        self.retry_after = retry_after
        self._clock = clock
        self._down_until: float | None = None
        self.failures = 0
        """Calls that found Redis unreachable (each then served from memory)."""
        self.outages = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "nekos:",
        location: str = "Redis",
        timeout: float = SOCKET_TIMEOUT,
        retry_after: float = RETRY_AFTER,
    ) -> RedisLink:
        """A link on a new client for ``url`` that fails fast: short timeouts, one retry.

        The one retry (at once, on a fresh connection) covers the pooled connection a Redis
        restart broke; a server that is really gone fails within two timeouts.
        """
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix=prefix, location=location, retry_after=retry_after)

    @property
    def up(self) -> bool:
        """Whether Redis is being used (False while the circuit is open)."""
        return self._down_until is None

    def usable(self) -> bool:
        """Whether a call may try Redis now (up, or its retry time has come)."""
        return self._down_until is None or self._clock() >= self._down_until

    def key(self, *parts: str) -> str:
        """A key under the prefix: ``<prefix>part:part:…``."""
        return self.prefix + ":".join(parts)

    async def call(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``operation(client)``, or :class:`SharedUnavailable` at once while the circuit is open
        (and when this call finds Redis unreachable)."""
        if not self.usable():
            self.failures += 1
            raise SharedUnavailable(self.location)
        try:
            result = await operation(self.client)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise SharedUnavailable(self.location) from exc
        if self._down_until is not None:
            self._down_until = None
            log.warning(
                "Redis at %s answers again: lookups and cooldowns are shared again", self.location
            )
        return result

    def _lost(self, exc: BaseException) -> None:
        self.failures += 1
        first = self._down_until is None
        self._down_until = self._clock() + self.retry_after
        if first:
            self.outages += 1
            # The client's messages name host and port only; the log filter masks the password.
            log.warning(
                "Redis at %s unreachable (%s): lookups and cooldowns are served from this "
                "process's memory until it answers (retried every %.0f s)",
                self.location,
                type(exc).__name__,
                self.retry_after,
            )

    async def close(self) -> None:
        await self.client.aclose()
