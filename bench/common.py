"""What every benchmark shares: the three bots compared, Discord's acknowledgement clock, figures.

Each benchmark drives the bot's command logic in-process (there is no Discord emulator yet):
exactly the :class:`~bot.replies.Replies` calls the ``/neko`` cog makes once it has read the
channel's allowed maximum. The upstream is :class:`~tests.fakes.nekos_api.FakeNekosAPI` over
loopback HTTP with its real rate limiter (1 request per second per IP, a one-hour block after ten
429s within the hour). Every variant gets its own fake, so no variant inherits another's IP state.

The variants:

* ``pooled`` — the bot as it runs: paced :class:`~bot.nekos.NekosClient`, :class:`ImagePool`
  (with its prefetch loop started) and :class:`CachedLookups`.
* ``naive-paced`` — the fair baseline: the same paced client, but one upstream call per command
  (``/image/random`` with ``limit=count``; lookups uncached).
* ``naive-unpaced`` — what a typical bot does: one plain aiohttp GET per command, no pacer.

Discord's 3-second acknowledgement is modelled as the cog does it (:func:`bot.responding.respond`):
it answers at once when the reply is ready within 2.0 s; it defers at once when the pool (for
``random``) or the pacer's wait (the other commands) says the reply will be late; otherwise it waits
2.0 s and then defers. A deferral is an acknowledgement. So a command counts as acknowledged within
3 s when its reply was ready within 2 s of its arrival or it was deferred within 3 s of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import aiohttp
import psutil  # type: ignore[import-untyped]  # no stubs in the environment

from bot.budget import RequestBudget, open_budget
from bot.catalog import Catalog, CatalogSource
from bot.config import settings_from_mapping
from bot.gating import RefusalCounter
from bot.nekos import NekosClient, NekosError, NotFound
from bot.nekos.capabilities import V1_CAPABILITIES
from bot.nekos.client import error_from_response
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Image,
    Page,
    Rating,
    Stats,
    parse_artist_data,
    parse_category_data,
    parse_character_data,
    parse_image_data,
    parse_one,
    parse_page,
    parse_stats_data,
)
from bot.nekos.pacing import DEFAULT_INTERVAL, DEFAULT_MARGIN, Pacer, Priority
from bot.nekos.search import RawPattern, search_pattern
from bot.replies import Replies, Reply, error_reply
from bot.responding import DEFER_AFTER
from bot.serving import (
    CachedLookups,
    ImagePool,
    ImageRequest,
    PoolMetrics,
    PoolSettings,
    ServeResult,
    ServeStatus,
)
from bot.serving.assembly import make_lookups, make_pool
from bot.serving.pool import ImageServer
from bot.serving.protocols import LookupSource, RandomImageSource
from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

__all__ = [
    "ACK_DEADLINE",
    "NAIVE_PACED",
    "NAIVE_UNPACED",
    "POOLED",
    "QUICK_LIMITS",
    "REAL_LIMITS",
    "SLOW_WAIT",
    "VARIANTS",
    "CatalogLists",
    "Commands",
    "Limits",
    "Outcome",
    "PassThroughLookups",
    "PassThroughPool",
    "PlainGetClient",
    "RssSampler",
    "Stack",
    "Summary",
    "add_common_arguments",
    "build_catalog",
    "configure_logging",
    "describe_settings",
    "figure",
    "fmt_errors",
    "fmt_pct",
    "fmt_seconds",
    "load_catalog_lists",
    "open_stack",
    "open_variant_budget",
    "pool_settings_from",
    "selected_variants",
    "summarize",
]

log = logging.getLogger(__name__)

ACK_DEADLINE = 3.0
"""Seconds Discord allows for the first response to an interaction."""
SLOW_WAIT = 1.5
"""The cog defers artist/character/image/stats at once when the pacer's wait exceeds this."""

POOLED = "pooled"
NAIVE_PACED = "naive-paced"
NAIVE_UNPACED = "naive-unpaced"
VARIANTS = (POOLED, NAIVE_PACED, NAIVE_UNPACED)


# ---------------------------------------------------------------------- the upstream's limit


