"""Typed, frozen models of the Nekos API v1, parsed tolerantly from its JSON.

The parsers accept both the published reference shapes and the live server's drift (artist as a
UUID string, an object or null; ``color`` null; ``aspectRatio`` missing; ``original`` and category
``type`` present or not) and ignore unknown fields. A body that does not fit raises
:class:`~bot.nekos.errors.ResponseParseError` naming the endpoint, never a bare ``KeyError``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ResponseParseError

__all__ = [
    "ApiInfo",
    "Artist",
    "Category",
    "Character",
    "Dimensions",
    "Image",
    "ImageMeta",
    "Page",
    "Pagination",
    "RateLimitScope",
    "Rating",
    "Source",
    "Stats",
    "TokenInfo",
]

T = TypeVar("T")


class Rating(enum.IntEnum):
    """Content rating, ordered from least to most restrictive: ``sfw < questionable < nsfw``."""

    SFW = 0
    QUESTIONABLE = 1
    NSFW = 2

    @property
    def label(self) -> str:
        """The API's spelling: ``sfw``, ``questionable`` or ``nsfw``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> Rating:
        """Parse the API's value; anything unknown counts as the most restrictive, ``nsfw``."""
        if isinstance(value, str):
            member = _RATING_BY_LABEL.get(value.strip().lower())
            if member is not None:
                return member
        return cls.NSFW

    @classmethod
    def from_label(cls, value: str) -> Rating:
        """Parse a label strictly (for settings and user input); raise ``ValueError`` if unknown."""
        member = _RATING_BY_LABEL.get(value.strip().lower())
        if member is None:
            raise ValueError(f"unknown rating {value!r}; expected sfw, questionable or nsfw")
        return member


_RATING_BY_LABEL = {"sfw": Rating.SFW, "questionable": Rating.QUESTIONABLE, "nsfw": Rating.NSFW}


@dataclass(frozen=True, slots=True)
class Source:
    name: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Artist:
    """An artist. When the API gives only a UUID, only ``id`` is known."""

    id: str
    name: str | None = None
    url: str | None = None
    image_count: int | None = None


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    description: str = ""
    nsfw: bool = False
    created_at: dt.datetime | None = None
    type: str | None = None
    image_count: int | None = None


@dataclass(frozen=True, slots=True)
class Character:
    id: str
    name: str
    description: str = ""
    source: str | None = None
    gender: str | None = None
    ages: tuple[int, ...] = ()
    birth_date: str | None = None
    nationality: str | None = None
    occupations: tuple[str, ...] = ()
    created_at: dt.datetime | None = None
    image_count: int | None = None


@dataclass(frozen=True, slots=True)
class Dimensions:
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    orientation: str | None = None


@dataclass(frozen=True, slots=True)
class ImageMeta:
    etag: str | None = None
    size: int | None = None
    mimetype: str | None = None
    color: str | None = None
    expires: dt.datetime | None = None
    dimens: Dimensions = field(default_factory=Dimensions)


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    url: str
    rating: Rating
    artist: Artist | None = None
    source: Source = field(default_factory=Source)
    categories: tuple[Category, ...] = ()
    characters: tuple[Character, ...] = ()
    created_at: dt.datetime | None = None
    original: bool | None = None
    meta: ImageMeta = field(default_factory=ImageMeta)
    tags: tuple[str, ...] = ()
    """v4 tags, lower-cased (v1 images have categories instead)."""
    api_rating: str | None = None
    """The API's own rating label: ``safe``/``suggestive``/``borderline``/``explicit`` on v4,
    ``sfw``/``questionable``/``nsfw`` on v1 (``None`` when the API sent none)."""
    ages_known: bool = True
    """Whether the characters' ages could be known at all: v4 has no character data, so the
    minor-safety rule cannot be decided from its metadata."""

    @property
    def category_names(self) -> frozenset[str]:
        """Lower-cased category names and tags, for matching requests against this image."""
        names = frozenset(c.name.lower() for c in self.categories)
        return names | frozenset(self.tags) if self.tags else names


