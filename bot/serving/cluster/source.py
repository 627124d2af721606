"""The pool's upstream through the shared queue: :class:`SharedSource` is a ``RandomImageSource``.

A call becomes a job (deduplicated across processes) that any process's fetcher may take; the
caller waits, bounded, for the batch to land on the feed. Redis down, or nobody took the job in
time: the call goes through this process's own client and pacer, as without Redis. A job taken
but not landed in time gets up to its lease more to land; after that (its taker died or hangs) a
member's call goes through the own client too, and a background call gives up ("busy", the
pool's error path for a scheduled post, which settles for what it has).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.nekos.errors import BadRequest, NotFound, Unavailable
from bot.nekos.models import Image, Page, Rating

from ..protocols import RandomImageSource
from .link import REDIS_ERRORS, ClusterLink
from .queue import JobSpec, WorkQueue

__all__ = ["Landed", "SharedSource", "Waiters"]


@dataclass(frozen=True, slots=True)
class Landed:
    """A batch (or its failure) as published on the feed."""

    images: tuple[Image, ...]
    error: str = ""
    """"" (a batch), ``not_found``, ``bad_request:<message>`` or ``error:<message>``."""

    def page(self) -> Page[Image]:
        kind, _, message = self.error.partition(":")
        if kind == "not_found":
            raise NotFound("no random image matched", endpoint="random images (shared)")
        if kind == "bad_request":
            raise BadRequest(message, status=400, endpoint="random images (shared)")
        if kind:
            raise Unavailable(message or "a shared fetch failed", endpoint="random images (shared)")
        return Page(items=self.images)


class Waiters:
    """This process's calls waiting for a batch, by dedupe key."""

    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[Landed | None]]] = {}
        self.listening = asyncio.Event()
        """Set while the feed reads the stream from a known place: a batch published from then
        on reaches these waiters. A call asked before it would miss its own batch."""

    def register(self, dedupe: str) -> asyncio.Future[Landed | None]:
        future: asyncio.Future[Landed | None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(dedupe, []).append(future)
        return future

    def unregister(self, dedupe: str, future: asyncio.Future[Landed | None]) -> None:
        futures = self._futures.get(dedupe)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._futures[dedupe]

    def landed(self, dedupe: str, batch: Landed) -> bool:
        """Wake the calls waiting for ``dedupe``; whether there were any."""
        futures = self._futures.pop(dedupe, [])
        for future in futures:
            if not future.done():
                future.set_result(batch)
        return bool(futures)

    def link_down(self) -> None:
        """Redis failed: every waiting call falls back to its own client (``None``)."""
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._futures.clear()


class _Late(enum.Enum):
    LATE = "late"


_LATE = _Late.LATE
"""No batch within the wait."""


class SharedSource:
    """Random images through the shared queue, else through ``local`` (the own client)."""

    def __init__(
        self,
        local: RandomImageSource,
        link: ClusterLink,
        queue: WorkQueue,
        waiters: Waiters,
        *,
        background_priority: Any,
        member_wait: float = 10.0,
        background_wait: float = 20.0,
        listen_wait: float = 2.0,
    ) -> None:
        self._local = local
        self._link = link
        self._queue = queue
        self._waiters = waiters
        self._background = background_priority
        self._member_wait = member_wait
        self._background_wait = background_wait
        self._listen_wait = listen_wait
        self.shared_calls = 0
        """Calls answered through the queue (by any process's fetcher)."""
        self.local_calls = 0
        """Calls made through the own client (Redis down, or nobody took the job in time)."""

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        without_tags: Sequence[str] | None = None,
        priority: Any,
    ) -> Page[Image]:
        filters: dict[str, Any] = {}
        if ratings is not None:
            filters["ratings"] = ratings
        if without_tags is not None:
            filters["without_tags"] = without_tags
        if not self._link.up or not await self._listening():
            return await self._own(categories, limit, expiry, priority, filters)
        spec = JobSpec(
            categories=tuple(categories),
            limit=limit,
            expiry=expiry,
            ratings=None if ratings is None else tuple(int(r) for r in ratings),
            without_tags=None if without_tags is None else tuple(without_tags),
        )
        dedupe = spec.dedupe
        future = self._waiters.register(dedupe)
        try:
            try:
                job_id, _created = await self._queue.enqueue(spec, int(priority))
            except REDIS_ERRORS as exc:
                self._link.failed(exc)
                return await self._own(categories, limit, expiry, priority, filters)
            background = priority == self._background
            wait = self._background_wait if background else self._member_wait
            batch = await self._landed(future, wait)
            if batch is _LATE and not await self._withdraw(job_id, dedupe):
                # Another process took the job and is fetching it (the wait covered its time in
                # the queue too): give it up to its lease to land, as its taker would have.
                batch = await self._landed(future, self._queue.lease)
                if batch is _LATE:
                    await self._withdraw(job_id, dedupe)  # re-queued after its lease ran out
            if batch is _LATE:
                if background:
                    raise Unavailable(
                        "no process fetched these images in time",
                        endpoint="random images (shared)",
                    )
                # A member is never told "busy" for the cluster's sake: our own pacer's queue.
                return await self._own(categories, limit, expiry, priority, filters)
        finally:
            self._waiters.unregister(dedupe, future)
            if not future.done():
                future.cancel()
        if batch is None:  # Redis went down while we waited
            return await self._own(categories, limit, expiry, priority, filters)
        self.shared_calls += 1
        return batch.page()

    async def _listening(self) -> bool:
        """Whether the feed reads the stream (it finds its place right after start-up and after
        Redis came back): a batch fetched before that would never reach this call's waiter."""
        if not self._waiters.listening.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._listen_wait):
                    await self._waiters.listening.wait()
        return self._waiters.listening.is_set()

    @staticmethod
    async def _landed(future: asyncio.Future[Landed | None], wait: float) -> Landed | _Late | None:
        """The batch (``None``: Redis went down), or ``_LATE`` when ``wait`` ran out first."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return _LATE

    async def _withdraw(self, job_id: str, dedupe: str) -> bool:
        """Take the job off the queue if nobody has taken it; whether it was (Redis down: yes,
        nobody will take it from there)."""
        try:
            return await self._queue.withdraw(job_id, dedupe)
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
            return True

    async def _own(
        self,
        categories: Sequence[str],
        limit: int,
        expiry: int | None,
        priority: Any,
        filters: dict[str, Any],
    ) -> Page[Image]:
        self.local_calls += 1
        return await self._local.random_images(
            categories=categories, limit=limit, expiry=expiry, priority=priority, **filters
        )
