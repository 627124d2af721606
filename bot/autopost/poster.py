"""The poster: claims the due schedules of this process's shards and has each one posted.

It knows nothing of Discord: ``deliver`` (see :mod:`bot.autopost.delivery`) posts one claimed
schedule and says how it went. The poster wakes every ``poll`` seconds, claims what is due in
one store transaction (each claim moves the schedule's ``next_due`` on, so no other process can
post the same due time), runs the posts concurrently (at most ``max_in_flight``), and records
each outcome: a post, a skip (nothing to show this time), or a pause that needs an admin.

Exactly once: a due time is claimed by one process. A process that dies between the claim and
the post loses that one post (its lease runs out; the next due time is posted as usual) rather
than risk posting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from bot.store import ClaimedPost, SettingsStore, ShardFilter, StoreError

from .timing import retry_at

__all__ = ["Deliver", "PostOutcome", "PostResult", "Poster", "PosterStats"]

log = logging.getLogger(__name__)

POLL_INTERVAL: Final = 1.0
"""Seconds between looks for due schedules (the lateness of a post is about this at most)."""
LEASE: Final = dt.timedelta(minutes=2)
"""How long a claim is held; a post that takes longer is abandoned (and the claim released)."""
_POST_TIMEOUT: Final = LEASE.total_seconds() - 15
_MAX_REMEMBERED: Final = 50_000


class PostOutcome(enum.Enum):
    """How one scheduled post went."""

    POSTED = "posted"
    SKIPPED = "skipped"
    """Nothing to post this time (nothing matched, the API was unavailable): tried again soon
    (:func:`~bot.autopost.timing.retry_at`), else at the next due time."""
    PAUSED = "paused"
    """It can't work until an admin acts (permission lost, channel gone, rating not allowed)."""
    DROPPED = "dropped"
    """The claim no longer stood when the post was ready (the schedule was changed)."""


@dataclass(frozen=True, slots=True)
class PostResult:
    """What ``deliver`` reports; ``reason`` says why for a skip or a pause (shown to admins)."""

    outcome: PostOutcome
    reason: str | None = None
    retry: bool = False
    """A skip worth trying again before the next due time (the moment may pass)."""

    @classmethod
    def posted(cls) -> PostResult:
        return cls(PostOutcome.POSTED)

    @classmethod
    def skipped(cls, reason: str, *, retry: bool = True) -> PostResult:
        return cls(PostOutcome.SKIPPED, reason, retry)

    @classmethod
    def paused(cls, reason: str) -> PostResult:
        return cls(PostOutcome.PAUSED, reason)

    @classmethod
    def dropped(cls) -> PostResult:
        return cls(PostOutcome.DROPPED)


Deliver = Callable[[ClaimedPost, Callable[[], Awaitable[bool]]], Awaitable[PostResult]]
"""Post one claimed schedule. The second argument, awaited just before sending, says whether
the claim still stands (an admin may have removed, paused or replaced the schedule meanwhile)."""


@dataclass(slots=True)
class PosterStats:
    """Counters since start, and each post's lateness (seconds after its due time)."""

    claimed: int = 0
    posted: int = 0
    skipped: int = 0
    retried: int = 0
    """Skips to be tried again before the next due time."""
    paused: int = 0
    dropped: int = 0
    """Claims given up: the schedule changed before sending, or the post took too long."""
    lateness: list[float] = field(default_factory=list)


