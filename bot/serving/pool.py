"""The random-image pool: one upstream call feeds many commands, fairly across guilds.

The Nekos API allows one request per second for the whole bot, while ``/image/random`` returns
up to 25 images a call. So every call asks for 25, and images wait here until some request can
use them: a request matches an image when the request's categories are a subset of the image's
and the caller's rating ceiling and gating filter accept it. The rest of the design follows:

* **Expiry** — image URLs are signed; an entry leaves the pool ``expiry_margin`` seconds before
  ``meta.expires`` (or ``no_expiry_lifetime`` after it arrived, when the API gave no expiry).
* **No repeats** — an image id is not shown again in a channel among its last ``repeat_window``
  images. A pooled image may serve up to ``max_uses`` requests; images a guild has not had yet
  go first, then the least used.
* **Coalescing** — requests that stock cannot fill wait per category set; one call serves every
  waiter of that set (and of any subset), and what nobody takes stays pooled.
* **Fairness** — the pool makes at most ``max_concurrent_fetches`` calls at a time (the pacer
  serialises them anyway) and picks the next category set round-robin between guilds, the guild
  served least recently first; fresh images are dealt one at a time the same way, oldest request
  first within a guild. A flood from one guild delays another by at most one upstream slot.
* **Honesty** — a request stops after ``max_attempts`` calls that gave it its turn (nothing in
  the batch was acceptable to it, or it received images), and says FULL, PARTIAL or
  NOTHING_MATCHED. A 404 from ``/image/random`` is such an attempt, not proof of absence.
  Calls for a set that came back empty within the last ``barren_memory`` seconds count as
  attempts for every later request for that set too, so a set the API keeps answering with
  nothing is answered "nothing matched" at once instead of costing three more slots. While
  other sets wait for upstream, a request that already holds some images settles for them
  (``partial_when_busy``) rather than taking more slots, and so does one whose call brought
  images of its set none of which it may show (its channel showed them: ``shown_here``; or they
  are rated above it or gated): the API's sample of a small set is what more calls would bring
  again. Only an empty answer, a sample that missed a rare set, earns every attempt.
* **Background requests** — a request marked ``background`` (a scheduled post) is served first
  from images members have used ``max_uses`` times (kept until they expire, never given to
  members again), then from stock like any other, so posts leave members' stock alone; what it
  waits for is fetched at background priority, never in a
  member's fetch slot, and only while no member waits on upstream (the pool or the pacer): near
  the upstream's limit even one slot taken from members shows in their tail latency. Members are
  dealt a batch's images first. One that waited ``background_patience`` seconds settles for what
  it has. A member who asks for a set a background fetch is under way for gets a fetch of their
  own at once, at members' priority: a coalesced wait never holds a member at background
  priority.
* **Prefetch** — category sets in recent demand from members (scheduled posts do not count) are
  topped up to ``prefetch_target`` images at background priority, only while no member waits on
  the pool or the pacer.

Everything is in-process by default. Three hooks let a cluster share the pool through Redis
(``bot/serving/cluster``) without changing the rules above: the ``source`` may be a shared work
queue; ``claims`` confirms each image a request is about to show against cluster-wide use counts
and channel windows (refused ones are dropped and the request served again, its wait counted from
its start: a member who has waited ``reuse_after`` may reuse at once, and one who holds images
settles for them while others wait); :meth:`ImagePool.offer`
takes batches other processes fetched; ``fetch_slots`` says how many fetches may be in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import heapq
import itertools
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.nekos.errors import NotFound
from bot.nekos.models import Image, Rating

from .caching import Clock
from .looping import Loop
from .protocols import ClaimVerdict, ImageClaims, RandomImageSource, WaitEstimator

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_IMAGES_PER_REQUEST",
    "ImagePool",
    "ImageRequest",
    "ImageServer",
    "PoolMetrics",
    "PoolSettings",
    "ServeResult",
    "ServeStatus",
]

log = logging.getLogger(__name__)

MAX_IMAGES_PER_REQUEST = 10
MAX_BATCH_SIZE = 100

CategoryKey = frozenset[str]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRequest:
    """One command's ask for random images.

    ``guild_key`` is ``None`` in DMs (fairness and reuse then go per user). ``categories`` are
    matched case-insensitively (they are lower-cased here). ``accept`` is the gating filter
    (channel policy and minor safety); an image is served only if
    ``min_rating <= image.rating <= max_rating`` and ``accept(image)``. ``min_rating`` above
    ``sfw`` is a member asking for exactly one rating. ``background``: nobody is waiting on the
    answer right now (a scheduled post), so members' requests go first.
    """

    guild_key: int | None
    channel_key: int
    user_id: int
    categories: frozenset[str] = frozenset()
    count: int = 1
    max_rating: Rating
    min_rating: Rating = Rating.SFW
    accept: Callable[[Image], bool]
    background: bool = False

    def __post_init__(self) -> None:
        names = frozenset(name.strip().lower() for name in self.categories)
        if "" in names:
            raise ValueError("category names must not be empty")
        object.__setattr__(self, "categories", names)
        if not 1 <= self.count <= MAX_IMAGES_PER_REQUEST:
            raise ValueError(f"count must be between 1 and {MAX_IMAGES_PER_REQUEST}")
        if self.min_rating > self.max_rating:
            raise ValueError("min_rating must not be above max_rating")

    @property
    def audience(self) -> Hashable:
        """Who sees the result: the guild, or the user in DMs. The unit of fairness."""
        return ("guild", self.guild_key) if self.guild_key is not None else ("user", self.user_id)


class ServeStatus(enum.Enum):
    """How completely a request was served."""

    FULL = "full"
    """Every image asked for."""
    PARTIAL = "partial"
    """Some, but fewer than asked (attempts ran out, or an error cut the wait short)."""
    NOTHING_MATCHED = "nothing_matched"
    """None: the bounded upstream attempts found nothing this request may show."""


@dataclass(frozen=True, slots=True)
class ServeResult:
    """What :meth:`ImagePool.take` gives back."""

    images: tuple[Image, ...]
    status: ServeStatus
    upstream_calls: int
    """Upstream calls made for this request's category set while it waited (shared ones too)."""
    error: Exception | None = None
    """Why a PARTIAL result stopped short, when an upstream error did it."""
    reused: frozenset[str] = frozenset()
    """Ids of the images other servers had used up (served after ``reuse_after``)."""
    shown_here: bool = False
    """NOTHING_MATCHED because the last call brought only images this channel had shown within
    its window (the set is small, or this channel has seen most of it lately)."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Tunables of :class:`ImagePool` (seconds unless stated)."""

    batch_size: int = 25
    """Images asked for per random-images call (the API's maximum: 25 on v1, 100 on v4)."""
    capacity: int = 2000
    """Most images kept; beyond it the most used, then the soonest to expire, go first."""
    expiry_margin: float = 600.0
    """An image leaves the pool this long before its signed URL expires."""
    no_expiry_lifetime: float = 3000.0
    """How long an image without ``meta.expires`` stays, from arrival."""
    repeat_window: int = 100
    """An image id is not shown again in a channel among its last this-many images."""
    max_tracked_channels: int = 5000
    """Channels whose recent images are remembered (least recently active forgotten first)."""
    max_uses: int = 3
    """Requests one pooled image may serve (other guilds' first; 1 disables reuse)."""
    max_attempts: int = 3
    """Upstream attempts per request before it settles for what it has."""
    barren_memory: float = 60.0
    """Seconds an upstream call for a category set that returned no image counts as an attempt
    for every later request for that set (0: each request makes its own attempts)."""
    partial_when_busy: bool = True
    """A request that has some of its images after an attempt settles for them (PARTIAL) when
    other category sets are waiting for upstream: its further attempts would delay them."""
    max_concurrent_fetches: int = 1
    """The pool's own upstream calls in flight for waiting members."""
    upstream_expiry: int | None = None
    """``expiry`` passed upstream (needs a token scope); ``None`` keeps the server's default."""
    rating_filter: bool = False
    """The API filters random images by rating (v4): each call asks only for the ratings its
    waiting requests may show (up to ``upstream_max_rating``). Requests are still checked."""
    upstream_max_rating: Rating = Rating.NSFW
    """With ``rating_filter``: never ask for more than this (the operator's content ceiling)."""
    sfw_exclude_tags: tuple[str, ...] = ()
    """With ``rating_filter``: tags an sfw-only call asks the API to leave out (its ratings come
    from a classifier that errs)."""
    reuse_after: float = 5.0
    """A member's request still short after waiting this long takes images other servers have
    used up (kept for scheduled posts; never one its channel showed within ``repeat_window``)
    instead of waiting on: near the upstream's limit an image seen elsewhere now beats a fresh
    one a minute later. 0 disables."""
    background_patience: float = 20.0
    """Seconds a background request waits for upstream at most (then it settles)."""
    background_idle: float = 3.0
    """A background request's fetch starts only once no member's request has started upstream
    for this long: near saturation, a slot taken "while nobody waits" still holds back the
    member who arrives just after."""
    prefetch_target: int = 25
    """Images kept in stock for each hot category set."""
    prefetch_interval: float = 1.0
    """Pause between prefetch rounds that found nothing to do."""
    prefetch_backoff: float = 60.0
    """A hot set whose prefetch brought nothing is left alone this long."""
    prefetch_fill_limit: float = 0.9
    """No prefetching once the pool is this full (a fraction of ``capacity``)."""
    demand_half_life: float = 300.0
    """Demand counts halve over this long."""
    hot_threshold: float = 2.0
    """Decayed demand at which a category set counts as hot."""
    max_hot_keys: int = 16
    max_demand_keys: int = 1000
    defer_after: float = 1.5
    """:meth:`ImagePool.should_defer` says yes when the estimated wait exceeds this."""
    slot_seconds: float = 1.0
    """Estimated cost of one queued upstream call, for :meth:`ImagePool.should_defer`."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        for name in ("capacity", "max_uses", "max_attempts", "max_concurrent_fetches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.repeat_window < 0 or self.max_tracked_channels < 1:
            raise ValueError("repeat_window must be >= 0 and max_tracked_channels >= 1")


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    """Counters since start-up, plus the pool's current state."""

    requests: int
    images_served: int
    pool_hits: int
    """Requests served entirely from stock."""
    pool_misses: int
    """Requests that had to wait for upstream."""
    coalesced_waits: int
    """Waiting requests that joined a category set already waiting or in flight."""
    upstream_calls: int
    prefetch_calls: int
    upstream_images: int
    upstream_not_found: int
    upstream_errors: int
    partial: int
    nothing_matched: int
    reused: int
    """Images members got from what other servers used up, after waiting ``reuse_after``."""
    expired: int
    evicted: int
    pool_size: int
    waiting: int
    hot_keys: int


