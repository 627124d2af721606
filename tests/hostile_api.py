"""Hypothesis strategies for hostile Nekos API data: every field a third party fills is
markdown, a mention, a link, an invisible or bidirectional character, a huge string or junk.

One :class:`ApiShape` per response shape the bot reads (v1 reference, v1 live, v4). Each builds
a whole :class:`Case` (the routes a :class:`~tests.fakes.canned_api.CannedAPI` serves, the API
version the bot is set to, and what a member types into each command), so adding a shape means
writing its element strategies and its ``routes``, then listing it in :data:`SHAPES`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.fakes.canned_api import Paged

__all__ = ["SHAPES", "TEXT", "URL", "ApiShape", "Case", "cases", "weighted"]

Json = dict[str, Any]

# Pieces of text that mean something to Discord or hide something from a reader.
TEXT_PIECES: tuple[str, ...] = (
    "@everyone", "@here", "<@123>", "<@!1>", "<@&1>", "<#1>", "</neko:1>", "<t:1700000000:R>",
    "<:e:1>", "<a:e:1>", "[x](https://evil.example)", "[click](<https://evil.example>)",
    "https://evil.example", "http://evil.example/a_b", "<https://evil.example>", "steam://x",
    "**", "*", "__", "_", "~~", "||", "`", "```", "\\", ">", ">>> ", "# ", "## ", "-# ", "- ",
    "* ", "+ ", "1. ", "\n", "\r\n", "\t", " ", "\u00a0", "\u3000", "\u2028", "\u2029", "\x00",
    "\x1b[31m", "\x85", "\u202e", "\u202a", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad",
    "\u180e", "\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\u034f", "\U000e0041",
    "\ufe0f", "\ufe0f\ufe0f", "\U000e0100", "\ud800", "\uffff", "\U0001f469\u200d\U0001f4bb",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f1ef\U0001f1f5", "\u2764\ufe0f", "e\u0301",
    "Z" + "\u0301" * 12, "猫", "ｅｖｅｒｙｏｎｅ", "neko", "a", ":", "//", "(", ")", "[", "]", "<",
    "@", "Rem",
)  # fmt: skip

# A URL is a scheme, a host and a path made of these; about half are well-formed http(s).
SCHEMES = ("https://", "http://", "HTTPS://", "javascript:", "ftp://", "data:text/html,", "//",
           "", "discord://", "https:/", "https:")  # fmt: skip
HOSTS = ("example.org", "ex.org", "EXAMPLE.ORG", "127.0.0.1", "example.org:8080", "café.example",
         "xn--caf-dma.example", "user@evil.example", "discord.com@evil.example", "[::1]",
         "a_b.example", "", " example.org", "exa\u202emple.org", "example.org\u200b",
         "-bad.example", "ex..org", "example.org:99999")  # fmt: skip
PATH_PIECES = ("a", "/", ">", "<", "[click](https://evil.example)", ")", "(", "]", "[", "x",
               "*", "_", "~", "|", "`", " ", "\u202e", "\u2066", "\u200b", "\u200f", "\ufeff",
               "\u00ad", "\u3164", "%20", "%", "%3E",
               "?q=1", "&r=_", "#frag", "@everyone", "\n", "\\", '"', "'", "{", "}", "^", "猫",
               "/" + "a" * 600, "/" + "b" * 2100)  # fmt: skip


def weighted(*branches: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with each strategy ``weight`` times as likely (hypothesis merges repeats of
    one strategy object, so each repeat is a copy)."""
    return st.one_of(*(strategy.map(_same) for weight, strategy in branches for _ in range(weight)))


def _same(value: Any) -> Any:
    return value


def _hostile_text(max_pieces: int = 8, *, min_size: int = 0) -> st.SearchStrategy[str]:
    def pieces(least: int) -> st.SearchStrategy[str]:
        return st.lists(st.sampled_from(TEXT_PIECES), min_size=least, max_size=max_pieces).map(
            "".join
        )

    anything = st.text(st.characters(exclude_categories=()), min_size=min_size, max_size=40)
    long = st.builds(lambda s, n: s * n, pieces(1), st.integers(1, 700))
    return weighted((2, pieces(min_size)), (1, anything), (1, long))


# Strategies are built once: building them per draw costs more than drawing from them.
TEXT = _hostile_text()
"""Text built from :data:`TEXT_PIECES`, any Unicode (surrogates included), or very long."""
LONG_TEXT = _hostile_text(16)
SOME_TEXT = _hostile_text(min_size=1)
"""Hostile text that is not empty (the API's required names and ids)."""


def _url() -> st.SearchStrategy[str]:
    built = st.builds(
        lambda scheme, host, path: f"{scheme}{host}/{''.join(path)}",
        weighted((1, st.just("https://")), (1, st.sampled_from(SCHEMES))),
        weighted((1, st.just("example.org")), (1, st.sampled_from(HOSTS))),
        st.lists(st.sampled_from(PATH_PIECES), min_size=1, max_size=6),
    )
    return weighted((3, built), (1, SOME_TEXT))


URL = _url()
"""URL-ish strings: mostly http(s) with a host and a hostile path, sometimes anything."""


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


