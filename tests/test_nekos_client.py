"""The Nekos API client over a mocked HTTP layer (aioresponses) and a virtual clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import bot
from bot.nekos import (
    BACKGROUND,
    INTERACTIVE,
    Artist,
    BadRequest,
    Blocked,
    DownloadTooLarge,
    Forbidden,
    HTTPError,
    InvalidParameter,
    NekosClient,
    NekosError,
    NotFound,
    Pacer,
    Priority,
    RateLimited,
    RawPattern,
    RequestObserver,
    ResponseParseError,
    RetryPolicy,
    ServerError,
    Unauthorized,
    Unavailable,
)
from bot.nekos.client import DEFAULT_BASE_URL, error_from_response
from tests import nekos_payloads as P
from tests.aioresponses_compat import mocked_http
from tests.fake_clock import WALL_EPOCH, FakeClock

BASE = "http://nekos.test/api"
TOKEN = "Tk9" + "a1B2c3D4e5" * 9 + "Zz9Yy8X"  # 100 letters and digits, like a real token
STORAGE_URL = (
    "https://storage.example.com/images/abc.webp?X-Amz-Signature=s3cr3tsig&X-Amz-Expires=3600"
)
ERROR = {"success": False}


def url_re(path: str) -> re.Pattern[str]:
    """Any request to ``path`` under the test base URL, whatever its query string."""
    return re.compile(rf"^{re.escape(BASE + path)}(\?.*)?$")


@dataclass
class Call:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float


class Recorder:
    """An aioresponses callback that records every request in order, with the virtual time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[Call] = []

    def __call__(self, url: URL, **kwargs: Any) -> None:
        self.calls.append(
            Call(
                path=url.path,
                params=dict(kwargs.get("params") or {}),
                headers=dict(kwargs.get("headers") or {}),
                at=self.clock(),
            )
        )


def request_count(mocked: aioresponses) -> int:
    return sum(len(calls) for calls in mocked.requests.values())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with mocked_http() as m:
        yield m


@pytest.fixture
def rec(clock: FakeClock) -> Recorder:
    return Recorder(clock)


FAST_RETRY = RetryPolicy(attempts=3, total_time=20.0, base_delay=0.2, max_delay=0.4)


def make_client(
    clock: FakeClock,
    token: str | None = None,
    *,
    retry: RetryPolicy = FAST_RETRY,
    max_strikes: int = 3,
    session: aiohttp.ClientSession | None = None,
    observer: RequestObserver | None = None,
) -> NekosClient:
    pacer = Pacer(
        interval=1.0,
        margin=0.1,
        max_strikes=max_strikes,
        clock=clock,
        sleep=clock.sleep,
        wall_clock=clock.wall,
    )
    return NekosClient(
        BASE,
        token,
        session,
        pacer=pacer,
        retry=retry,
        clock=clock,
        sleep=clock.sleep,
        wall_clock=clock.wall,
        observer=observer,
    )


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[NekosClient]:
    """A client with a token, not started (so no ``GET /token`` first)."""
    api = make_client(clock, TOKEN)
    yield api
    await api.close()


@pytest.fixture
async def anon(clock: FakeClock) -> AsyncIterator[NekosClient]:
    api = make_client(clock)
    yield api
    await api.close()


# ---------------------------------------------------------------------------- shapes

Check = Callable[[Any], None]


def check_reference_image(image: Any) -> None:
    assert image.id == P.IMAGE_ID
    assert image.artist == Artist(id=P.ARTIST_ID)
    assert image.rating.label == "sfw"
    assert image.original is None
    assert image.meta.color == "#ffffff"
    assert image.meta.dimens.aspect_ratio == "1:1"
    assert image.categories[0].type is None
    assert image.characters[0].ages == (16, 17)


def check_live_image(image: Any) -> None:
    assert image.id == P.IMAGE_ID
    assert image.artist is not None
    assert (image.artist.name, image.artist.image_count) == ("Ai Yue", 12)
    assert image.rating.label == "questionable"
    assert image.original is False
    assert image.meta.color is None
    assert image.meta.dimens.aspect_ratio is None
    assert image.meta.dimens.orientation == "square"
    assert image.categories[0].type == "character"
    assert image.source.name is None


def check_null_artist(image: Any) -> None:
    assert image.artist is None
    assert image.original is None


def page_of(check: Check, *, paginated: bool) -> Check:
    def run(page: Any) -> None:
        assert len(page) == 1
        check(page.items[0])
        if paginated:
            assert page.pagination is not None
            assert page.pagination.total == 2890
        else:
            assert page.pagination is None

    return run


def check_artist(with_count: bool) -> Check:
    def run(artist: Any) -> None:
        assert (artist.id, artist.name) == (P.ARTIST_ID, "Ai Yue")
        assert artist.image_count == (12 if with_count else None)

    return run