@dataclass(frozen=True, slots=True)
class Limits:
    """The upstream's rate limit (``requests`` per ``per_seconds`` at the fake) and the pacing.

    The real limit is one request per second, paced one per second plus the bot's margin.
    ``--quick`` smoke runs use ten per second paced at eight, so they take seconds; the fake's
    ``X-RateLimit-Reset`` is in whole seconds, so a sub-second window would make the pacer hold a
    full second whenever ``Remaining`` reaches 0, hence the wider window rather than a shorter one.
    """

    requests: int = 1
    per_seconds: float = DEFAULT_INTERVAL
    pacer_interval: float = DEFAULT_INTERVAL

    @property
    def fake_rate_limit(self) -> tuple[int, float]:
        return (self.requests, self.per_seconds)

    @property
    def margin(self) -> float:
        return DEFAULT_MARGIN * self.pacer_interval / DEFAULT_INTERVAL

    @property
    def spacing(self) -> float:
        """Seconds between upstream calls the pacer keeps."""
        return self.pacer_interval + self.margin

    def describe(self) -> str:
        return (
            f"upstream limit {self.requests} per {self.per_seconds:g}s, "
            f"pacer spacing {self.spacing:.3f}s"
        )

    def pacer(self, budget: RequestBudget) -> Pacer:
        """A pacer keeping this spacing, sharing ``budget`` as the bot's does."""
        return budget.pacer(interval=self.pacer_interval, margin=self.margin)


REAL_LIMITS = Limits()
QUICK_LIMITS = Limits(requests=10, per_seconds=1.0, pacer_interval=0.125)


# ---------------------------------------------------------------------- the naive bots