class ImageServer(Protocol):
    """What commands need from a random-image pool; :class:`ImagePool` is the in-process one."""

    async def take(self, request: ImageRequest) -> ServeResult:
        """Serve ``request`` from stock, waiting for upstream when stock is short."""
        ...

    def should_defer(self, request: ImageRequest) -> bool:
        """Whether serving ``request`` will likely take long enough that the reply should defer."""
        ...

    def peek_image(self, image_id: str) -> Image | None:
        """The image with this id if the pool holds it (its URL still fresh), else ``None``."""
        ...

    def metrics(self) -> PoolMetrics:
        """Counters and current state."""
        ...

    def start(self) -> None:
        """Start background work (prefetching)."""
        ...

    async def stop(self) -> None:
        """Stop background work."""
        ...


# ---------------------------------------------------------------------- internal records


@dataclass(slots=True, eq=False)
class _Entry:
    image: Image
    names: frozenset[str]
    deadline: float
    seq: int
    uses: int = 0
    audiences: dict[Hashable, int] = field(default_factory=dict)
    """Uses per audience (guild, or user in DMs)."""


@dataclass(slots=True, eq=False)
class _Waiter:
    request: ImageRequest
    audience: Hashable
    seq: int
    future: asyncio.Future[ServeResult]
    arrived: float = 0.0
    images: list[Image] = field(default_factory=list)
    reserved: list[_Entry] = field(default_factory=list)
    """The pool entries behind ``images``, to give back if the caller gives up."""
    upstream_calls: int = 0
    attempts: int = 0
    reused: set[str] = field(default_factory=set)
    """Ids of ``images`` taken from what other servers used up (``reuse_after``)."""
    held: int = 0
    """Images the caller holds from an earlier round (claims refused the rest; _confirmed)."""
    timer: asyncio.TimerHandle | None = None
    shown_here: bool = False
    """Its last attempt brought images it could show, had its channel not shown them already."""

    @property
    def key(self) -> CategoryKey:
        return self.request.categories

    @property
    def needed(self) -> int:
        return self.request.count - len(self.images)


