"""The request budget's ledger: when may the next request start, for every process sharing a key.

A :class:`~bot.nekos.pacing.Pacer` decides *who goes next in its own process* (its queue and
priorities); the ledger decides *when this key may start a request*, across every process that
shares it. The key names one budget: for the Nekos API, the egress address plus the API host; the
same mechanism can space anything else one slot at a time (e.g. Discord IDENTIFYs per
``max_concurrency`` bucket, one per five seconds).

Rules every implementation keeps (:class:`KeyState` is the one reference; the Redis script is a
transcription of it):

* A reservation is granted only for *now*: if the next start is later, the answer is "wait this
  long and ask again". Nothing is booked ahead, so a background request can never hold a slot a
  member's request arriving later elsewhere would need, and a hold (a 429's ``Retry-After``) set
  at any moment before a grant is honoured by it.
* Starts are at least ``max(spacing of this claim, spacing of the last start)`` apart: processes
  with different tokens on one IP still share the IP's window, so the slower spacing wins.
* A process with SHARED or INTERACTIVE waiters keeps a short-lived demand marker; a BACKGROUND
  claim is refused while another process has a live marker. Between processes, SHARED and
  INTERACTIVE are first come, first served at the slot boundary (the in-process alternation of
  :class:`~bot.nekos.pacing.Pacer` still applies inside each process).
* Strikes (429s) are counted per key across processes; reaching a claim's budget blocks the key
  until the oldest strike leaves the window. A server block is shared the same way.

No library was found that does this (cross-process spacing of request *starts* with priorities and
a shared strike budget): rate-limit libraries count requests per window, which lets a whole
window's requests start at once, and that is exactly what earns 429s from the Nekos API.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_STRIKE_WINDOW",
    "DEMAND_GRACE",
    "PEER_WINDOW",
    "BudgetHealth",
    "BudgetLedger",
    "Claim",
    "KeyState",
    "LedgerUnavailable",
    "StrikeResult",
    "Verdict",
    "VerdictKind",
]

DEFAULT_STRIKE_WINDOW = 3600.0
"""Seconds over which strikes are counted (the server's hour)."""
DEMAND_GRACE = 2.0
"""Seconds a demand marker outlives the moment its process said it would ask again."""
PEER_WINDOW = 60.0
"""Processes that reserved within this many seconds count as sharing the budget now."""
BACKGROUND_LEVEL = 2
"""The numeric priority of background claims (``Priority.BACKGROUND``)."""


class LedgerUnavailable(Exception):
    """The ledger's storage cannot be used right now (a file or server error)."""


class VerdictKind(enum.Enum):
    GO = "go"
    """Start now."""
    WAIT = "wait"
    """Ask again after ``Verdict.wait`` seconds."""
    BLOCKED = "blocked"
    """The key is blocked for ``Verdict.wait`` seconds (``reason``: "server" or "strikes")."""
    PAUSED = "paused"
    """The shared ledger cannot be reached and sending is paused; ask again later."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One process's request for the next start of a key."""

    owner: str
    """Which process asks (stable for the life of the process)."""
    priority: int
    """0 SHARED, 1 INTERACTIVE, 2 BACKGROUND (``bot.nekos.pacing.Priority``)."""
    spacing: float
    """Seconds this process keeps between starts (interval + margin; 0 when unlimited)."""
    more_demand: bool = False
    """Whether the process still has SHARED/INTERACTIVE waiters after this one is served."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A ledger's answer, with what it saw of the key's shared state."""

    kind: VerdictKind
    wait: float = 0.0
    strikes: int = 0
    """Strikes within the window, across every process."""
    reason: str = ""
    peers: int = 0
    """Other processes that reserved on this key within :data:`PEER_WINDOW`."""
    demand: int = 0
    """Other processes with SHARED/INTERACTIVE waiters right now."""


@dataclass(frozen=True, slots=True)
class StrikeResult:
    """A recorded strike: the count across processes and, if it exhausted the budget, the block."""

    strikes: int
    blocked_for: float | None = None


@dataclass(frozen=True, slots=True)
class BudgetHealth:
    """How the ledger is doing, for ``/neko about`` and ``python -m bot check``."""

    mode: str
    """``memory``, ``folder``, ``redis``, ``fallback`` or ``paused``."""
    description: str
    """One line for an operator, e.g. "shared via Redis"."""
    ok: bool = True
    """False while a configured shared backend cannot be used."""


@runtime_checkable
class BudgetLedger(Protocol):
    """Where processes sharing a budget key record starts, holds, strikes and blocks."""

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        """Grant a start now, or say how long to wait (or that the key is blocked / paused)."""
        ...

    async def hold(self, key: str, seconds: float) -> None:
        """Start nothing on ``key`` for ``seconds`` (``X-RateLimit-Remaining: 0``, a 429)."""
        ...

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        """Record a 429 (``strike_id`` unique), hold ``hold`` seconds; block if over budget."""
        ...

    async def block(self, key: str, seconds: float, reason: str) -> None:
        """Block ``key`` for ``seconds`` (``reason``: "server" or "strikes")."""
        ...

    def health(self) -> BudgetHealth:
        """The ledger's mode and state, without I/O."""
        ...

    async def close(self) -> None:
        """Release connections, files and threads."""
        ...


# ---------------------------------------------------------------------------- the state machine


@dataclass(slots=True)
class KeyState:
    """Everything a ledger stores for one key, and the rules applied to it (pure, no I/O).

    Times are the ledger's clock in seconds; every answer is a duration from ``now``, so
    processes never compare their own clocks with the ledger's.
    """

    last_start: float = -math.inf
    last_spacing: float = 0.0
    hold_until: float = -math.inf
    block_until: float = -math.inf
    block_reason: str = ""
    strikes: dict[str, float] = field(default_factory=dict)
    demand: dict[str, float] = field(default_factory=dict)
    """owner → when its marker expires."""
    seen: dict[str, float] = field(default_factory=dict)
    """owner → when it last reserved."""

    # ------------------------------------------------------------------ (de)serialisation

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_start": _finite(self.last_start),
                "last_spacing": self.last_spacing,
                "hold_until": _finite(self.hold_until),
                "block_until": _finite(self.block_until),
                "block_reason": self.block_reason,
                "strikes": self.strikes,
                "demand": self.demand,
                "seen": self.seen,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> KeyState:
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        return cls(
            last_start=_infinite(data.get("last_start")),
            last_spacing=float(data.get("last_spacing") or 0.0),
            hold_until=_infinite(data.get("hold_until")),
            block_until=_infinite(data.get("block_until")),
            block_reason=str(data.get("block_reason") or ""),
            strikes=_floats(data.get("strikes")),
            demand=_floats(data.get("demand")),
            seen=_floats(data.get("seen")),
        )

    # ------------------------------------------------------------------ the rules

    def prune(self, now: float, window: float) -> None:
        """Forget strikes older than ``window``, expired markers and long-gone peers."""
        self.strikes = {k: t for k, t in self.strikes.items() if t > now - window}
        self.demand = {k: t for k, t in self.demand.items() if t > now}
        self.seen = {k: t for k, t in self.seen.items() if t > now - PEER_WINDOW}
        if self.block_until <= now:
            self.block_until, self.block_reason = -math.inf, ""

    def reserve(self, now: float, claim: Claim, window: float) -> Verdict:
        """Grant ``claim`` a start at ``now`` or say how long to wait."""
        self.prune(now, window)
        others = sum(1 for owner in self.demand if owner != claim.owner)
        self.seen[claim.owner] = now
        peers = sum(1 for owner in self.seen if owner != claim.owner)

        def verdict(kind: VerdictKind, wait: float = 0.0, reason: str = "") -> Verdict:
            return Verdict(kind, max(0.0, wait), len(self.strikes), reason, peers, others)

        if self.block_until > now:
            return verdict(VerdictKind.BLOCKED, self.block_until - now, self.block_reason)
        gap = max(claim.spacing, self.last_spacing)
        # A wall clock stepped backwards must not push the next start into the future.
        earliest = max(self.hold_until, min(self.last_start, now) + gap)
        background = claim.priority >= BACKGROUND_LEVEL
        if background and others:
            return verdict(VerdictKind.WAIT, max(earliest, now) + gap - now)
        if earliest > now:
            if not background:
                self.demand[claim.owner] = earliest + DEMAND_GRACE
            return verdict(VerdictKind.WAIT, earliest - now)
        self.last_start, self.last_spacing = now, claim.spacing
        if not background and claim.more_demand:
            self.demand[claim.owner] = now + gap + DEMAND_GRACE
        else:
            self.demand.pop(claim.owner, None)
        return verdict(VerdictKind.GO)

    def hold(self, now: float, seconds: float) -> None:
        self.hold_until = max(self.hold_until, now + max(0.0, seconds))

    def strike(
        self, now: float, strike_id: str, hold: float, max_strikes: int, window: float
    ) -> StrikeResult:
        self.prune(now, window)
        self.strikes[strike_id] = now
        self.hold(now, hold)
        count = len(self.strikes)
        if count < max_strikes:
            return StrikeResult(count)
        self.block(now, min(self.strikes.values()) + window - now, "strikes")
        return StrikeResult(count, self.block_until - now)

    def block(self, now: float, seconds: float, reason: str) -> None:
        until = now + max(0.0, seconds)
        if until > self.block_until:
            self.block_until, self.block_reason = until, reason


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _infinite(value: object) -> float:
    return float(value) if isinstance(value, int | float) else -math.inf


def _floats(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}


# ---------------------------------------------------------------------------- in memory


class MemoryLedger:
    """A ledger inside one process (implements :class:`BudgetLedger`): tests, and library use.

    Several pacers of one process given the same ledger share its budget, as separate processes
    share a :class:`~bot.nekos.ledger.sqlite_ledger.SqliteLedger`. ``clock`` is injectable.
    """

    def __init__(
        self,
        *,
        strike_window: float = DEFAULT_STRIKE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = strike_window
        self._clock = clock
        self._keys: dict[str, KeyState] = {}

    def state(self, key: str) -> KeyState:
        """The stored state of ``key`` (for tests and reports)."""
        return self._keys.setdefault(key, KeyState())

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        await asyncio.sleep(0)  # a real ledger answers later: let others run meanwhile
        return self.state(key).reserve(self._clock(), claim, self._window)

    async def hold(self, key: str, seconds: float) -> None:
        self.state(key).hold(self._clock(), seconds)

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        return self.state(key).strike(self._clock(), strike_id, hold, max_strikes, self._window)

    async def block(self, key: str, seconds: float, reason: str) -> None:
        self.state(key).block(self._clock(), seconds, reason)

    def health(self) -> BudgetHealth:
        return BudgetHealth("memory", "shared by this process only")

    async def close(self) -> None:
        return None