def check_character(live: bool) -> Check:
    def run(character: Any) -> None:
        assert (character.id, character.name) == (P.CHARACTER_ID, "Chocola")
        assert character.ages == (16,) if live else (16, 17)
        assert character.image_count == (3 if live else None)

    return run


def check_category(live: bool) -> Check:
    def run(category: Any) -> None:
        assert (category.id, category.name, category.nsfw) == (P.CATEGORY_ID, "catgirl", False)
        assert category.type == ("setting" if live else None)
        assert category.image_count == (12 if live else None)

    return run


def check_stats(artists: int) -> Check:
    def run(stats: Any) -> None:
        assert stats.images == 2890
        assert stats.ratings == {"nsfw": 9, "questionable": 19, "sfw": 2862}
        assert stats.artists == artists

    return run


def check_api_info(version: str) -> Check:
    def run(info: Any) -> None:
        assert "/stats" in info.endpoints
        assert info.version == version

    return run


def check_token(info: Any) -> None:
    assert info.can_list_images
    assert info.max_expiry == 86400


Call_ = Callable[[NekosClient], Awaitable[Any]]

SHAPES: list[tuple[str, Call_, str, dict[str, Any], Check]] = [
    (
        "api_info/reference",
        lambda c: c.api_info(),
        "/",
        P.REFERENCE_API_INFO,
        check_api_info("v1.4.2"),
    ),
    ("api_info/live", lambda c: c.api_info(), "/", P.LIVE_API_INFO, check_api_info("v1.6.0")),
    ("stats/reference", lambda c: c.stats(), "/stats", P.REFERENCE_STATS, check_stats(1)),
    ("stats/live", lambda c: c.stats(), "/stats", P.LIVE_STATS, check_stats(5)),
    ("token_info", lambda c: c.token_info(), "/token", P.reference_one(P.TOKEN_DATA), check_token),
    (
        "images/reference",
        lambda c: c.images(),
        "/image",
        P.reference_page(P.REFERENCE_IMAGE),
        page_of(check_reference_image, paginated=False),
    ),
    (
        "images/live",
        lambda c: c.images(),
        "/image",
        P.live_page(P.LIVE_IMAGE),
        page_of(check_live_image, paginated=True),
    ),
    (
        "random_images/reference",
        lambda c: c.random_images(),
        "/image/random",
        P.reference_page(P.REFERENCE_IMAGE),
        page_of(check_reference_image, paginated=False),
    ),
    (
        "random_images/live",
        lambda c: c.random_images(["catgirl"], limit=5),
        "/image/random",
        P.live_page(P.LIVE_IMAGE),
        page_of(check_live_image, paginated=True),
    ),
    (
        "random_images/artist null",
        lambda c: c.random_images(),
        "/image/random",
        P.live_page(P.LIVE_IMAGE_NO_ARTIST),
        page_of(check_null_artist, paginated=True),
    ),
    (
        "image/reference",
        lambda c: c.image(P.IMAGE_ID),
        f"/image/{P.IMAGE_ID}",
        P.reference_one(P.REFERENCE_IMAGE),
        check_reference_image,
    ),
    (
        "image/live",
        lambda c: c.image(P.IMAGE_ID),
        f"/image/{P.IMAGE_ID}",
        P.reference_one(P.LIVE_IMAGE),
        check_live_image,
    ),
    (
        "artists/reference",
        lambda c: c.artists(),
        "/artist",
        P.reference_page(P.REFERENCE_ARTIST),
        page_of(check_artist(False), paginated=False),
    ),
    (
        "artists/live",
        lambda c: c.artists("ai"),
        "/artist",
        P.live_page(P.LIVE_ARTIST),
        page_of(check_artist(True), paginated=True),
    ),
    (
        "artist",
        lambda c: c.artist(P.ARTIST_ID),
        f"/artist/{P.ARTIST_ID}",
        P.reference_one(P.LIVE_ARTIST),
        check_artist(True),
    ),
    (
        "artist_images/reference",
        lambda c: c.artist_images(P.ARTIST_ID),
        f"/artist/{P.ARTIST_ID}/images",
        P.reference_page(P.REFERENCE_IMAGE),
        page_of(check_reference_image, paginated=False),
    ),
    (
        "artist_images/live",
        lambda c: c.artist_images(P.ARTIST_ID, limit=10, offset=10),
        f"/artist/{P.ARTIST_ID}/images",
        P.live_page(P.LIVE_IMAGE),
        page_of(check_live_image, paginated=True),
    ),
    (
        "characters/reference",
        lambda c: c.characters(),
        "/character",
        P.reference_page(P.REFERENCE_CHARACTER),
        page_of(check_character(False), paginated=False),
    ),
    (
        "characters/live",
        lambda c: c.characters("choc"),
        "/character",
        P.live_page(P.LIVE_CHARACTER),
        page_of(check_character(True), paginated=True),
    ),
    (
        "character/reference",
        lambda c: c.character(P.CHARACTER_ID),
        f"/character/{P.CHARACTER_ID}",
        P.reference_one(P.REFERENCE_CHARACTER),
        check_character(False),
    ),
    (
        "character/live",
        lambda c: c.character(P.CHARACTER_ID),
        f"/character/{P.CHARACTER_ID}",
        P.reference_one(P.LIVE_CHARACTER),
        check_character(True),
    ),
    (
        "categories/reference",
        lambda c: c.categories(),
        "/category",
        P.reference_page(P.REFERENCE_CATEGORY),
        page_of(check_category(False), paginated=False),
    ),
    (
        "categories/live",
        lambda c: c.categories("cat"),
        "/category",
        P.live_page(P.LIVE_CATEGORY),
        page_of(check_category(True), paginated=True),
    ),
    (
        "category/reference",
        lambda c: c.category(P.CATEGORY_ID),
        f"/category/{P.CATEGORY_ID}",
        P.reference_one(P.REFERENCE_CATEGORY),
        check_category(False),
    ),
    (
        "category/live",
        lambda c: c.category(P.CATEGORY_ID),
        f"/category/{P.CATEGORY_ID}",
        P.reference_one(P.LIVE_CATEGORY),
        check_category(True),
    ),
]


