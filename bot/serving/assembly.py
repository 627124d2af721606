"""How the bot wires the serving layer to the adapter: one place, used by the bot, ``preview``
and the benchmarks, so what is measured is what runs."""

from __future__ import annotations

import random

from bot.nekos.client import NekosClient
from bot.nekos.pacing import Priority

from .lookups import CachedLookups, LookupSettings
from .pool import ImagePool, PoolSettings

__all__ = ["make_lookups", "make_pool"]


def make_pool(
    client: NekosClient, settings: PoolSettings | None = None, *, rng: random.Random | None = None
) -> ImagePool:
    """The random-image pool; its member-driven batches go ahead of single-member lookups."""
    return ImagePool(
        client,
        interactive_priority=Priority.SHARED,  # one batch feeds many members
        background_priority=Priority.BACKGROUND,
        settings=settings,
        estimator=client.pacer,
        rng=rng,
    )


def make_lookups(client: NekosClient, settings: LookupSettings | None = None) -> CachedLookups:
    """Cached, coalesced lookups; a member's lookup that would queue too long is shed."""
    return CachedLookups(
        client,
        interactive_priority=Priority.INTERACTIVE,
        background_priority=Priority.BACKGROUND,
        settings=settings,
        estimator=client.pacer,
    )
