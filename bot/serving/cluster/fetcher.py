"""Every process's fetcher: takes shared jobs while its own pacer is free soon, calls the API
through its own client (its own egress address and budget), and publishes the batch.

A process whose pacer is busy leaves the queue to the others, so work goes to whichever budget
is free soonest and each process added with a new address adds its budget. Busy only with its
own lookups, it still takes a members' batch that has waited ``batch_patience`` (the pacer serves
batches and lookups alternately). Background jobs are
taken only while this process's members have been idle ``background_idle`` seconds (the pool's
rule, ``Pacer.members_idle_for``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.nekos.errors import BadRequest, NekosError, NotFound, RateLimited
from bot.nekos.models import Rating
from bot.nekos.pacing import Priority

from ..looping import Loop
from ..protocols import RandomImageSource
from .codec import images_to_text
from .link import REDIS_ERRORS, ClusterLink
from .queue import Job, WorkQueue

__all__ = ["Fetcher", "FetcherPacer"]

log = logging.getLogger(__name__)


class FetcherPacer(Protocol):
    """What the fetcher reads from its process's pacer."""

    @property
    def queue_length(self) -> int: ...

    def estimated_wait(self, priority: Priority = Priority.INTERACTIVE) -> float: ...

    def members_idle_for(self) -> float: ...


class Fetcher:
    """Drains the shared queue through ``client`` while ``pacer`` is free soon."""

    def __init__(
        self,
        client: RandomImageSource,
        pacer: FetcherPacer,
        link: ClusterLink,
        queue: WorkQueue,
        *,
        interval: float,
        background_idle: float,
        poll: float = 0.1,
        heartbeat_ttl: float = 5.0,
        batch_patience: float = 8.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._link = link
        self._queue = queue
        self._interval = interval
        self._background_idle = background_idle
        self._poll = poll
        self._heartbeat_ttl = heartbeat_ttl
        self._batch_patience = batch_patience
        self._sleep = sleep
        self._loop = Loop("shared-pool-fetcher", self._turn)
        self._beat_at = 0.0
        self.alive_fetchers = 1
        """Fetchers seen in the last ``heartbeat_ttl`` seconds (this one included)."""
        self.jobs_done = 0

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def free_soon(self) -> bool:
        """Whether a call taken now would begin within one interval."""
        return self._pacer.estimated_wait() < self._interval

    def free_for_old_batches(self) -> bool:
        """Whether a members' batch taken now would begin within one interval, ahead of this
        process's queued lookups (the pacer alternates the two)."""
        return self._pacer.estimated_wait(Priority.SHARED) < self._interval

    def max_priority(self) -> int:
        pacer = self._pacer
        if pacer.queue_length == 0 and pacer.members_idle_for() >= self._background_idle:
            return int(Priority.BACKGROUND)
        return int(Priority.INTERACTIVE)

    async def _turn(self) -> None:
        try:
            worked = await self.step()
        except Exception:  # the loop outlives any one job's failure
            log.exception("shared pool fetcher step failed")
            worked = False
        await self._sleep(0.0 if worked else self._poll if self._link.up else 1.0)

    async def step(self) -> bool:
        """Take and run one job if this process may; whether it ran one."""
        if not self._link.up:
            return False
        try:
            now = time.monotonic()
            if now - self._beat_at >= 1.0:
                self._beat_at = now
                self.alive_fetchers = max(
                    1, await self._queue.heartbeat(self._link.owner, self._heartbeat_ttl)
                )
            if self.free_soon():
                job = await self._queue.take(self.max_priority(), self._link.owner)
            elif self.free_for_old_batches():
                # Lookups queued here: they go first, unless a batch has waited
                # ``batch_patience`` (waiting for every lookup backlog to drain left batches
                # queued until their askers gave up and called through their own pacer).
                job = await self._queue.take(
                    int(Priority.SHARED), self._link.owner, min_age=self._batch_patience
                )
            else:
                return False
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
            return False
        if job is None:
            return False
        await self.run(job)
        return True

    async def run(self, job: Job) -> None:
        """Call the API for ``job`` and publish what came back."""
        spec = job.spec
        filters: dict[str, Any] = {}
        if spec.ratings is not None:
            filters["ratings"] = [Rating(r) for r in spec.ratings]
        if spec.without_tags is not None:
            filters["without_tags"] = spec.without_tags
        images_text, error = "[]", ""
        try:
            page = await self._client.random_images(
                categories=list(spec.categories),
                limit=spec.limit,
                expiry=spec.expiry,
                priority=Priority(job.priority),
                **filters,
            )
            images_text = images_to_text(page.items)
        except NotFound:
            error = "not_found"
        except RateLimited:
            # This address is paused or blocked: another process's may call.
            with contextlib.suppress(*REDIS_ERRORS):
                await self._queue.release(job)
            return
        except BadRequest as exc:
            error = f"bad_request:{exc.message}"
        except NekosError as exc:
            error = f"error:{exc.message}"
        except Exception as exc:  # a waiter must hear of every failure
            log.exception("shared fetch failed")
            error = f"error:{type(exc).__name__}"
        try:
            await self._queue.finish(job, self._link.owner, images_text, error)
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
            return
        self.jobs_done += 1