@pytest.mark.parametrize(
    ("call", "path", "body", "check"),
    [s[1:] for s in SHAPES],
    ids=[s[0] for s in SHAPES],
)
async def test_every_endpoint_parses_reference_and_live_shapes(
    client: NekosClient,
    mocked: aioresponses,
    rec: Recorder,
    call: Call_,
    path: str,
    body: dict[str, Any],
    check: Check,
) -> None:
    mocked.get(url_re(path), payload=body, callback=rec)
    result = await call(client)
    check(result)
    assert [c.path for c in rec.calls] == [URL(BASE + path).path]


async def test_query_parameters_are_sent_as_documented(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/image/random"), payload=P.reference_page(), callback=rec, repeat=True)
    mocked.get(url_re(f"/artist/{P.ARTIST_ID}/images"), payload=P.reference_page(), callback=rec)
    await client.random_images([" Catgirl ", "", "maid"], limit=5, expiry=600)
    await client.random_images("catgirl,maid")
    await client.artist_images(P.ARTIST_ID, limit=10, offset=20)
    assert rec.calls[0].params == {"limit": "5", "categories": "Catgirl,maid", "expiry": "600"}
    assert rec.calls[1].params == {"limit": "1", "categories": "catgirl,maid"}
    assert rec.calls[2].params == {"limit": "10", "offset": "20"}


# ---------------------------------------------------------------------------- search


async def test_plain_search_text_is_escaped_and_wrapped(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/artist"), payload=P.reference_page(), callback=rec)
    mocked.get(url_re("/category"), payload=P.reference_page(), callback=rec)
    await client.artists("a_b%")
    await client.categories(RawPattern("(cat|dog)%"))
    assert rec.calls[0].params["search"] == "%a\\_b\\%%"
    assert rec.calls[1].params["search"] == "(cat|dog)%"


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.artists("x" * 18), "/artist"),  # "%" + 18 + "%" = 20
        (lambda c: c.characters("x" * 14 + "()"), "/character"),  # 14 + 2 escaped (4) + 2 = 20
        (lambda c: c.categories("x" * 48), "/category"),  # 50
        (lambda c: c.artists(RawPattern("x" * 20)), "/artist"),  # raw: counted as is
    ],
    ids=["artist-20", "character-escaped-20", "category-50", "raw-20"],
)
async def test_search_at_the_length_limit_is_sent(
    client: NekosClient, mocked: aioresponses, call: Call_, path: str
) -> None:
    mocked.get(url_re(path), payload=P.reference_page())
    await call(client)
    assert request_count(mocked) == 1


async def test_too_long_search_names_the_limit_and_the_pattern(client: NekosClient) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await client.artists("x" * 19)
    message = caught.value.message
    assert "at most 20" in message
    assert "%" + "x" * 19 + "%" in message
    assert caught.value.endpoint == "GET /artist"


# ---------------------------------------------------------------------------- checks

# Callers typed as Any: these calls break the signatures on purpose.
BAD_CALLS: list[tuple[str, Callable[[Any], Awaitable[Any]]]] = [
    ("limit 0", lambda c: c.images(limit=0)),
    ("limit 26", lambda c: c.artists(limit=26)),
    ("limit bool", lambda c: c.characters(limit=True)),
    ("limit str", lambda c: c.categories(limit="5")),
    ("random limit 0", lambda c: c.random_images(limit=0)),
    ("offset negative", lambda c: c.artists(offset=-1)),
    ("offset float", lambda c: c.artist_images(P.ARTIST_ID, offset=1.5)),
    ("id not uuid", lambda c: c.image("not-a-uuid")),
    ("id too short", lambda c: c.artist("0a4d8a51-5e8e-4a35-a0a1-37cbb2d3a7c")),
    ("id path injection", lambda c: c.category("../stats")),
    ("id braces", lambda c: c.character("{" + P.CHARACTER_ID + "}")),
    ("expiry 30", lambda c: c.image(P.IMAGE_ID, expiry=30)),
    ("expiry float", lambda c: c.random_images(expiry=60.5)),
    ("search artist 21", lambda c: c.artists("x" * 19)),
    ("search character 21", lambda c: c.characters("x" * 19)),
    ("search escapes count", lambda c: c.characters("x" * 15 + "()")),
    ("search category 51", lambda c: c.categories("x" * 49)),
    ("search raw too long", lambda c: c.artists(RawPattern("x" * 21))),
    ("search not text", lambda c: c.artists(5)),
    ("search lone surrogate", lambda c: c.characters("a\ud800")),
    ("category comma", lambda c: c.random_images(["a,b"])),
    ("category not text", lambda c: c.random_images([5])),
    ("category lone surrogate", lambda c: c.random_images(["\udcff"])),
]


