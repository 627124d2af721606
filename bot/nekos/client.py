"""The Nekos API v1 client: one method per endpoint, over the shared transport.

Every endpoint is a :class:`Route`; :meth:`~bot.nekos.transport.PacedClient.request` is the one
place that sends, waits its turn at the pacer, retries and maps errors (here from v1's
``{code, message}`` body). Parameters are checked before anything is sent, since every request
(rejected ones included) counts against the server's rate limit.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Final, Unpack

import aiohttp

from .capabilities import V1_CAPABILITIES, ApiCapabilities
from .errors import (
    Forbidden,
    InvalidParameter,
    NekosError,
    Unauthorized,
)
from .models import (
    ApiInfo,
    Artist,
    Category,
    Character,
    Image,
    Page,
    Rating,
    Stats,
    TokenInfo,
    parse_api_info,
    parse_artist_data,
    parse_category_data,
    parse_character_data,
    parse_image_data,
    parse_one,
    parse_page,
    parse_stats_data,
    parse_token_data,
)
from .pacing import INTERACTIVE, Priority
from .search import RawPattern, search_pattern, utf16_length
from .transport import (
    BLOCK_THRESHOLD,
    ClientHealth,
    ClientOptions,
    ErrorMapper,
    PacedClient,
    RetryPolicy,
    Route,
    check_limit,
    check_offset,
    clip_message,
    decode_json,
    error_mapper,
)

__all__ = [
    "BLOCK_THRESHOLD",
    "DEFAULT_BASE_URL",
    "MAX_LIMIT",
    "MIN_EXPIRY",
    "SEARCH_MAX_LENGTH",
    "ClientHealth",
    "NekosClient",
    "RetryPolicy",
    "Route",
    "error_from_response",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://v1.nekosapi.com/api"
MAX_LIMIT: Final = 25
"""Largest ``limit`` every list endpoint accepts."""
MIN_EXPIRY: Final = 30
"""``expiry`` must be greater than this many seconds."""
SEARCH_MAX_LENGTH: Final[Mapping[str, int]] = {"artist": 20, "character": 20, "category": 50}
"""The longest ``search`` pattern each searchable endpoint accepts."""

_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def _is_text(value: object) -> bool:
    """A ``str`` that can go in a URL: no lone surrogates (a bad decode can leave them)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape_like(name: str) -> str:
    """``name`` with the ``LIKE`` wildcards ``%`` and ``_`` (and the escape ``\\``) escaped."""
    return "".join(f"\\{ch}" if ch in "\\%_" else ch for ch in name)


def _error_fields(body: bytes) -> tuple[int | None, str | None]:
    """The API's ``code`` and ``message`` from an error body, if it is the API's JSON."""
    decoded = decode_json(body)
    if not isinstance(decoded, dict):
        return None, None
    code = decoded.get("code")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        clip_message(decoded.get("message")),
    )


error_from_response: Final[ErrorMapper] = error_mapper(_error_fields)
"""The exception for a v1 error response, from its status and ``{code, message}`` body.

HTML, empty and other non-JSON bodies are tolerated: the status alone decides the class. A 429
whose message says the rate limit was exceeded "too many times", or whose wait is longer than
:data:`BLOCK_THRESHOLD`, is :class:`Blocked`; any other 429 is :class:`RateLimited`. ``redact``
cleans the server's message before it is kept.
"""


