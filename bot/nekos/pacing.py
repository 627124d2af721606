"""The process-wide request pacer: the Nekos API's rate limit, kept on the client's side.

The server allows one request per second per IP, counts rejected requests too, and blocks the IP
for an hour after ten rate-limit hits in an hour. So every request to the API first waits its
turn here: request *starts* are spaced at least one limit interval (plus a safety margin) apart,
however many tasks ask at once, first come first served. Interactive requests (a member is
waiting) always go before background ones (prefetching). ``Retry-After`` and
``X-RateLimit-Remaining``/``X-RateLimit-Reset`` hold every caller back, and a strike budget well
below the server's stops sending before the server would block the IP.

:class:`RequestPacer` is the interface the client depends on; :class:`Pacer` implements it. A
pacer alone paces its own process. Given a :class:`~bot.nekos.ledger.BudgetLedger` and a budget
key it also shares the budget with every other process using that ledger and key: its head-of-line
waiter asks the ledger for each start, and strikes, holds and blocks go to the ledger too, so a
429 seen by one process holds back all of them (see :mod:`bot.nekos.ledger`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import enum
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import Blocked, RateLimited
from .ledger import BudgetLedger, Claim, LedgerUnavailable, StrikeResult, Verdict, VerdictKind
from .models import TokenInfo

__all__ = [
    "BACKGROUND",
    "DEFAULT_INTERVAL",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_STRIKES",
    "DEFAULT_STRIKE_WINDOW",
    "INTERACTIVE",
    "SHARED",
    "Clock",
    "Pacer",
    "PacerState",
    "Priority",
    "RequestPacer",
    "Sleep",
    "WallClock",
    "header_value",
    "parse_rate_limit_reset",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
"""Seconds between requests the public API allows (one request per second per IP)."""
DEFAULT_MARGIN = 0.1
"""Extra seconds added to every wait, for clock and network jitter."""
DEFAULT_MAX_STRIKES = 3
"""Rate-limit hits allowed per window before the pacer stops sending (the server bans at 10)."""
DEFAULT_STRIKE_WINDOW = 3600.0
"""The rolling window, in seconds, over which rate-limit hits are counted (the server's hour)."""
RECENT_GRANTS = 20
"""How many recent grants the wait estimate looks at to predict shared batches."""
PAUSED_RETRY = 5.0
"""Seconds a request refused because the shared budget cannot be used is told to wait."""
DEMAND_FRESHNESS = 2.0
"""Seconds after a ledger answer during which its count of waiting processes is trusted."""

Clock = Callable[[], float]
"""A monotonic clock in seconds, like :func:`time.monotonic`."""
Sleep = Callable[[float], Awaitable[None]]
"""An awaitable sleep in seconds, like :func:`asyncio.sleep`."""
WallClock = Callable[[], dt.datetime]
"""The current UTC time as an aware datetime."""


class Priority(enum.IntEnum):
    """Who is waiting for a request: lower values are served first."""

    SHARED = 0
    """Many members wait on this one request (a random-image batch that feeds the pool)."""
    INTERACTIVE = 1
    """A member is waiting for the answer."""
    BACKGROUND = 2
    """Prefetching: takes a slot only when no interactive request is waiting."""


SHARED = Priority.SHARED
INTERACTIVE = Priority.INTERACTIVE
BACKGROUND = Priority.BACKGROUND


@dataclass(frozen=True, slots=True)
class PacerState:
    """A snapshot of the pacer, for health reports."""

    queue_length: int
    estimated_wait: float
    strikes_in_window: int
    blocked_until: dt.datetime | None
    interval: float
    """Seconds between request starts, margin included (0 when the limit is disabled)."""
    requests_started: int
    budget: str = "this process only"
    """Where the request budget is kept, e.g. "shared via Redis" (the ledger's description)."""
    budget_ok: bool = True
    """False while a configured shared budget cannot be used (host-local fallback or paused)."""
    budget_peers: int = 0
    """Other processes that started requests on the same budget within the last minute."""


@runtime_checkable
class RequestPacer(Protocol):
    """What the client needs from a pacer. Every API request goes through one."""

    @property
    def queue_length(self) -> int:
        """Requests waiting for their turn right now."""
        ...

    def estimated_wait(self, priority: Priority = INTERACTIVE) -> float:
        """Seconds a request made now at ``priority`` would wait before it starts.

        While sending is blocked this is the time until the block lifts.
        """
        ...

    async def acquire(
        self, priority: Priority = INTERACTIVE, *, endpoint: str | None = None
    ) -> None:
        """Wait until a request may start; raise :class:`Blocked` if sending is blocked."""
        ...

    async def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Learn from a response's ``X-RateLimit-*`` headers."""
        ...

    async def strike(self, retry_after: float, *, endpoint: str | None = None) -> None:
        """Record a 429: hold every request for ``retry_after`` seconds and count a strike.

        Raise :class:`Blocked` when this strike exhausts the budget.
        """
        ...

    async def block(self, seconds: float, *, endpoint: str | None = None) -> None:
        """Record that the server blocked this IP: send nothing for ``seconds``."""
        ...

    async def adopt_token(self, token: TokenInfo) -> None:
        """Adopt the rate limit the token's ``api:ratelimit:*`` scopes grant."""
        ...

    def members_idle_for(self) -> float:
        """Seconds since a request members wait on last started (0 while one waits)."""
        ...

    def state(self) -> PacerState:
        """A snapshot for health reports."""
        ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - now).total_seconds()


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), or ``None``."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = _seconds_until(moment, now or _utcnow())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_rate_limit_reset(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` moment, or ``None`` if it cannot be read.

    Servers spell it differently: a Unix time in milliseconds (Upstash, which the Nekos API
    uses) or seconds, a number of seconds from now, or an ISO 8601 date. All are accepted.
    """
    if value is None:
        return None
    text = value.strip()
    current = now or _utcnow()
    try:
        number = float(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return parse_retry_after(text, current)
        return max(0.0, _seconds_until(moment, current))
    if not math.isfinite(number):
        return None
    if number > 1e11:  # Unix milliseconds (1e11 ms is 1973; 1e11 s is year 5138)
        seconds = number / 1000 - current.timestamp()
    elif number > 1e9:  # Unix seconds
        seconds = number - current.timestamp()
    else:
        seconds = number
    return max(0.0, seconds)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in ``headers``, matched case-insensitively."""
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; aiohttp's multidict is not.
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