UUID = st.uuids().map(str)
ID = weighted((5, UUID), (1, SOME_TEXT))
"""Mostly a UUID, as the API promises; sometimes whatever the API felt like."""
TIME = st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), st.none(), TEXT)
OPTIONAL_TEXT = _optional(TEXT)
OPTIONAL_URL = _optional(URL)


# --------------------------------------------------------------------------- API v1 elements

V1_CATEGORY = st.fixed_dictionaries(
    {
        "id": ID,
        "name": SOME_TEXT,
        "description": OPTIONAL_TEXT,
        "nsfw": weighted((2, st.booleans()), (1, TEXT)),
        "createdAt": TIME,
    },
    optional={
        "type": st.sampled_from(["setting", "character", "format", "<@1>"]),
        "images": st.integers(-5, 10**9),
    },
)
V1_CHARACTER = st.fixed_dictionaries(
    {
        "id": UUID,
        "name": SOME_TEXT,
        "description": _optional(LONG_TEXT),
        "source": OPTIONAL_TEXT,
        "gender": OPTIONAL_TEXT,
        "ages": _optional(st.lists(st.integers(0, 10_000), max_size=3)),
        "birth_date": OPTIONAL_TEXT,
        "nationality": OPTIONAL_TEXT,
        "occupations": st.lists(TEXT, max_size=4),
        "createdAt": TIME,
    },
    optional={"images": st.integers(0, 10**6)},
)
V1_ARTIST = st.fixed_dictionaries(
    {"id": UUID, "name": OPTIONAL_TEXT, "url": OPTIONAL_URL},
    optional={"images": st.integers(0, 10**6)},
)
_META = st.fixed_dictionaries(
    {
        "eTag": TEXT,
        "size": st.integers(1, 10**8),
        "mimetype": st.sampled_from(["image/png", "image/jpeg", "text/html", "<@1>"]),
        "color": st.one_of(st.none(), st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06x}"), TEXT),
        "expires": TIME,
        "dimens": st.fixed_dictionaries(
            {"width": st.integers(1, 10_000), "height": st.integers(1, 10_000)},
            optional={"aspectRatio": TEXT, "orientation": TEXT},
        ),
    }
)
_SOURCE = st.fixed_dictionaries({"name": OPTIONAL_TEXT, "url": OPTIONAL_URL})
# Who the image credits: the case's artist, another one, or nobody (filled in per shape).
ARTIST_SLOT = st.sampled_from(["same", "same", "other", "none"])


def _v1_image(*, live: bool) -> st.SearchStrategy[Json]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "id": ID,
        "url": URL,
        "artist": ARTIST_SLOT,
        "source": weighted((2, _SOURCE), (1, st.none())) if live else _SOURCE,
        "nsfw": st.sampled_from(["sfw", "sfw", "questionable", "nsfw", "<@1>"]),
        "categories": st.lists(V1_CATEGORY, max_size=3),
        "characters": st.lists(V1_CHARACTER, max_size=2),
        "createdAt": TIME,
        "meta": _META,
    }
    if live:
        fields["original"] = st.one_of(st.none(), st.booleans())
    return st.fixed_dictionaries(fields)


V1_REFERENCE_IMAGE = _v1_image(live=False)
V1_LIVE_IMAGE = _v1_image(live=True)
_COUNT = st.integers(0, 10**7)
V1_STATS = st.fixed_dictionaries(
    {
        "images": st.fixed_dictionaries(
            {
                "count": _COUNT,
                "nsfw": st.dictionaries(
                    st.one_of(st.sampled_from(["sfw", "questionable", "nsfw"]), TEXT),
                    _COUNT,
                    max_size=5,
                ),
            }
        ),
        "artists": st.one_of(_COUNT, st.fixed_dictionaries({"count": _COUNT})),
        "characters": st.one_of(_COUNT, st.fixed_dictionaries({"count": _COUNT})),
        "categories": st.one_of(_COUNT, st.fixed_dictionaries({"count": _COUNT})),
    }
)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """What the fake API serves, and what a member types into each command."""

    shape: str
    routes: Mapping[str, Any]
    options: Mapping[str, Mapping[str, Any]]
    """``PreviewOptions`` fields for each command kind (``random``, ``artist``, …)."""
    api_version: str = "v1"
    """``NEKOS_API_VERSION`` for the bot: which adapter reads these routes."""


def _ok(data: Any) -> Json:
    return {"data": data, "success": True}


CATEGORY_SEARCH = weighted((2, st.just("")), (1, TEXT.map(lambda s: s[:50])))
MEMBER_TEXT = TEXT.map(lambda s: s[:6000])  # Discord caps a string option at 6000


def _member_input(draw: st.DrawFn, known: list[str]) -> str:
    """What a member types: mostly a known name or id (so the command finds something and
    renders it), else anything, or nothing."""
    typed = ((2, MEMBER_TEXT), (1, st.just("")))
    return draw(weighted((4, st.sampled_from(known)), *typed) if known else weighted(*typed))


