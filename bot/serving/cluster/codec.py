"""JSON round-trips of :class:`~bot.nekos.models.Image`, for batches shared through Redis.

Each field is encoded by its declared type (nested frozen models, tuples, optional values,
datetimes, ``Rating``), so ``image_from_json(image_to_json(image)) == image``. Written by hand
(~60 lines) rather than with a serialisation library: the models are plain frozen dataclasses
parsed tolerantly from the API, and a library (pydantic, cattrs) would be a new dependency for
one round-trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import types
import typing
from functools import cache
from typing import Any

from bot.nekos.models import Image

__all__ = ["CodecError", "image_from_json", "image_to_json", "images_from_text", "images_to_text"]


class CodecError(ValueError):
    """A stored batch that does not decode as images."""


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(data: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _decode(data, inner)
    if origin is tuple:
        (item,) = typing.get_args(kind)[:1]
        return tuple(_decode(value, item) for value in data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        fields = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _decode(v, hints[k]) for k, v in data.items() if k in fields})
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(data)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(data)
    if kind in (str, int, bool, float) and not isinstance(data, kind):
        raise CodecError(f"expected {kind.__name__}, got {type(data).__name__}")
    return data


def image_to_json(image: Image) -> dict[str, Any]:
    """``image`` as JSON-ready data."""
    encoded: dict[str, Any] = _encode(image)
    return encoded


def image_from_json(data: Any) -> Image:
    """The image ``image_to_json`` gave; :class:`CodecError` if ``data`` is not one."""
    try:
        image = _decode(data, Image)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"not an image: {exc}") from exc
    if not isinstance(image, Image):
        raise CodecError("not an image")
    return image


def images_to_text(images: typing.Sequence[Image]) -> str:
    return json.dumps([image_to_json(image) for image in images], separators=(",", ":"))


def images_from_text(text: str | bytes) -> tuple[Image, ...]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise CodecError("not a list of images")
    return tuple(image_from_json(item) for item in data)
