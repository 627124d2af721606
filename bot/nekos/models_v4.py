"""The Nekos API v4's JSON, parsed tolerantly into the models every part of the bot already uses.

A v4 image becomes an :class:`~bot.nekos.models.Image`: the integer id as text, the four
ratings folded onto the bot's three (``safe`` → sfw, ``suggestive`` → questionable,
``borderline`` and ``explicit`` → nsfw, anything else → nsfw, the safe error),
``color_dominant`` as ``meta.color``, ``artist_name`` as an :class:`Artist` without an id,
``source_url`` as ``source.url``, tags lower-cased, and ``ages_known=False`` (v4 has no
characters). Unknown fields are ignored; only a missing ``id`` or ``url`` (or a body of the
wrong shape) raises :class:`~bot.nekos.errors.ResponseParseError` naming the endpoint.

Error bodies are read defensively: FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``, a plain
``{"detail": "..."}``, or anything else (then only the status speaks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from .models import (
    Artist,
    Image,
    ImageMeta,
    Page,
    Pagination,
    Rating,
    Source,
    _Fail,
    _guard,
    _label,
    _obj,
    _opt_int,
)
from .transport import MESSAGE_MAX, ErrorMapper, clip_message, decode_json, error_mapper

__all__ = [
    "RATING_BY_LABEL",
    "error_from_response_v4",
    "parse_count",
    "parse_image",
    "parse_images_page",
    "parse_random_images",
]

RATING_BY_LABEL: Final[Mapping[str, Rating]] = {
    "safe": Rating.SFW,
    "suggestive": Rating.QUESTIONABLE,
    "borderline": Rating.NSFW,
    "explicit": Rating.NSFW,
}
"""v4's ratings on the bot's three levels (its classifier errs, so nothing is rounded down)."""

_TAG_MAX = 100
# FastAPI prefixes every ``loc`` with where the value came from; the parameter name is enough.
_LOC_SOURCES = frozenset({"query", "path", "body", "header", "cookie"})
_DETAIL_ITEMS = 5


def _colour(value: object) -> str | None:
    """``[r, g, b]`` (0-255; whole floats tolerated) as ``#rrggbb``; anything else, no colour."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        return None
    channels: list[int] = []
    for channel in value:
        if isinstance(channel, bool) or not isinstance(channel, int | float):
            return None
        if isinstance(channel, float):
            if not math.isfinite(channel):
                return None
            channel = round(channel)
        if not 0 <= channel <= 255:
            return None
        channels.append(channel)
    return "#{:02x}{:02x}{:02x}".format(*channels)


def _image_id(value: object) -> str:
    """The id as text: a non-negative integer, or text of digits (read as one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return str(int(value.strip()))
    raise _Fail("image.id is missing or not a whole number")


def _tags(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    seen: dict[str, None] = {}
    for tag in value:
        if isinstance(tag, str) and (name := tag.strip().lower()) and len(name) <= _TAG_MAX:
            seen[name] = None
    return tuple(seen)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _parse_image(value: object) -> Image:
    d = _obj(value, "image")
    url = _text(d.get("url"))
    if url is None:
        raise _Fail("image.url is missing or not a string")
    label = _label(d.get("rating"))
    artist_name = _text(d.get("artist_name"))
    return Image(
        id=_image_id(d.get("id")),
        url=url,
        rating=RATING_BY_LABEL.get(label or "", Rating.NSFW),
        artist=Artist(id="", name=artist_name) if artist_name else None,
        source=Source(url=_text(d.get("source_url"))),
        meta=ImageMeta(color=_colour(d.get("color_dominant"))),
        tags=_tags(d.get("tags")),
        api_rating=label,
        ages_known=False,
    )


def _items(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Fail(f"{what} is not a list")
    return value


def _count(body: Mapping[str, Any]) -> int:
    count = _opt_int(body.get("count"))
    if count is None or count < 0:
        raise _Fail("body.count is missing or not a whole number")
    return count


def parse_image(body: object, endpoint: str) -> Image:
    """``GET /images/{id}``: one image object."""
    return _guard(endpoint, lambda: _parse_image(body))


def parse_random_images(body: object, endpoint: str) -> Page[Image]:
    """``GET /images/random``: a bare array (an ``{"items": [...]}`` wrapper is accepted too)."""

    def run() -> Page[Image]:
        raw = body.get("items") if isinstance(body, Mapping) else body
        return Page(items=tuple(_parse_image(item) for item in _items(raw, "body")))

    return _guard(endpoint, run)


def parse_images_page(body: object, endpoint: str, *, limit: int, offset: int) -> Page[Image]:
    """``GET /images``: ``{"items": [...], "count": N}``; ``count`` (every match) is the total."""

    def run() -> Page[Image]:
        d = _obj(body, "body")
        items = tuple(_parse_image(item) for item in _items(d.get("items"), "body.items"))
        total = _count(d)
        return Page(
            items=items,
            pagination=Pagination(limit=limit, offset=offset, count=len(items), total=total),
        )

    return _guard(endpoint, run)


def parse_count(body: object, endpoint: str) -> int:
    """``count`` of a ``GET /images`` body: how many images match its filters."""
    return _guard(endpoint, lambda: _count(_obj(body, "body")))


# --------------------------------------------------------------------------- errors


def _where(loc: object) -> str:
    if not isinstance(loc, list | tuple):
        return ""
    parts = [
        str(part)
        for part in loc
        if isinstance(part, str | int) and not isinstance(part, bool) and str(part)
    ]
    if parts and parts[0] in _LOC_SOURCES:
        parts = parts[1:]
    return ".".join(parts)


def _detail_text(detail: object) -> str | None:
    """What a ``detail`` says, whatever its shape: text, a list of FastAPI errors, an object."""
    if isinstance(detail, str):
        return clip_message(detail)
    if isinstance(detail, Mapping):
        where = _where(detail.get("loc"))
        message = _detail_text(detail.get("msg", detail.get("message")))
        if message is None:
            return None
        return f"{where}: {message}" if where else message
    if isinstance(detail, list):
        parts = [text for item in detail[:_DETAIL_ITEMS] if (text := _detail_text(item))]
        return clip_message("; ".join(parts))
    return None


def _error_message(body: bytes) -> str | None:
    decoded = decode_json(body)
    if isinstance(decoded, Mapping):
        for key in ("detail", "message", "error"):
            if key in decoded and (text := _detail_text(decoded[key])) is not None:
                return text[:MESSAGE_MAX]
        return None
    return _detail_text(decoded) if isinstance(decoded, list) else None


def _error_fields(body: bytes) -> tuple[int | None, str | None]:
    return None, _error_message(body)  # v4 bodies carry no error code


error_from_response_v4: Final[ErrorMapper] = error_mapper(_error_fields)
"""The exception for a v4 error response: the status decides the class (422 is a
:class:`~bot.nekos.errors.BadRequest`), ``detail`` only adds words to the message."""