@st.composite
def _v1_case(draw: st.DrawFn, *, live: bool) -> Case:
    artist = draw(V1_ARTIST)
    images = []
    for image in draw(
        st.lists(V1_LIVE_IMAGE if live else V1_REFERENCE_IMAGE, min_size=1, max_size=3)
    ):
        slot = image["artist"]
        credited = artist if slot == "same" else draw(V1_ARTIST) if slot == "other" else None
        # The live server embeds the artist object (or null); the reference only its UUID.
        shown = credited if live or credited is None else credited["id"]
        images.append({**image, "artist": shown})  # drawn values are never mutated
    character = draw(V1_CHARACTER)
    # The catalogue knows the images' categories, so a member can ask for them.
    tagged = [c for image in images for c in image["categories"]]
    categories = tagged + draw(st.lists(V1_CATEGORY, min_size=1, max_size=6))
    version = draw(OPTIONAL_TEXT)
    image_id = images[0]["id"] if _is_uuid(images[0]["id"]) else str(uuid.UUID(int=1))
    artist_id, character_id = artist["id"].lower(), character["id"].lower()
    routes: dict[str, Any] = {
        "/token": _ok({"scopes": ["api:ratelimit:disabled"], "owner": "tests"}),
        "/": {"data": ["/"], "meta": {"version": version, "baseApiRoute": "/api"}, "success": True},
        "/stats": _ok(draw(V1_STATS)),
        "/image/random": _ok(images),
        f"/image/{image_id.lower()}": _ok(images[0]),
        "/artist": Paged([artist]),
        f"/artist/{artist_id}": _ok(artist),
        f"/artist/{artist_id}/images": Paged(images),
        "/character": Paged([character]),
        "/category": Paged(categories),
    }
    if _is_uuid(character_id):
        routes[f"/character/{character_id}"] = _ok(character)
    rating = draw(st.sampled_from(["nsfw", "nsfw", "questionable", "sfw"]))
    names = [c["name"] for c in images[0]["categories"]]
    options = {
        "random": {
            "categories": _member_input(draw, names),
            "count": draw(st.integers(1, 10)),
            "max_rating": rating,
        },
        "artist": {
            "name": _member_input(draw, [artist["id"], artist["name"] or artist["id"]]),
            "page": draw(st.integers(1, 3)),
            "max_rating": rating,
        },
        "character": {"name": _member_input(draw, [character["id"], character["name"]])},
        "image": {"image_id": image_id, "max_rating": rating},
        "category": {
            "search": draw(CATEGORY_SEARCH),
            "page": draw(st.integers(1, 2)),
            "max_rating": rating,
        },
        "stats": {},
    }
    return Case("v1-live" if live else "v1-reference", routes, options)


# --------------------------------------------------------------------------- API v4

V4_IMAGE = st.fixed_dictionaries(
    {
        "id": st.integers(0, 10**9),  # anything else fails the whole page: tested elsewhere
        "url": URL,
        "rating": st.sampled_from(["safe", "safe", "suggestive", "borderline", "explicit", "<@1>"]),
        "color_dominant": weighted(
            (3, st.lists(st.integers(0, 255), min_size=3, max_size=3)), (1, st.none()), (1, TEXT)
        ),
        "artist_name": OPTIONAL_TEXT,
        "tags": st.lists(TEXT, max_size=5),
        "source_url": OPTIONAL_URL,
    },
    optional={"is_original": st.booleans(), "image_url": URL},
)


@st.composite
def _v4_case(draw: st.DrawFn) -> Case:
    """The v4 shape: bare image objects, ``{"items", "count"}`` lists, whole-number ids, tags;
    no artists, characters or categories (those commands answer that they have none)."""
    images = draw(st.lists(V4_IMAGE, min_size=1, max_size=3))
    image_id = str(images[0]["id"])
    count = draw(st.integers(0, 10**7))
    routes: dict[str, Any] = {
        "/images/random": images,
        "/images": {"items": images, "count": count},
        f"/images/{image_id}": images[0],
    }
    tags = [t for image in images for t in image["tags"]]
    options = {
        "random": {"categories": _member_input(draw, tags), "count": draw(st.integers(1, 10))},
        "artist": {"name": draw(MEMBER_TEXT)},
        "character": {"name": draw(MEMBER_TEXT)},
        "image": {"image_id": image_id},
        "category": {"search": draw(CATEGORY_SEARCH)},
        "stats": {},
    }
    return Case("v4", routes, options, api_version="v4")


def _is_uuid(value: str) -> bool:
    try:
        return len(value) == 36 and uuid.UUID(value) is not None
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiShape:
    """One response shape the bot reads, and how to build a whole hostile :class:`Case`."""

    name: str
    case: Callable[[], st.SearchStrategy[Case]]


SHAPES: tuple[ApiShape, ...] = (
    ApiShape("v1-reference", lambda: _v1_case(live=False)),
    ApiShape("v1-live", lambda: _v1_case(live=True)),
    ApiShape("v4", _v4_case),
)


def cases() -> st.SearchStrategy[Case]:
    """A hostile case in any of :data:`SHAPES`."""
    return st.one_of(*(shape.case() for shape in SHAPES))