class PlainGetClient:
    """The unpaced naive bot's upstream: one plain aiohttp GET per call, no pacer, no retries.

    Errors are mapped with the adapter's :func:`error_from_response` so replies read the same.
    ``priority`` is accepted for interface compatibility and ignored: nothing is queued.
    """

    capabilities = V1_CAPABILITIES
    """It speaks v1, like the fake it is pointed at."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    async def _get(self, path: str, endpoint: str, params: Mapping[str, str] | None = None) -> Any:
        async with self._session.get(self._base_url + path, params=params) as response:
            body = await response.read()
            if response.status != 200:
                raise error_from_response(
                    response.status, body, response.headers, endpoint=endpoint
                )
        return json.loads(body)

    @staticmethod
    def _list_params(search: str | None, limit: int, offset: int) -> dict[str, str]:
        params = {"limit": str(limit)}
        if offset:
            params["offset"] = str(offset)
        if search:
            params["search"] = search_pattern(search)
        return params

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        priority: Any = Priority.INTERACTIVE,
    ) -> Page[Image]:
        endpoint = "GET /image/random"
        params = {"limit": str(limit)}
        if names := ",".join(categories):
            params["categories"] = names
        return parse_page(
            await self._get("/image/random", endpoint, params), parse_image_data, endpoint
        )

    async def image(
        self, id: str, expiry: int | None = None, *, priority: Any = Priority.INTERACTIVE
    ) -> Image:
        endpoint = "GET /image/{id}"
        return parse_one(await self._get(f"/image/{id}", endpoint), parse_image_data, endpoint)

    async def artist(self, id: str, *, priority: Any = Priority.INTERACTIVE) -> Artist:
        endpoint = "GET /artist/{id}"
        return parse_one(await self._get(f"/artist/{id}", endpoint), parse_artist_data, endpoint)

    async def artist_images(
        self,
        id: str,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Any = Priority.INTERACTIVE,
    ) -> Page[Image]:
        endpoint = "GET /artist/{id}/images"
        body = await self._get(
            f"/artist/{id}/images", endpoint, self._list_params(None, limit, offset)
        )
        return parse_page(body, parse_image_data, endpoint)

    async def character(self, id: str, *, priority: Any = Priority.INTERACTIVE) -> Character:
        endpoint = "GET /character/{id}"
        body = await self._get(f"/character/{id}", endpoint)
        return parse_one(body, parse_character_data, endpoint)

    async def categories(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Any = Priority.INTERACTIVE,
    ) -> Page[Category]:
        endpoint = "GET /category"
        body = await self._get("/category", endpoint, self._list_params(search, limit, offset))
        return parse_page(body, parse_category_data, endpoint)

    async def artists(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Any = Priority.INTERACTIVE,
    ) -> Page[Artist]:
        endpoint = "GET /artist"
        body = await self._get("/artist", endpoint, self._list_params(search, limit, offset))
        return parse_page(body, parse_artist_data, endpoint)

    async def characters(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Any = Priority.INTERACTIVE,
    ) -> Page[Character]:
        endpoint = "GET /character"
        body = await self._get("/character", endpoint, self._list_params(search, limit, offset))
        return parse_page(body, parse_character_data, endpoint)

    async def stats(self, *, priority: Any = Priority.INTERACTIVE) -> Stats:
        endpoint = "GET /stats"
        return parse_one(await self._get("/stats", endpoint), parse_stats_data, endpoint)


class PassThroughPool:
    """A naive bot's serving (an :class:`ImageServer`): one upstream call per command.

    Each request asks ``/image/random`` for ``limit=count`` images of its categories and shows
    those its gating filter accepts; nothing is kept, shared or fetched ahead. It defers at once
    when the pacer's wait is long, as the cog does for its other commands.
    """

    def __init__(self, source: RandomImageSource, pacer: Pacer | None) -> None:
        self._source = source
        self._pacer = pacer
        self._requests = 0
        self._images_served = 0
        self._upstream_calls = 0
        self._upstream_images = 0
        self._not_found = 0
        self._errors = 0
        self._partial = 0
        self._nothing_matched = 0

    def peek_image(self, image_id: str) -> Image | None:
        return None  # no pool: every /neko image is an upstream call

    async def take(self, request: ImageRequest) -> ServeResult:
        """Serve ``request`` with one upstream call; upstream errors propagate."""
        self._requests += 1
        try:
            page = await self._source.random_images(
                categories=sorted(request.categories),
                limit=request.count,
                priority=Priority.INTERACTIVE,
            )
        except NotFound:
            self._upstream_calls += 1
            self._not_found += 1
            self._nothing_matched += 1
            return ServeResult((), ServeStatus.NOTHING_MATCHED, 1)
        except NekosError as exc:
            # Counted only if it reached the server: a pacer refusal never did.
            self._upstream_calls += exc.status is not None
            self._errors += 1
            raise
        self._upstream_calls += 1
        self._upstream_images += len(page.items)
        shown = tuple(
            image
            for image in page.items
            if image.rating <= request.max_rating and request.accept(image)
        )[: request.count]
        self._images_served += len(shown)
        if len(shown) == request.count:
            status = ServeStatus.FULL
        elif shown:
            status = ServeStatus.PARTIAL
            self._partial += 1
        else:
            status = ServeStatus.NOTHING_MATCHED
            self._nothing_matched += 1
        return ServeResult(shown, status, 1)

    def should_defer(self, request: ImageRequest) -> bool:
        """Whether the pacer's queue makes the reply late (never, without a pacer)."""
        return self._pacer is not None and self._pacer.estimated_wait() > SLOW_WAIT

    def metrics(self) -> PoolMetrics:
        """Counters in the pool's shape; the stock-related ones are always zero."""
        return PoolMetrics(
            requests=self._requests,
            images_served=self._images_served,
            pool_hits=0,
            pool_misses=self._requests,
            coalesced_waits=0,
            upstream_calls=self._upstream_calls,
            prefetch_calls=0,
            upstream_images=self._upstream_images,
            upstream_not_found=self._not_found,
            upstream_errors=self._errors,
            partial=self._partial,
            nothing_matched=self._nothing_matched,
            reused=0,
            expired=0,
            evicted=0,
            pool_size=0,
            waiting=0,
            hot_keys=0,
        )

    def start(self) -> None:
        """Nothing runs in the background of a pass-through."""

    async def stop(self) -> None:
        """Nothing runs in the background of a pass-through."""