@pytest.mark.parametrize("call", [b[1] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS])
async def test_invalid_parameters_raise_before_any_request(
    client: NekosClient, mocked: aioresponses, call: Call_
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await call(client)
    assert caught.value.status is None
    assert request_count(mocked) == 0
    assert client.health.requests_sent == 0


async def test_expiry_without_a_token_is_refused_before_sending(
    anon: NekosClient, mocked: aioresponses
) -> None:
    with pytest.raises(InvalidParameter, match="token"):
        await anon.image(P.IMAGE_ID, expiry=600)
    assert request_count(mocked) == 0


@pytest.mark.parametrize(
    "call", [lambda c: c.images(), lambda c: c.token_info()], ids=["images", "token_info"]
)
async def test_token_only_endpoints_without_a_token_raise_unauthorized_unsent(
    anon: NekosClient, mocked: aioresponses, call: Call_
) -> None:
    with pytest.raises(Unauthorized) as caught:
        await call(anon)
    assert caught.value.status is None
    assert request_count(mocked) == 0


async def test_valid_boundaries_are_accepted(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/image"), payload=P.reference_page(), callback=rec, repeat=True)
    await client.images(limit=25, offset=0, expiry=31)
    await client.images(limit=1, offset=1)
    assert rec.calls[0].params == {"limit": "25", "expiry": "31"}  # offset 0 is the default
    assert rec.calls[1].params == {"limit": "1", "offset": "1"}


async def test_uppercase_uuid_is_accepted_and_normalised(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(
        url_re(f"/image/{P.IMAGE_ID}"), payload=P.reference_one(P.REFERENCE_IMAGE), callback=rec
    )
    await client.image(P.IMAGE_ID.upper())
    assert rec.calls[0].path.endswith(P.IMAGE_ID)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (500, ServerError),
        (503, ServerError),
        (418, HTTPError),
    ],
)
async def test_error_statuses_map_to_exceptions_with_status_code_and_message(
    client: NekosClient, mocked: aioresponses, status: int, kind: type[HTTPError]
) -> None:
    body = {"code": status, "message": "Could not find a category with the provided ID.", **ERROR}
    mocked.get(url_re(f"/category/{P.CATEGORY_ID}"), status=status, payload=body, repeat=True)
    with pytest.raises(kind) as caught:
        await client.category(P.CATEGORY_ID)
    error = caught.value
    assert type(error) is kind
    assert error.status == status
    assert error.code == status
    assert error.message == "Could not find a category with the provided ID."
    assert error.endpoint == "GET /category/{id}"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "kind", "message"),
    [
        (
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
            ServerError,
            "Bad Gateway",
        ),
        (500, "", "text/plain", ServerError, "Internal Server Error"),
        (404, "<!doctype html><p>nope</p>", "text/html", NotFound, "Not Found"),
        (403, "[1, 2]", "application/json", Forbidden, "Forbidden"),
        (400, '{"code": "x", "message": 5}', "application/json", BadRequest, "Bad Request"),
    ],
    ids=["html-502", "empty-500", "html-404", "json-list-403", "odd-fields-400"],
)
async def test_non_json_error_bodies_are_tolerated(
    client: NekosClient,
    mocked: aioresponses,
    status: int,
    body: str,
    content_type: str,
    kind: type[HTTPError],
    message: str,
) -> None:
    mocked.get(url_re("/stats"), status=status, body=body, content_type=content_type, repeat=True)
    with pytest.raises(kind) as caught:
        await client.stats()
    assert caught.value.status == status
    assert caught.value.code is None
    assert caught.value.message == message
    assert "<" not in str(caught.value)


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (lambda c: c.stats(), "/stats", "<html>maintenance</html>"),
        (lambda c: c.image(P.IMAGE_ID), f"/image/{P.IMAGE_ID}", '{"data": {"nope": 1}}'),
        (lambda c: c.artists(), "/artist", '{"success": true}'),
        (lambda c: c.random_images(), "/image/random", '{"data": {"id": "x"}}'),
        (lambda c: c.api_info(), "/", '"just a string"'),
    ],
    ids=["html-200", "image-shape", "no-data", "page-not-list", "info-not-object"],
)
async def test_unparseable_success_bodies_raise_response_parse_error_naming_the_endpoint(
    client: NekosClient, mocked: aioresponses, call: Call_, path: str, body: str
) -> None:
    mocked.get(url_re(path), body=body)
    with pytest.raises(ResponseParseError) as caught:
        await call(client)
    assert caught.value.endpoint is not None
    assert caught.value.endpoint.startswith("GET /")
    assert client.health.last_error is not None