class _Ticket:
    """One waiting request."""

    __slots__ = ("priority", "wake")

    def __init__(self, priority: Priority) -> None:
        self.priority = priority
        self.wake = asyncio.Event()


class Pacer:
    """Spaces the starts of every API request of this process (implements :class:`RequestPacer`).

    ``interval`` is the server's limit (seconds per request), ``margin`` is added to every wait.
    At most ``max_strikes`` rate-limit hits are allowed within ``strike_window`` seconds; the
    one that reaches the budget blocks sending until the oldest of them leaves the window.
    ``clock``, ``sleep`` and ``wall_clock`` are injectable so tests need not wait in real time.

    With a ``ledger``, the budget named ``budget_key`` is shared with every process using the
    same ledger and key (``owner`` names this process there; a random id by default). The queue
    and priorities stay in this process; the ledger decides when a start may happen, counts
    strikes across processes and carries holds and blocks to all of them.
    """

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        margin: float = DEFAULT_MARGIN,
        max_strikes: int = DEFAULT_MAX_STRIKES,
        strike_window: float = DEFAULT_STRIKE_WINDOW,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: WallClock = _utcnow,
        ledger: BudgetLedger | None = None,
        budget_key: str = "default",
        owner: str | None = None,
    ) -> None:
        if interval < 0 or margin < 0:
            raise ValueError("interval and margin must not be negative")
        if max_strikes < 1:
            raise ValueError("max_strikes must be at least 1")
        if strike_window <= 0:
            raise ValueError("strike_window must be positive")
        self._interval = interval
        self._margin = margin
        self._max_strikes = max_strikes
        self._configured_max_strikes = max_strikes
        self._strike_window = strike_window
        # A fixed window resets at most one window from now; longer resets are clock skew.
        self._limit_window = max(interval, DEFAULT_INTERVAL)
        self._disabled = False
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._queues: dict[Priority, deque[_Ticket]] = {p: deque() for p in Priority}
        self._last_start: float | None = None
        self._last_priority: Priority | None = None
        self._last_member_start: float | None = None
        self._recent_grants: deque[Priority] = deque(maxlen=RECENT_GRANTS)
        self._hold_until = -math.inf
        self._blocked_until: float | None = None
        self._blocked_by_server = False
        self._strikes: deque[float] = deque()
        self._started = 0
        self._ledger = ledger
        self._budget_key = budget_key
        self._owner = owner or uuid.uuid4().hex
        # What the ledger last said: when asking again is useful, and about other processes.
        self._ledger_until = -math.inf
        self._background_until = -math.inf  # a background claim refused: members wait elsewhere
        self._shared_strikes = 0
        self._peers = 0
        self._others_waiting = 0
        self._others_seen = -math.inf
        self._ledger_failing = False

    def __repr__(self) -> str:
        return (
            f"<Pacer spacing={self.spacing:.3f}s queue={self.queue_length} "
            f"strikes={self.strikes_in_window}/{self._max_strikes}>"
        )

    # ------------------------------------------------------------------ configuration

    @property
    def spacing(self) -> float:
        """Seconds between request starts, margin included (0 when the limit is disabled)."""
        return 0.0 if self._disabled else self._interval + self._margin

    @property
    def max_strikes(self) -> int:
        """Rate-limit hits allowed within the strike window."""
        return self._max_strikes

    async def adopt_token(self, token: TokenInfo) -> None:
        """Adopt ``api:ratelimit:R-T-L`` (R requests per T seconds) or ``api:ratelimit:disabled``.

        The strike budget becomes a third of the token's L hits (at least one), never more
        than the configured budget.
        """
        if token.rate_limit_disabled:
            self._disabled = True
            log.info("Nekos API token disables the rate limit; requests are not spaced")
            return
        scope = token.rate_limit
        if scope is None:
            return
        self._disabled = False
        self._interval = scope.per_seconds / scope.requests
        self._limit_window = max(scope.per_seconds, self._interval)
        self._max_strikes = min(self._configured_max_strikes, max(1, scope.hits_before_block // 3))
        log.info(
            "Nekos API token allows %d requests per %gs; spacing requests %.3fs apart, "
            "at most %d rate-limit hits per hour",
            scope.requests,
            scope.per_seconds,
            self.spacing,
            self._max_strikes,
        )

    # ------------------------------------------------------------------ inspection

    @property
    def queue_length(self) -> int:
        """Requests waiting for their turn right now."""
        return sum(len(q) for q in self._queues.values())

    def members_idle_for(self) -> float:
        """Seconds since a request members wait on (SHARED or INTERACTIVE) last started here;
        0 while one waits (here, or in another process sharing the budget)."""
        now = self._clock()
        if self._queues[SHARED] or self._queues[INTERACTIVE] or self._others(now):
            return 0.0
        if self._last_member_start is None:
            return math.inf
        return max(0.0, now - self._last_member_start)

    @property
    def strikes_in_window(self) -> int:
        """Rate-limit hits within the rolling strike window."""
        self._prune_strikes(self._clock())
        return max(len(self._strikes), self._shared_strikes)

    @property
    def blocked_until(self) -> dt.datetime | None:
        """When sending may resume, if it is blocked now."""
        now = self._clock()
        if self._blocked_until is None or self._blocked_until <= now:
            return None
        return self._to_wall(self._blocked_until, now)

    def estimated_wait(self, priority: Priority = INTERACTIVE) -> float:
        """Seconds a request made now at ``priority`` would wait before it starts.

        While sending is blocked this is the time until the block lifts.
        """
        now = self._clock()
        if self._blocked_until is not None and self._blocked_until > now:
            return self._blocked_until - now
        shared, interactive = len(self._queues[SHARED]), len(self._queues[INTERACTIVE])
        if priority is SHARED:
            after_shared = self._last_priority is SHARED and interactive > 0
            ahead = shared + min(interactive, shared + (1 if after_shared else 0))
        elif priority is INTERACTIVE:
            # Shared batches take alternate slots while lookups wait (see ``_head``): expect
            # as many as recent grants suggest, at most one per lookup ahead plus one.
            recent = self._recent_grants
            share = min(0.5, sum(p is SHARED for p in recent) / len(recent)) if recent else 0.0
            expected = round(interactive * share / (1 - share))
            ahead = interactive + min(interactive + 1, max(shared, expected))
        else:
            ahead = sum(len(q) for q in self._queues.values())
        return max(0.0, self._next_start() - now) + (ahead + self._others(now)) * self.spacing

    def _others(self, now: float) -> int:
        """Other processes waiting on the shared budget, as the ledger last said (recently)."""
        if now - self._others_seen > self.spacing + DEMAND_FRESHNESS:
            return 0
        return self._others_waiting

    def state(self) -> PacerState:
        """A snapshot for health reports."""
        return PacerState(
            queue_length=self.queue_length,
            estimated_wait=self.estimated_wait(INTERACTIVE),
            strikes_in_window=self.strikes_in_window,
            blocked_until=self.blocked_until,
            interval=self.spacing,
            requests_started=self._started,
            budget=self._ledger.health().description if self._ledger else "this process only",
            budget_ok=self._ledger.health().ok if self._ledger else True,
            budget_peers=self._peers,
        )

    # ------------------------------------------------------------------ pacing

    async def acquire(
        self, priority: Priority = INTERACTIVE, *, endpoint: str | None = None
    ) -> None:
        """Wait until a request may start; raise :class:`Blocked` if sending is blocked.

        Waiters are served first come, first served within a priority, and every waiter of a
        higher priority (SHARED, then INTERACTIVE) goes before any of a lower one, except that
        SHARED and INTERACTIVE alternate while both wait. Cancelling the wait gives up the place
        in line.
        """
        self._raise_if_blocked(endpoint)
        ticket = _Ticket(priority)
        queue = self._queues[priority]
        queue.append(ticket)
        granted = False
        try:
            while True:
                self._raise_if_blocked(endpoint)
                if self._head() is not ticket:
                    ticket.wake.clear()
                    await ticket.wake.wait()
                    continue
                now = self._clock()
                delay = self._next_start() - now
                if priority is BACKGROUND:
                    delay = max(delay, self._background_until - now)
                if delay <= 0 and self._ledger is not None:
                    if not await self._reserve(priority, endpoint):
                        continue
                    self._raise_if_blocked(endpoint)  # set by another task meanwhile
                    now = self._clock()
                if delay <= 0:
                    queue.remove(ticket)
                    granted = True
                    self._last_start = now
                    self._last_priority = priority
                    if priority is not BACKGROUND:
                        self._last_member_start = now
                    self._recent_grants.append(priority)
                    self._started += 1
                    return
                # Re-check after sleeping: a 429 may have moved the next start further away.
                await self._sleep(delay)
        finally:
            if not granted and ticket in queue:
                queue.remove(ticket)
            self._wake_head()

    def _head(self) -> _Ticket | None:
        shared, interactive = self._queues[SHARED], self._queues[INTERACTIVE]
        if shared and interactive and self._last_priority is SHARED:
            # Shared batches never take two slots in a row while a member's lookup waits.
            return interactive[0]
        for priority in Priority:
            queue = self._queues[priority]
            if queue:
                return queue[0]
        return None

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None:
            head.wake.set()

    def _wake_all(self) -> None:
        for queue in self._queues.values():
            for ticket in queue:
                ticket.wake.set()

    async def _reserve(self, priority: Priority, endpoint: str | None) -> bool:
        """Ask the shared ledger for this start: True to go, False to look again later."""
        assert self._ledger is not None
        high = len(self._queues[SHARED]) + len(self._queues[INTERACTIVE])
        more = high - (1 if priority is not BACKGROUND else 0) > 0
        claim = Claim(self._owner, int(priority), self.spacing, more)
        try:
            verdict = await self._ledger.reserve(self._budget_key, claim)
        except LedgerUnavailable as exc:
            self._ledger_failed(exc)
            raise self._paused_error(
                "the shared request budget cannot be used right now", PAUSED_RETRY, endpoint
            ) from None
        self._ledger_recovered()
        self._learn(verdict)
        if verdict.kind is VerdictKind.GO:
            return True
        if verdict.kind is VerdictKind.WAIT:
            # A background refusal may be about other processes' members: it holds back only
            # this process's background requests, not its own members'.
            until = self._clock() + verdict.wait
            if priority is BACKGROUND:
                self._background_until = until
            else:
                self._ledger_until = until
            return False
        if verdict.kind is VerdictKind.BLOCKED:
            self._set_block(self._clock() + verdict.wait, by_server=verdict.reason == "server")
            self._raise_if_blocked(endpoint)
            return False  # the block lifted meanwhile
        raise self._paused_error(verdict.reason, verdict.wait, endpoint)

    def _learn(self, verdict: Verdict) -> None:
        self._shared_strikes = verdict.strikes
        self._peers = verdict.peers
        self._others_waiting = verdict.demand
        self._others_seen = self._clock()

    @staticmethod
    def _paused_error(reason: str, retry_after: float, endpoint: str | None) -> RateLimited:
        return RateLimited(reason, retry_after=retry_after, status=None, endpoint=endpoint)

    def _ledger_failed(self, error: Exception) -> None:
        if not self._ledger_failing:
            self._ledger_failing = True
            log.error(
                "The shared request budget failed (%s); pausing requests until it works", error
            )

    def _ledger_recovered(self) -> None:
        if self._ledger_failing:
            self._ledger_failing = False
            log.warning("The shared request budget works again")

    async def _tell_ledger(self, action: str, call: Awaitable[object]) -> object | None:
        """Run one ledger update; a failing ledger is logged once and the local state kept."""
        try:
            result = await call
        except LedgerUnavailable as exc:
            self._ledger_failed(exc)
            log.debug("Could not record a %s in the shared request budget", action)
            return None
        self._ledger_recovered()
        return result

    def _next_start(self) -> float:
        earliest = max(self._hold_until, self._ledger_until)
        if self._last_start is not None:
            earliest = max(earliest, self._last_start + self.spacing)
        return earliest

    # ------------------------------------------------------------------ feedback

    async def observe_headers(self, headers: Mapping[str, str]) -> None:
        """If ``X-RateLimit-Remaining`` is 0, hold every request until ``X-RateLimit-Reset``."""
        remaining_text = header_value(headers, "X-RateLimit-Remaining")
        if remaining_text is None:
            return
        try:
            remaining = int(float(remaining_text))
        except ValueError:
            return
        if remaining > 0:
            return
        delay = parse_rate_limit_reset(
            header_value(headers, "X-RateLimit-Reset"), self._wall_clock()
        )
        if delay is None:
            return
        # A reset further away than one window can only be clock skew between us and the server.
        delay = min(delay, self._limit_window)
        self._hold(delay + self._margin)
        if self._ledger is not None:
            await self._tell_ledger(
                "hold", self._ledger.hold(self._budget_key, delay + self._margin)
            )

    async def strike(self, retry_after: float, *, endpoint: str | None = None) -> None:
        """Record a 429: hold every request for ``retry_after`` seconds and count a strike.

        Raise :class:`Blocked` when this strike exhausts the budget.
        """
        now = self._clock()
        self._prune_strikes(now)
        self._strikes.append(now)
        hold = max(0.0, retry_after) + self._margin
        self._hold(hold)
        count = len(self._strikes)
        lifts = self._strikes[0] + self._strike_window
        if self._ledger is not None:
            shared = await self._tell_ledger(
                "strike",
                self._ledger.strike(
                    self._budget_key,
                    uuid.uuid4().hex,
                    hold=hold,
                    max_strikes=self._max_strikes,
                ),
            )
            if isinstance(shared, StrikeResult):
                self._shared_strikes = shared.strikes
                count = max(count, shared.strikes)
                if shared.blocked_for is not None:
                    lifts = max(lifts, now + shared.blocked_for)
        if count < self._max_strikes:
            log.warning(
                "Nekos API rate limit hit on %s (%d of %d allowed per hour); waiting %.1fs",
                endpoint or "a request",
                count,
                self._max_strikes,
                retry_after,
            )
            return
        self._set_block(lifts, by_server=False)
        until = self._to_wall(lifts, now)
        log.error(
            "Nekos API rate limit hit %d times within %.0fs; pausing all requests until %s "
            "so the server does not block this IP",
            count,
            self._strike_window,
            until.isoformat(timespec="seconds"),
        )
        raise self._blocked_error(endpoint, now)

    async def block(self, seconds: float, *, endpoint: str | None = None) -> None:
        """Record that the server blocked this IP: send nothing for ``seconds``."""
        now = self._clock()
        self._set_block(now + max(0.0, seconds), by_server=True)
        if self._ledger is not None:
            await self._tell_ledger(
                "block", self._ledger.block(self._budget_key, max(0.0, seconds), "server")
            )
        log.error(
            "Nekos API blocked this IP (reported on %s); no requests until %s",
            endpoint or "a request",
            self._to_wall(now + seconds, now).isoformat(timespec="seconds"),
        )

    def _hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    def _set_block(self, until: float, *, by_server: bool) -> None:
        if self._blocked_until is None or until > self._blocked_until:
            self._blocked_until = until
            self._blocked_by_server = by_server
        # Waiters re-check and fail fast instead of sending into the block.
        self._wake_all()

    def _prune_strikes(self, now: float) -> None:
        while self._strikes and self._strikes[0] + self._strike_window <= now:
            self._strikes.popleft()

    def _raise_if_blocked(self, endpoint: str | None) -> None:
        now = self._clock()
        if self._blocked_until is None:
            return
        if self._blocked_until <= now:
            self._blocked_until = None
            self._blocked_by_server = False
            return
        raise self._blocked_error(endpoint, now)

    def _blocked_error(self, endpoint: str | None, now: float) -> Blocked:
        assert self._blocked_until is not None
        remaining = self._blocked_until - now
        until = self._to_wall(self._blocked_until, now)
        when = until.strftime("%H:%M:%S UTC")
        if self._blocked_by_server:
            message = (
                f"the Nekos API blocked this IP for exceeding its rate limit; "
                f"no requests are sent until {when}"
            )
        else:
            message = (
                f"paused after {self.strikes_in_window} rate-limit hits within the hour, "
                f"to avoid a server block; no requests are sent until {when}"
            )
        return Blocked(message, until=until, retry_after=remaining, status=None, endpoint=endpoint)

    def _to_wall(self, moment: float, now: float) -> dt.datetime:
        return self._wall_clock() + dt.timedelta(seconds=moment - now)