@dataclass(frozen=True, slots=True)
class Pagination:
    limit: int | None = None
    offset: int | None = None
    count: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint; ``pagination`` is present when the server sent it."""

    items: tuple[T, ...]
    pagination: Pagination | None = None

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Stats:
    images: int
    ratings: Mapping[str, int]
    artists: int | None = None
    characters: int | None = None
    categories: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimitScope:
    """``api:ratelimit:R-T-L``: R requests per T seconds, L hits before the block."""

    requests: int
    per_seconds: float
    hits_before_block: int


@dataclass(frozen=True, slots=True)
class TokenInfo:
    scopes: tuple[str, ...]
    owner: str | None = None
    purpose: str | None = None
    issued_by: str | None = None
    created_at: dt.datetime | None = None
    expires: dt.datetime | None = None

    @property
    def can_list_images(self) -> bool:
        return "image:list" in self.scopes

    @property
    def max_expiry(self) -> int | None:
        """Longest custom expiry the token allows, in seconds (``None``: no custom expiry).

        ``image:custom-expiry`` with no suffix has no stated cap; it is reported as one day.
        """
        best: int | None = None
        for scope in self.scopes:
            if scope == "image:custom-expiry":
                best = max(best or 0, 86_400)
            elif scope.startswith("image:custom-expiry:"):
                try:
                    value = int(scope.rsplit(":", 1)[1])
                except ValueError:
                    continue
                best = max(best or 0, value)
        return best

    @property
    def rate_limit_disabled(self) -> bool:
        return "api:ratelimit:disabled" in self.scopes

    @property
    def rate_limit(self) -> RateLimitScope | None:
        for scope in self.scopes:
            if not scope.startswith("api:ratelimit:") or scope == "api:ratelimit:disabled":
                continue
            try:
                r, t, limit = scope.removeprefix("api:ratelimit:").split("-")
                parsed = RateLimitScope(int(r), float(t), int(limit))
            except ValueError:
                continue
            if parsed.requests > 0 and parsed.per_seconds > 0:
                return parsed
        return None


@dataclass(frozen=True, slots=True)
class ApiInfo:
    endpoints: tuple[str, ...]
    version: str | None = None
    base_api_route: str | None = None


# --------------------------------------------------------------------------- parsing helpers


class _Fail(Exception):
    """Internal: a value had the wrong shape; turned into ResponseParseError at the boundary."""


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Fail(f"{what} is not an object")
    return value


def _req_str(d: Mapping[str, Any], key: str, what: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise _Fail(f"{what}.{key} is missing or not a string")
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _label(value: object) -> str | None:
    """A rating label as the API spelled it, trimmed and lower-cased."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()[:40]


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _opt_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Fail(f"{what} is not a list")
    return value


def _parse_artist(value: object) -> Artist | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Artist(id=value) if value else None
    d = _obj(value, "artist")
    return Artist(
        id=_req_str(d, "id", "artist"),
        name=_opt_str(d.get("name")),
        url=_opt_str(d.get("url")),
        image_count=_opt_int(d.get("images")),
    )


def _parse_category(value: object) -> Category:
    d = _obj(value, "category")
    return Category(
        id=_req_str(d, "id", "category"),
        name=_req_str(d, "name", "category"),
        description=_opt_str(d.get("description")) or "",
        # Anything but an explicit false counts as nsfw: hiding a category is the safe error.
        nsfw=d.get("nsfw") not in (False, None, 0),
        created_at=_opt_time(d.get("createdAt")),
        type=_opt_str(d.get("type")),
        image_count=_opt_int(d.get("images")),
    )


def _parse_character(value: object) -> Character:
    d = _obj(value, "character")
    ages = tuple(a for a in (_opt_int(x) for x in _list(d.get("ages"), "ages")) if a is not None)
    occupations = tuple(x for x in _list(d.get("occupations"), "occupations") if isinstance(x, str))
    return Character(
        id=_req_str(d, "id", "character"),
        name=_req_str(d, "name", "character"),
        description=_opt_str(d.get("description")) or "",
        source=_opt_str(d.get("source")),
        gender=_opt_str(d.get("gender")),
        ages=ages,
        birth_date=_opt_str(d.get("birth_date")),
        nationality=_opt_str(d.get("nationality")),
        occupations=occupations,
        created_at=_opt_time(d.get("createdAt")),
        image_count=_opt_int(d.get("images")),
    )


def _parse_meta(value: object) -> ImageMeta:
    if value is None:
        return ImageMeta()
    d = _obj(value, "meta")
    dimens_raw = d.get("dimens")
    dimens = Dimensions()
    if isinstance(dimens_raw, Mapping):
        dimens = Dimensions(
            width=_opt_int(dimens_raw.get("width")),
            height=_opt_int(dimens_raw.get("height")),
            aspect_ratio=_opt_str(dimens_raw.get("aspectRatio")),
            orientation=_opt_str(dimens_raw.get("orientation")),
        )
    return ImageMeta(
        etag=_opt_str(d.get("eTag")),
        size=_opt_int(d.get("size")),
        mimetype=_opt_str(d.get("mimetype")),
        color=_opt_str(d.get("color")),
        expires=_opt_time(d.get("expires")),
        dimens=dimens,
    )