class PassThroughLookups:
    """A naive bot's lookups: every call goes upstream, nothing cached or shared."""

    def __init__(self, source: LookupSource, page_size: int = 25, max_pages: int = 40) -> None:
        self._source = source
        self._page_size = page_size
        self._max_pages = max_pages
        self.upstream_calls = 0

    async def image(self, image_id: str) -> Image:
        self.upstream_calls += 1
        return await self._source.image(image_id, priority=Priority.INTERACTIVE)

    async def artist(self, artist_id: str) -> Artist:
        self.upstream_calls += 1
        return await self._source.artist(artist_id, priority=Priority.INTERACTIVE)

    async def artist_images(self, artist_id: str, limit: int = 25, offset: int = 0) -> Page[Image]:
        self.upstream_calls += 1
        return await self._source.artist_images(
            artist_id, limit=limit, offset=offset, priority=Priority.INTERACTIVE
        )

    async def character(self, character_id: str) -> Character:
        self.upstream_calls += 1
        return await self._source.character(character_id, priority=Priority.INTERACTIVE)

    async def stats(self) -> Stats:
        self.upstream_calls += 1
        return await self._source.stats(priority=Priority.INTERACTIVE)

    async def artist_search(self, pattern: str) -> tuple[Artist, ...]:
        self.upstream_calls += 1
        page = await self._source.artists(
            RawPattern(pattern), limit=25, priority=Priority.INTERACTIVE
        )
        return page.items

    async def character_search(self, pattern: str) -> tuple[Character, ...]:
        self.upstream_calls += 1
        page = await self._source.characters(
            RawPattern(pattern), limit=25, priority=Priority.INTERACTIVE
        )
        return page.items

    async def category_list(self) -> tuple[Category, ...]:
        items: list[Category] = []
        for page_number in range(self._max_pages):
            self.upstream_calls += 1
            page = await self._source.categories(
                None,
                limit=self._page_size,
                offset=page_number * self._page_size,
                priority=Priority.INTERACTIVE,
            )
            items.extend(page.items)
            if len(page.items) < self._page_size:
                break
        return tuple(items)


# ---------------------------------------------------------------------- one bot under test


@dataclass(frozen=True, slots=True)
class CatalogLists:
    """The full lists the bot's catalogue holds for autocomplete and name lookups."""

    categories: tuple[Category, ...]
    artists: tuple[Artist, ...]
    characters: tuple[Character, ...]


async def load_catalog_lists(fake: FakeNekosAPI, session: aiohttp.ClientSession) -> CatalogLists:
    """Read the lists with a rate-limit-exempt token, so start-up does not eat the measured time.

    The bot loads them at start-up (and every 30 minutes); a bypass token's requests are not
    counted against the IP by the fake, so the measured client starts with a clean window.
    """
    token = fake.add_token(["api:ratelimit:disabled"])
    async with NekosClient(fake.base_url, token, session=session) as warm:
        lookups = CachedLookups(
            warm,
            interactive_priority=Priority.INTERACTIVE,
            background_priority=Priority.BACKGROUND,
        )
        return CatalogLists(
            categories=await lookups.category_list(),
            artists=await lookups.artist_list(),
            characters=await lookups.character_list(),
        )


def build_catalog(lists: CatalogLists) -> Catalog:
    """A catalogue filled with ``lists`` (its refresh loop is not started)."""

    async def categories() -> tuple[Category, ...]:
        return lists.categories

    async def artists() -> tuple[Artist, ...]:
        return lists.artists

    async def characters() -> tuple[Character, ...]:
        return lists.characters

    catalog = Catalog(CatalogSource(categories, artists, characters))
    catalog.set_categories(lists.categories)
    catalog.set_artists(lists.artists)
    catalog.set_characters(lists.characters)
    return catalog


@dataclass
class Stack:
    """One bot under test, wired to its own fake upstream."""

    variant: str
    fake: FakeNekosAPI
    replies: Replies
    server: ImageServer
    lists: CatalogLists
    pacer: Pacer | None = None
    pool: ImagePool | None = None
    lookups: CachedLookups | None = None
    _mark_requests: int = 0
    _mark_429: int = 0

    def mark(self) -> None:
        """Start counting upstream traffic from now (start-up traffic is left out)."""
        self._mark_requests = len(self.fake.requests)
        self._mark_429 = self.fake.count_429

    def upstream_calls(
        self, start: float = -math.inf, end: float = math.inf, *, path: str = "/api"
    ) -> int:
        """Requests under ``path`` the fake received since :meth:`mark`, in ``[start, end)``."""
        return sum(
            1
            for record in self.fake.requests[self._mark_requests :]
            if record.path.startswith(path) and start <= record.time < end
        )

    @property
    def count_429(self) -> int:
        return self.fake.count_429 - self._mark_429

    @property
    def blocked(self) -> bool:
        return bool(self.fake.blocked_ips)

    def slow(self) -> bool:
        """The cog's ``_slow()``: whether the pacer's queue makes a lookup late."""
        return self.pacer is not None and self.pacer.estimated_wait() > SLOW_WAIT