class Poster:
    """Claims due schedules and posts them through ``deliver``.

    ``shards`` gives the guilds this process posts for (``None``: all), read at every claim
    since a bot learns its shards only after logging in. ``clock`` is the wall clock (UTC) the
    schedules are kept in; ``monotonic`` measures, within this process, that a schedule never
    posts twice within half its interval even if the wall clock is stepped forward.
    """

    def __init__(
        self,
        store: SettingsStore,
        deliver: Deliver,
        *,
        owner: str | None = None,
        shards: Callable[[], ShardFilter | None] = lambda: None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll: float = POLL_INTERVAL,
        batch: int = 50,
        max_in_flight: int = 100,
        keep_lateness: bool = False,
    ) -> None:
        self._store = store
        self._deliver = deliver
        self.owner = owner or f"poster-{uuid.uuid4().hex[:12]}"
        self._shards = shards
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._poll = poll
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._keep_lateness = keep_lateness
        self._in_flight: set[asyncio.Task[None]] = set()
        self._posted_at: OrderedDict[int, float] = OrderedDict()
        """Monotonic time of this process's last post per channel."""
        self._task: asyncio.Task[None] | None = None
        self._store_failing = False
        self.stats = PosterStats()

    # ------------------------------------------------------------------ lifecycle

    def start(self, ready: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run the loop in the background, after ``ready`` (e.g. the bot's wait_until_ready)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(ready), name="autopost")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give posts under way ``grace`` seconds, then cancel them."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
            for post in pending:
                post.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for every post under way (tests, and the bench)."""
        while self._in_flight:
            await asyncio.gather(*set(self._in_flight), return_exceptions=True)

    async def _run(self, ready: Callable[[], Awaitable[object]] | None) -> None:
        if ready is not None:
            await ready()
        log.info("Scheduled posts: posting as %s", self.owner)
        while True:
            try:
                claimed = await self.run_once()
            except Exception:  # the loop must outlive any one round's failure
                log.exception("Scheduled posts: a round failed")
                claimed = 0
            # A full batch means more may be due: look again at once.
            await self._sleep(0.0 if claimed >= self._batch else self._poll)

    # ------------------------------------------------------------------ one round

    async def run_once(self) -> int:
        """Claim what is due now (within the in-flight limit) and start posting it."""
        room = min(self._batch, self._max_in_flight - len(self._in_flight))
        if room <= 0:
            return 0
        now = self._clock()
        try:
            claims = await self._store.claim_schedules(
                now, self.owner, lease=LEASE, limit=room, shards=self._shards()
            )
        except StoreError as exc:
            if not self._store_failing:
                self._store_failing = True
                log.error("Scheduled posts paused: the store can't be reached (%s)", exc)
            return 0
        if self._store_failing:
            self._store_failing = False
            log.warning("Scheduled posts: the store answers again; posting resumes")
        for claim in claims:
            self.stats.claimed += 1
            name = f"autopost-{claim.schedule.channel_id}"
            task = asyncio.create_task(self._post(claim), name=name)
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claims)

    def _too_soon(self, claim: ClaimedPost) -> bool:
        """Whether this process posted there less than half an interval ago (monotonic)."""
        last = self._posted_at.get(claim.schedule.channel_id)
        return last is not None and self._monotonic() - last < claim.schedule.spec.interval / 2

    async def _post(self, claim: ClaimedPost) -> None:
        spec = claim.schedule.spec
        where = f"guild {spec.guild_id} channel {spec.channel_id}"
        if self._too_soon(claim):
            # The wall clock jumped forward: the claim already moved next_due a whole interval on.
            log.info("Scheduled post in %s skipped: the clock moved, posted moments ago", where)
            await self._settle(self._store.release_schedule(claim), where)
            self.stats.skipped += 1
            return

        async def still_held() -> bool:
            try:
                return await self._store.schedule_held(spec.channel_id, claim.owner)
            except StoreError:
                return False  # can't confirm: not posting is the safe side

        try:
            async with asyncio.timeout(_POST_TIMEOUT):
                result = await self._deliver(claim, still_held)
        except TimeoutError:
            log.warning("Scheduled post in %s gave up after %.0f s", where, _POST_TIMEOUT)
            result = PostResult.skipped("the post took too long", retry=False)
        except Exception:
            log.exception("Scheduled post in %s failed unexpectedly", where)
            result = PostResult.skipped("an unexpected error (logged)", retry=False)
        if result.outcome is PostOutcome.POSTED:
            posted_at = self._clock()
            self._remember(spec.channel_id)
            self.stats.posted += 1
            if self._keep_lateness:
                self.stats.lateness.append((posted_at - claim.due_at).total_seconds())
            await self._settle(self._store.finish_schedule(claim, posted_at), where)
        elif result.outcome is PostOutcome.PAUSED:
            reason = result.reason or "posting failed"
            paused = await self._settle(self._store.suspend_schedule(claim, reason), where)
            if paused:
                self.stats.paused += 1
                log.warning("Scheduled posts in %s paused: %s", where, reason)
            else:
                self.stats.dropped += 1
        else:
            retry = None
            if result.outcome is PostOutcome.DROPPED:
                self.stats.dropped += 1
            else:
                self.stats.skipped += 1
                if result.retry:
                    retry = retry_at(claim.due_at, self._clock(), spec.interval)
                    self.stats.retried += retry is not None
                log.info(
                    "Scheduled post in %s skipped this time (%s): %s",
                    where,
                    f"trying again {retry:%H:%M:%S}" if retry else "next at its due time",
                    result.reason,
                )
            await self._settle(self._store.release_schedule(claim, retry), where)

    async def _settle(self, write: Awaitable[object], where: str) -> object:
        """Record an outcome; the store being down loses only the record (the lease expires)."""
        try:
            return await write
        except StoreError as exc:
            log.warning("Could not record the scheduled post in %s: %s", where, exc)
            return None

    def _remember(self, channel_id: int) -> None:
        self._posted_at[channel_id] = self._monotonic()
        self._posted_at.move_to_end(channel_id)
        if len(self._posted_at) > _MAX_REMEMBERED:
            self._posted_at.popitem(last=False)
