"""Tests of the fake Nekos API v1 server itself, over real loopback sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.dataset import DEFAULT_RATINGS, Dataset, generate_dataset
from tests.fakes.nekos_api import (
    ENDPOINTS,
    FakeNekosAPI,
    PatternError,
    ilike_regex,
    similar_to_regex,
    solid_jpeg,
    solid_png,
)

REPO = Path(__file__).resolve().parents[1]
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Reply:
    """What one request got back."""

    def __init__(self, status: int, headers: dict[str, str], text: str, ctype: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.content_type = ctype

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@pytest.fixture
def dataset() -> Dataset:
    return generate_dataset()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(10_000.0)


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
async def limited(
    dataset: Dataset, clock: ManualClock, wall: ManualClock
) -> AsyncIterator[FakeNekosAPI]:
    """A fake with the live rate limit (1 per second) on a hand-moved clock."""
    async with FakeNekosAPI(dataset, clock=clock, wall_clock=wall) as fake:
        yield fake


async def call(
    session: aiohttp.ClientSession,
    url: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **params: str | int,
) -> Reply:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    query = {k: str(v) for k, v in params.items()}
    async with session.get(url, params=query, headers=sent) as response:
        return Reply(
            response.status, dict(response.headers), await response.text(), response.content_type
        )


def assert_error(reply: Reply, status: int, message: str | re.Pattern[str]) -> None:
    assert reply.status == status, reply.text
    body = reply.json
    assert body["code"] == status
    assert body["success"] is False
    if isinstance(message, str):
        assert body["message"] == message
    else:
        assert message.search(body["message"]), body["message"]


def assert_crash(reply: Reply) -> None:
    """The live server's unhandled errors: Next.js' bare 500."""
    assert reply.status == 500
    assert reply.content_type == "text/plain"
    assert reply.text == "Internal Server Error"


# --------------------------------------------------------------------------- shapes


async def test_index_lists_endpoints_including_undocumented_sets(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    for path in ("", "/"):
        body = (await call(session, nekos_fake.base_url + path)).json
        assert body["success"] is True
        assert body["data"] == list(ENDPOINTS)
        assert "/set" in body["data"]
        assert "/set/:id" in body["data"]
        assert body["meta"] == {"version": "v1.6.0", "baseApiRoute": "/api"}


async def test_stats_counts_match_the_dataset(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    data = (await call(session, nekos_fake.url("/stats"))).json["data"]
    images = data["images"]
    assert images["count"] == len(dataset.images) == 2900
    assert images["nsfw"] == {"sfw": 2872, "questionable": 19, "nsfw": 9}
    assert sum(images["original"].values()) == 2900
    assert sum(images["orientation"].values()) == 2900
    assert images["orientation"]["square"] > 0
    assert data["artists"] == {"count": 60}
    assert data["characters"]["count"] == 80
    assert data["categories"]["count"] == len(dataset.categories)
    assert data["categories"]["nsfw"]["nsfw"] == 3
    assert set(data["categories"]["type"]) == {"settings", "character", "format"}


async def test_token_endpoint_returns_owner_and_scopes(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    scopes = ["image:list", "image:custom-expiry:86400", "api:ratelimit:5-1-10"]
    token = nekos_fake.add_token(scopes, owner="bot (Discord ID: 1)")
    assert re.fullmatch(r"[0-9A-Za-z]{100}", token)
    assert token not in repr(nekos_fake._tokens[token])
    data = (await call(session, nekos_fake.url("/token"), token)).json["data"]
    assert data["scopes"] == scopes
    assert data["owner"] == "bot (Discord ID: 1)"
    assert set(data) == {"owner", "purpose", "scopes", "issuedBy", "createdAt", "expires"}
    assert data["createdAt"].endswith("Z")
    assert data["expires"].endswith("Z")


async def test_image_list_has_live_shape_and_pagination(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    token = nekos_fake.add_token(["image:list"])
    body = (await call(session, nekos_fake.url("/image"), token, limit=50, offset=7)).json
    assert body["success"] is True
    assert body["meta"]["pagination"] == {"limit": 50, "offset": 7, "count": 50, "total": 2900}
    assert [i["id"] for i in body["data"]] == [i.id for i in dataset.images[7:57]]
    default = (await call(session, nekos_fake.url("/image"), token)).json
    assert default["meta"]["pagination"]["limit"] == 10
    last = (await call(session, nekos_fake.url("/image"), token, offset=2895)).json
    assert last["meta"]["pagination"]["count"] == 5


async def test_image_objects_carry_the_live_drift(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    token = nekos_fake.add_token(["image:list"])
    seen: list[dict[str, Any]] = []
    for offset in range(0, 200, 50):
        reply = await call(session, nekos_fake.url("/image"), token, limit=50, offset=offset)
        seen.extend(reply.json["data"])
    first = seen[0]
    assert set(first) == {
        "id", "url", "artist", "source", "original", "nsfw", "categories", "characters",
        "createdAt", "meta",
    }  # fmt: skip
    assert set(first["meta"]) == {"eTag", "size", "mimetype", "color", "expires", "dimens"}
    assert any(i["artist"] is None for i in seen)
    with_artist = next(i for i in seen if isinstance(i["artist"], dict))
    assert set(with_artist["artist"]) == {"id", "name", "url"}  # no `images` count when nested
    # The reference shape too: some images name their artist by id only.
    bare = [i["artist"] for i in seen if isinstance(i["artist"], str)]
    assert bare
    assert all(a in dataset.artist_by_id for a in bare)
    assert any(i["meta"]["color"] is None for i in seen)
    assert any("aspectRatio" not in i["meta"]["dimens"] for i in seen)
    assert any("aspectRatio" in i["meta"]["dimens"] for i in seen)
    squares = [i for i in seen if i["meta"]["dimens"]["width"] == i["meta"]["dimens"]["height"]]
    assert squares
    assert all(i["meta"]["dimens"]["orientation"] == "square" for i in squares)
    assert {i["original"] for i in seen} == {True, False, None}
    assert any(i["source"]["name"] is None for i in seen)
    assert any(i["source"]["url"] is None for i in seen)
    category = next(c for i in seen for c in i["categories"])
    assert category["type"] in {"setting", "character", "format"}
    assert "images" not in category
    character = next(c for i in seen for c in i["characters"])
    assert "images" not in character
    assert "ages" in character
    assert {i["meta"]["mimetype"] for i in seen} == {"image/png", "image/jpeg"}


async def test_image_by_id_accepts_any_case_and_reports_missing(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    image = dataset.images[3]
    reply = await call(session, nekos_fake.url(f"/image/{image.id.upper()}"))
    assert reply.json["data"]["id"] == image.id
    assert "meta" not in reply.json
    missing = await call(session, nekos_fake.url(f"/image/{UNKNOWN_UUID}"))
    assert_error(missing, 404, f"Could not find image with ID: {UNKNOWN_UUID}")


async def test_single_artist_character_category_carry_image_counts(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    artist = dataset.artists[0]
    data = (await call(session, nekos_fake.url(f"/artist/{artist.id}"))).json["data"]
    assert data == {
        "id": artist.id,
        "name": artist.name,
        "url": artist.url,
        "images": len(dataset.images_by_artist(artist.id)),
    }
    character = dataset.characters[0]
    data = (await call(session, nekos_fake.url(f"/character/{character.id}"))).json["data"]
    assert data["images"] == len(dataset.images_with_character(character.id))
    assert data["ages"] == [16, 17]
    category = dataset.category_named("catgirl")
    data = (await call(session, nekos_fake.url(f"/category/{category.id}"))).json["data"]
    assert data["images"] == len(dataset.images_in_category(category.id)) > 0
    assert data["type"] == "character"
    assert data["nsfw"] is False
    listed = (await call(session, nekos_fake.url("/artist"))).json["data"]
    assert all("images" not in a for a in listed)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/artist/{id}", "Could not find artist with ID: {id}"),
        ("/artist/{id}/images", "Could not find artist with ID: {id}"),
        ("/character/{id}", "Could not find character with ID: {id}"),
        ("/category/{id}", "Could not find category with ID: {id}"),
        ("/set/{id}", "Could not find set with ID: {id}"),
    ],
)
async def test_unknown_ids_are_404(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, path: str, message: str
) -> None:
    reply = await call(session, nekos_fake.url(path.format(id=UNKNOWN_UUID)))
    assert_error(reply, 404, message.format(id=UNKNOWN_UUID))


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/image/{id}", "imageId"),
        ("/artist/{id}", "artistId"),
        ("/artist/{id}/images", "artistId"),
        ("/character/{id}", "characterId"),
        ("/category/{id}", "categoryId"),
        ("/set/{id}", "setId"),
    ],
)
async def test_invalid_uuid_is_400(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, path: str, name: str
) -> None:
    reply = await call(session, nekos_fake.url(path.format(id="not-a-uuid")))
    assert_error(reply, 400, f"Invalid value for `{name}` parameter. Expected a UUID.")


async def test_artist_images_paginate_and_empty_page_is_404(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    artist = max(dataset.artists, key=lambda a: len(dataset.images_by_artist(a.id)))
    total = len(dataset.images_by_artist(artist.id))
    url = nekos_fake.url(f"/artist/{artist.id}/images")
    body = (await call(session, url, limit=5, offset=2)).json
    assert body["meta"]["pagination"] == {"limit": 5, "offset": 2, "count": 5, "total": total}
    assert all(
        (i["artist"] if isinstance(i["artist"], str) else i["artist"]["id"]) == artist.id
        for i in body["data"]
    )
    assert_error(
        await call(session, url, offset=total),
        404,
        f"Could not find artist with ID: {artist.id}",
    )
    idle = next(a for a in dataset.artists if not dataset.images_by_artist(a.id))
    reply = await call(session, nekos_fake.url(f"/artist/{idle.id}/images"))
    assert reply.status == 404
    assert_error(
        await call(session, url, offset="x"),
        400,
        "Invalid value for `offset` parameter. Expected a number.",
    )


async def test_sets_are_listed_empty(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    assert (await call(session, nekos_fake.url("/set"))).json == {"data": [], "success": True}


async def test_unknown_api_path_is_an_html_404(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, nekos_fake.url("/images"))
    assert reply.status == 404
    assert reply.content_type == "text/html"


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("path", "maximum", "message"),
    [
        ("/image/random", 25, "between 1 and 25."),
        ("/character", 25, "between 1 and 25."),
        ("/category", 25, "between 1 and 25."),
        ("/artist", 50, "between 1 and 25."),  # live accepts 50 but says 25
        ("/image", 50, "between 1 and 50."),
    ],
)
async def test_limit_bounds_per_endpoint(
    nekos_fake: FakeNekosAPI,
    session: aiohttp.ClientSession,
    path: str,
    maximum: int,
    message: str,
) -> None:
    token = nekos_fake.add_token(["image:list"])
    nekos_fake.sample_percent = 100.0
    ok = await call(session, nekos_fake.url(path), token, limit=maximum)
    assert ok.status == 200, ok.text
    assert len(ok.json["data"]) == maximum
    expected = f"Invalid value for `limit` parameter. Expected a number {message}"
    for bad in (0, maximum + 1, "abc", "-1", "", "2.5", " 5"):
        assert_error(await call(session, nekos_fake.url(path), token, limit=bad), 400, expected)


@pytest.mark.parametrize("path", ["/image", "/artist", "/character", "/category", "/set"])
async def test_offset_must_be_a_non_negative_integer(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, path: str
) -> None:
    token = nekos_fake.add_token(["image:list"])
    expected = "Invalid value for `offset` parameter. Expected a number greater than 0."
    for bad in ("-1", "x", "1e3"):
        assert_error(await call(session, nekos_fake.url(path), token, offset=bad), 400, expected)
    beyond = await call(session, nekos_fake.url(path), token, offset=100_000)
    assert beyond.status == 200
    assert beyond.json["data"] == []


# --------------------------------------------------------------------------- tokens and scopes


async def test_image_list_requires_a_token(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    for path in ("/image", "/token"):
        reply = await call(session, nekos_fake.url(path))
        assert_error(reply, 401, "You need an access token to access this resource.")


@pytest.mark.parametrize(
    "header",
    ["Bearer short", "Token " + "a" * 100, "Bearer " + "a" * 99 + "!", "Bearer " + "a" * 101],
)
async def test_malformed_authorization_header_is_401(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, header: str
) -> None:
    reply = await call(session, nekos_fake.url("/stats"), headers={"Authorization": header})
    assert_error(
        reply,
        401,
        "The authentication token is invalid. It should match `^Bearer [0-9a-zA-Z]{100}$`.",
    )


async def test_unknown_or_revoked_token_is_401(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    assert_error(
        await call(session, nekos_fake.url("/category"), "Z" * 100),
        401,
        "The authentication token is invalid.",
    )
    token = nekos_fake.add_token([])
    assert (await call(session, nekos_fake.url("/category"), token)).status == 200
    nekos_fake.revoke_token(token)
    assert (await call(session, nekos_fake.url("/category"), token)).status == 401


async def test_image_list_needs_the_image_list_scope(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    token = nekos_fake.add_token(["image:custom-expiry"])
    reply = await call(session, nekos_fake.url("/image"), token)
    assert_error(reply, 403, "You don't have permission to access this resource.")


async def test_custom_expiry_rules(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    url = nekos_fake.url(f"/image/{dataset.images[0].id}")
    # The live default value passes the check even without a token.
    assert (await call(session, url, expiry=3600)).status == 200
    assert_error(
        await call(session, url, expiry=60),
        401,
        "You need to be authorized to set a custom expire time for image links.",
    )
    plain = nekos_fake.add_token(["image:list"])
    assert_error(
        await call(session, url, plain, expiry=60),
        403,
        "Your access token does not have permission to set a custom expiry time for image links.",
    )
    capped = nekos_fake.add_token(["image:list", "image:custom-expiry:600"])
    for bad in (30, 5, "abc", "-40"):
        assert_error(
            await call(session, url, capped, expiry=bad),
            400,
            "The expiry parameter must represent a time in seconds equal or greater than 30.",
        )
    assert_error(
        await call(session, url, capped, expiry=601),
        403,
        "You are not permitted to set an expiry time greater than 600 seconds.",
    )
    reply = await call(session, url, capped, expiry=600)
    expires = dt.datetime.fromisoformat(reply.json["data"]["meta"]["expires"])
    expected = dt.datetime.fromtimestamp(time.time() + 600, dt.UTC)
    assert abs((expires - expected).total_seconds()) < 30
    unlimited = nekos_fake.add_token(["image:custom-expiry"])
    assert (await call(session, url, unlimited, expiry=10**7)).status == 200


@pytest.mark.parametrize(
    "path", ["/image", "/image/random", "/artist/{artist}/images", "/image/{image}"]
)
async def test_every_image_endpoint_checks_expiry(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset, path: str
) -> None:
    artist = max(dataset.artists, key=lambda a: len(dataset.images_by_artist(a.id)))
    url = nekos_fake.url(path.format(artist=artist.id, image=dataset.images[0].id))
    token = nekos_fake.add_token(["image:list", "image:custom-expiry:100"])
    nekos_fake.sample_percent = 100.0
    assert (await call(session, url, token, expiry=101)).status == 403
    assert (await call(session, url, token, expiry=31)).status == 200


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("%neko%", "Neko Girl", True),
        ("neko", "Neko Girl", False),  # whole value, not a substring
        ("NEKO%", "neko girl", True),
        ("50\\%%", "50% off", True),
        ("50\\%%", "50 percent off", False),
        ("50%", "50 percent off", True),
        ("under\\_score", "under-score", False),
        ("under_score", "under-score", True),
        ("(paren)", "paren", True),
        ("(paren)", "(paren)", False),
        ("\\(paren\\)", "(paren)", True),
        ("a|b studio", "a|b studio", False),
        ("a\\|b studio", "a|b studio", True),
        ("a|b studio", "a", True),
        ("star*", "starrr", True),
        ("star\\*", "star*", True),
        ("dot.art", "dotxart", False),  # '.' is literal in SIMILAR TO
        ("[ab]+c", "abbac", True),
        ("[^a]c", "bc", True),
        ("[[:digit:]]{2}%", "50% off", True),
        ("k{2,3}o", "kkko", True),
        ("k{2,3}o", "kkkko", False),
        ("{x}", "{x}", True),
        ("%café%", "Moonlit CAFÉ", True),
        ("猫%", "猫絵師", True),
        ("back\\\\slash", "back\\slash", True),
        ("^$", "^$", True),
    ],
)
def test_similar_to_translation(pattern: str, text: str, matches: bool) -> None:
    assert (similar_to_regex(pattern).fullmatch(text) is not None) is matches


@pytest.mark.parametrize("pattern", ["(abc", "abc)", "[abc", "abc\\", "*abc", "k{3,1}", "k{2"])
def test_similar_to_rejects_what_postgres_rejects(pattern: str) -> None:
    with pytest.raises(PatternError):
        similar_to_regex(pattern)


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("catgirl", "CatGirl", True),
        ("cat%", "catgirl", True),
        ("cat_irl", "catgirl", True),
        ("under\\_score", "under-score", False),
        ("(paren)", "(paren)", True),
        ("cat", "catgirl", False),
    ],
)
def test_ilike_translation(pattern: str, text: str, matches: bool) -> None:
    assert (ilike_regex(pattern).fullmatch(text) is not None) is matches


async def names(session: aiohttp.ClientSession, url: str, search: str) -> list[str]:
    reply = await call(session, url, search=search, limit=25)
    assert reply.status == 200, reply.text
    return [row["name"] for row in reply.json["data"]]


async def test_artist_search_escaping_over_http(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    url = nekos_fake.url("/artist")
    assert await names(session, url, "50\\%%") == ["50% off"]
    assert sorted(await names(session, url, "50%")) == ["50 percent off", "50% off"]
    assert sorted(await names(session, url, "under_score")) == ["under-score", "under_score"]
    assert await names(session, url, "under\\_score") == ["under_score"]
    assert await names(session, url, "\\(paren\\)") == ["(paren)"]
    assert await names(session, url, "(paren)") == []
    assert await names(session, url, "\\+plus\\+") == ["+plus+"]
    assert await names(session, url, "back\\\\slash") == ["back\\slash"]
    assert await names(session, url, "%ünïcødé%") == ["Ünïcødé"]
    assert await names(session, url, "猫%") == ["猫絵師"]
    assert await names(session, url, "mixed case") == ["MiXeD CaSe"]


async def test_search_total_counts_every_row(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, nekos_fake.url("/artist"), search="50\\%%")
    assert reply.json["meta"]["pagination"] == {"limit": 10, "offset": 0, "count": 1, "total": 60}


async def test_character_and_category_search_also_match_other_columns(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    found = await names(session, nekos_fake.url("/character"), "%called mio%")
    assert found == ["Mio (Summer)"]
    by_source = await names(session, nekos_fake.url("/character"), "moonlit café")
    expected = [c.name for c in dataset.characters if c.source == "Moonlit Café"]
    assert by_source == expected[:25]
    assert by_source
    found = await names(session, nekos_fake.url("/category"), "images tagged café.")
    assert found == ["café"]


@pytest.mark.parametrize(
    ("path", "longest"), [("/artist", 20), ("/character", 20), ("/category", 50)]
)
async def test_overlong_search_crashes_the_server(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, path: str, longest: int
) -> None:
    assert (await call(session, nekos_fake.url(path), search="%" * longest)).status == 200
    assert_crash(await call(session, nekos_fake.url(path), search="%" * (longest + 1)))
    # JavaScript counts UTF-16 units: an emoji is two.
    emoji = "\N{CAT FACE}" * (longest // 2)
    assert (await call(session, nekos_fake.url(path), search=emoji)).status == 200
    assert_crash(await call(session, nekos_fake.url(path), search=emoji + "a"))


@pytest.mark.parametrize("search", ["(abc", "[abc", "abc\\", "*a"])
async def test_search_the_database_rejects_crashes_the_server(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, search: str
) -> None:
    assert_crash(await call(session, nekos_fake.url("/category"), search=search))


# --------------------------------------------------------------------------- random


async def random_ids(
    session: aiohttp.ClientSession, fake: FakeNekosAPI, **params: str | int
) -> tuple[int, list[dict[str, Any]]]:
    reply = await call(session, fake.url("/image/random"), None, None, **params)
    return reply.status, reply.json["data"] if reply.status == 200 else []


async def test_random_returns_one_image_by_default_and_up_to_limit(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, nekos_fake.url("/image/random"))
    assert len(reply.json["data"]) == 1
    assert "meta" not in reply.json
    status, images = await random_ids(session, nekos_fake, limit=25)
    assert status == 200
    assert len(images) == 25
    assert len({i["id"] for i in images}) == 25


async def test_random_images_carry_every_named_category(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    status, images = await random_ids(session, nekos_fake, categories="CATGIRL,long hair", limit=25)
    assert status == 200
    assert images
    for image in images:
        assert {"catgirl", "long hair"} <= {c["name"] for c in image["categories"]}


async def test_random_unknown_categories_are_named_in_a_400(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    prefix = "Invalid value for `categories` parameter. The following categories do not exist: "
    reply = await call(session, nekos_fake.url("/image/random"), categories="catgirl,Nope,zzz")
    assert_error(reply, 400, prefix + "nope, zzz")
    # No trimming: a space after the comma is part of the name.
    reply = await call(session, nekos_fake.url("/image/random"), categories="catgirl, maid")
    assert_error(reply, 400, prefix + " maid")
    # ILIKE: a wildcard matching several categories does not add up.
    reply = await call(session, nekos_fake.url("/image/random"), categories="%girl")
    assert_error(reply, 400, prefix + "%girl")
    reply = await call(session, nekos_fake.url("/image/random"), categories="under_score")
    assert reply.status == 400
    status, images = await random_ids(session, nekos_fake, categories="under\\_score", limit=5)
    assert status == 200
    assert all("under_score" in {c["name"] for c in i["categories"]} for i in images)
    status, _ = await random_ids(session, nekos_fake, categories="cat%")
    assert status == 200


async def test_random_sampling_can_return_fewer_or_404_for_a_narrow_category(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    rare = dataset.category_named("rare find")
    assert len(dataset.images_in_category(rare.id)) == 3
    outcomes = [
        await random_ids(session, nekos_fake, categories="rare find", limit=25) for _ in range(30)
    ]
    statuses = [status for status, _ in outcomes]
    assert 404 in statuses
    assert 200 in statuses
    sizes = [len(images) for status, images in outcomes if status == 200]
    assert max(sizes) <= 3
    assert min(sizes) < 3
    reply = await call(session, nekos_fake.url("/image/random"), categories="rare find")
    while reply.status != 404:
        reply = await call(session, nekos_fake.url("/image/random"), categories="rare find")
    assert_error(reply, 404, "Could not find images with the selected categories")
    nekos_fake.sample_percent = 100.0
    status, images = await random_ids(session, nekos_fake, categories="rare find", limit=25)
    assert status == 200
    assert len(images) == 3


async def test_random_samples_about_a_fifth_of_the_table(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    population = len(dataset.images_in_category(dataset.category_named("pixel art").id))
    sizes = []
    for _ in range(20):
        status, images = await random_ids(session, nekos_fake, categories="pixel art", limit=25)
        sizes.append(len(images) if status == 200 else 0)
    mean = sum(sizes) / len(sizes)
    assert 0.1 * population < mean < 0.3 * population
    assert max(sizes) < 25  # fewer than asked for, though the category has more


async def test_same_seed_gives_the_same_random_answers(
    dataset: Dataset, session: aiohttp.ClientSession
) -> None:
    runs = []
    for _ in range(2):
        async with FakeNekosAPI(dataset, seed=7, rate_limit=None) as fake:
            run = [await random_ids(session, fake, limit=5) for _ in range(3)]
            runs.append([[i["id"] for i in images] for _, images in run])
    assert runs[0] == runs[1]
    async with FakeNekosAPI(dataset, seed=8, rate_limit=None) as other:
        _, images = await random_ids(session, other, limit=5)
    assert [i["id"] for i in images] != runs[0][0]


# --------------------------------------------------------------------------- rate limiter


async def test_allowed_request_carries_rate_limit_headers(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, limited.url("/stats"))
    assert reply.status == 200
    assert reply.headers["X-RateLimit-Limit"] == "1"
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    assert reply.headers["X-RateLimit-Reset"] == "1"


async def test_second_request_within_the_second_is_429(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    assert (await call(session, limited.url("/stats"))).status == 200
    clock.advance(0.5)
    reply = await call(session, limited.url("/stats"))
    assert_error(reply, 429, "You have exceeded the rate limit. Please try again later.")
    assert reply.headers["Retry-After"] == "1"
    assert reply.headers["X-RateLimit-Reset"] == "1"
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    assert limited.count_429 == 1
    # The rejected request counted too: 0.6 s after it is still too early.
    clock.advance(0.6)
    assert (await call(session, limited.url("/stats"))).status == 429
    clock.advance(1.0)
    assert (await call(session, limited.url("/stats"))).status == 200
    assert [r.status for r in limited.api_requests] == [200, 429, 429, 200]
    assert limited.strikes("127.0.0.1") == 2


async def test_spacing_exactly_one_interval_never_trips_the_limit(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    for _ in range(5):
        assert (await call(session, limited.url("/category"))).status == 200
        clock.advance(1.0)
    assert limited.count_429 == 0


async def test_several_requests_per_window(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    limited.rate_limit = (3, 2.0)
    remaining = []
    for _ in range(3):
        reply = await call(session, limited.url("/stats"))
        remaining.append(reply.headers["X-RateLimit-Remaining"])
        clock.advance(0.1)
    assert remaining == ["2", "1", "0"]
    rejected = await call(session, limited.url("/stats"))
    assert rejected.status == 429
    assert rejected.headers["Retry-After"] == "2"  # the 2nd arrival leaves the window at 2.1
    clock.advance(1.85)
    assert (await call(session, limited.url("/stats"))).status == 200


async def test_ten_hits_block_the_ip_for_an_hour_then_lift(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    assert (await call(session, limited.url("/stats"))).status == 200
    for _ in range(10):
        reply = await call(session, limited.url("/stats"))
        assert reply.json["message"] == "You have exceeded the rate limit. Please try again later."
    assert limited.blocked_ips == {"127.0.0.1"}
    assert limited.is_blocked("127.0.0.1")
    clock.advance(5.0)
    blocked = await call(session, limited.url("/stats"))
    assert_error(blocked, 429, re.compile("^You have exceeded the rate limit too many times"))
    assert 3590 <= int(blocked.headers["Retry-After"]) <= 3600
    assert blocked.headers["X-RateLimit-Reset"] == blocked.headers["Retry-After"]
    clock.advance(3590.0)
    assert (await call(session, limited.url("/stats"))).status == 429
    clock.advance(10.0)
    assert not limited.is_blocked("127.0.0.1")
    assert (await call(session, limited.url("/stats"))).status == 200
    assert limited.strikes("127.0.0.1") == 0
    assert limited.count_429 == 12


async def test_strikes_older_than_the_window_are_forgotten(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    limited.strike_window = 60.0
    for _ in range(12):
        await call(session, limited.url("/stats"))
        await call(session, limited.url("/stats"))  # one strike
        clock.advance(30.0)
    assert limited.blocked_ips == set()


async def test_limits_are_per_client_ip(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    first = await call(session, limited.url("/stats"), headers={"X-Forwarded-For": "10.0.0.1"})
    second = await call(session, limited.url("/stats"), headers={"X-Forwarded-For": "10.0.0.2"})
    again = await call(session, limited.url("/stats"), headers={"X-Forwarded-For": "10.0.0.1"})
    assert (first.status, second.status, again.status) == (200, 200, 429)
    assert {r.ip for r in limited.requests} == {"10.0.0.1", "10.0.0.2"}


async def test_token_scopes_change_or_disable_the_limit(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    roomy = limited.add_token(["api:ratelimit:5-1-3"])
    statuses = [(await call(session, limited.url("/stats"), roomy)).status for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    ok = await call(session, limited.url("/stats"), headers={"X-Forwarded-For": "10.9.9.9"})
    assert ok.status == 200
    clock.advance(2.0)
    reply = await call(session, limited.url("/stats"), roomy)
    assert reply.headers["X-RateLimit-Limit"] == "5"
    free = limited.add_token(["api:ratelimit:disabled"])
    limited.block_ip("127.0.0.1")
    for _ in range(5):
        reply = await call(session, limited.url("/stats"), free)
        assert reply.status == 200
        assert "X-RateLimit-Limit" not in reply.headers


async def test_short_token_limit_blocks_after_its_own_strike_count(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    token = limited.add_token(["api:ratelimit:1-1-2"])
    statuses = [(await call(session, limited.url("/stats"), token)).status for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    assert limited.is_blocked("127.0.0.1")


async def test_auth_failures_are_answered_before_the_limiter(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        reply = await call(session, limited.url("/image"))
        assert reply.status == 401
        assert "X-RateLimit-Limit" not in reply.headers
    assert (await call(session, limited.url("/stats"))).status == 200


async def test_rate_limit_can_be_disabled_and_changed_at_run_time(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    limited.rate_limit = None
    for _ in range(5):
        reply = await call(session, limited.url("/stats"))
        assert reply.status == 200
        assert "X-RateLimit-Limit" not in reply.headers
    limited.rate_limit = (2, 1.0)
    clock.advance(1.0)
    statuses = [(await call(session, limited.url("/stats"))).status for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_forced_block_applies_even_without_a_default_limit(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.block_ip("127.0.0.1", seconds=120)
    reply = await call(session, nekos_fake.url("/stats"))
    assert_error(reply, 429, re.compile("too many times"))
    assert 119 <= int(reply.headers["Retry-After"]) <= 120
    nekos_fake.unblock_ip("127.0.0.1")
    assert (await call(session, nekos_fake.url("/stats"))).status == 200


# --------------------------------------------------------------------------- faults


async def test_fail_next_gives_json_5xx_then_recovers(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.fail_next(2, status=503)
    assert nekos_fake.pending_faults == 2
    for _ in range(2):
        assert_error(await call(session, nekos_fake.url("/stats")), 503, "Internal Server Error")
    assert (await call(session, nekos_fake.url("/stats"))).status == 200


async def test_malformed_html_and_empty_bodies(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.malformed_json_next()
    nekos_fake.html_error_next(status=502)
    nekos_fake.empty_error_next(status=504)
    broken = await call(session, nekos_fake.url("/stats"))
    assert broken.status == 200
    assert broken.content_type == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)
    html = await call(session, nekos_fake.url("/stats"))
    assert html.status == 502
    assert html.content_type == "text/html"
    assert "<html>" in html.text
    empty = await call(session, nekos_fake.url("/stats"))
    assert empty.status == 504
    assert empty.text == ""
    assert (await call(session, nekos_fake.url("/stats"))).status == 200


async def test_dropped_connections_give_no_response(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.drop_next(2)  # aiohttp retries a GET once on a dropped connection
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, nekos_fake.url("/stats"))
    assert [r.status for r in nekos_fake.requests] == [0, 0]
    assert (await call(session, nekos_fake.url("/stats"))).status == 200


async def test_clear_faults_cancels_queued_faults(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.fail_next(3)
    nekos_fake.clear_faults()
    assert (await call(session, nekos_fake.url("/stats"))).status == 200


async def test_faulted_requests_still_count_for_the_limiter(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    limited.fail_next(1, status=500)
    assert (await call(session, limited.url("/stats"))).status == 500
    assert (await call(session, limited.url("/stats"))).status == 429


async def test_latency_delays_api_responses(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    nekos_fake.latency = 0.2
    started = time.monotonic()
    assert (await call(session, nekos_fake.url("/stats"))).status == 200
    assert time.monotonic() - started >= 0.2
    nekos_fake.latency = 0.0


async def test_verdict_is_made_on_arrival_even_with_latency(
    limited: FakeNekosAPI, session: aiohttp.ClientSession
) -> None:
    limited.latency = 0.5
    first = asyncio.create_task(call(session, limited.url("/stats")))
    for _ in range(500):  # the server shares this loop: poll until the request has arrived
        if limited.requests:
            break
        await asyncio.sleep(0.01)
    assert [r.status for r in limited.requests] == [-1]  # logged on arrival, still in flight
    second = await call(session, limited.url("/stats"))
    assert (await first).status == 200
    assert second.status == 429
    assert [r.status for r in limited.requests] == [200, 429]


# --------------------------------------------------------------------------- image bytes


async def test_signed_urls_serve_png_and_jpeg_bytes(
    nekos_fake: FakeNekosAPI, session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    png = next(i for i in dataset.images if i.mimetype == "image/png")
    jpeg = next(i for i in dataset.images if i.mimetype == "image/jpeg")
    for image, magic in ((png, b"\x89PNG\r\n\x1a\n"), (jpeg, b"\xff\xd8\xff")):
        data = (await call(session, nekos_fake.url(f"/image/{image.id}"))).json["data"]
        assert data["url"].startswith(f"{nekos_fake.origin}/storage/{image.id}.")
        async with session.get(data["url"]) as response:
            body = await response.read()
            assert response.status == 200
            assert response.content_type == data["meta"]["mimetype"]
            assert body.startswith(magic)
    assert any(r.path.startswith("/storage/") for r in nekos_fake.requests)
    assert not any(r.path.startswith("/storage/") for r in nekos_fake.api_requests)


async def test_expired_or_tampered_signatures_are_403(
    dataset: Dataset, session: aiohttp.ClientSession, wall: ManualClock
) -> None:
    async with FakeNekosAPI(dataset, rate_limit=None, wall_clock=wall) as fake:
        token = fake.add_token(["image:custom-expiry"])
        image = dataset.images[0]
        reply = await call(session, fake.url(f"/image/{image.id}"), token, expiry=60)
        url = reply.json["data"]["url"]
        expires = dt.datetime.fromisoformat(reply.json["data"]["meta"]["expires"])
        assert expires.timestamp() == pytest.approx(wall.now + 60)
        async with session.get(url) as response:
            assert response.status == 200
        tampered_expiry = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 999}", url)
        tampered_token = url.replace("token=", "token=0")
        for bad in (tampered_expiry, tampered_token):
            async with session.get(bad) as response:
                assert response.status == 403
        wall.advance(61)
        async with session.get(url) as response:
            assert response.status == 403
            assert (await response.json())["message"] == "jwt expired"


def test_generated_images_are_well_formed() -> None:
    png = solid_png((255, 0, 0))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.endswith(b"IEND\xaeB`\x82")
    jpeg = solid_jpeg(37)
    assert jpeg.startswith(b"\xff\xd8\xff\xe0")
    assert jpeg.endswith(b"\xff\xd9")


# --------------------------------------------------------------------------- log, dataset, CLI


async def test_request_log_records_arrivals(
    limited: FakeNekosAPI, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await call(session, limited.url("/category"), limit=2)
    clock.advance(1.5)
    await call(session, limited.url("/category"), limit=3)
    first, second = limited.requests
    assert (first.method, first.path, first.query, first.status) == (
        "GET",
        "/api/category",
        {"limit": "2"},
        200,
    )
    assert second.time - first.time == pytest.approx(1.5)
    assert first.ip == "127.0.0.1"
    assert first.has_token is False


def test_dataset_is_deterministic_per_seed() -> None:
    build = generate_dataset.__wrapped__
    first, again, other = (
        build(seed=3, images=500),
        build(seed=3, images=500),
        build(seed=4, images=500),
    )
    assert first.images == again.images
    assert first.characters == again.characters
    assert first.artists == again.artists
    assert first.categories == again.categories
    assert [i.id for i in first.images] != [i.id for i in other.images]
    assert generate_dataset(seed=3) is generate_dataset(seed=3)


def test_dataset_default_ratings_follow_stats() -> None:
    assert generate_dataset(images=2890).rating_counts() == {
        "sfw": 2862,
        "questionable": 19,
        "nsfw": 9,
    }
    assert sum(DEFAULT_RATINGS) == pytest.approx(1.0)
    custom = generate_dataset(images=100, ratings=(1, 1, 2))
    assert custom.rating_counts() == {"sfw": 25, "questionable": 25, "nsfw": 50}


def test_dataset_carries_the_awkward_values(dataset: Dataset) -> None:
    ages = [c.ages for c in dataset.characters]
    assert (16, 17) in ages
    assert (17, 18) in ages
    assert () in ages
    assert None in ages
    assert any(a and min(a) >= 18 for a in ages)
    minors = {c.id for c in dataset.characters if c.ages and min(c.ages) < 18}
    assert any(minors & set(i.character_ids) for i in dataset.images if i.nsfw != "sfw")
    assert {c.type for c in dataset.categories} == {"setting", "character", "format"}
    assert any(c.nsfw for c in dataset.categories)
    for name in ("50% off", "under_score", "(paren)", "Ünïcødé"):
        dataset.artist_named(name)
    assert dataset.character_named("mio (summer)").name == "Mio (Summer)"
    assert any(not dataset.images_by_artist(a.id) for a in dataset.artists)


@pytest.fixture
def cli_process() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.nekos_api",
            "--port",
            "0",
            "--images",
            "50",
            "--no-rate-limit",
            "--token",
            "image:list",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_runs_standalone_from_the_command_line(
    cli_process: subprocess.Popen[str], session: aiohttp.ClientSession
) -> None:
    assert cli_process.stdout is not None
    loop = asyncio.get_running_loop()
    base_url = (
        await asyncio.wait_for(loop.run_in_executor(None, cli_process.stdout.readline), 30)
    ).strip()
    token_line = (
        await asyncio.wait_for(loop.run_in_executor(None, cli_process.stdout.readline), 30)
    ).strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api", base_url)
    token = token_line.rsplit(" ", 1)[1]
    reply = await call(session, base_url + "/image", token, limit=50)
    assert reply.json["meta"]["pagination"]["total"] == 50