class NekosClient(PacedClient):
    """An async client for the Nekos API v1. Use it as ``async with NekosClient(...) as api:``.

    It owns one :class:`aiohttp.ClientSession`, or borrows ``session`` (and then never closes
    it). All requests wait their turn at ``pacer`` (by default a :class:`Pacer` of its own;
    pass one pacer to several clients to share the IP's rate limit). ``token`` is sent as
    ``Authorization: Bearer``; it never appears in ``repr``, logs or errors. The other options
    are :class:`~bot.nekos.transport.ClientOptions`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, session, map_error=error_from_response, secret=token, **options)
        self._token = token or None
        self._token_details: TokenInfo | None = None

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        return f"<NekosClient base_url={self._base_url!r} token={token}>"

    async def start(self) -> None:
        """Open the session and, with a token, adopt the rate limit its scopes grant.

        Raises :class:`Unauthorized` (or :class:`Forbidden`) if the server rejects the token.
        Other failures to read ``GET /token`` are logged and the default limit is kept.
        """
        self._ensure_session()
        if self._started or self._token is None:
            self._started = True
            return
        try:
            details = await self.token_info()
        except Unauthorized as exc:
            raise Unauthorized(
                f"the Nekos API rejected the configured token: {exc.message}",
                status=exc.status,
                code=exc.code,
                endpoint=exc.endpoint,
            ) from None
        except Forbidden:
            raise
        except NekosError as exc:
            log.warning("Could not read the Nekos API token's scopes (%s); keeping defaults", exc)
            self._started = True
            return
        self._token_details = details
        await self._pacer.adopt_token(details)
        self._started = True

    # ------------------------------------------------------------------ inspection

    @property
    def capabilities(self) -> ApiCapabilities:
        """What v1 can do (artists, characters, categories, ``/stats``; no rating filter)."""
        return V1_CAPABILITIES

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def token_details(self) -> TokenInfo | None:
        """The token's details as read by :meth:`start` (``None`` before, or without a token)."""
        return self._token_details

    def _request_headers(self) -> dict[str, str]:
        headers = super()._request_headers()
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check_id(value: str | uuid.UUID, what: str, endpoint: str) -> str:
        text = str(value) if isinstance(value, uuid.UUID) else value
        if not isinstance(text, str) or not _UUID_RE.match(text):
            raise InvalidParameter(
                f"{what} id must be a UUID like 3fa85f64-5717-4562-b3fc-2c963f66afa6, "
                f"got {value!r}",
                endpoint=endpoint,
            )
        return text.lower()

    def _check_expiry(self, expiry: int, endpoint: str) -> str:
        if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry <= MIN_EXPIRY:
            raise InvalidParameter(
                f"expiry must be a whole number of seconds greater than {MIN_EXPIRY}, "
                f"got {expiry!r}",
                endpoint=endpoint,
            )
        if self._token is None:
            raise InvalidParameter(
                "expiry needs an API token with the image:custom-expiry scope", endpoint=endpoint
            )
        return str(expiry)

    @staticmethod
    def _check_search(search: str, kind: str, endpoint: str) -> str:
        if not _is_text(search):
            raise InvalidParameter(f"search must be text, got {search!r}", endpoint=endpoint)
        pattern = search_pattern(search)
        longest = SEARCH_MAX_LENGTH[kind]
        # The server counts UTF-16 units: an emoji counts twice.
        length = utf16_length(pattern)
        if length > longest:
            raise InvalidParameter(
                f"search is too long: the server accepts patterns of at most {longest} "
                f"characters for {kind}s and {search!r} becomes {pattern!r} "
                f"({length}); the pattern adds % at both ends and a backslash before "
                f"each of % _ | * + ? {{ }} ( ) [ ] \\, so use shorter text",
                endpoint=endpoint,
            )
        return pattern

    def _require_token(self, endpoint: str, what: str) -> None:
        if self._token is None:
            raise Unauthorized(f"{what} needs an API token; none is configured", endpoint=endpoint)

    def _list_params(
        self, limit: int, offset: int, endpoint: str, *, expiry: int | None = None
    ) -> dict[str, str]:
        params = {"limit": check_limit(limit, MAX_LIMIT, endpoint)}
        checked_offset = check_offset(offset, endpoint)
        # The server's check reads "greater than 0" in places: leave the default out.
        if offset:
            params["offset"] = checked_offset
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, endpoint)
        return params

    # ------------------------------------------------------------------ endpoints

    async def api_info(self, *, priority: Priority = INTERACTIVE) -> ApiInfo:
        """``GET /``: the API's endpoints and version."""
        route = Route("GET", "/")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_api_info(body, route.endpoint))

    async def stats(self, *, priority: Priority = INTERACTIVE) -> Stats:
        """``GET /stats``: image counts by rating, and artist/character/category counts."""
        route = Route("GET", "/stats")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_stats_data, route.endpoint))

    async def token_info(self, *, priority: Priority = INTERACTIVE) -> TokenInfo:
        """``GET /token``: the configured token's owner, scopes and expiry."""
        route = Route("GET", "/token")
        self._require_token(route.endpoint, "reading token information")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_token_data, route.endpoint))

    async def images(
        self,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /image``: every image, paginated (needs a token with ``image:list``)."""
        route = Route("GET", "/image")
        self._require_token(route.endpoint, "listing all images")
        params = self._list_params(limit, offset, route.endpoint, expiry=expiry)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    async def random_images(
        self,
        categories: Iterable[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        *,
        ratings: Iterable[Rating | str] | None = None,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /image/random``: random images having *all* the named categories.

        The server matches names case-insensitively with ``ILIKE``; ``%`` and ``_`` in names
        are escaped so they match literally (pass :class:`~bot.nekos.search.RawPattern` names
        to send wildcards). A string is read as comma-separated names. It can return fewer
        images than ``limit``, and a 404 for a category that has images: retry before
        concluding there are none. ``ratings`` is accepted for callers written for both
        versions and not sent: v1 cannot filter by rating, so the caller gates what comes back.
        """
        route = Route("GET", "/image/random")
        params = {"limit": check_limit(limit, MAX_LIMIT, route.endpoint)}
        names = self._check_categories(categories, route.endpoint)
        if names:
            params["categories"] = ",".join(names)
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    @staticmethod
    def _check_categories(categories: Iterable[str], endpoint: str) -> list[str]:
        all_raw = isinstance(categories, RawPattern)
        items = categories.split(",") if isinstance(categories, str) else list(categories)
        names: list[str] = []
        for item in items:
            if not _is_text(item):
                raise InvalidParameter(
                    f"category names must be text, got {item!r}", endpoint=endpoint
                )
            name = item.strip()
            if "," in name:
                raise InvalidParameter(
                    f"category name {name!r} contains a comma", endpoint=endpoint
                )
            if name:
                raw = all_raw or isinstance(item, RawPattern)
                names.append(name if raw else _escape_like(name))
        return names

    async def image(
        self,
        id: str | uuid.UUID,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Image:
        """``GET /image/{id}``: one image."""
        template = "/image/{id}"
        image_id = self._check_id(id, "image", f"GET {template}")
        route = Route("GET", template, id=image_id)
        params = {}
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, route.endpoint)
        body = await self.request(route, params=params or None, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_image_data, route.endpoint))

    async def artists(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Artist]:
        """``GET /artist``: artists, optionally those whose name contains ``search``.

        Plain text is escaped and wrapped as ``%text%``; pass a
        :class:`~bot.nekos.search.RawPattern` to send a ``SIMILAR TO`` pattern as is.
        """
        route = Route("GET", "/artist")
        params = self._search_params(search, "artist", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_artist_data, route.endpoint))

    async def artist(self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE) -> Artist:
        """``GET /artist/{id}``: one artist, with its image count."""
        template = "/artist/{id}"
        route = Route("GET", template, id=self._check_id(id, "artist", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_artist_data, route.endpoint))

    async def artist_images(
        self,
        id: str | uuid.UUID,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /artist/{id}/images``: an artist's images, paginated."""
        template = "/artist/{id}/images"
        route = Route("GET", template, id=self._check_id(id, "artist", f"GET {template}"))
        params = self._list_params(limit, offset, route.endpoint, expiry=expiry)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    async def characters(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Character]:
        """``GET /character``: characters, optionally those whose name contains ``search``."""
        route = Route("GET", "/character")
        params = self._search_params(search, "character", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_character_data, route.endpoint))

    async def character(
        self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE
    ) -> Character:
        """``GET /character/{id}``: one character, with its image count."""
        template = "/character/{id}"
        route = Route("GET", template, id=self._check_id(id, "character", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_character_data, route.endpoint))

    async def categories(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Category]:
        """``GET /category``: categories, optionally those whose name contains ``search``."""
        route = Route("GET", "/category")
        params = self._search_params(search, "category", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_category_data, route.endpoint))

    async def category(self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE) -> Category:
        """``GET /category/{id}``: one category, with its image count."""
        template = "/category/{id}"
        route = Route("GET", template, id=self._check_id(id, "category", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_category_data, route.endpoint))

    def _search_params(
        self, search: str | None, kind: str, limit: int, offset: int, endpoint: str
    ) -> dict[str, str]:
        params = self._list_params(limit, offset, endpoint)
        if search is not None:
            params["search"] = self._check_search(search, kind, endpoint)
        return params
