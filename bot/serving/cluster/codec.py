"""Batches of images as text, for batches shared through Redis.

The models' JSON round-trip is :mod:`bot.serving.shared.codec`'s (one codec for every value the
bot keeps in Redis); this module only frames a batch as a JSON list of images.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from bot.nekos.models import Image

from ..shared.codec import CodecError, decode_value, encode_value

__all__ = ["CodecError", "image_from_json", "image_to_json", "images_from_text", "images_to_text"]


def image_to_json(image: Image) -> dict[str, Any]:
    """``image`` as JSON-ready data."""
    encoded: dict[str, Any] = encode_value(image, "image")
    return encoded


def image_from_json(data: Any) -> Image:
    """The image ``image_to_json`` gave; :class:`CodecError` if ``data`` is not one."""
    image = decode_value(data, "image")
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
