"""``python -m bot preview``: the exact message a command would send, with no Discord connection.

It runs the real adapter, serving layer, gating and renderer against the configured API, so an
admin or developer can see a command's output without a server (and the tests use it).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .budget import open_budget
from .catalog import Catalog, CatalogSource
from .config import Settings
from .gating import RefusalCounter
from .nekos import NekosApi, NekosError
from .nekos.models import Artist, Character, Rating
from .replies import Replies, Reply, error_reply
from .serving import CachedLookups, PoolSettings
from .serving.assembly import content_policy, make_api, make_lookups, make_pool
from .serving.shared import SharedServing, open_shared

__all__ = ["PreviewOptions", "render_preview"]

PREVIEW_USER = 0
PREVIEW_CHANNEL = 0


@dataclass(frozen=True, slots=True)
class PreviewOptions:
    kind: str
    categories: str = ""
    count: int = 1
    rating: str | None = None
    name: str = ""
    image_id: str = ""
    search: str = ""
    page: int = 1
    max_rating: str = "sfw"


async def _no_artists() -> tuple[Artist, ...]:
    return ()


async def _no_characters() -> tuple[Character, ...]:
    return ()


def _api_version(client: NekosApi) -> Callable[[], Awaitable[str | None]]:
    async def fetch() -> str | None:
        try:
            return (await client.api_info()).version
        except NekosError:
            return None

    return fetch


async def _reply(
    replies: Replies, catalog: Catalog, lookups: CachedLookups, o: PreviewOptions
) -> Reply:
    channel_max = Rating.from_label(o.max_rating)
    if o.kind in ("random", "category"):
        catalog.set_categories(await lookups.category_list())
    if o.kind == "random":
        requested = Rating.from_label(o.rating) if o.rating else None
        request = replies.random_request(
            user_id=PREVIEW_USER,
            guild_id=None,
            channel_id=PREVIEW_CHANNEL,
            channel_max=channel_max,
            requested=requested,
            categories=o.categories,
            count=max(1, min(o.count, 10)),
        )
        return await replies.random(request, requested=requested)
    if o.kind == "artist":
        return await replies.artist(
            user_id=PREVIEW_USER, channel_max=channel_max, name=o.name, page=o.page
        )
    if o.kind == "character":
        return await replies.character(name=o.name)
    if o.kind == "image":
        return await replies.image(image_id=o.image_id, channel_max=channel_max)
    if o.kind == "category":
        return await replies.category(
            user_id=PREVIEW_USER, channel_max=channel_max, search=o.search, page=o.page
        )
    return await replies.stats()


async def render_preview(settings: Settings, options: PreviewOptions) -> dict[str, Any]:
    """The Discord JSON payload the command would send in a channel allowing ``max_rating``."""
    # The same request budget as the running bot's: a preview never adds to its 429s.
    async with open_budget(settings) as budget, budget.session() as session:
        client = make_api(settings, session=session, budget=budget)
        shared = open_shared(settings)  # the running bot's shared lookups, with REDIS_URL
        try:
            async with client:
                return await _preview(client, settings, options, shared)
        finally:
            if shared is not None:
                await shared.close()


async def _preview(
    client: NekosApi, settings: Settings, options: PreviewOptions, shared: SharedServing | None
) -> dict[str, Any]:
    lookups = make_lookups(client, shared=shared.lookups if shared else None)
    policy = content_policy(settings)
    # Artists and characters are found by API search here, not from a loaded catalogue.
    catalog = Catalog(
        CatalogSource(lookups.category_list, _no_artists, _no_characters),
        uses_tags=client.capabilities.has_tags,
        policy=policy,
    )
    pool = make_pool(
        client,
        PoolSettings(max_attempts=settings.rare_request_attempts),
        policy=policy,
        rng=random.Random(0),  # a preview is reproducible
        observe=catalog.note_images,
    )
    replies = Replies(
        pool=pool,
        lookups=lookups,
        catalog=catalog,
        api=client,
        refusals=RefusalCounter(),
        delivery="link",
        api_version=_api_version(client),
        # No artist list is loaded here: an artist given by id is looked up, however long.
        artist_name_wait=None,
        policy=policy,
    )
    if options.kind == "category" and catalog.uses_tags:
        # Tags are learned from images: one batch (what the bot does at start-up).
        await pool.warm()
    try:
        reply = await _reply(replies, catalog, lookups, options)
    except NekosError as exc:
        reply = error_reply(exc)
    return reply.payload()
