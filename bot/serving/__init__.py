"""Serving: the random-image pool, coalesced and cached lookups, fairness, cooldowns.

Everything the bot keeps in process memory about serving lives here, behind small interfaces
(:class:`ImageServer`, the ``*Source`` protocols) so a shared, e.g. Redis-backed, implementation
can replace it later. Nothing here imports discord or the HTTP client.
"""

from __future__ import annotations

from .caching import Clock, Coalescer, TTLCache
from .cooldown import Cooldown
from .lookups import CachedLookups, LookupMetrics, LookupSettings
from .pool import (
    MAX_IMAGES_PER_REQUEST,
    ImagePool,
    ImageRequest,
    ImageServer,
    PoolMetrics,
    PoolSettings,
    ServeResult,
    ServeStatus,
)
from .protocols import LookupSource, RandomImageSource, WaitEstimator

__all__ = [
    "MAX_IMAGES_PER_REQUEST",
    "CachedLookups",
    "Clock",
    "Coalescer",
    "Cooldown",
    "ImagePool",
    "ImageRequest",
    "ImageServer",
    "LookupMetrics",
    "LookupSettings",
    "LookupSource",
    "PoolMetrics",
    "PoolSettings",
    "RandomImageSource",
    "ServeResult",
    "ServeStatus",
    "TTLCache",
    "WaitEstimator",
]