@contextlib.asynccontextmanager
async def open_stack(
    variant: str,
    *,
    limits: Limits,
    pool_settings: PoolSettings | None = None,
    seed: int = 0,
) -> AsyncIterator[Stack]:
    """Start a fake upstream and wire ``variant`` to it, as ``bot.core`` / ``bot.preview`` do.

    The paced variants keep the request budget in a data folder of their own, as the bot does in
    its own (each variant's fake is a fresh IP, so no variant shares another's budget).
    """
    fake = FakeNekosAPI(generate_dataset(), rate_limit=limits.fake_rate_limit, seed=seed)
    async with (
        fake,
        aiohttp.ClientSession() as session,
        open_variant_budget(fake) as budget,
    ):
        lists = await load_catalog_lists(fake, session)
        catalog = build_catalog(lists)
        pacer: Pacer | None = None
        pool: ImagePool | None = None
        lookups: CachedLookups | None = None
        server: ImageServer
        lookup_layer: CachedLookups | PassThroughLookups
        if variant in (POOLED, NAIVE_PACED):
            pacer = limits.pacer(budget)
            api = NekosClient(fake.base_url, session=session, pacer=pacer)
            if variant == POOLED:
                # Wired exactly as the bot wires them (bot/serving/assembly.py).
                lookups = make_lookups(api)
                # The bot's lookups load these lists themselves at start-up (for autocomplete).
                lookups.prime(
                    categories=lists.categories, artists=lists.artists, characters=lists.characters
                )
                pool = make_pool(api, pool_settings or PoolSettings())
                server, lookup_layer = pool, lookups
            else:
                server, lookup_layer = PassThroughPool(api, pacer), PassThroughLookups(api)
        elif variant == NAIVE_UNPACED:
            plain = PlainGetClient(session, fake.base_url)
            server, lookup_layer = PassThroughPool(plain, None), PassThroughLookups(plain)
            # Replies only calls the client to search names missing from the catalogue (never
            # here: every name comes from it) and to download files (link delivery: never).
            api = cast(NekosClient, plain)
        else:
            raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        replies = Replies(
            pool=server,
            lookups=lookup_layer,
            catalog=catalog,
            api=api,
            refusals=RefusalCounter(),
            delivery="link",
        )
        stack = Stack(variant, fake, replies, server, lists, pacer, pool, lookups)
        stack.mark()
        server.start()
        try:
            yield stack
        finally:
            await server.stop()
            if lookups is not None:
                await lookups.stop()


@contextlib.asynccontextmanager
async def open_variant_budget(fake: FakeNekosAPI) -> AsyncIterator[RequestBudget]:
    """The request budget the bot would open against ``fake``, in a temporary data folder."""
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as folder:
        settings = settings_from_mapping({"DATA_DIR": folder, "NEKOS_API_BASE_URL": fake.base_url})
        async with open_budget(settings) as budget:
            yield budget


# ---------------------------------------------------------------------- commands and the clock


@dataclass(slots=True)
class Outcome:
    """One command's timeline (monotonic seconds); ``None`` where it never got that far."""

    kind: str
    arrived: float
    acked: float | None = None
    deferred: bool = False
    ready: float | None = None
    images: int = 0
    error: str | None = None
    """The upstream error's class name, when the member got an error message instead."""

    @property
    def answered(self) -> bool:
        return self.ready is not None

    @property
    def ok(self) -> bool:
        """Answered with what was asked for (images, a card, or an honest "nothing matched")."""
        return self.ready is not None and self.error is None

    @property
    def acked_in_time(self) -> bool:
        return self.acked is not None and self.acked - self.arrived <= ACK_DEADLINE


