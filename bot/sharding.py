"""One bot over several processes: which guilds a process owns, and logging in one at a time.

Discord sends a guild's events to shard ``(guild_id >> 22) % shard_count`` only, so a process
running some of the shards (``SHARD_IDS``) sees, and must act for, only those guilds.

Each shard logs in with an IDENTIFY, and Discord allows one IDENTIFY per five seconds in each of
``max_concurrency`` buckets (``shard_id % max_concurrency``), counted across every process of
the bot. discord.py spaces the IDENTIFYs of one process only (its ``before_identify_hook`` sleeps
five seconds before each but the first), and no library coordinates them across processes, so
:class:`IdentifyGate` books each one in the shared ledger that already spaces the Nekos API's
requests (:mod:`bot.nekos.ledger`): key ``identify:<application>:<bucket>``, five seconds apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from .config import Settings
from .nekos.ledger import (
    BUDGET_FILE,
    BudgetLedger,
    Claim,
    LedgerUnavailable,
    MemoryLedger,
    SqliteLedger,
    VerdictKind,
)

__all__ = [
    "IDENTIFY_SPACING",
    "IdentifyGate",
    "identify_ledgers",
    "owned_by",
    "shard_of",
]

log = logging.getLogger(__name__)

IDENTIFY_SPACING = 5.0
"""Seconds between two IDENTIFYs of one ``max_concurrency`` bucket (Discord's rule)."""
MIN_RETRY = 0.05
"""Shortest sleep between two reservations (a ledger answering "wait 0" must not spin)."""


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends ``guild_id``'s events to."""
    return (guild_id >> 22) % shard_count


def owned_by(shard_ids: Iterable[int], shard_count: int) -> Callable[[int], bool]:
    """Whether a guild belongs to one of ``shard_ids`` (those a process runs)."""
    mine = frozenset(shard_ids)
    return lambda guild_id: shard_of(guild_id, shard_count) in mine


def identify_ledgers(settings: Settings) -> list[BudgetLedger]:
    """Where IDENTIFYs are booked, most shared first: Redis (with ``REDIS_URL``), the data folder.

    Not the request budget's own ledger: its Redis fallback counts the hosts using a key to
    decide whether it may carry on alone, and IDENTIFY keys must not take part in that count.
    """
    ledgers: list[BudgetLedger] = []
    if settings.redis_url is not None:
        from .nekos.ledger.redis_ledger import RedisLedger  # only loaded when configured

        ledgers.append(
            RedisLedger.from_url(settings.redis_url.reveal(), prefix=settings.redis_key_prefix)
        )
    ledgers.append(SqliteLedger(settings.data_dir / BUDGET_FILE))
    return ledgers


class IdentifyGate:
    """Waits until a shard may IDENTIFY: one per :data:`IDENTIFY_SPACING` per bucket, bot-wide.

    ``ledgers`` are tried in order; one that cannot be reached (or pauses) hands over to the
    next, and after them all to this process's memory, so a login is never refused, only spaced
    less widely. :meth:`wait` says whether the first (most shared) ledger granted it, so the
    caller can add discord.py's own spacing when it did not.
    """

    def __init__(
        self,
        ledgers: Sequence[BudgetLedger],
        *,
        owner: str,
        application_id: int | None,
        max_concurrency: Callable[[], Awaitable[int]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        memory: BudgetLedger | None = None,
    ) -> None:
        self._ledgers = [*ledgers, memory if memory is not None else MemoryLedger()]
        self._claim = Claim(owner, 0, IDENTIFY_SPACING)
        self._application = application_id if application_id is not None else "unknown"
        self._fetch_concurrency = max_concurrency
        self._concurrency: int | None = None
        self._sleep = sleep
        self._degraded = False

    async def max_concurrency(self) -> int:
        """Discord's ``max_concurrency`` (read once; 1, the strictest, if it can't be read)."""
        if self._concurrency is None:
            try:
                self._concurrency = max(1, await self._fetch_concurrency())
            except Exception as exc:  # any failure: the strictest spacing is always allowed
                log.warning("Could not read the IDENTIFY concurrency (%s); assuming 1", exc)
                self._concurrency = 1
        return self._concurrency

    async def key(self, shard_id: int) -> str:
        """The ledger key of ``shard_id``'s bucket."""
        return f"identify:{self._application}:{shard_id % await self.max_concurrency()}"

    async def wait(self, shard_id: int) -> bool:
        """Return when ``shard_id`` may IDENTIFY; True if the most shared ledger granted it."""
        key = await self.key(shard_id)
        for index, ledger in enumerate(self._ledgers):
            problem = await self._book(ledger, key)
            if problem is None:
                if index == 0 and self._degraded:
                    self._degraded = False
                    log.warning("IDENTIFYs are spaced through the shared ledger again")
                return index == 0
            if not self._degraded:
                self._degraded = True
                log.warning(
                    "IDENTIFY spacing: %s; falling back to %s",
                    problem,
                    "this host's data folder"
                    if index + 2 < len(self._ledgers)
                    else "this process's own spacing",
                )
        raise AssertionError("the in-memory ledger always grants")  # pragma: no cover

    async def _book(self, ledger: BudgetLedger, key: str) -> str | None:
        """Reserve ``key`` on ``ledger``, sleeping as told; ``None`` once granted, else why not."""
        while True:
            try:
                verdict = await ledger.reserve(key, self._claim)
            except LedgerUnavailable as exc:
                return str(exc)
            if verdict.kind is VerdictKind.GO:
                return None
            if verdict.kind is not VerdictKind.WAIT:
                return verdict.reason or verdict.kind.value
            await self._sleep(max(MIN_RETRY, verdict.wait))

    async def close(self) -> None:
        """Close the ledgers the gate was given."""
        for ledger in self._ledgers:
            await ledger.close()
