"""The Nekos API v1 adapter: importable and useful without Discord.

``from bot.nekos import NekosClient`` is all a script needs::

    async with NekosClient() as api:
        page = await api.random_images(["catgirl"], limit=5)
"""

from __future__ import annotations

from .client import (
    DEFAULT_BASE_URL,
    ClientHealth,
    NekosClient,
    RetryPolicy,
    Route,
    error_from_response,
)
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

__all__ = [
    "BACKGROUND",
    "DEFAULT_BASE_URL",
    "INTERACTIVE",
    "ApiInfo",
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
    "NekosClient",
    "NekosError",
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
    "search_pattern",
]