class Commands:
    """Runs ``/neko`` commands against a :class:`Stack` as the cog does, on Discord's clock.

    ``arrived`` is when the interaction reached the bot (the start of Discord's 3 seconds);
    every outcome is appended to :attr:`outcomes` when the command starts, so commands cut off
    at the end of a run still count.
    """

    def __init__(self, stack: Stack, clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.clock = clock
        self.outcomes: list[Outcome] = []

    def _open(self, kind: str, arrived: float | None) -> Outcome:
        outcome = Outcome(kind, self.clock() if arrived is None else arrived)
        self.outcomes.append(outcome)
        return outcome

    async def random(
        self,
        *,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        channel_max: Rating = Rating.SFW,
        categories: str | None = None,
        count: int = 1,
        arrived: float | None = None,
    ) -> Outcome:
        """``/neko random``: validate, ask the pool whether to defer, serve and render."""
        outcome = self._open("random", arrived)
        replies = self.stack.replies
        request = replies.random_request(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            channel_max=channel_max,
            requested=None,
            categories=categories,
            count=count,
        )
        defer_now = isinstance(request, ImageRequest) and self.stack.server.should_defer(request)
        await self._respond(outcome, lambda: replies.random(request), defer_now=defer_now)
        return outcome

    async def artist(
        self, *, user_id: int, channel_max: Rating, name: str, arrived: float | None = None
    ) -> Outcome:
        """``/neko artist``."""
        outcome = self._open("artist", arrived)
        replies = self.stack.replies
        await self._respond(
            outcome,
            lambda: replies.artist(user_id=user_id, channel_max=channel_max, name=name),
            defer_now=self.stack.slow(),
        )
        return outcome

    async def character(self, *, name: str, arrived: float | None = None) -> Outcome:
        """``/neko character``."""
        outcome = self._open("character", arrived)
        replies = self.stack.replies
        await self._respond(
            outcome, lambda: replies.character(name=name), defer_now=self.stack.slow()
        )
        return outcome

    async def image(
        self, *, image_id: str, channel_max: Rating, arrived: float | None = None
    ) -> Outcome:
        """``/neko image``."""
        outcome = self._open("image", arrived)
        replies = self.stack.replies
        await self._respond(
            outcome,
            lambda: replies.image(image_id=image_id, channel_max=channel_max),
            defer_now=self.stack.slow(),
        )
        return outcome

    async def category(
        self, *, user_id: int, channel_max: Rating, search: str = "", arrived: float | None = None
    ) -> Outcome:
        """``/neko category`` (the cog never defers it at once: the catalogue answers)."""
        outcome = self._open("category", arrived)
        replies = self.stack.replies
        await self._respond(
            outcome,
            lambda: replies.category(user_id=user_id, channel_max=channel_max, search=search),
            defer_now=False,
        )
        return outcome

    async def stats(self, *, arrived: float | None = None) -> Outcome:
        """``/neko stats``."""
        outcome = self._open("stats", arrived)
        await self._respond(outcome, self.stack.replies.stats, defer_now=self.stack.slow())
        return outcome

    async def _respond(
        self, outcome: Outcome, work: Callable[[], Awaitable[Reply]], *, defer_now: bool
    ) -> None:
        """:func:`bot.responding.respond`'s timing, with the Discord calls replaced by clocks."""
        task: asyncio.Future[Reply] = asyncio.ensure_future(work())
        try:
            if not defer_now:
                await asyncio.wait({task}, timeout=DEFER_AFTER)
            # Either the reply itself (ready within 2 s) or the deferral acknowledges now.
            outcome.acked = self.clock()
            outcome.deferred = not task.done()
            try:
                reply = await task
            except NekosError as exc:
                outcome.error = type(exc).__name__
                reply = error_reply(exc)
            except Exception as exc:  # the cog answers these with a notice; count and log them
                log.exception("Unexpected failure in %s", outcome.kind)
                outcome.error = f"unexpected {type(exc).__name__}"
                reply = error_reply(exc)
            outcome.ready = self.clock()
            if outcome.kind in ("random", "image") and not reply.ephemeral:
                outcome.images = len(reply.embeds)
        finally:
            if not task.done():
                task.cancel()


# ---------------------------------------------------------------------- figures


@dataclass(frozen=True, slots=True)
class Summary:
    """Figures over a set of outcomes."""

    commands: int
    answered: int
    ok: int
    with_images: int
    images: int
    acked_within_3s: float
    """Share of all commands acknowledged (answered or deferred) within 3 s of arrival."""
    ready_within_3s: float
    """Share whose final reply was ready within 3 s (what a bot that never defers would get)."""
    deferred: int
    p50_final: float | None
    p99_final: float | None
    p50_is_lower_bound: bool
    p99_is_lower_bound: bool
    errors: Mapping[str, int] = field(default_factory=dict)


def _quantile(values: Sequence[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    # statistics' "inclusive" method interpolates between order statistics (like numpy's default).
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summarize(outcomes: Sequence[Outcome], *, now: float) -> Summary:
    """Figures for ``outcomes``; unanswered commands count as having waited until ``now``.

    A percentile is marked as a lower bound when an unanswered command's wait could move it.
    """
    latencies = [(o.ready if o.ready is not None else now) - o.arrived for o in outcomes]
    censored = [now - o.arrived for o in outcomes if o.ready is None]
    smallest_censored = min(censored) if censored else math.inf
    p50 = _quantile(latencies, 0.50) if latencies else None
    p99 = _quantile(latencies, 0.99) if latencies else None
    total = len(outcomes) or 1
    return Summary(
        commands=len(outcomes),
        answered=sum(1 for o in outcomes if o.answered),
        ok=sum(1 for o in outcomes if o.ok),
        with_images=sum(1 for o in outcomes if o.images),
        images=sum(o.images for o in outcomes),
        acked_within_3s=sum(1 for o in outcomes if o.acked_in_time) / total,
        ready_within_3s=sum(
            1 for o in outcomes if o.ready is not None and o.ready - o.arrived <= ACK_DEADLINE
        )
        / total,
        deferred=sum(1 for o in outcomes if o.deferred),
        p50_final=p50,
        p99_final=p99,
        p50_is_lower_bound=p50 is not None and p50 >= smallest_censored,
        p99_is_lower_bound=p99 is not None and p99 >= smallest_censored,
        errors=dict(Counter(o.error for o in outcomes if o.error is not None)),
    )


def fmt_seconds(value: float | None, lower_bound: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{'>=' if lower_bound else ''}{value:.2f}s"


def fmt_pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def fmt_errors(errors: Mapping[str, int]) -> str:
    return ",".join(f"{name}:{n}" for name, n in sorted(errors.items())) or "none"


def figure(bench: str, variant: str, fields: Mapping[str, object]) -> str:
    """Print one figure line, ``bench variant: key=value ...``, and return it."""
    line = f"{bench} {variant}: " + " ".join(f"{key}={value}" for key, value in fields.items())
    print(line, flush=True)
    return line


class RssSampler:
    """Samples a process's resident set size in the background and keeps the peak (MiB).

    ``pid`` defaults to this process; a process that has gone leaves the peak as it was.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        self._process = psutil.Process(pid)
        self._own = pid is None
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.start_mib = 0.0
        self.peak_mib = 0.0

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_mib = max(self.peak_mib, self._process.memory_info().rss / 2**20)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> RssSampler:
        if self._own:
            gc.collect()
        self._sample()
        self.start_mib = self.peak_mib
        self._task = asyncio.create_task(self._run(), name="rss-sampler")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()


# ---------------------------------------------------------------------- command line


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few-second smoke run: tiny load, upstream limit scaled to 1 per 0.1 s",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: all)",
    )
    parser.add_argument(
        "--pool-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a PoolSettings field for the pooled variant (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the load and the fake")
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings")


def selected_variants(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {VARIANTS}")
    return names


def pool_settings_from(pairs: Sequence[str], base: PoolSettings | None = None) -> PoolSettings:
    """``base`` (default: the bot's defaults) with ``NAME=VALUE`` overrides applied."""
    settings = base or PoolSettings()
    fields = {f.name for f in dataclasses.fields(PoolSettings)}
    changes: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise SystemExit(
                f"--pool-setting wants NAME=VALUE with NAME a PoolSettings field: {pair}"
            )
        current = getattr(settings, name)
        if raw.strip().lower() == "none":
            changes[name] = None
        elif isinstance(current, float):
            changes[name] = float(raw)
        else:
            changes[name] = int(raw)
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def describe_settings(settings: PoolSettings) -> str:
    """The settings that differ from the bot's defaults, or ``defaults``."""
    default = PoolSettings()
    changed = [
        f"{f.name}={getattr(settings, f.name)}"
        for f in dataclasses.fields(PoolSettings)
        if getattr(settings, f.name) != getattr(default, f.name)
    ]
    return ",".join(changed) or "defaults"


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
