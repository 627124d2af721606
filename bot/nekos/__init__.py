"""The Nekos API adapter (v1 and v4): importable and useful without Discord.

``from bot.nekos import NekosClient`` (v1) or ``NekosV4Client`` is all a script needs::

    async with NekosV4Client() as api:
        page = await api.random_images(["catgirl"], limit=5, ratings=["safe"])

:func:`make_client` builds the one the configuration names; both share one transport and
describe themselves through ``capabilities``.
"""

from __future__ import annotations

from .capabilities import V1_CAPABILITIES, V4_CAPABILITIES, ApiCapabilities, ApiVersion
from .client import DEFAULT_BASE_URL, NekosClient, error_from_response
from .errors import (
    BadRequest,
    Blocked,
    DownloadTooLarge,
    Forbidden,
    HTTPError,
    InvalidParameter,
    NekosError,
    NotFound,
    RateLimited,
    ResponseParseError,
    ServerError,
    Unauthorized,
    Unavailable,
)
from .models import (
    ApiInfo,
    Artist,
    Category,
    Character,
    Dimensions,
    Image,
    ImageMeta,
    Page,
    Pagination,
    RateLimitScope,
    Rating,
    Source,
    Stats,
    TokenInfo,
)
from .pacing import BACKGROUND, INTERACTIVE, Pacer, PacerState, Priority, RequestPacer
from .search import RawPattern, escape_similar_to, search_pattern
from .transport import ClientHealth, RequestObserver, RetryPolicy, Route
from .v4 import DEFAULT_V4_BASE_URL, NekosV4Client
from .versions import NekosApi, make_client

__all__ = [
    "BACKGROUND",
    "DEFAULT_BASE_URL",
    "DEFAULT_V4_BASE_URL",
    "INTERACTIVE",
    "V1_CAPABILITIES",
    "V4_CAPABILITIES",
    "ApiCapabilities",
    "ApiInfo",
    "ApiVersion",
    "Artist",
    "BadRequest",
    "Blocked",
    "Category",
    "Character",
    "ClientHealth",
    "Dimensions",
    "DownloadTooLarge",
    "Forbidden",
    "HTTPError",
    "Image",
    "ImageMeta",
    "InvalidParameter",
    "NekosApi",
    "NekosClient",
    "NekosError",
    "NekosV4Client",
    "NotFound",
    "Pacer",
    "PacerState",
    "Page",
    "Pagination",
    "Priority",
    "RateLimitScope",
    "RateLimited",
    "Rating",
    "RawPattern",
    "RequestObserver",
    "RequestPacer",
    "ResponseParseError",
    "RetryPolicy",
    "Route",
    "ServerError",
    "Source",
    "Stats",
    "TokenInfo",
    "Unauthorized",
    "Unavailable",
    "error_from_response",
    "escape_similar_to",
    "make_client",
    "search_pattern",
]