def test_error_from_response_reads_the_api_body_directly() -> None:
    error = error_from_response(
        404,
        b'{"code": 404, "message": "Could not find images with the selected categories", '
        b'"success": false}',
        {},
        endpoint="GET /image/random",
    )
    assert isinstance(error, NotFound)
    assert (error.status, error.code) == (404, 404)
    assert str(error) == "GET /image/random 404: Could not find images with the selected categories"


# ---------------------------------------------------------------------------- retries


async def test_server_errors_are_retried_through_the_pacer_until_success(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/stats"), status=500, body="", callback=rec)
    mocked.get(url_re("/stats"), status=502, body="<html/>", callback=rec)
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, callback=rec)
    stats = await client.stats()
    assert stats.images == 2890
    times = [c.at for c in rec.calls]
    assert len(times) == 3
    # Each retry waited its turn at the pacer again.
    assert all(b - a >= 1.1 - 1e-9 for a, b in itertools.pairwise(times))


async def test_server_errors_give_up_after_the_attempt_budget(
    client: NekosClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.nekos")
    mocked.get(url_re("/stats"), status=500, body="", repeat=True)
    with pytest.raises(ServerError):
        await client.stats()
    assert request_count(mocked) == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one failure, logged once, with its endpoint
    assert "GET /stats" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "exception",
    [
        TimeoutError(),
        aiohttp.ServerTimeoutError("read timed out"),
        aiohttp.ClientConnectionError("connection reset"),
        aiohttp.ClientPayloadError("truncated"),
    ],
    ids=["timeout", "server-timeout", "connection", "payload"],
)
async def test_timeouts_and_connection_errors_are_retried_then_unavailable(
    client: NekosClient, mocked: aioresponses, exception: Exception
) -> None:
    mocked.get(url_re("/stats"), exception=exception, repeat=True)
    with pytest.raises(Unavailable) as caught:
        await client.stats()
    assert request_count(mocked) == 3
    assert caught.value.status is None
    assert caught.value.endpoint == "GET /stats"


async def test_a_transient_failure_then_success_returns_the_result(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(url_re("/stats"), exception=TimeoutError())
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS)
    assert (await client.stats()).images == 2890
    assert request_count(mocked) == 2


async def test_retries_stop_when_the_total_time_budget_is_spent(
    clock: FakeClock, mocked: aioresponses
) -> None:
    # The second try has to wait 1.1 s at the pacer, past the 1 s budget: no third try.
    policy = RetryPolicy(attempts=5, total_time=1.0, base_delay=0.8, max_delay=0.8)
    api = make_client(clock, retry=policy)
    mocked.get(url_re("/stats"), status=503, body="", repeat=True)
    try:
        with pytest.raises(ServerError):
            await api.stats()
    finally:
        await api.close()
    assert request_count(mocked) == 2


async def test_client_errors_are_not_retried(client: NekosClient, mocked: aioresponses) -> None:
    body = {"code": 400, "message": "One or more categories selected do not exist.", **ERROR}
    mocked.get(url_re("/image/random"), status=400, payload=body, repeat=True)
    with pytest.raises(BadRequest, match="do not exist"):
        await client.random_images(["nope"])
    assert request_count(mocked) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    for _ in range(50):
        assert 0.5 <= policy.backoff(1) <= 1.0
        assert 1.0 <= policy.backoff(2) <= 2.0
        assert 1.5 <= policy.backoff(5) <= 3.0


# ---------------------------------------------------------------------------- 429 and blocks

TOO_MANY = {"code": 429, "message": "Too Many Requests", **ERROR}
BANNED = {"code": 429, "message": "You have exceeded the rate limit too many times", **ERROR}


async def test_429_waits_for_retry_after_and_retries(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(
        url_re("/stats"), status=429, payload=TOO_MANY, headers={"Retry-After": "2"}, callback=rec
    )
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, callback=rec)
    assert (await client.stats()).images == 2890
    assert len(rec.calls) == 2
    assert rec.calls[1].at - rec.calls[0].at >= 2.0
    health = client.health
    assert (health.rate_limited, health.strikes_in_window, health.requests_sent) == (1, 1, 2)


