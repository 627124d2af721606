"""The random-image pool shared by every process through Redis (used only with ``REDIS_URL``).

* :mod:`.queue` — the shared upstream work queue (jobs, leases, dedupe markers);
* :mod:`.source` — the pool's upstream through that queue (:class:`SharedSource`);
* :mod:`.fetcher` — each process's fetcher, draining the queue through its own pacer;
* :mod:`.feed` — the stream of batches every process reads into its stock;
* :mod:`.claims` — cluster-wide use counts and per-channel no-repeat windows;
* :mod:`.link` — the Redis connection and its up/down state; :mod:`.codec` — images as JSON.

:class:`SharedPool` puts them together for one process: ``make_pool(..., cluster=)`` takes its
source, claims and fetch slots; :meth:`SharedPool.start` starts the feed and the fetcher.
"""

from __future__ import annotations

from typing import Any

from bot.nekos.pacing import Pacer, RequestPacer

from ..pool import ImagePool, PoolSettings
from ..protocols import RandomImageSource
from .claims import ClaimRules, RedisClaims
from .feed import BatchFeed
from .fetcher import Fetcher, FetcherPacer
from .link import ClusterLink
from .queue import WorkQueue
from .source import SharedSource, Waiters

__all__ = ["ClusterLink", "SharedPool", "open_shared_pool"]


class SharedPool:
    """One process's part of the shared pool: its source, claims, feed and fetcher."""

    def __init__(
        self,
        link: ClusterLink,
        *,
        lease: float = 15.0,
        member_wait: float = 10.0,
        background_wait: float = 20.0,
        poll: float = 0.1,
    ) -> None:
        self.link = link
        self.queue = WorkQueue(link, lease=lease)
        self.waiters = Waiters()
        link.on_down(self.waiters.link_down)
        self._member_wait = member_wait
        self._background_wait = background_wait
        self._poll = poll
        self.source: SharedSource | None = None
        self.fetcher: Fetcher | None = None
        self.feed: BatchFeed | None = None

    def shared_source(self, local: RandomImageSource, *, background_priority: Any) -> SharedSource:
        self.source = SharedSource(
            local,
            self.link,
            self.queue,
            self.waiters,
            background_priority=background_priority,
            member_wait=self._member_wait,
            background_wait=self._background_wait,
        )
        return self.source

    def claims(self, settings: PoolSettings) -> RedisClaims:
        return RedisClaims(
            self.link,
            ClaimRules(
                max_uses=settings.max_uses,
                repeat_window=settings.repeat_window,
                no_expiry_lifetime=settings.no_expiry_lifetime,
            ),
        )

    def attach(
        self,
        pool: ImagePool,
        client: RandomImageSource,
        pacer: RequestPacer | FetcherPacer,
        *,
        background_idle: float,
    ) -> None:
        """Feed ``pool`` with every shared batch; fetch jobs through ``client`` and ``pacer``."""
        spacing = pacer.spacing if isinstance(pacer, Pacer) else 1.0
        self.feed = BatchFeed(self.link, self.queue.stream_key, self.waiters, pool.offer)
        self.fetcher = Fetcher(
            client,
            pacer,
            self.link,
            self.queue,
            interval=max(spacing, self._poll),
            background_idle=background_idle,
            poll=self._poll,
        )

    def fetch_slots(self) -> int:
        """Fetches the pool may have in flight: one per live fetcher (one while Redis is down)."""
        if not self.link.up or self.fetcher is None:
            return 1
        return self.fetcher.alive_fetchers

    def start(self) -> None:
        if self.feed is not None:
            self.feed.start()
        if self.fetcher is not None:
            self.fetcher.start()

    async def stop(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.stop()
        if self.feed is not None:
            await self.feed.stop()

    async def close(self) -> None:
        await self.stop()
        await self.link.close()


def open_shared_pool(url: str, *, prefix: str, owner: str, **options: Any) -> SharedPool:
    """A shared pool on the Redis at ``url``, keys under ``prefix`` (``SharedPool``'s options)."""
    return SharedPool(ClusterLink.from_url(url, prefix=prefix, owner=owner), **options)
