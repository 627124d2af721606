"""The Nekos API v4 client: the image endpoints v4 serves, over the shared transport.

v4 (``https://api.nekosapi.com/v4``) has images only: ``/images`` (``{items, count}``),
``/images/random`` (a bare array), ``/images/{id}``; no authentication, no artists, characters,
categories or statistics. Filters are comma lists: ``rating`` (``safe``, ``suggestive``,
``borderline``, ``explicit``), ``tags`` (an image must carry all) and ``without_tags``.
No rate limit is documented; requests are paced all the same (``NEKOS_API_RATE``) and a 429
with ``Retry-After`` is honoured like v1's. Image URLs are plain but their host has changed
before: keep an image's id and look it up again rather than trusting an old URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Final, Unpack

import aiohttp

from .capabilities import V4_CAPABILITIES, ApiCapabilities
from .errors import InvalidParameter
from .models import ApiInfo, Image, Page, Rating, Stats, TokenInfo
from .models_v4 import (
    error_from_response_v4,
    parse_count,
    parse_image,
    parse_images_page,
    parse_random_images,
)
from .pacing import INTERACTIVE, Priority
from .transport import ClientOptions, PacedClient, Route, check_limit, check_offset

__all__ = [
    "DEFAULT_V4_BASE_URL",
    "ENDPOINTS",
    "MAX_LIMIT",
    "RATINGS",
    "TAG_MAX_LENGTH",
    "NekosV4Client",
]

log = logging.getLogger(__name__)

DEFAULT_V4_BASE_URL: Final = "https://api.nekosapi.com/v4"
MAX_LIMIT: Final = 100
"""Largest ``limit`` of ``/images`` and ``/images/random``."""
TAG_MAX_LENGTH: Final = 100
"""Longest tag name sent (v4's tags are short words; longer text is a mistake, not a tag)."""
RATINGS: Final = ("safe", "suggestive", "borderline", "explicit")
"""v4's rating labels, least restrictive first."""
ENDPOINTS: Final = (
    "/images",
    "/images/random",
    "/images/random/file",
    "/images/{id}",
    "/images/{id}/file",
)
"""The documented v4 endpoints."""

_LABELS_BY_RATING: Final[Mapping[Rating, tuple[str, ...]]] = {
    Rating.SFW: ("safe",),
    Rating.QUESTIONABLE: ("suggestive",),
    Rating.NSFW: ("borderline", "explicit"),
}
_ID_MAX_DIGITS = 18

RatingFilter = Iterable[Rating | str] | str


def _names(value: Iterable[str] | str, what: str, endpoint: str) -> list[str]:
    """Tag names, lower-cased and de-duplicated; a string is read as a comma list."""
    if isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    else:
        items = list(value)
    names: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise InvalidParameter(f"{what} must be text, got {item!r}", endpoint=endpoint)
        name = item.strip().lower()
        if not name:
            raise InvalidParameter(f"{what} must not be empty", endpoint=endpoint)
        if "," in name:
            raise InvalidParameter(f"{what} {name!r} contains a comma", endpoint=endpoint)
        if len(name) > TAG_MAX_LENGTH:
            raise InvalidParameter(
                f"{what} {name[:20]!r}… is longer than {TAG_MAX_LENGTH} characters",
                endpoint=endpoint,
            )
        names[name] = None
    return list(names)


def _rating_labels(ratings: RatingFilter, endpoint: str) -> list[str]:
    """v4 labels for ``ratings``: the bot's levels (``Rating.NSFW`` is borderline and explicit)
    or v4's own labels; a string is read as a comma list."""
    items: list[Rating | str] = (
        [part for part in ratings.split(",") if part.strip()]
        if isinstance(ratings, str)
        else list(ratings)
    )
    labels: dict[str, None] = {}
    for item in items:
        if isinstance(item, Rating):
            labels.update(dict.fromkeys(_LABELS_BY_RATING[item]))
        elif isinstance(item, str) and item.strip().lower() in RATINGS:
            labels[item.strip().lower()] = None
        else:
            raise InvalidParameter(
                f"rating must be one of {', '.join(RATINGS)}, got {item!r}", endpoint=endpoint
            )
    if not labels:
        # No filter would mean every rating: never widen an empty choice to everything.
        raise InvalidParameter("ratings must name at least one rating", endpoint=endpoint)
    return [label for label in RATINGS if label in labels]


def _image_id(value: int | str, endpoint: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = str(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        text = str(int(value.strip()))
    else:
        raise InvalidParameter(
            f"image id must be a whole number like 4399, got {value!r}", endpoint=endpoint
        )
    if len(text) > _ID_MAX_DIGITS:
        raise InvalidParameter(f"image id {text[:20]}… is too long", endpoint=endpoint)
    return text


def _filters(
    endpoint: str,
    *,
    ratings: RatingFilter | None,
    tags: Iterable[str] | str,
    without_tags: Iterable[str] | str,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if ratings is not None:
        params["rating"] = ",".join(_rating_labels(ratings, endpoint))
    wanted = _names(tags, "tag", endpoint)
    unwanted = _names(without_tags, "tag", endpoint)
    if both := sorted(set(wanted) & set(unwanted)):
        raise InvalidParameter(
            f"{', '.join(both)} cannot be both wanted and excluded", endpoint=endpoint
        )
    if wanted:
        params["tags"] = ",".join(wanted)
    if unwanted:
        params["without_tags"] = ",".join(unwanted)
    return params


class NekosV4Client(PacedClient):
    """An async client for the Nekos API v4. Use it as ``async with NekosV4Client(...) as api:``.

    v4 has no authentication, so it holds no token and sends none. The options are
    :class:`~bot.nekos.transport.ClientOptions` (pacer, timeouts, retry policy, clocks).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_V4_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, session, map_error=error_from_response_v4, **options)

    def __repr__(self) -> str:
        return f"<NekosV4Client base_url={self._base_url!r}>"

    # ------------------------------------------------------------------ inspection

    @property
    def capabilities(self) -> ApiCapabilities:
        """What v4 can do (tags, rating filter, batches of 100; no artists, characters,
        categories or statistics endpoint)."""
        return V4_CAPABILITIES

    @property
    def has_token(self) -> bool:
        """Always false: v4 has no authentication."""
        return False

    @property
    def token_details(self) -> TokenInfo | None:
        """Always ``None``: v4 has no tokens."""
        return None

    # ------------------------------------------------------------------ endpoints

    async def random_images(
        self,
        tags: Iterable[str] | str = (),
        limit: int = 1,
        expiry: int | None = None,
        *,
        ratings: RatingFilter | None = None,
        without_tags: Iterable[str] | str = (),
        categories: Iterable[str] | str = (),
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /images/random``: up to ``limit`` (1-100) random images carrying every tag.

        ``ratings`` are the bot's levels (``Rating.SFW``…) or v4's labels; ``None`` sends no
        rating filter. ``categories`` is an alias of ``tags`` (both are sent, merged) so the
        image pool, written for v1, can call this as it calls v1. ``expiry`` is ignored: v4's
        URLs do not expire. What v4 answers when nothing matches is undocumented: an empty
        page or a :class:`~bot.nekos.errors.NotFound`, both mean "nothing this time".
        """
        route = Route("GET", "/images/random")
        merged = [*_names(tags, "tag", route.endpoint), *_names(categories, "tag", route.endpoint)]
        params = {"limit": check_limit(limit, MAX_LIMIT, route.endpoint)}
        params.update(
            _filters(route.endpoint, ratings=ratings, tags=merged, without_tags=without_tags)
        )
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_random_images(body, route.endpoint))

    async def images(
        self,
        limit: int = MAX_LIMIT,
        offset: int = 0,
        *,
        ratings: RatingFilter | None = None,
        tags: Iterable[str] | str = (),
        without_tags: Iterable[str] | str = (),
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /images``: one page (``limit`` 1-100) of the images matching the filters.

        ``pagination.total`` is v4's ``count``: every match, not the page's length.
        """
        route = Route("GET", "/images")
        params = self._page_params(limit, offset, route.endpoint)
        params.update(
            _filters(route.endpoint, ratings=ratings, tags=tags, without_tags=without_tags)
        )
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(
            lambda: parse_images_page(body, route.endpoint, limit=limit, offset=offset)
        )

    async def image_count(
        self,
        *,
        ratings: RatingFilter | None = None,
        tags: Iterable[str] | str = (),
        without_tags: Iterable[str] | str = (),
        priority: Priority = INTERACTIVE,
    ) -> int:
        """How many images match the filters: one ``GET /images?limit=1`` reading ``count``."""
        route = Route("GET", "/images")
        params = {"limit": "1"}
        params.update(
            _filters(route.endpoint, ratings=ratings, tags=tags, without_tags=without_tags)
        )
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_count(body, route.endpoint))

    async def image(
        self, id: int | str, expiry: int | None = None, *, priority: Priority = INTERACTIVE
    ) -> Image:
        """``GET /images/{id}``: one image. ``id`` is a whole number (``4399`` or ``"4399"``);
        anything else is refused before sending. ``expiry`` is ignored (v4 URLs do not expire)."""
        template = "/images/{id}"
        route = Route("GET", template, id=_image_id(id, f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_image(body, route.endpoint))

    async def stats(self, *, priority: Priority = INTERACTIVE) -> Stats:
        """Image counts per rating: one count call per rating (v4 has no statistics endpoint).

        ``Stats.images`` is their sum, so the shares shown add up to the total, and a fifth
        call for the unfiltered count is saved (every image carries one of the four ratings).
        """
        counts: dict[str, int] = {}
        for label in RATINGS:
            counts[label] = await self.image_count(ratings=(label,), priority=priority)
        return Stats(images=sum(counts.values()), ratings=counts)

    async def api_info(self, *, priority: Priority = INTERACTIVE) -> ApiInfo:
        """v4 has no ``GET /``: one ``GET /images?limit=1`` proves the API answers in v4's shape,
        and the documented endpoints and version ``v4`` are reported."""
        await self.image_count(priority=priority)
        path = self._base_url.split("://", 1)[-1].partition("/")[2]
        return ApiInfo(endpoints=ENDPOINTS, version="v4", base_api_route=f"/{path}")

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _page_params(limit: int, offset: int, endpoint: str) -> dict[str, str]:
        params = {"limit": check_limit(limit, MAX_LIMIT, endpoint)}
        checked = check_offset(offset, endpoint)
        if offset:
            params["offset"] = checked
        return params
