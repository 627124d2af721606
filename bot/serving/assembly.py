"""How the bot wires the serving layer to the adapter: one place, used by the bot, ``preview``,
``check`` and the benchmarks, so what is measured is what runs."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.budget import RequestBudget
from bot.config import Settings
from bot.gating import DEFAULT_POLICY, YOUTH_TAGS, ContentPolicy
from bot.nekos import NekosApi, NekosClient, NekosV4Client, Pacer, RequestObserver, make_client
from bot.nekos.errors import NotFound
from bot.nekos.models import Artist, Category, Character, Image, Page, Stats
from bot.nekos.pacing import Priority

from .lookups import CachedLookups, LookupSettings, SharedTier
from .pool import ImagePool, PoolSettings
from .protocols import LookupSource, RandomImageSource

if TYPE_CHECKING:  # imported only with REDIS_URL (bot.core)
    from .cluster import SharedPool

__all__ = ["ImagesOnlyLookups", "content_policy", "make_api", "make_lookups", "make_pool"]


def make_api(
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    budget: RequestBudget | None = None,
    observer: RequestObserver | None = None,
) -> NekosApi:
    """The client for the configured API version, paced at ``NEKOS_API_RATE``.

    With ``budget`` its pacer shares that request budget with the project's other processes
    (``bot.budget.open_budget``); without, it paces this process alone. ``observer`` (the
    bot's metrics) is told of every request's pacer wait and outcome.
    """
    token = settings.nekos_api_token.reveal() if settings.nekos_api_token else None
    interval = settings.nekos_api_interval
    return make_client(
        settings.nekos_api_version,
        settings.nekos_api_base_url,
        token,
        session=session,
        pacer=budget.pacer(interval=interval) if budget else Pacer(interval=interval),
        timeout=settings.api_timeout,
        observer=observer,
    )


def content_policy(settings: Settings) -> ContentPolicy:
    """The operator's content rules: the v4 opt-in and the youth deny-list with their additions."""
    return ContentPolicy(
        unverified_above_sfw=settings.v4_allow_above_sfw,
        youth_tags=YOUTH_TAGS | settings.v4_deny_tags,
    )


def make_pool(
    client: NekosApi,
    settings: PoolSettings | None = None,
    *,
    policy: ContentPolicy = DEFAULT_POLICY,
    rng: random.Random | None = None,
    observe: Callable[[Sequence[Image]], None] | None = None,
    cluster: SharedPool | None = None,
) -> ImagePool:
    """The random-image pool; its member-driven batches go ahead of single-member lookups.

    What the API can do shapes each call: the largest batch it gives, and (v4) asking only for
    the ratings the waiting requests may show, never above the policy's ceiling, with sfw calls
    leaving out tags that say otherwise. ``observe`` sees every batch (the tag catalogue).
    With ``cluster`` (``REDIS_URL``) the pool shares batches, use counts and channel windows with
    every process, and its calls go through the shared work queue; start the cluster's feed and
    fetcher with ``cluster.start()``.
    """
    caps = client.capabilities
    tuned = dataclasses.replace(
        settings or PoolSettings(),
        batch_size=caps.max_random_batch,
        rating_filter=caps.rating_filter,
        upstream_max_rating=policy.ceiling(caps.has_characters),
        sfw_exclude_tags=tuple(sorted(policy.not_sfw_tags)) if caps.tag_exclusion else (),
    )
    source: RandomImageSource = client
    if cluster is not None:
        source = cluster.shared_source(client, background_priority=Priority.BACKGROUND)
    pool = ImagePool(
        source,
        interactive_priority=Priority.SHARED,  # one batch feeds many members
        background_priority=Priority.BACKGROUND,
        settings=tuned,
        estimator=client.pacer,
        rng=rng,
        observe=observe,
        claims=cluster.claims(tuned) if cluster is not None else None,
        fetch_slots=cluster.fetch_slots if cluster is not None else None,
    )
    if cluster is not None:
        cluster.attach(pool, client, client.pacer, background_idle=tuned.background_idle)
    return pool


class ImagesOnlyLookups:
    """The lookups source for an API without artists, characters or categories (v4).

    Images and statistics come from the client; the catalogue is empty (lists have no rows and
    an id finds nothing), answered without a request, so nothing reaches for v1 endpoints.
    """

    def __init__(self, client: NekosV4Client) -> None:
        self._client = client

    async def image(self, id: str, expiry: int | None = None, *, priority: Any) -> Image:
        return await self._client.image(id, priority=priority)

    async def stats(self, *, priority: Any) -> Stats:
        return await self._client.stats(priority=priority)

    async def artist(self, id: str, *, priority: Any) -> Artist:
        raise NotFound("the Nekos API v4 has no artist records", endpoint="artist")

    async def artist_images(
        self,
        id: str,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Any,
    ) -> Page[Image]:
        raise NotFound("the Nekos API v4 has no artist records", endpoint="artist images")

    async def character(self, id: str, *, priority: Any) -> Character:
        raise NotFound("the Nekos API v4 has no character records", endpoint="character")

    async def categories(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Category]:
        return Page(items=())

    async def artists(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Artist]:
        return Page(items=())

    async def characters(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Character]:
        return Page(items=())


def make_lookups(
    client: NekosApi,
    settings: LookupSettings | None = None,
    *,
    shared: SharedTier | None = None,
) -> CachedLookups:
    """Cached, coalesced lookups; a member's lookup that would queue too long is shed.

    ``shared`` (``bot.serving.shared.open_shared``, with ``REDIS_URL``) puts the cache shared by
    every process under this process's own: answers and in-flight calls are shared.
    """
    source: LookupSource = client if isinstance(client, NekosClient) else ImagesOnlyLookups(client)
    return CachedLookups(
        source,
        interactive_priority=Priority.INTERACTIVE,
        background_priority=Priority.BACKGROUND,
        settings=settings,
        estimator=client.pacer,
        shared=shared,
    )