def _parse_image(value: object) -> Image:
    d = _obj(value, "image")
    source_raw = d.get("source")
    source = Source()
    if isinstance(source_raw, Mapping):
        source = Source(name=_opt_str(source_raw.get("name")), url=_opt_str(source_raw.get("url")))
    return Image(
        id=_req_str(d, "id", "image"),
        url=_req_str(d, "url", "image"),
        rating=Rating.parse(d.get("nsfw")),
        api_rating=_label(d.get("nsfw")),
        artist=_parse_artist(d.get("artist")),
        source=source,
        categories=tuple(_parse_category(c) for c in _list(d.get("categories"), "categories")),
        characters=tuple(_parse_character(c) for c in _list(d.get("characters"), "characters")),
        created_at=_opt_time(d.get("createdAt")),
        original=_opt_bool(d.get("original")),
        meta=_parse_meta(d.get("meta")),
    )


def _parse_count(value: object) -> int | None:
    if isinstance(value, Mapping):
        return _opt_int(value.get("count"))
    return _opt_int(value)


def _parse_stats(value: object) -> Stats:
    d = _obj(value, "stats")
    images = _obj(d.get("images"), "stats.images")
    count = _opt_int(images.get("count"))
    if count is None:
        raise _Fail("stats.images.count is missing")
    ratings_raw = images.get("nsfw")
    ratings: dict[str, int] = {}
    if isinstance(ratings_raw, Mapping):
        for key, n in ratings_raw.items():
            parsed = _opt_int(n)
            if isinstance(key, str) and parsed is not None:
                ratings[key] = parsed
    return Stats(
        images=count,
        ratings=ratings,
        artists=_parse_count(d.get("artists")),
        characters=_parse_count(d.get("characters")),
        categories=_parse_count(d.get("categories")),
    )


def _parse_token(value: object) -> TokenInfo:
    d = _obj(value, "token")
    scopes = tuple(s for s in _list(d.get("scopes"), "scopes") if isinstance(s, str))
    return TokenInfo(
        scopes=scopes,
        owner=_opt_str(d.get("owner")),
        purpose=_opt_str(d.get("purpose")),
        issued_by=_opt_str(d.get("issuedBy")),
        created_at=_opt_time(d.get("createdAt")),
        expires=_opt_time(d.get("expires")),
    )


def _parse_api_info(body: Mapping[str, Any]) -> ApiInfo:
    endpoints = tuple(e for e in _list(body.get("data"), "data") if isinstance(e, str))
    meta = body.get("meta")
    version = base = None
    if isinstance(meta, Mapping):
        version = _opt_str(meta.get("version"))
        base = _opt_str(meta.get("baseApiRoute"))
    return ApiInfo(endpoints=endpoints, version=version, base_api_route=base)


def _parse_pagination(body: Mapping[str, Any]) -> Pagination | None:
    meta = body.get("meta")
    if not isinstance(meta, Mapping):
        return None
    pag = meta.get("pagination")
    if not isinstance(pag, Mapping):
        return None
    return Pagination(
        limit=_opt_int(pag.get("limit")),
        offset=_opt_int(pag.get("offset")),
        count=_opt_int(pag.get("count")),
        total=_opt_int(pag.get("total")),
    )


# --------------------------------------------------------------------------- public parsers


def _guard(endpoint: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except _Fail as exc:
        raise ResponseParseError(f"unexpected response: {exc}", endpoint=endpoint) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ResponseParseError(
            f"unexpected response: {type(exc).__name__}", endpoint=endpoint
        ) from None


def _data(body: object) -> object:
    d = _obj(body, "body")
    if "data" not in d:
        raise _Fail("body has no 'data'")
    return d["data"]


def parse_one(body: object, kind: Callable[[object], T], endpoint: str) -> T:
    """Parse ``{"data": {...}}`` with ``kind`` (one of the ``parse_*_data`` functions)."""
    return _guard(endpoint, lambda: kind(_data(body)))


def parse_page(body: object, kind: Callable[[object], T], endpoint: str) -> Page[T]:
    """Parse ``{"data": [...], "meta": {"pagination": ...}}`` into a :class:`Page`."""

    def run() -> Page[T]:
        items = tuple(kind(item) for item in _list(_data(body), "data"))
        return Page(items=items, pagination=_parse_pagination(_obj(body, "body")))

    return _guard(endpoint, run)


def parse_api_info(body: object, endpoint: str = "GET /") -> ApiInfo:
    return _guard(endpoint, lambda: _parse_api_info(_obj(body, "body")))


# Element parsers, for parse_one / parse_page.
parse_image_data: Callable[[object], Image] = _parse_image
parse_artist_data: Callable[[object], Artist] = lambda v: _require(_parse_artist(v), "artist")  # noqa: E731
parse_category_data: Callable[[object], Category] = _parse_category
parse_character_data: Callable[[object], Character] = _parse_character
parse_stats_data: Callable[[object], Stats] = _parse_stats
parse_token_data: Callable[[object], TokenInfo] = _parse_token


def _require(value: T | None, what: str) -> T:
    if value is None:
        raise _Fail(f"{what} is null")
    return value
