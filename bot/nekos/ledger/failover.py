"""Redis first, the data folder when Redis is unreachable, and never more than the budget.

While Redis answers, every reservation goes through it, and each strike and block is mirrored to
the host-local ledger (the data folder's SQLite file) so that a Redis restart, which forgets
everything here, forgets no strike or block: they are re-applied when the key's epoch changes.

When Redis stops answering, the process falls back to the host-local ledger only if this host
was the only one using the key in the last ten minutes (as Redis last said, or as the folder
remembers from a process that said so). Otherwise it pauses: requests fail at once as "busy"
until Redis is back. A multiplied spacing per host would keep the average rate but not the gaps:
two hosts at half rate with unrelated phases put two starts within one second most of the time,
and the API counts every such pair as a 429. The fallback's first start waits one spacing (the
last start through Redis is unknown locally).

Redis is probed at most once per :data:`PROBE_INTERVAL` while down. On its return the process
re-applies the folder's strikes, block and hold, and for a few seconds reserves in both ledgers, so
processes of this host still on the fallback cannot start a request beside it. Each change of
mode is logged once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from .base import (
    BudgetHealth,
    Claim,
    LedgerUnavailable,
    StrikeResult,
    Verdict,
    VerdictKind,
)
from .redis_ledger import HOST_WINDOW, RedisLedger
from .sqlite_ledger import SqliteLedger

__all__ = ["HOST_REFRESH", "PAUSE_RETRY", "PROBE_INTERVAL", "FailoverLedger"]

log = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0
"""Seconds between attempts to reach Redis while it is down."""
HOST_REFRESH = 60.0
"""Seconds between updates of this host's entry in the key's host list."""
PAUSE_RETRY = 5.0
"""Seconds a paused request is told to wait before trying again."""
DUAL_PERIOD = PROBE_INTERVAL + 2.5
"""Seconds after Redis returns during which reservations go through both ledgers."""
_HOSTS_SEEN = "redis_hosts_seen"
_HOSTS_SEEN_AT = "redis_hosts_seen_at"


class FailoverLedger:
    """A :class:`~bot.nekos.ledger.base.BudgetLedger`: Redis, failing over to the data folder.

    ``remote`` is the shared ledger, ``local`` this host's (its file id names this host in Redis).
    ``clock`` is monotonic, ``wall_clock`` Unix seconds; both injectable.
    """

    def __init__(
        self,
        remote: RedisLedger,
        local: SqliteLedger,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._remote = remote
        self._local = local
        self._clock = clock
        self._wall_clock = wall_clock
        self._mode = "redis"
        self._down_since: float | None = None
        self._host: str | None = None
        self._host_refreshed = -float("inf")
        self._hosts: int | None = None
        self._epochs: dict[str, str | None] = {}
        self._fallback_keys: set[str] = set()
        self._next_probe = -float("inf")
        self._dual_until = -float("inf")
        self._lock = asyncio.Lock()

    @property
    def mode(self) -> str:
        """``redis``, ``fallback`` (host-local) or ``paused``."""
        return self._mode

    # ------------------------------------------------------------------ the ledger

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        if self._mode != "redis":
            await self._probe()
        if self._mode == "redis":
            if self._clock() < self._dual_until:
                local = await self._local.reserve(key, claim)
                if local.kind is not VerdictKind.GO:
                    return local
            try:
                return await self._reserve_remote(key, claim)
            except LedgerUnavailable as exc:
                await self._went_down(exc)
        if self._mode == "fallback":
            if key not in self._fallback_keys:
                # The last start through Redis is unknown here: leave one spacing first.
                await self._local.hold(key, claim.spacing)
                self._fallback_keys.add(key)
            return await self._local.reserve(key, claim)
        return Verdict(
            VerdictKind.PAUSED,
            PAUSE_RETRY,
            reason="the shared request budget (Redis) is unreachable, so requests are paused",
        )

    async def _reserve_remote(self, key: str, claim: Claim) -> Verdict:
        known = self._epochs.get(key)
        if known is None:
            # First contact (or back after an outage): hand Redis what this host remembers.
            await self._hand_back(key)
        host = ""
        if self._clock() - self._host_refreshed >= HOST_REFRESH:
            host = await self._host_id()
        answer = await self._remote.reserve_with_epoch(key, claim, host)
        if answer.hosts is not None:
            self._host_refreshed = self._clock()
            self._hosts = answer.hosts
            await self._remember_hosts(answer.hosts)
        self._epochs[key] = answer.epoch
        if known is not None and answer.epoch != known:
            log.warning("Redis lost the request budget's state (restarted?); re-applying ours")
            await self._hand_back(key)
            # Ask again: a slot granted before the hand-back might ignore a block it restores.
            return Verdict(VerdictKind.WAIT, 0.0, answer.verdict.strikes)
        return answer.verdict

    async def _hand_back(self, key: str) -> None:
        state, now = await self._local.snapshot(key)
        await self._remote.merge(key, state, now)

    async def hold(self, key: str, seconds: float) -> None:
        if self._mode == "redis":
            try:
                await self._remote.hold(key, seconds)
                return
            except LedgerUnavailable as exc:
                await self._went_down(exc)
        await self._local.hold(key, seconds)

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        local = await self._local.strike(key, strike_id, hold=hold, max_strikes=max_strikes)
        if self._mode == "redis":
            try:
                return await self._remote.strike(key, strike_id, hold=hold, max_strikes=max_strikes)
            except LedgerUnavailable as exc:
                await self._went_down(exc)
        return local

    async def block(self, key: str, seconds: float, reason: str) -> None:
        await self._local.block(key, seconds, reason)
        if self._mode == "redis":
            try:
                await self._remote.block(key, seconds, reason)
            except LedgerUnavailable as exc:
                await self._went_down(exc)

    def health(self) -> BudgetHealth:
        if self._mode == "redis":
            return self._remote.health()
        since = "unknown"
        if self._down_since is not None:
            moment = dt.datetime.fromtimestamp(self._down_since, dt.UTC)
            since = moment.strftime("%H:%M:%S UTC")
        if self._mode == "fallback":
            return BudgetHealth(
                "fallback", f"host-local (Redis unreachable since {since})", ok=False
            )
        return BudgetHealth("paused", f"paused: Redis unreachable since {since}", ok=False)

    async def close(self) -> None:
        try:
            await self._remote.close()
        finally:
            await self._local.close()

    # ------------------------------------------------------------------ failing over and back

    async def _went_down(self, error: LedgerUnavailable) -> None:
        async with self._lock:
            if self._mode != "redis":
                return
            self._down_since = self._wall_clock()
            self._next_probe = self._clock() + PROBE_INTERVAL
            self._fallback_keys.clear()
            hosts = self._hosts if self._hosts is not None else await self._remembered_hosts()
            if hosts == 1:
                self._mode = "fallback"
                log.warning(
                    "%s; this host is the only one using the request budget, so it continues "
                    "through the data folder until Redis is back",
                    error,
                )
            else:
                self._mode = "paused"
                log.warning(
                    "%s; requests to the Nekos API are paused until Redis is back (%s)",
                    error,
                    "other hosts share the budget"
                    if hosts
                    else "the hosts sharing the budget are not known",
                )

    async def _probe(self) -> None:
        async with self._lock:
            if self._mode == "redis" or self._clock() < self._next_probe:
                return
            self._next_probe = self._clock() + PROBE_INTERVAL
            try:
                await self._remote.ping()
            except LedgerUnavailable:
                return
            log.warning("Redis is reachable again; the request budget is shared via Redis")
            self._mode = "redis"
            self._down_since = None
            self._dual_until = self._clock() + DUAL_PERIOD
            self._epochs = dict.fromkeys(self._epochs)  # hand back before the next reservation

    async def _host_id(self) -> str:
        if self._host is None:
            self._host = await self._local.folder_id()
        return self._host

    async def _remember_hosts(self, hosts: int) -> None:
        await self._local.set_meta(_HOSTS_SEEN, str(hosts))
        await self._local.set_meta(_HOSTS_SEEN_AT, repr(self._wall_clock()))

    async def _remembered_hosts(self) -> int | None:
        """The host count another process of this folder saw recently, if any."""
        try:
            hosts = await self._local.get_meta(_HOSTS_SEEN)
            seen_at = await self._local.get_meta(_HOSTS_SEEN_AT)
        except LedgerUnavailable:
            return None
        if hosts is None or seen_at is None:
            return None
        if self._wall_clock() - float(seen_at) > HOST_WINDOW:
            return None
        return int(hosts)
