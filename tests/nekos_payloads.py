"""Response bodies of the Nekos API v1, in the published reference's shape and the live server's.

The reference shapes follow ``seeds/nekos-api-v1-endpoints.txt``; the live shapes add the drift
described in ``nekos-api-v1.md`` (artist object or null, ``original``, category ``type``,
``color`` null, no ``aspectRatio``, ``square`` orientation, pagination meta, unknown fields).
"""

from __future__ import annotations

import copy
from typing import Any

IMAGE_ID = "6f0e6bd4-3bd1-4e3c-9c0e-2c1f6d0d2b11"
ARTIST_ID = "0a4d8a51-5e8e-4a35-a0a1-37cbb2d3a7c0"
CHARACTER_ID = "9d6b6a0e-0f0c-4e7b-a8a3-2f44d8f2e1aa"
CATEGORY_ID = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

REFERENCE_CATEGORY: dict[str, Any] = {
    "id": CATEGORY_ID,
    "name": "catgirl",
    "description": "Girls with cat ears and tails.",
    "nsfw": False,
    "createdAt": "2021-01-01T00:00:00.000Z",
}

REFERENCE_CHARACTER: dict[str, Any] = {
    "id": CHARACTER_ID,
    "name": "Chocola",
    "description": "A catgirl from Nekopara.",
    "source": "Nekopara",
    "gender": "female",
    "ages": [16, 17],
    "birth_date": "xxxx xxxx",
    "nationality": "Japanese",
    "occupations": ["patissier", "maid"],
    "createdAt": "2021-01-01T00:00:00.000Z",
}

REFERENCE_IMAGE: dict[str, Any] = {
    "id": IMAGE_ID,
    "url": f"https://example.com/assets/{IMAGE_ID}.png",
    "artist": ARTIST_ID,
    "source": {"name": "Pixiv", "url": "https://example.com/source"},
    "nsfw": "sfw",
    "categories": [REFERENCE_CATEGORY],
    "characters": [REFERENCE_CHARACTER],
    "createdAt": "2021-01-01T00:00:00.000Z",
    "meta": {
        "eTag": "abcdef0123456789",
        "size": 6336807,
        "mimetype": "image/png",
        "color": "#ffffff",
        "expires": "2021-01-01T00:00:00.000Z",
        "dimens": {
            "width": 1024,
            "height": 1024,
            "aspectRatio": "1:1",
            "orientation": "landscape",
        },
    },
}

LIVE_ARTIST: dict[str, Any] = {
    "id": ARTIST_ID,
    "name": "Ai Yue",
    "url": "https://example.com/artist/ai-yue",
    "images": 12,
}

LIVE_IMAGE: dict[str, Any] = {
    "id": IMAGE_ID,
    "url": f"https://storage.example.com/images/{IMAGE_ID}.webp?X-Amz-Signature=deadbeef",
    "artist": LIVE_ARTIST,
    "source": {"name": None, "url": "https://example.com/source"},
    "original": False,
    "nsfw": "questionable",
    "categories": [{**REFERENCE_CATEGORY, "type": "character", "popularity": 3}],
    "characters": [],
    "createdAt": "2023-05-01T12:00:00.000Z",
    "meta": {
        "eTag": "abcdef0123456789",
        "size": 4096,
        "mimetype": "image/webp",
        "color": None,
        "expires": "2023-05-01T13:00:00.000Z",
        "dimens": {"width": 512, "height": 512, "orientation": "square"},
    },
    "likes": 7,
}

LIVE_IMAGE_NO_ARTIST: dict[str, Any] = {**LIVE_IMAGE, "artist": None, "original": None}

PAGINATION: dict[str, Any] = {"pagination": {"limit": 25, "offset": 0, "count": 1, "total": 2890}}


def reference_one(data: Any) -> dict[str, Any]:
    """``{"data": ..., "success": true}`` as the reference shows it."""
    return {"data": copy.deepcopy(data), "success": True}


def reference_page(*items: Any) -> dict[str, Any]:
    """A list body without pagination meta, as the reference shows it."""
    return {"data": [copy.deepcopy(i) for i in items], "success": True}


def live_page(*items: Any) -> dict[str, Any]:
    """A list body with the live server's pagination meta and an unknown top-level field."""
    return {
        "data": [copy.deepcopy(i) for i in items],
        "meta": copy.deepcopy(PAGINATION),
        "success": True,
        "took": 12,
    }


REFERENCE_API_INFO: dict[str, Any] = {
    "data": ["/", "/stats", "/token", "/image", "/image/random"],
    "meta": {"version": "v1.4.2", "baseApiRoute": "/api"},
    "success": True,
}

LIVE_API_INFO: dict[str, Any] = {
    "data": ["/", "/stats", "/image", "/set", "/set/{id}"],
    "meta": {"version": "v1.6.0", "baseApiRoute": "/api", "docs": "https://example.com/docs"},
    "success": True,
}

REFERENCE_STATS: dict[str, Any] = reference_one(
    {
        "images": {"count": 2890, "nsfw": {"nsfw": 9, "questionable": 19, "sfw": 2862}},
        "artists": {"count": 1},
        "characters": {"count": 4},
        "categories": {"count": 30},
    }
)

LIVE_STATS: dict[str, Any] = reference_one(
    {
        "images": {"count": 2890, "nsfw": {"nsfw": 9, "questionable": 19, "sfw": 2862}},
        "artists": 5,
        "sets": {"count": 2},
    }
)

TOKEN_DATA: dict[str, Any] = {
    "owner": "someone (Discord ID: 1)",
    "purpose": "testing",
    "scopes": ["image:list", "image:custom-expiry:86400"],
    "issuedBy": "admin (Discord ID: 2)",
    "createdAt": "2023-01-01T00:00:00.000Z",
    "expires": "2024-01-01T00:00:00.000Z",
}

LIVE_CHARACTER: dict[str, Any] = {**REFERENCE_CHARACTER, "images": 3, "ages": [16, "unknown"]}
LIVE_CATEGORY: dict[str, Any] = {**REFERENCE_CATEGORY, "type": "setting", "images": 12}
REFERENCE_ARTIST: dict[str, Any] = {
    "id": ARTIST_ID,
    "name": "Ai Yue",
    "url": "https://example.com/artist/ai-yue",
}