@dataclass(slots=True)
class _Turns:
    """When an audience last had a turn; 0 means never (new audiences go first)."""

    fetch: int = 0
    image: int = 0


@dataclass(slots=True)
class _Demand:
    score: float
    updated: float


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    images_served: int = 0
    pool_hits: int = 0
    pool_misses: int = 0
    coalesced_waits: int = 0
    upstream_calls: int = 0
    prefetch_calls: int = 0
    upstream_images: int = 0
    upstream_not_found: int = 0
    upstream_errors: int = 0
    partial: int = 0
    nothing_matched: int = 0
    reused: int = 0
    expired: int = 0
    evicted: int = 0


_MAX_TRACKED_AUDIENCES = 10_000


# ---------------------------------------------------------------------- the pool


class ImagePool:
    """The in-process random-image pool (see the module docstring for the design).

    ``clock`` is wall-clock seconds since the epoch (``time.time``), because deadlines come from
    the API's ``meta.expires``. ``rng`` shuffles equally good candidates. ``sleep`` paces the
    prefetch loop. ``estimator`` (the pacer) informs :meth:`should_defer` and prefetching.
    ``observe`` is called with every batch that arrives from upstream (e.g. to learn tags).
    """

    def __init__(
        self,
        source: RandomImageSource,
        *,
        interactive_priority: Any,
        background_priority: Any,
        settings: PoolSettings | None = None,
        estimator: WaitEstimator | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        observe: Callable[[Sequence[Image]], None] | None = None,
        claims: ImageClaims | None = None,
        fetch_slots: Callable[[], int] | None = None,
    ) -> None:
        self._source = source
        self._claims = claims
        self._fetch_slots = fetch_slots
        self._observe = observe
        self._interactive = interactive_priority
        self._background = background_priority
        self._settings = settings or PoolSettings()
        self._estimator = estimator
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep

        self._entries: dict[str, _Entry] = {}
        self._spent: OrderedDict[str, _Entry] = OrderedDict()
        """Images members used ``max_uses`` times, kept (oldest first) for background requests."""
        self._deadlines: list[tuple[float, int, str]] = []  # a heap, stale items skipped lazily
        self._history: OrderedDict[int, dict[str, None]] = OrderedDict()
        self._queues: dict[Hashable, deque[_Waiter]] = {}
        self._waiting_keys: dict[CategoryKey, int] = {}
        self._turns: OrderedDict[Hashable, _Turns] = OrderedDict()
        self._in_flight: dict[CategoryKey, asyncio.Task[None]] = {}
        """Fetches members wait on (at the interactive priority), by category set."""
        self._background_flights: dict[CategoryKey, asyncio.Task[None]] = {}
        """Fetches only background requests wait on (at background priority)."""
        self._member_keys: dict[CategoryKey, int] = {}
        """Members' waiting requests per category set (``_waiting_keys`` counts everyone's)."""
        self._demand: dict[CategoryKey, _Demand] = {}
        self._prefetch_backoff: dict[CategoryKey, float] = {}
        self._barren: dict[CategoryKey, deque[float]] = {}
        self._prefetch = Loop("image-prefetch", self._prefetch_turn)
        self._seq = itertools.count(1)
        self._turn_counter = itertools.count(1)
        self._counters = _Counters()

    # ------------------------------------------------------------------ public API

    async def take(self, request: ImageRequest) -> ServeResult:
        """Serve ``request``: from stock at once when possible, else after upstream calls.

        Raises the upstream error (a :class:`~bot.nekos.errors.NekosError`, e.g. ``BadRequest``
        for an unknown category) only when it has no image to give; with some images the result
        is PARTIAL and carries the error. Cancelling the call returns its images to the pool.
        With ``claims``, every image is confirmed before it is given; refused ones are dropped
        and the shortfall served again (at most ``max_attempts`` rounds).
        """
        started = self._clock()
        result = await self._take_local(request)
        if self._claims is None or not result.images:
            return result
        return await self._confirmed(request, result, started)

    async def _confirmed(
        self, request: ImageRequest, result: ServeResult, started: float
    ) -> ServeResult:
        """Keep the images ``claims`` grants; serve the shortfall again from stock/upstream."""
        assert self._claims is not None
        kept: list[Image] = []
        reused = set(result.reused)
        calls = result.upstream_calls
        last = result
        for _ in range(self._settings.max_attempts):
            try:
                verdicts = await self._claim(request, last)
            except Exception:  # a shared store that fails must not cost the member the images
                log.exception("image claims failed; serving without them")
                verdicts = [ClaimVerdict.GRANTED] * len(last.images)
            refused = 0
            for image, verdict in zip(last.images, verdicts, strict=True):
                if verdict is ClaimVerdict.GRANTED:
                    kept.append(image)
                else:
                    refused += 1
                    self._refused(image, request, verdict)
            self._counters.images_served -= refused
            short = request.count - len(kept)
            if not refused or short <= 0 or last.status is not ServeStatus.FULL:
                break
            # The member has waited since ``started`` and holds ``kept``: the round after a
            # refusal counts both (reuse from then, and the busy-partial rule).
            last = await self._take_local(
                dataclasses.replace(request, count=short), started=started, held=len(kept)
            )
            calls += last.upstream_calls
            reused.update(last.reused)
            if not last.images:
                break
        if len(kept) == request.count:
            status = ServeStatus.FULL
        else:
            status = ServeStatus.PARTIAL if kept else ServeStatus.NOTHING_MATCHED
        kept_reused = frozenset(i.id for i in kept if i.id in reused)
        shown_here = not kept and last.shown_here
        return ServeResult(tuple(kept), status, calls, last.error, kept_reused, shown_here)

    async def _claim(self, request: ImageRequest, result: ServeResult) -> list[ClaimVerdict]:
        """Claim ``result``'s images; reused ones count only against the channel's window."""
        assert self._claims is not None
        if not result.reused:
            return list(await self._claims.claim(request, result.images))
        verdicts: dict[str, ClaimVerdict] = {}
        for reuse in (False, True):
            group = [i for i in result.images if (i.id in result.reused) is reuse]
            if group:
                got = await self._claims.claim(request, group, reuse=reuse)
                verdicts.update(zip((i.id for i in group), got, strict=True))
        return [verdicts[i.id] for i in result.images]

    def _refused(self, image: Image, request: ImageRequest, verdict: ClaimVerdict) -> None:
        """Another process showed ``image`` in this channel, or used it up: never pick it again
        for this channel (or at all)."""
        if verdict is ClaimVerdict.USED_UP:
            history = self._history.get(request.channel_key)
            if history is not None:
                history.pop(image.id, None)  # reserved for this channel, never shown there
            entry = self._entries.pop(image.id, None)
            if entry is not None and not request.background:
                self._keep_spent(entry)  # used up elsewhere: still good for scheduled posts
        else:
            self._remember_shown(request.channel_key, image.id)

    def offer(self, images: Sequence[Image]) -> int:
        """Pool a batch another process fetched and deal it to waiting requests (members
        first); return how many images were pooled."""
        if self._observe is not None and images:
            self._observe(images)
        now = self._clock()
        self._purge(now)
        batch = self._add(images, now)
        self._deal(batch, now)
        self._schedule()
        return len(batch)

    async def _take_local(
        self, request: ImageRequest, *, started: float | None = None, held: int = 0
    ) -> ServeResult:
        """Serve ``request`` from this process's stock and upstream. ``started``: when the
        member began waiting (an earlier round's start); ``held``: images they already hold."""
        now = self._clock()
        self._purge(now)
        self._counters.requests += 1
        reserved: list[_Entry] = []
        if request.background:
            # Scheduled posts first take what members have used up, then fresh stock; their
            # sets never become "hot", or prefetch would spend slots members then wait for.
            reserved = self._pick(request, request.count, now, self._spent.values(), spent=True)
        else:
            self._note_demand(request.categories, now)
        reserved += self._pick(request, request.count - len(reserved), now, self._entries.values())
        arrived = now if started is None else started
        reused: list[_Entry] = []
        if len(reserved) < request.count and self._may_reuse(request, arrived, now):
            # A later round of a member who has waited long enough already (see _confirmed).
            reused = self._reuse_pick(request, request.count - len(reserved), now)
            reserved += reused
        images = [entry.image for entry in reserved]
        if len(images) == request.count:
            self._counters.pool_hits += 1
            self._counters.images_served += len(images)
            return ServeResult(
                tuple(images),
                ServeStatus.FULL,
                0,
                reused=frozenset(entry.image.id for entry in reused),
            )

        self._counters.pool_misses += 1
        key = request.categories
        recent_barren = self._recent_barren(key, now)
        if key in self._waiting_keys or key in self._in_flight or key in self._background_flights:
            self._counters.coalesced_waits += 1
        waiter = _Waiter(
            request=request,
            audience=request.audience,
            seq=next(self._seq),
            future=asyncio.get_running_loop().create_future(),
            arrived=arrived,
            images=images,
            reserved=reserved,
            attempts=recent_barren,
            held=held,
            reused={entry.image.id for entry in reused},
        )
        if waiter.attempts >= self._settings.max_attempts or (
            started is not None and (held or images) and self._others_waiting(waiter)
        ):
            # The set's last calls all came back empty, or a later round of a member who holds
            # images while others wait (the busy-partial rule): answer with what stock had, now.
            self._settle(waiter)
            return waiter.future.result()
        self._queues.setdefault(waiter.audience, deque()).append(waiter)
        self._waiting_keys[key] = self._waiting_keys.get(key, 0) + 1
        if not request.background:
            self._member_keys[key] = self._member_keys.get(key, 0) + 1
            if self._settings.reuse_after > 0:
                self._arm_reuse(waiter, max(0.0, arrived + self._settings.reuse_after - now))
        self._schedule()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def should_defer(self, request: ImageRequest) -> bool:
        """False when stock can serve ``request`` now; else whether the wait looks long.

        The estimate is the pacer's wait for a new request (0 without an estimator) plus one
        ``slot_seconds`` per category set the pool has queued but not yet sent. Advisory only:
        a request that stock cannot fill may still take several upstream slots.
        """
        now = self._clock()
        self._purge(now)
        if self._in_stock(request, now):
            return False
        wait = self._estimator.estimated_wait() if self._estimator is not None else 0.0
        key = request.categories
        # Only members' sets go before this one; background ones wait behind it.
        queued = sum(1 for k in self._member_keys if k not in self._in_flight and k != key)
        wait += queued * self._settings.slot_seconds
        return wait > self._settings.defer_after

    def peek_image(self, image_id: str) -> Image | None:
        """The pooled image with this id while its URL is fresh; using it costs no stock.

        Lets ``/neko image`` answer an image a member has just seen (its id is in the footer)
        without an upstream call.
        """
        entry = self._entries.get(image_id)
        if entry is None or entry.deadline <= self._clock():
            return None
        return entry.image

    def metrics(self) -> PoolMetrics:
        """Counters since start-up, plus the pool's size, waiting requests and hot sets."""
        c = self._counters
        return PoolMetrics(
            requests=c.requests,
            images_served=c.images_served,
            pool_hits=c.pool_hits,
            pool_misses=c.pool_misses,
            coalesced_waits=c.coalesced_waits,
            upstream_calls=c.upstream_calls,
            prefetch_calls=c.prefetch_calls,
            upstream_images=c.upstream_images,
            upstream_not_found=c.upstream_not_found,
            upstream_errors=c.upstream_errors,
            partial=c.partial,
            nothing_matched=c.nothing_matched,
            reused=c.reused,
            expired=c.expired,
            evicted=c.evicted,
            pool_size=len(self._entries),
            waiting=sum(len(q) for q in self._queues.values()),
            hot_keys=len(self._hot_keys(self._clock())),
        )

    def __len__(self) -> int:
        """Images in the pool now."""
        return len(self._entries)

    def stock(self, categories: Iterable[str] = ()) -> int:
        """Pooled, unexpired images having all of ``categories`` that can still serve someone."""
        key = frozenset(name.strip().lower() for name in categories)
        now = self._clock()
        self._purge(now)
        return self._stock(key, now)

    def start(self) -> None:
        """Start the background prefetch loop (idempotent)."""
        self._prefetch.start()

    async def stop(self) -> None:
        """Stop the prefetch loop and wait for it; requests keep being served."""
        await self._prefetch.stop()  # its calls may go through Redis: see looping.py

    async def prefetch_once(self) -> bool:
        """Top up the hottest category set that is short of stock; return whether a call was made.

        Does nothing while a member waits on the pool or on the pacer (a waiting scheduled post
        does not count). Also the pool's tick for
        background requests: their fetches start here once members are served, and those that
        ran out of patience settle.
        """
        self._tend_background()
        # Only members hold prefetch back: a scheduled post waiting (up to its patience) for a
        # quiet moment must not stop the top-ups members' next commands are served from.
        if self._member_keys or (self._estimator is not None and self._estimator.queue_length > 0):
            return False
        now = self._clock()
        self._purge(now)
        if len(self._entries) >= self._settings.capacity * self._settings.prefetch_fill_limit:
            return False
        key = self._next_prefetch_key(now)
        if key is None:
            return False
        added, error = await self._stock_up(key)
        if error is not None or not added:
            self._prefetch_backoff[key] = self._clock() + self._settings.prefetch_backoff
        return True

    def _tend_background(self) -> None:
        """Settle background waiters out of patience (no fetch of theirs under way), then start
        a background fetch if members let one go."""
        if not self._queues:
            return
        limit = self._clock() - self._settings.background_patience
        for queue in list(self._queues.values()):
            for waiter in list(queue):
                if (
                    waiter.request.background
                    and waiter.arrived <= limit
                    and waiter.key not in self._background_flights
                    and waiter.key not in self._in_flight
                ):
                    self._settle(waiter)
        self._schedule()

    async def warm(self, categories: Iterable[str] = ()) -> int:
        """Stock up for ``categories`` with one call at background priority (e.g. at start-up,
        so the first commands are answered from stock); return how many images were added."""
        key = frozenset(name.strip().lower() for name in categories)
        added, _ = await self._stock_up(key)
        return len(added)

    async def _stock_up(self, key: CategoryKey) -> tuple[list[str], Exception | None]:
        self._counters.prefetch_calls += 1
        images, error = await self._call_upstream(
            key, self._background, Rating.SFW, self._settings.upstream_max_rating
        )
        return self._land(key, images, error, for_waiters=False), error

    # ------------------------------------------------------------------ stock

    def _deadline(self, image: Image, now: float) -> float:
        expires = image.meta.expires
        if expires is None:
            return now + self._settings.no_expiry_lifetime
        return expires.timestamp() - self._settings.expiry_margin

    def _add(self, images: Iterable[Image], now: float) -> list[str]:
        """Pool ``images``; return the ids now pooled from this batch."""
        batch: list[str] = []
        for image in images:
            deadline = self._deadline(image, now)
            if deadline <= now:
                self._counters.expired += 1
                continue
            entry = self._entries.get(image.id)
            if entry is not None:
                # Seen again: keep its use record, adopt the fresher signed URL.
                if deadline > entry.deadline:
                    entry.image, entry.deadline = image, deadline
                    heapq.heappush(self._deadlines, (deadline, entry.seq, image.id))
            else:
                entry = _Entry(image, image.category_names, deadline, next(self._seq))
                self._entries[image.id] = entry
                heapq.heappush(self._deadlines, (deadline, entry.seq, image.id))
            if image.id not in batch:
                batch.append(image.id)
        self._enforce_capacity(set(batch))
        return [image_id for image_id in batch if image_id in self._entries]

    def _enforce_capacity(self, fresh: set[str]) -> None:
        excess = len(self._entries) - self._settings.capacity
        if excess <= 0:
            return
        victims = heapq.nsmallest(
            excess,
            self._entries.values(),
            key=lambda e: (e.image.id in fresh, -e.uses, e.deadline),
        )
        for entry in victims:
            del self._entries[entry.image.id]
        self._counters.evicted += len(victims)

    def _purge(self, now: float) -> None:
        while self._spent:
            oldest = next(iter(self._spent.values()))
            if oldest.deadline > now:
                break  # roughly in deadline order; _pick skips any later one that expired
            self._spent.popitem(last=False)
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, seq, image_id = heapq.heappop(self._deadlines)
            entry = self._entries.get(image_id)
            if entry is not None and entry.seq == seq and entry.deadline == deadline:
                del self._entries[image_id]
                self._counters.expired += 1

    def _stock(self, key: CategoryKey, now: float) -> int:
        limit = self._settings.max_uses
        return sum(
            1
            for e in self._entries.values()
            if e.uses < limit and e.deadline > now and key <= e.names
        )

    def _in_stock(self, request: ImageRequest, now: float) -> bool:
        """Whether ``take`` would serve ``request`` from stock now.

        The same filter as :meth:`_pick`, without its ranking: any ``count`` usable images will
        do, so the scan stops at the last one it needs instead of visiting the whole pool.
        """
        wanted = request.count
        history = self._history.get(request.channel_key)
        shown: dict[str, None] | tuple[()] = history if history is not None else ()
        max_uses = self._settings.max_uses
        categories, accept = request.categories, request.accept
        min_rating, max_rating = request.min_rating, request.max_rating
        for e in self._entries.values():
            image = e.image
            if (
                e.uses < max_uses
                and e.deadline > now
                and min_rating <= image.rating <= max_rating
                and categories <= e.names
                and image.id not in shown
                and accept(image)
            ):
                wanted -= 1
                if wanted <= 0:
                    return True
        return False

    def _pick(
        self,
        request: ImageRequest,
        wanted: int,
        now: float,
        candidates: Iterable[_Entry],
        *,
        reserve: bool = True,
        spent: bool = False,
    ) -> list[_Entry]:
        """Up to ``wanted`` entries whose images ``request`` may show (``spent``: candidates
        used up by members, which only background requests may take).

        Unused images the request's guild has not had go first; failing those, images new to
        the guild, then the least used. The scan starts at a random place and stops as soon as
        enough of the first kind are found, so a well-stocked pool answers without a full scan.
        """
        pool = list(candidates)
        chosen: list[_Entry] = []
        if not pool or wanted < 1:
            return chosen
        audience = request.audience
        categories, accept = request.categories, request.accept
        min_rating, max_rating = request.min_rating, request.max_rating
        history = self._history.get(request.channel_key)
        shown: dict[str, None] | tuple[()] = history if history is not None else ()
        max_uses = math.inf if spent else self._settings.max_uses
        later: dict[tuple[bool, int], list[_Entry]] = {}
        start = self._rng.randrange(len(pool))
        for e in itertools.chain(pool[start:], pool[:start]):
            image = e.image
            if (
                e.uses >= max_uses
                or e.deadline <= now
                or not min_rating <= image.rating <= max_rating
                or not categories <= e.names
                or image.id in shown
            ):
                continue
            is_repeat = audience in e.audiences
            if e.uses or is_repeat:
                later.setdefault((is_repeat, e.uses), []).append(e)
            # The gating filter is the costly check, so it runs last and only as needed.
            elif accept(image):
                chosen.append(e)
                if len(chosen) >= wanted:
                    break
        for rank in sorted(later):
            if len(chosen) >= wanted:
                break
            group = later[rank]
            left = len(group)
            # Draw at random without shuffling the whole group: usually only a few are needed.
            while left and len(chosen) < wanted:
                i = self._rng.randrange(left)
                e = group[i]
                left -= 1
                group[i] = group[left]
                if accept(e.image):
                    chosen.append(e)
        if reserve:
            for e in chosen:
                self._reserve(e, request)
        return chosen

    def _reserve(self, entry: _Entry, request: ImageRequest) -> None:
        entry.uses += 1
        entry.audiences[request.audience] = entry.audiences.get(request.audience, 0) + 1
        self._remember_shown(request.channel_key, entry.image.id)
        used_up = entry.uses >= self._settings.max_uses
        # Used up by members: kept for scheduled posts (one a post used up is not).
        if (
            used_up
            and self._entries.pop(entry.image.id, None) is not None
            and not request.background
        ):
            self._keep_spent(entry)

    def _keep_spent(self, entry: _Entry) -> None:
        """Keep an image members used up for scheduled posts, which then cost members no stock:
        near the upstream's limit every image a post took from members was a later call."""
        self._spent[entry.image.id] = entry
        while len(self._spent) > self._settings.capacity:
            self._spent.popitem(last=False)

    def _remember_shown(self, channel_key: int, image_id: str) -> None:
        history = self._history.get(channel_key)
        if history is None:
            history = self._history[channel_key] = {}
            if len(self._history) > self._settings.max_tracked_channels:
                self._history.popitem(last=False)
        else:
            self._history.move_to_end(channel_key)
        history[image_id] = None
        while len(history) > self._settings.repeat_window:
            del history[next(iter(history))]

    def _release(self, entries: Iterable[_Entry], request: ImageRequest) -> None:
        """Undo reservations of images that were never shown; used-up entries come back."""
        now = self._clock()
        history = self._history.get(request.channel_key)
        for entry in entries:
            image_id = entry.image.id
            if history is not None:
                history.pop(image_id, None)
            held = entry.audiences.get(request.audience, 0)
            if held > 0:
                if held == 1:
                    del entry.audiences[request.audience]
                else:
                    entry.audiences[request.audience] = held - 1
                entry.uses -= 1
            if entry.uses >= self._settings.max_uses:
                continue  # a spent image (taken by a background request) stays spent
            self._spent.pop(image_id, None)
            if image_id not in self._entries and entry.deadline > now:
                self._entries[image_id] = entry
                heapq.heappush(self._deadlines, (entry.deadline, entry.seq, image_id))
        self._enforce_capacity(set())

    # ------------------------------------------------------------------ waiting and fairness

    def _turns_for(self, audience: Hashable) -> _Turns:
        turns = self._turns.get(audience)
        if turns is None:
            turns = self._turns[audience] = _Turns()
            if len(self._turns) > _MAX_TRACKED_AUDIENCES:
                self._turns.popitem(last=False)
        else:
            self._turns.move_to_end(audience)
        return turns

    def _schedule(self) -> None:
        """Start upstream calls for waiting requests, up to the concurrency limits.

        Members' sets take the fetch slots; sets only background requests wait on get one
        fetch of their own at a time, at background priority, so they never hold a slot a
        member could use.
        """
        estimator = self._estimator
        busy = bool(self._member_keys) or (
            estimator is not None
            and (
                estimator.queue_length > 0
                or estimator.members_idle_for() < self._settings.background_idle
            )
        )
        slots = self._settings.max_concurrent_fetches
        if self._fetch_slots is not None:
            slots = max(slots, self._fetch_slots())
        for background, flights, limit in (
            (False, self._in_flight, slots),
            (True, self._background_flights, 0 if busy else 1),
        ):
            while len(flights) < limit:
                key = self._next_fetch_key(background=background)
                if key is None:
                    break
                task = asyncio.create_task(
                    self._fetch_for_waiters(key, background=background), name="image-pool-fetch"
                )
                flights[key] = task

    def _fetchable(self, waiter: _Waiter, *, background: bool) -> bool:
        """Whether a fetch for ``waiter``'s set may start in the ``background`` lane (or the
        members' lane): a member's set may be fetched even while a background fetch for it waits
        (that is how a member is never held at background priority)."""
        key = waiter.key
        if key in self._in_flight:
            return False
        if background:
            return key not in self._background_flights and key not in self._member_keys
        return not waiter.request.background

    def _next_fetch_key(self, *, background: bool = False) -> CategoryKey | None:
        """The category set of the oldest request of the audience served least recently."""
        best: tuple[tuple[int, int], Hashable, CategoryKey] | None = None
        for audience, queue in self._queues.items():
            waiter = next((w for w in queue if self._fetchable(w, background=background)), None)
            if waiter is None:
                continue
            rank = (self._turns_for(audience).fetch, waiter.seq)
            if best is None or rank < best[0]:
                best = (rank, audience, waiter.key)
        if best is None:
            return None
        self._turns_for(best[1]).fetch = next(self._turn_counter)
        return best[2]

    async def _fetch_for_waiters(self, key: CategoryKey, *, background: bool = False) -> None:
        flights = self._background_flights if background else self._in_flight
        priority = self._background if background else self._interactive
        try:
            waiting = [w.request for w in self._waiters_for(key)]
            low = min((r.min_rating for r in waiting), default=Rating.SFW)
            high = max((r.max_rating for r in waiting), default=Rating.SFW)
            images, error = await self._call_upstream(key, priority, low, high)
        except asyncio.CancelledError:
            flights.pop(key, None)
            for waiter in self._waiters_for(key):
                self._unqueue(waiter)
                waiter.future.cancel()
            raise
        flights.pop(key, None)
        self._land(key, images, error, for_waiters=True)
        self._schedule()

    async def _call_upstream(
        self, key: CategoryKey, priority: Any, low: Rating, high: Rating
    ) -> tuple[tuple[Image, ...], Exception | None]:
        """One upstream call for ``key``, asking (where the API can filter) for ``low..high``."""
        self._counters.upstream_calls += 1
        filters: dict[str, Any] = {}
        settings = self._settings
        if settings.rating_filter:
            # Passed only when the API filters, so a v1-shaped source is called as before.
            high = min(high, settings.upstream_max_rating)
            filters["ratings"] = [r for r in Rating if low <= r <= high]
            if high is Rating.SFW and settings.sfw_exclude_tags:
                filters["without_tags"] = settings.sfw_exclude_tags
        try:
            page = await self._source.random_images(
                categories=sorted(key),
                limit=settings.batch_size,
                expiry=settings.upstream_expiry,
                priority=priority,
                **filters,
            )
        except NotFound:
            # The server samples ~20% of its table: a 404 here is "nothing this time".
            self._counters.upstream_not_found += 1
            return (), None
        except Exception as exc:  # every failure must reach the waiters, never strand them
            self._counters.upstream_errors += 1
            # Prefetch retries every round; only failures a member sees are worth a warning.
            level = logging.DEBUG if priority is self._background else logging.WARNING
            log.log(level, "random images %s failed: %s", sorted(key), exc)
            return (), exc
        self._counters.upstream_images += len(page.items)
        if self._observe is not None and page.items:
            self._observe(page.items)
        return page.items, None

    def _recent_barren(self, key: CategoryKey, now: float) -> int:
        """Calls for ``key`` that returned nothing within the last ``barren_memory`` seconds."""
        times = self._barren.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self._settings.barren_memory:
            times.popleft()
        if not times:
            del self._barren[key]
        return len(times)

    def _note_yield(self, key: CategoryKey, images: tuple[Image, ...], now: float) -> None:
        """Remember an empty answer for ``key``; any image clears the memory."""
        if images:
            self._barren.pop(key, None)
        elif self._settings.barren_memory > 0:
            times = self._barren.setdefault(key, deque(maxlen=self._settings.max_attempts))
            times.append(now)
            if len(self._barren) > self._settings.max_demand_keys:
                del self._barren[next(iter(self._barren))]

    def _waiters_for(self, key: CategoryKey) -> list[_Waiter]:
        return [w for queue in self._queues.values() for w in queue if w.key == key]

    def _land(
        self,
        key: CategoryKey,
        images: tuple[Image, ...],
        error: Exception | None,
        *,
        for_waiters: bool,
    ) -> list[str]:
        """Pool a batch, deal it to waiting requests, and settle the ones out of attempts."""
        now = self._clock()
        self._purge(now)
        if error is None:
            self._note_yield(key, images, now)
        batch = self._add(images, now)
        own = self._waiters_for(key) if for_waiters else []
        barren: dict[_Waiter, bool] = {}
        before: dict[_Waiter, int] = {}
        entries = self._batch_entries(batch)
        for waiter in own:
            waiter.upstream_calls += 1
            before[waiter] = len(waiter.images)
            barren[waiter] = not self._pick(waiter.request, 1, now, entries, reserve=False)
            waiter.shown_here = barren[waiter] and self._shown_here(waiter.request, entries, now)
        self._deal(batch, now)
        for waiter in own:
            if waiter.future.done():
                continue
            if error is not None:
                self._settle(waiter, error)
                continue
            # Only a call that gave this request its turn counts: it brought nothing the request
            # may show, or the request got images from it. Losing out to others does not count.
            if barren[waiter] or len(waiter.images) > before[waiter]:
                waiter.attempts += 1
            # While others wait, a request stops at an attempt once it holds images, or at one
            # that brought images of its set none of which it may show (its channel showed
            # them, or they are rated above it or gated): the API's sample of the set is what
            # more calls would mostly bring again. Only an empty answer (a rare set the sample
            # missed) is worth all ``max_attempts``.
            fruitless = barren[waiter] and bool(entries)
            if waiter.attempts >= self._settings.max_attempts or (
                (fruitless or (waiter.attempts and (waiter.images or waiter.held)))
                and self._others_waiting(waiter)
            ):
                self._settle(waiter)
        return batch

    def _shown_here(self, request: ImageRequest, entries: list[_Entry], now: float) -> bool:
        """Whether ``entries`` hold an image ``request`` could show but for its channel's
        no-repeat window."""
        history = self._history.get(request.channel_key)
        if not history:
            return False
        return any(
            e.image.id in history
            and e.deadline > now
            and request.min_rating <= e.image.rating <= request.max_rating
            and request.categories <= e.names
            and request.accept(e.image)
            for e in entries
        )

    def _others_waiting(self, waiter: _Waiter) -> bool:
        """Whether requests for other category sets wait on upstream (busy-partial rule); a
        member settles early only for other members, whom its further attempts would delay."""
        waiting = self._waiting_keys if waiter.request.background else self._member_keys
        return self._settings.partial_when_busy and any(k != waiter.key for k in waiting)

    def _batch_entries(self, batch: list[str]) -> list[_Entry]:
        return [self._entries[i] for i in batch if i in self._entries]

    def _deal(self, batch: list[str], now: float) -> None:
        """Give a batch out one image per turn, audiences served least recently first."""
        if not batch:
            return
        # A waiter the batch could not serve once cannot be served by what is left of it.
        done_with: set[_Waiter] = set()
        # Members first; background requests (scheduled posts) get what members leave.
        for background in (False, True):
            self._deal_round(batch, now, done_with, background=background)

    def _deal_round(
        self, batch: list[str], now: float, done_with: set[_Waiter], *, background: bool
    ) -> None:
        progressed = True
        while progressed and self._queues:
            progressed = False
            order = sorted(
                self._queues, key=lambda a: (self._turns_for(a).image, self._queues[a][0].seq)
            )
            for audience in order:
                for waiter in list(self._queues.get(audience, ())):
                    if waiter in done_with or waiter.request.background is not background:
                        continue
                    got = self._pick(waiter.request, 1, now, self._batch_entries(batch))
                    if not got:
                        done_with.add(waiter)
                        continue
                    waiter.reserved.extend(got)
                    waiter.images.extend(entry.image for entry in got)
                    self._turns_for(audience).image = next(self._turn_counter)
                    progressed = True
                    if waiter.needed == 0:
                        self._settle(waiter)
                    break

    def _may_reuse(self, request: ImageRequest, arrived: float, now: float) -> bool:
        """Whether a member waiting since ``arrived`` may take images others used up."""
        after = self._settings.reuse_after
        return not request.background and after > 0 and now - arrived >= after

    def _reuse_pick(self, request: ImageRequest, wanted: int, now: float) -> list[_Entry]:
        """Up to ``wanted`` images other servers used up, reserved for a member's ``request``."""
        got = self._pick(request, wanted, now, self._spent.values(), spent=True)
        self._counters.reused += len(got)
        return got

    def _arm_reuse(self, waiter: _Waiter, delay: float) -> None:
        waiter.timer = asyncio.get_running_loop().call_later(delay, self._reuse_spent, waiter)

    def _reuse_spent(self, waiter: _Waiter) -> None:
        """``reuse_after`` passed and ``waiter`` (a member) is still short: give it images other
        servers used up; settle when that fills it, or, with some images, when others wait.
        Still short, it looks again every ``reuse_after`` (members keep using images up)."""
        waiter.timer = None
        if waiter.future.done() or waiter.needed <= 0:
            return
        now = self._clock()
        self._purge(now)
        got = self._reuse_pick(waiter.request, waiter.needed, now)
        waiter.reserved.extend(got)
        waiter.images.extend(entry.image for entry in got)
        waiter.reused.update(entry.image.id for entry in got)
        if waiter.needed == 0 or (got and self._others_waiting(waiter)):
            self._settle(waiter)
            self._schedule()
        else:
            self._arm_reuse(waiter, self._settings.reuse_after)

    def _unqueue(self, waiter: _Waiter) -> bool:
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        queue = self._queues.get(waiter.audience)
        if queue is None or waiter not in queue:
            return False
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.audience]
        counts = [self._waiting_keys]
        if not waiter.request.background:
            counts.append(self._member_keys)
        for count in counts:
            remaining = count.get(waiter.key, 0) - 1
            if remaining > 0:
                count[waiter.key] = remaining
            else:
                count.pop(waiter.key, None)
        return True

    def _settle(self, waiter: _Waiter, error: Exception | None = None) -> None:
        self._unqueue(waiter)
        if waiter.future.done():
            return
        if error is not None and not waiter.images:
            waiter.future.set_exception(error)
            return
        if waiter.needed == 0:
            status = ServeStatus.FULL
        elif waiter.images:
            status = ServeStatus.PARTIAL
            self._counters.partial += 1
        else:
            status = ServeStatus.NOTHING_MATCHED
            self._counters.nothing_matched += 1
        self._counters.images_served += len(waiter.images)
        waiter.future.set_result(
            ServeResult(
                tuple(waiter.images),
                status,
                waiter.upstream_calls,
                error,
                frozenset(waiter.reused),
                shown_here=status is ServeStatus.NOTHING_MATCHED and waiter.shown_here,
            )
        )

    def _abandon(self, waiter: _Waiter) -> None:
        """The caller gave up: leave the queue and put its images back."""
        self._unqueue(waiter)
        if waiter.future.done() and not waiter.future.cancelled():
            if waiter.future.exception() is None:
                self._counters.images_served -= len(waiter.images)
        else:
            waiter.future.cancel()
        self._release(waiter.reserved, waiter.request)

    # ------------------------------------------------------------------ demand and prefetch

    def _note_demand(self, key: CategoryKey, now: float) -> None:
        demand = self._demand.get(key)
        if demand is None:
            self._demand[key] = _Demand(1.0, now)
            if len(self._demand) > self._settings.max_demand_keys:
                self._forget_cold_demand(now)
            return
        demand.score = self._decayed(demand, now) + 1.0
        demand.updated = now

    def _decayed(self, demand: _Demand, now: float) -> float:
        elapsed = max(0.0, now - demand.updated)
        return demand.score * math.pow(0.5, elapsed / self._settings.demand_half_life)

    def _forget_cold_demand(self, now: float) -> None:
        ranked = sorted(self._demand.items(), key=lambda kv: self._decayed(kv[1], now))
        for key, _ in ranked[: len(ranked) // 2]:
            del self._demand[key]
            self._prefetch_backoff.pop(key, None)

    def _hot_keys(self, now: float) -> list[CategoryKey]:
        scored = [(self._decayed(d, now), key) for key, d in self._demand.items()]
        hot = [(score, key) for score, key in scored if score >= self._settings.hot_threshold]
        hot.sort(key=lambda item: (-item[0], sorted(item[1])))
        return [key for _, key in hot[: self._settings.max_hot_keys]]

    def _next_prefetch_key(self, now: float) -> CategoryKey | None:
        for key in self._hot_keys(now):
            if key in self._in_flight or key in self._background_flights:
                continue
            if self._prefetch_backoff.get(key, 0.0) > now:
                continue
            if self._stock(key, now) < self._settings.prefetch_target:
                return key
        return None

    async def _prefetch_turn(self) -> None:
        try:
            fetched = await self.prefetch_once()
        except Exception:  # the loop outlives any one round's failure
            log.exception("prefetch round failed")
            fetched = False
        await self._sleep(0.0 if fetched else self._settings.prefetch_interval)
