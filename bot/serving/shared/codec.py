"""JSON round-trips of the lookup models, for values kept in Redis.

One generic codec over the frozen dataclasses of :mod:`bot.nekos.models`: each field is encoded
by its declared type (nested models, tuples, optional values, mappings, datetimes, ``Rating``),
so a decoded value equals the one encoded (``==`` on the frozen models). A stored value names its
kind (:data:`KINDS`) and carries :data:`FORMAT`; anything that does not decode is treated as
absent (the caller then asks upstream), never as an error a member sees.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from bot.nekos.models import Artist, Category, Character, Image, Page, Pagination, Stats

__all__ = [
    "FORMAT",
    "KINDS",
    "CodecError",
    "NotFoundValue",
    "decode",
    "decode_value",
    "encode",
    "encode_value",
]

T = TypeVar("T")

FORMAT = 1
"""Bumped when the stored shape changes: values of another format are ignored (a miss)."""


class CodecError(ValueError):
    """A stored value that does not decode as the kind it should be."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotFoundValue:
    """A remembered 404 (what the API said), shared like any value."""

    message: str
    endpoint: str | None


class _PageOf:
    """The type of a page of ``item`` (``Page`` is generic; its items' type is not recorded)."""

    def __init__(self, item: type[Any]) -> None:
        self.item = item


KINDS: Mapping[str, Any] = {
    "image": Image,
    "artist": Artist,
    "character": Character,
    "artist_images": _PageOf(Image),
    "category_list": tuple[Category, ...],
    "artist_list": tuple[Artist, ...],
    "character_list": tuple[Character, ...],
    "stats": Stats,
    "artist_search": tuple[Artist, ...],
    "character_search": tuple[Character, ...],
}
"""Each kind of lookup and the type of its value."""


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _to_json(value: object, kind: Any) -> Any:
    if isinstance(kind, _PageOf):
        page = typing.cast(Page[Any], value)
        return {
            "items": [_to_json(item, kind.item) for item in page.items],
            "pagination": _to_json(page.pagination, Pagination | None),
        }
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = _hints(type(value))
        return {
            f.name: _to_json(getattr(value, f.name), hints[f.name])
            for f in dataclasses.fields(value)
        }
    if isinstance(value, tuple | list):
        args = typing.get_args(kind)
        item = args[0] if args else Any
        return [_to_json(v, item) for v in value]
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value


def _from_json(data: Any, kind: Any) -> Any:
    if isinstance(kind, _PageOf):
        if not isinstance(data, dict):
            raise CodecError("a page is not an object")
        return Page(
            items=tuple(_from_json(item, kind.item) for item in _list(data.get("items"))),
            pagination=_from_json(data.get("pagination"), Pagination | None),
        )
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if data is None:
            return None
        if len(options) != 1:
            raise CodecError(f"ambiguous type {kind}")
        return _from_json(data, options[0])
    if kind is Any:
        return data
    if origin is tuple:
        return tuple(_from_json(v, typing.get_args(kind)[0]) for v in _list(data))
    if origin in (Mapping, dict) or kind is Mapping:
        if not isinstance(data, dict):
            raise CodecError("a mapping is not an object")
        value_type = typing.get_args(kind)[1] if typing.get_args(kind) else Any
        return {str(k): _from_json(v, value_type) for k, v in data.items()}
    if isinstance(kind, type):
        if issubclass(kind, enum.Enum):
            return kind(data)
        if kind is dt.datetime:
            if not isinstance(data, str):
                raise CodecError("a time is not text")
            return dt.datetime.fromisoformat(data)
        if dataclasses.is_dataclass(kind):
            if not isinstance(data, dict):
                raise CodecError(f"{kind.__name__} is not an object")
            hints = _hints(kind)
            values = {
                f.name: _from_json(data[f.name], hints[f.name])
                for f in dataclasses.fields(kind)
                if f.name in data
            }
            return kind(**values)
        if kind is float and isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        if kind in (str, int, bool) and type(data) is kind:
            return data
    raise CodecError(f"{data!r} is not a {kind}")


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise CodecError("a sequence is not a list")
    return data


def encode_value(value: object, kind: str) -> Any:
    """``value`` (of lookup ``kind``) as plain JSON data."""
    return _to_json(value, KINDS[kind])


def decode_value(data: Any, kind: str) -> Any:
    """The value of lookup ``kind`` that :func:`encode_value` gave ``data`` for."""
    try:
        return _from_json(data, KINDS[kind])
    except CodecError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise CodecError(f"{kind}: {type(exc).__name__}: {exc}") from exc


def encode(value: object, kind: str) -> str:
    """The stored text of a lookup's answer: its value, or a remembered 404."""
    if isinstance(value, NotFoundValue):
        body: dict[str, Any] = {
            "f": FORMAT,
            "kind": kind,
            "absent": {"message": value.message, "endpoint": value.endpoint},
        }
    else:
        body = {"f": FORMAT, "kind": kind, "value": encode_value(value, kind)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode(text: str | bytes, kind: str) -> Any:
    """What :func:`encode` stored: the value or a :class:`NotFoundValue`; ``CodecError`` if it
    is not one (another format, another kind, damaged)."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CodecError("not JSON") from exc
    if not isinstance(body, dict) or body.get("f") != FORMAT or body.get("kind") != kind:
        raise CodecError("another format or kind")
    absent = body.get("absent")
    if isinstance(absent, dict):
        message, endpoint = absent.get("message"), absent.get("endpoint")
        if not isinstance(message, str) or not (endpoint is None or isinstance(endpoint, str)):
            raise CodecError("a damaged 404")
        return NotFoundValue(message, endpoint)
    if "value" not in body:
        raise CodecError("no value")
    return decode_value(body["value"], kind)
