"""What serving needs from its neighbours, as structural types.

The API clients (``bot.nekos.NekosClient`` for v1; ``bot.nekos.NekosV4Client`` for v4, through
:func:`~bot.serving.assembly.make_lookups` for lookups) and the pacer (``bot.nekos.pacing.Pacer``)
satisfy these without importing this module; priorities are passed through opaquely (``Any``),
so the serving layer never depends on the pacer's enum.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bot.nekos.models import Artist, Category, Character, Image, Page, Rating, Stats

if TYPE_CHECKING:
    from .pool import ImageRequest

__all__ = ["ClaimVerdict", "ImageClaims", "LookupSource", "RandomImageSource", "WaitEstimator"]


class RandomImageSource(Protocol):
    """The one client method the random-image pool calls (always with keywords)."""

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        priority: Any,
    ) -> Page[Image]:
        """Up to ``limit`` random images having every one of ``categories`` (v4: tags).

        ``ratings`` asks the API for those levels only, where it can filter (v4); v1 ignores it,
        so the pool still checks every image's rating itself.
        """
        ...


class LookupSource(Protocol):
    """The client methods :class:`~bot.serving.lookups.CachedLookups` caches."""

    async def image(self, id: str, expiry: int | None = None, *, priority: Any) -> Image:
        """``GET /image/{id}``."""
        ...

    async def artist(self, id: str, *, priority: Any) -> Artist:
        """``GET /artist/{id}``."""
        ...

    async def artist_images(
        self,
        id: str,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Any,
    ) -> Page[Image]:
        """``GET /artist/{id}/images``."""
        ...

    async def character(self, id: str, *, priority: Any) -> Character:
        """``GET /character/{id}``."""
        ...

    async def categories(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Category]:
        """``GET /category``."""
        ...

    async def artists(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Artist]:
        """``GET /artist``."""
        ...

    async def characters(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Character]:
        """``GET /character``."""
        ...

    async def stats(self, *, priority: Any) -> Stats:
        """``GET /stats``."""
        ...


class WaitEstimator(Protocol):
    """How long a new interactive request would wait for its turn (the pacer exposes this)."""

    @property
    def queue_length(self) -> int:
        """Requests waiting for their turn right now."""
        ...

    def estimated_wait(self) -> float:
        """Seconds an interactive request made now would wait before it starts."""
        ...

    def members_idle_for(self) -> float:
        """Seconds since a request members wait on last started (0 while one waits)."""
        ...


class ClaimVerdict(enum.Enum):
    """What a shared claim store says about one image a request is about to show."""

    GRANTED = "granted"
    """Counted: show it."""
    SEEN = "seen"
    """Shown in this channel within its no-repeat window (by some process)."""
    USED_UP = "used_up"
    """Already served ``max_uses`` requests (across processes)."""


class ImageClaims(Protocol):
    """Cluster-wide use counts and no-repeat windows (the pool keeps its own in-process)."""

    async def claim(
        self, request: ImageRequest, images: Sequence[Image], *, reuse: bool = False
    ) -> Sequence[ClaimVerdict]:
        """One verdict per image, in order; granted ones are counted at once (atomically).

        ``reuse``: the images are ones other servers used up, which the pool gives a member
        who waited ``reuse_after``: only the channel's no-repeat window counts.
        """
        ...