async def test_429_retries_are_bounded_then_rate_limited(
    clock: FakeClock, mocked: aioresponses
) -> None:
    api = make_client(clock, max_strikes=10)
    mocked.get(
        url_re("/stats"), status=429, payload=TOO_MANY, headers={"Retry-After": "1"}, repeat=True
    )
    try:
        with pytest.raises(RateLimited) as caught:
            await api.stats()
    finally:
        await api.close()
    assert type(caught.value) is RateLimited
    assert caught.value.retry_after == 1.0
    assert request_count(mocked) == 3  # the try and two retries


async def test_429_with_a_wait_beyond_the_time_budget_is_not_retried(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(
        url_re("/stats"), status=429, payload=TOO_MANY, headers={"Retry-After": "30"}, repeat=True
    )
    with pytest.raises(RateLimited) as caught:
        await client.stats()
    assert caught.value.retry_after == 30.0
    assert request_count(mocked) == 1
    assert client.pacer.estimated_wait() >= 30.0  # and every other caller holds back too


async def test_strike_budget_raises_blocked_and_stops_sending(
    client: NekosClient, mocked: aioresponses, clock: FakeClock
) -> None:
    mocked.get(
        url_re("/stats"), status=429, payload=TOO_MANY, headers={"Retry-After": "1"}, repeat=True
    )
    with pytest.raises(Blocked) as caught:
        await client.stats()
    assert request_count(mocked) == 3
    assert caught.value.status is None  # our own decision, before the server's
    assert caught.value.until > clock.wall()

    with pytest.raises(Blocked):
        await client.categories()
    assert request_count(mocked) == 3
    health = client.health
    assert health.strikes_in_window == 3
    assert health.blocked_until == caught.value.until
    assert health.last_error is not None


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (BANNED, {"Retry-After": "3599"}),
        (BANNED, {}),
        (TOO_MANY, {"Retry-After": "3600"}),
    ],
    ids=["ban-message", "ban-message-no-header", "long-retry-after"],
)
async def test_server_block_raises_blocked_and_nothing_is_sent_until_it_lifts(
    client: NekosClient,
    mocked: aioresponses,
    clock: FakeClock,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    mocked.get(url_re("/stats"), status=429, payload=body, headers=headers)
    mocked.get(url_re("/category"), payload=P.reference_page(), repeat=True)
    with pytest.raises(Blocked) as caught:
        await client.stats()
    blocked = caught.value
    assert blocked.status == 429
    assert blocked.retry_after >= 3599
    assert blocked.until >= WALL_EPOCH + dt.timedelta(seconds=3599)
    assert request_count(mocked) == 1

    with pytest.raises(Blocked):
        await client.categories()
    assert request_count(mocked) == 1

    clock.advance(3601)
    await client.categories()
    assert request_count(mocked) == 2


# ---------------------------------------------------------------------------- auth and token


async def test_authorization_header_is_sent_only_with_a_token(
    client: NekosClient, anon: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, callback=rec, repeat=True)
    await client.stats()
    await anon.stats()
    assert rec.calls[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in rec.calls[1].headers
    for call in rec.calls:
        assert call.headers["User-Agent"].startswith(f"nekos-bot/{bot.__version__}")


async def test_token_never_appears_in_repr_logs_errors_or_health(
    clock: FakeClock, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_client(clock, TOKEN)
    assert TOKEN not in repr(api)
    assert "token=set" in repr(api)
    # Worst cases: the server or the connection layer echoing the token back.
    mocked.get(
        url_re("/token"),
        status=401,
        payload={"code": 401, "message": f"Bad token Bearer {TOKEN}", **ERROR},
    )
    mocked.get(
        url_re("/stats"),
        exception=aiohttp.ClientConnectionError(f"reset after Authorization: Bearer {TOKEN}"),
        repeat=True,
    )
    mocked.get(url_re("/category"), status=500, body=f"<pre>{TOKEN}</pre>", repeat=True)
    errors: list[NekosError] = []
    with pytest.raises(Unauthorized) as unauthorized:
        await api.start()
    errors.append(unauthorized.value)
    for call in (api.stats, api.categories):
        with pytest.raises(NekosError) as caught:
            await call()
        errors.append(caught.value)
    await api.close()

    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in error.message
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(api.health)
    assert caplog.records  # the failures were logged, just without the token


async def test_start_adopts_the_token_rate_limit_scope(
    clock: FakeClock, mocked: aioresponses, rec: Recorder
) -> None:
    data = {**P.TOKEN_DATA, "scopes": ["image:list", "api:ratelimit:2-1-9"]}
    mocked.get(url_re("/token"), payload=P.reference_one(data), callback=rec)
    async with make_client(clock, TOKEN) as api:
        pacer = api.pacer
        assert isinstance(pacer, Pacer)
        assert pacer.spacing == pytest.approx(0.5 + 0.1)
        assert api.token_details is not None
        assert api.token_details.can_list_images
    assert rec.calls[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_start_with_a_disabled_rate_limit_stops_spacing(
    clock: FakeClock, mocked: aioresponses
) -> None:
    data = {**P.TOKEN_DATA, "scopes": ["api:ratelimit:disabled"]}
    mocked.get(url_re("/token"), payload=P.reference_one(data))
    async with make_client(clock, TOKEN) as api:
        assert api.pacer.estimated_wait() == 0.0
        assert api.pacer.state().interval == 0.0


async def test_start_with_a_rejected_token_raises_unauthorized_and_closes(
    clock: FakeClock, mocked: aioresponses
) -> None:
    body = {"code": 401, "message": "The token provided is not a valid token.", **ERROR}
    mocked.get(url_re("/token"), status=401, payload=body)
    api = make_client(clock, TOKEN)
    with pytest.raises(Unauthorized) as caught:
        async with api:
            pytest.fail("the context must not be entered")
    assert caught.value.status == 401
    assert "rejected the configured token" in caught.value.message
    assert "not a valid token" in caught.value.message
    assert api._session is None  # the owned session was closed


async def test_start_keeps_default_pacing_when_the_token_cannot_be_read(
    clock: FakeClock, mocked: aioresponses
) -> None:
    mocked.get(url_re("/token"), status=503, body="", repeat=True)
    async with make_client(clock, TOKEN) as api:
        assert api.token_details is None
        assert api.pacer.state().interval == pytest.approx(1.1)


async def test_start_without_a_token_sends_nothing(clock: FakeClock, mocked: aioresponses) -> None:
    async with make_client(clock):
        pass
    assert request_count(mocked) == 0


async def test_borrowed_session_is_never_closed(clock: FakeClock, mocked: aioresponses) -> None:
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS)
    async with aiohttp.ClientSession() as session:
        async with make_client(clock, session=session) as api:
            await api.stats()
        assert not session.closed


def test_default_base_url_is_the_documented_one() -> None:
    assert DEFAULT_BASE_URL == "https://v1.nekosapi.com/api"
    assert NekosClient().base_url == DEFAULT_BASE_URL


def test_adapter_does_not_import_discord_or_the_metrics() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.nekos; "
        "print([m for m in ('discord', 'prometheus_client') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- shared pacing


async def test_interactive_requests_go_before_queued_background_ones(
    client: NekosClient, mocked: aioresponses, rec: Recorder
) -> None:
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, callback=rec, repeat=True)
    mocked.get(url_re("/image/random"), payload=P.reference_page(), callback=rec, repeat=True)
    await client.stats()  # takes the current slot
    background = [asyncio.create_task(client.random_images(priority=BACKGROUND)) for _ in range(2)]
    await asyncio.sleep(0)
    interactive = [asyncio.create_task(client.stats(priority=INTERACTIVE)) for _ in range(2)]
    await asyncio.gather(*background, *interactive)
    assert [c.path for c in rec.calls] == [
        "/api/stats",
        "/api/stats",
        "/api/stats",
        "/api/image/random",
        "/api/image/random",
    ]
    times = [c.at for c in rec.calls]
    assert all(b - a >= 1.1 - 1e-9 for a, b in itertools.pairwise(times))


async def test_health_reports_queue_and_estimated_wait(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, repeat=True)
    await client.stats()
    waiting = [asyncio.create_task(client.stats()) for _ in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    health = client.health
    assert health.queue_length == 3
    assert client.pacer.queue_length == 3
    assert health.estimated_wait == pytest.approx(1.1 + 3 * 1.1)
    assert client.pacer.estimated_wait(BACKGROUND) == pytest.approx(1.1 + 3 * 1.1)
    await asyncio.gather(*waiting)
    health = client.health
    assert (health.queue_length, health.requests_sent, health.last_error) == (0, 4, None)


async def test_health_records_the_last_error_and_when(
    client: NekosClient, mocked: aioresponses, clock: FakeClock
) -> None:
    mocked.get(
        url_re(f"/image/{P.IMAGE_ID}"),
        status=404,
        payload={"code": 404, "message": "gone", **ERROR},
    )
    with pytest.raises(NotFound):
        await client.image(P.IMAGE_ID)
    health = client.health
    assert health.last_error == "GET /image/{id} 404: gone"
    assert health.last_error_at == clock.wall()


async def test_clients_sharing_a_pacer_share_the_spacing(
    clock: FakeClock, mocked: aioresponses, rec: Recorder
) -> None:
    pacer = Pacer(clock=clock, sleep=clock.sleep, wall_clock=clock.wall)
    one = NekosClient(BASE, pacer=pacer, clock=clock, sleep=clock.sleep)
    two = NekosClient(BASE, pacer=pacer, clock=clock, sleep=clock.sleep)
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS, callback=rec, repeat=True)
    try:
        await asyncio.gather(one.stats(), two.stats(), one.stats(), two.stats())
    finally:
        await one.close()
        await two.close()
    times = [c.at for c in rec.calls]
    assert len(times) == 4
    assert all(b - a >= 1.1 - 1e-9 for a, b in itertools.pairwise(times))


# ---------------------------------------------------------------------------- downloads


async def test_download_returns_the_bytes_unpaced_and_without_the_token(
    client: NekosClient, mocked: aioresponses, clock: FakeClock
) -> None:
    captured: list[dict[str, str]] = []

    def capture(url: URL, **kwargs: Any) -> None:
        captured.append(dict(kwargs.get("headers") or {}))

    mocked.get(STORAGE_URL, body=b"\x89PNG" + b"x" * 996, callback=capture)
    data = await client.download(STORAGE_URL, max_bytes=1000)
    assert data.startswith(b"\x89PNG")
    assert len(data) == 1000
    assert "Authorization" not in captured[0]
    assert client.pacer.state().requests_started == 0


async def test_download_aborts_on_a_content_length_over_the_cap(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(STORAGE_URL, body=b"x" * 5000, headers={"Content-Length": "5000"})
    with pytest.raises(DownloadTooLarge) as caught:
        await client.download(STORAGE_URL, max_bytes=1000)
    assert (caught.value.size, caught.value.max_bytes) == (5000, 1000)


async def test_download_aborts_when_the_stream_exceeds_the_cap(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(STORAGE_URL, body=b"x" * 100_000)
    with pytest.raises(DownloadTooLarge) as caught:
        await client.download(STORAGE_URL, max_bytes=50_000)
    assert caught.value.size is None
    assert request_count(mocked) == 1


async def test_download_maps_errors_and_keeps_the_signature_out_of_logs(
    client: NekosClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(STORAGE_URL, status=403, body="<Error>Request has expired</Error>")
    with pytest.raises(Forbidden) as caught:
        await client.download(STORAGE_URL, max_bytes=1000)
    assert caught.value.endpoint == "download https://storage.example.com/images/abc.webp"
    assert "s3cr3tsig" not in str(caught.value)
    assert "s3cr3tsig" not in caplog.text
    assert request_count(mocked) == 1


async def test_download_retries_server_errors_and_timeouts(
    client: NekosClient, mocked: aioresponses
) -> None:
    mocked.get(STORAGE_URL, status=503, body="")
    mocked.get(STORAGE_URL, exception=TimeoutError())
    mocked.get(STORAGE_URL, body=b"ok")
    assert await client.download(STORAGE_URL, max_bytes=10) == b"ok"
    assert request_count(mocked) == 3


async def test_download_gives_up_as_unavailable(client: NekosClient, mocked: aioresponses) -> None:
    mocked.get(STORAGE_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
    with pytest.raises(Unavailable):
        await client.download(STORAGE_URL, max_bytes=10)
    assert request_count(mocked) == 3


@pytest.mark.parametrize(
    ("url", "max_bytes"),
    [("ftp://example.com/x.png", 10), ("not a url", 10), (STORAGE_URL, 0), (STORAGE_URL, True)],
)
async def test_download_checks_its_arguments(
    client: NekosClient, mocked: aioresponses, url: str, max_bytes: int
) -> None:
    with pytest.raises(InvalidParameter):
        await client.download(url, max_bytes=max_bytes)
    assert request_count(mocked) == 0


# ---------------------------------------------------------------------------- the observer


class Observed:
    """A RequestObserver that writes down what it is told."""

    def __init__(self) -> None:
        self.waits: list[tuple[Priority, float]] = []
        self.calls: list[tuple[str, str]] = []

    def pacer_wait(self, priority: Priority, seconds: float) -> None:
        self.waits.append((priority, seconds))

    def upstream_call(self, endpoint: str, status: str, seconds: float) -> None:
        self.calls.append((endpoint, status))


async def test_the_observer_is_told_every_send_with_its_status_and_pacer_wait(
    clock: FakeClock, mocked: aioresponses
) -> None:
    observed = Observed()
    api = make_client(clock, observer=observed)
    mocked.get(url_re("/stats"), status=429, payload=TOO_MANY, headers={"Retry-After": "2"})
    mocked.get(url_re("/stats"), payload=P.REFERENCE_STATS)
    artist = f"/artist/{P.ARTIST_ID}"
    mocked.get(url_re(artist), exception=TimeoutError())
    mocked.get(url_re(artist), exception=aiohttp.ClientConnectionError("reset"))
    mocked.get(url_re(artist), status=404, payload={"code": 404, "message": "No", **ERROR})
    try:
        assert (await api.stats()).images == 2890
        with pytest.raises(NotFound):
            await api.artist(P.ARTIST_ID, priority=BACKGROUND)
    finally:
        await api.close()
    assert observed.calls == [
        ("GET /stats", "429"),
        ("GET /stats", "200"),
        ("GET /artist/{id}", "timeout"),
        ("GET /artist/{id}", "connection"),
        ("GET /artist/{id}", "404"),
    ]
    # One wait per send; the retry after the 429 waited out its Retry-After (virtual clock).
    assert [p for p, _ in observed.waits] == [INTERACTIVE] * 2 + [BACKGROUND] * 3
    assert observed.waits[0][1] == 0
    assert observed.waits[1][1] >= 2.0
