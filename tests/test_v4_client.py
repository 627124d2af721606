"""The Nekos API v4 client against the loopback v4 fake, over real sockets.

The same contract as the v1 client's tests: every endpoint and parameter, what reaches the server
(comma lists, nothing for refused parameters, never a token), tolerant parsing, errors mapped
from the status first, retries within the policy, and pacing that never earns a 429.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.nekos import (
    V4_CAPABILITIES,
    Artist,
    BadRequest,
    Blocked,
    HTTPError,
    Image,
    InvalidParameter,
    NekosClient,
    NekosV4Client,
    NotFound,
    Pacer,
    RateLimited,
    Rating,
    ResponseParseError,
    RetryPolicy,
    Route,
    ServerError,
    Unavailable,
    make_client,
)
from bot.nekos.pacing import SHARED
from tests.fakes.dataset_v4 import PLANTED, V4ImageRow, generate_v4_dataset
from tests.fakes.fake_server import solid_png
from tests.fakes.nekos_api_v4 import REMOVE, FakeNekosV4API
from tests.test_client_against_fake import VirtualTime, figures

DATASET = generate_v4_dataset()
FAST_RETRY = RetryPolicy(attempts=3, total_time=10.0, base_delay=0.01, max_delay=0.02)
SAMPLE = PLANTED[4399]
RATING_OF = {
    "safe": Rating.SFW,
    "suggestive": Rating.QUESTIONABLE,
    "borderline": Rating.NSFW,
    "explicit": Rating.NSFW,
}


def client_for(fake: FakeNekosV4API, **options: Any) -> NekosV4Client:
    options.setdefault("pacer", Pacer(interval=0.0, margin=0.0))
    options.setdefault("retry", FAST_RETRY)
    return NekosV4Client(fake.base_url, **options)


@pytest.fixture
async def fake() -> AsyncIterator[FakeNekosV4API]:
    async with FakeNekosV4API(DATASET) as server:
        yield server


@pytest.fixture
async def api(fake: FakeNekosV4API) -> AsyncIterator[NekosV4Client]:
    async with client_for(fake) as client:
        yield client


def sent(fake: FakeNekosV4API) -> list[tuple[str, dict[str, str]]]:
    """Path and query of every API request the fake received, in order."""
    return [(r.path, r.query) for r in fake.api_requests]


def assert_matches_row(image: Image, row: V4ImageRow) -> None:
    assert image.id == str(row.id)
    assert image.rating is RATING_OF[row.rating]
    assert image.api_rating == row.rating
    assert image.tags == row.tags
    assert image.meta.color == "#{:02x}{:02x}{:02x}".format(*row.color_dominant)
    assert image.artist == (Artist(id="", name=row.artist_name) if row.artist_name else None)
    assert image.source.url == row.source_url
    assert image.ages_known is False
    assert image.characters == ()
    assert image.url.endswith(f"/nekos-api/images/original/{row.file_name}")


# ------------------------------------------------------------------ endpoints and content


async def test_an_image_by_id_is_the_documented_sample(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    image = await api.image(4399)
    assert image.id == "4399"
    assert image.rating is Rating.SFW
    assert image.api_rating == "safe"
    assert image.tags == ("weapon", "sword", "girl")
    assert image.meta.color == "#4b347a"  # [75, 52, 122]
    assert image.artist is None
    assert image.source.url is None
    assert image.ages_known is False
    assert {"sword", "girl"} <= image.category_names  # the pool matches tags like categories
    assert await api.image("4399") == image
    assert await api.image(" 04399 ") == image
    assert [path for path, _ in sent(fake)] == ["/v4/images/4399"] * 3


async def test_artist_and_source_are_read_when_present(api: NekosV4Client) -> None:
    image = await api.image(4400)
    assert image.artist == Artist(id="", name="Mikan")
    assert image.source.url == "https://www.pixiv.net/artworks/4400"
    assert image.rating is Rating.SFW  # rated safe although tagged nude: the classifier errs
    assert "nude" in image.tags


async def test_every_rating_maps_onto_the_bots_three(api: NekosV4Client) -> None:
    for image_id, rating in ((4399, Rating.SFW), (4402, Rating.QUESTIONABLE), (4401, Rating.NSFW)):
        assert (await api.image(image_id)).rating is rating
    assert (await api.image(4403)).rating is Rating.NSFW


async def test_random_images_are_parsed_from_a_bare_array(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    page = await api.random_images(limit=100)
    assert len(page.items) == 100
    assert len({image.id for image in page.items}) == 100
    for image in page.items:
        assert_matches_row(image, DATASET.by_id[int(image.id)])
    assert page.pagination is None
    assert sent(fake) == [("/v4/images/random", {"limit": "100"})]


async def test_random_filters_are_sent_as_comma_lists(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    page = await api.random_images(
        ["Girl", "catgirl ", "girl"],
        limit=20,
        ratings=["safe", "suggestive"],
        without_tags="nude, sex",
    )
    assert sent(fake) == [
        (
            "/v4/images/random",
            {
                "limit": "20",
                "rating": "safe,suggestive",
                "tags": "girl,catgirl",
                "without_tags": "nude,sex",
            },
        )
    ]
    assert page.items
    for image in page.items:
        assert image.api_rating in ("safe", "suggestive")
        assert {"girl", "catgirl"} <= set(image.tags)
        assert not {"nude", "sex"} & set(image.tags)


async def test_the_bots_levels_become_v4_ratings(api: NekosV4Client, fake: FakeNekosV4API) -> None:
    nsfw = await api.random_images(limit=50, ratings=[Rating.NSFW])
    sfw = await api.random_images(limit=50, ratings=(Rating.SFW,))
    both = await api.random_images(limit=5, ratings=[Rating.QUESTIONABLE, "safe"])
    assert [query["rating"] for _, query in sent(fake)] == [
        "borderline,explicit",
        "safe",
        "safe,suggestive",
    ]
    assert {image.rating for image in nsfw.items} == {Rating.NSFW}
    assert {image.api_rating for image in sfw.items} == {"safe"}
    assert len(both.items) == 5


async def test_the_pools_v1_call_shape_is_accepted(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    # ImagePool calls random_images(categories=..., limit=..., expiry=..., priority=...).
    page = await api.random_images(
        categories=["kemonomimi"], limit=25, expiry=None, priority=SHARED
    )
    assert sent(fake) == [("/v4/images/random", {"limit": "25", "tags": "kemonomimi"})]
    assert all("kemonomimi" in image.category_names for image in page.items)


async def test_no_match_is_an_empty_page_or_not_found(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    empty = await api.random_images(["no such tag"], limit=10)
    assert empty.items == ()
    fake.random_empty = "404"
    with pytest.raises(NotFound):
        await api.random_images(["no such tag"], limit=10)


async def test_image_pages_carry_the_total_count(api: NekosV4Client, fake: FakeNekosV4API) -> None:
    first = await api.images()
    assert len(first.items) == 100
    assert first.pagination is not None
    assert first.pagination.total == len(DATASET.images)
    assert (first.pagination.limit, first.pagination.offset, first.pagination.count) == (
        100,
        0,
        100,
    )
    seen: list[str] = []
    offset = 0
    while True:
        page = await api.images(limit=30, offset=offset, ratings=["safe"], tags=["girl"])
        seen += [image.id for image in page.items]
        if len(page.items) < 30:
            break
        offset += 30
    expected = DATASET.matching(ratings=("safe",), tags=("girl",))
    assert len(expected) > 30  # more than one page
    assert seen == [str(row.id) for row in expected]
    assert page.pagination is not None
    assert page.pagination.total == len(expected)
    assert sent(fake)[1] == ("/v4/images", {"limit": "30", "rating": "safe", "tags": "girl"})
    assert sent(fake)[2][1]["offset"] == "30"


async def test_image_count_reads_count_from_one_small_page(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    count = await api.image_count(ratings=["safe"], tags=["catgirl"], without_tags=["sword"])
    expected = DATASET.matching(ratings=("safe",), tags=("catgirl",), without_tags=("sword",))
    assert count == len(expected)
    assert sent(fake) == [
        (
            "/v4/images",
            {"limit": "1", "rating": "safe", "tags": "catgirl", "without_tags": "sword"},
        )
    ]


async def test_stats_count_each_rating(api: NekosV4Client, fake: FakeNekosV4API) -> None:
    stats = await api.stats()
    assert dict(stats.ratings) == DATASET.rating_counts()
    assert stats.images == len(DATASET.images)
    assert (stats.artists, stats.characters, stats.categories) == (None, None, None)
    assert sent(fake) == [
        ("/v4/images", {"limit": "1", "rating": label})
        for label in ("safe", "suggestive", "borderline", "explicit")
    ]


async def test_api_info_proves_the_v4_shape_with_one_call(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    info = await api.api_info()
    assert info.version == "v4"
    assert "/images/random" in info.endpoints
    assert info.base_api_route == "/v4"
    assert sent(fake) == [("/v4/images", {"limit": "1"})]


async def test_capabilities_say_what_v4_can_do(api: NekosV4Client) -> None:
    caps = api.capabilities
    assert caps is V4_CAPABILITIES
    assert (caps.version, caps.max_random_batch, caps.id_kind) == ("v4", 100, "int")
    assert caps.rating_filter
    assert caps.has_tags
    assert not caps.has_artists
    assert not caps.has_characters
    assert not caps.has_categories_list
    assert not caps.signed_urls
    assert caps.summary() == (
        "random images, images by id, tags, tag exclusion, rating filter; "
        "no artists, characters or categories"
    )
    assert NekosClient("http://v1.test/api").capabilities.summary() == (
        "random images, images by id, categories, artists, characters, statistics"
    )


# ------------------------------------------------------------------ refused before sending


@pytest.mark.parametrize(
    "call",
    [
        lambda api: api.random_images(limit=0),
        lambda api: api.random_images(limit=101),
        lambda api: api.random_images(limit=True),
        lambda api: api.random_images(limit="5"),
        lambda api: api.images(limit=101),
        lambda api: api.images(offset=-1),
        lambda api: api.images(offset=1.5),
        lambda api: api.image("abc"),
        lambda api: api.image("4399a"),
        lambda api: api.image(""),
        lambda api: api.image(-1),
        lambda api: api.image(True),
        lambda api: api.image(4399.0),
        lambda api: api.image("٤٣٩٩"),  # Arabic-Indic digits are digits to Python, not to v4
        lambda api: api.image("9" * 30),
        lambda api: api.image("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
        lambda api: api.random_images(["a,b"]),
        lambda api: api.random_images(["girl", ""]),
        lambda api: api.random_images(["  "]),
        lambda api: api.random_images(["x" * 101]),
        lambda api: api.random_images([5]),
        lambda api: api.random_images(without_tags=["ok", "no,pe"]),
        lambda api: api.random_images(["girl"], without_tags=["GIRL"]),
        lambda api: api.random_images(ratings=[]),
        lambda api: api.random_images(ratings=["sfw"]),
        lambda api: api.random_images(ratings=["spicy"]),
        lambda api: api.random_images(ratings=[2]),
        lambda api: api.image_count(ratings=""),
        lambda api: api.images(tags=["a,b"]),
    ],
)
async def test_bad_parameters_are_refused_before_anything_is_sent(
    api: NekosV4Client, fake: FakeNekosV4API, call: Any
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await call(api)
    assert caught.value.endpoint is not None
    assert caught.value.endpoint.startswith("GET /images")
    assert fake.requests == []


async def test_a_comma_string_is_a_list_and_blank_entries_are_dropped(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    await api.random_images("girl,, catgirl,", ratings="safe,suggestive")
    assert sent(fake) == [
        ("/v4/images/random", {"limit": "1", "rating": "safe,suggestive", "tags": "girl,catgirl"})
    ]


# ------------------------------------------------------------------ tolerant parsing


@pytest.mark.parametrize(
    ("value", "colour"),
    [
        ([75.0, 52.4, 121.6], "#4b347a"),
        ([0, 0, 0], "#000000"),
        ([255, 255, 255], "#ffffff"),
        ([75, 52], None),
        ([75, 52, 122, 9], None),
        ([300, 0, 0], None),
        ([-1, 0, 0], None),
        ([True, 0, 0], None),
        (["75", 52, 122], None),
        ("#4b347a", None),
        (None, None),
        ({"r": 75}, None),
    ],
)
async def test_dominant_colours_are_read_tolerantly(
    api: NekosV4Client, fake: FakeNekosV4API, value: Any, colour: str | None
) -> None:
    fake.image_overrides[4399] = {"color_dominant": value}
    image = await api.image(4399)
    assert image.meta.color == colour


async def test_missing_optional_fields_and_unknown_ones_are_fine(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    fake.image_overrides[4400] = {
        "rating": REMOVE,
        "tags": REMOVE,
        "color_dominant": REMOVE,
        "color_palette": REMOVE,
        "artist_name": REMOVE,
        "source_url": REMOVE,
        "created_at": "2025-01-08T00:00:00Z",
        "artist": {"id": 7, "name": "someone"},
        "extra": [1, 2, 3],
    }
    image = await api.image(4400)
    assert image.id == "4400"
    assert image.rating is Rating.NSFW  # no rating: the most restrictive, the safe error
    assert image.api_rating is None
    assert (image.tags, image.meta.color, image.artist, image.source.url) == ((), None, None, None)


async def test_odd_values_are_tolerated(api: NekosV4Client, fake: FakeNekosV4API) -> None:
    fake.image_overrides[4399] = {
        "id": "4399",
        "rating": " Suggestive ",
        "tags": ["Girl", "girl", 5, None, " Sword ", ""],
        "artist_name": "",
        "source_url": 12,
    }
    image = await api.image(4399)
    assert image.id == "4399"
    assert image.rating is Rating.QUESTIONABLE
    assert image.api_rating == "suggestive"
    assert image.tags == ("girl", "sword")
    assert image.artist is None
    assert image.source.url is None
    fake.image_overrides[4399] = {"rating": "spicy", "tags": "girl"}
    odd = await api.image(4399)
    assert (odd.rating, odd.api_rating, odd.tags) == (Rating.NSFW, "spicy", ())


@pytest.mark.parametrize(
    "override",
    [
        {"url": REMOVE},
        {"url": 5},
        {"url": ""},
        {"id": REMOVE},
        {"id": None},
        {"id": True},
        {"id": "abc"},
        {"id": -3},
        {"id": 1.5},
    ],
)
async def test_an_image_without_a_usable_id_or_url_is_a_parse_error(
    api: NekosV4Client, fake: FakeNekosV4API, override: dict[str, Any]
) -> None:
    fake.image_overrides[4399] = override
    with pytest.raises(ResponseParseError) as caught:
        await api.image(4399)
    assert caught.value.endpoint == "GET /images/{id}"


@pytest.mark.parametrize(
    ("method", "body", "endpoint"),
    [
        ("random", '{"foo": 1}', "GET /images/random"),
        ("random", "[1, 2]", "GET /images/random"),
        ("random", '"images"', "GET /images/random"),
        ("images", "[]", "GET /images"),
        ("images", '{"items": {}, "count": 1}', "GET /images"),
        ("images", '{"items": []}', "GET /images"),
        ("count", '{"items": [], "count": "many"}', "GET /images"),
        ("count", '{"items": [], "count": -1}', "GET /images"),
        ("image", "[]", "GET /images/{id}"),
        ("image", "null", "GET /images/{id}"),
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_parse_error_naming_the_endpoint(
    api: NekosV4Client, fake: FakeNekosV4API, method: str, body: str, endpoint: str
) -> None:
    fake.raw_next(1, status=200, body=body)
    calls = {
        "random": lambda: api.random_images(limit=5),
        "images": lambda: api.images(),
        "count": lambda: api.image_count(),
        "image": lambda: api.image(4399),
    }
    with pytest.raises(ResponseParseError) as caught:
        await calls[method]()
    assert caught.value.endpoint == endpoint
    assert len(fake.api_requests) == 1  # not retried


async def test_a_wrapped_random_answer_is_accepted(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    item = fake.image_json(SAMPLE)
    fake.raw_next(1, status=200, body=json.dumps({"items": [item], "count": 1}))
    page = await api.random_images()
    assert [image.id for image in page.items] == ["4399"]


# ------------------------------------------------------------------ errors


async def test_a_real_422_reads_its_detail_list(api: NekosV4Client) -> None:
    # The client refuses this itself; sent raw, the server's own check answers.
    with pytest.raises(BadRequest) as caught:
        await api.request(Route("GET", "/images"), params={"limit": "500", "rating": "x"})
    assert caught.value.status == 422
    assert caught.value.message == (
        "limit: Input should be less than or equal to 100; "
        "rating.0: Input should be 'safe', 'suggestive', 'borderline' or 'explicit'"
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (422, '{"detail": "tags: unknown"}', BadRequest, "tags: unknown"),
        (422, '{"detail": [{"msg": "bad"}, {"loc": "x"}, 7, "plain"]}', BadRequest, "bad; plain"),
        (422, '{"detail": 42}', BadRequest, "Unprocessable"),
        (422, '{"detail": [{"loc": ["query"], "msg": "  "}]}', BadRequest, "Unprocessable"),
        (400, '{"message": "no"}', BadRequest, "no"),
        (404, '{"detail": "Not Found"}', NotFound, "Not Found"),
        (404, "", NotFound, "Not Found"),
        (403, "<html>denied</html>", HTTPError, "Forbidden"),
        (418, '{"detail": {"msg": "teapot", "loc": ["path", "id"]}}', HTTPError, "id: teapot"),
        (409, "[1, 2, 3]", HTTPError, "Conflict"),
        (404, '{"detail": "' + "x" * 5000 + '"}', NotFound, "x" * 300),
    ],
)
async def test_errors_are_mapped_from_the_status_and_read_defensively(
    api: NekosV4Client,
    fake: FakeNekosV4API,
    status: int,
    body: str,
    kind: type[Exception],
    message: str,
) -> None:
    fake.raw_next(1, status=status, body=body)
    with pytest.raises(kind) as caught:
        await api.image(4399)
    error = caught.value
    assert isinstance(error, HTTPError)
    assert error.status == status
    assert error.message.startswith(message)
    assert len(error.message) <= 300
    assert len(fake.api_requests) == 1  # 4xx are not retried


async def test_urls_in_error_messages_lose_their_query(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    fake.raw_next(1, status=404, body='{"detail": "gone: https://s3.test/a.png?X-Sig=abc123"}')
    with pytest.raises(NotFound) as caught:
        await api.image(4399)
    assert "abc123" not in str(caught.value)
    assert "https://s3.test/a.png?…" in caught.value.message


async def test_server_errors_and_proxies_are_retried_within_the_policy(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    fake.html_error_next(1)
    fake.empty_error_next(1)
    image = await api.image(4399)
    assert image.id == "4399"
    assert [r.status for r in fake.api_requests] == [502, 503, 200]
    fake.html_error_next(3)
    with pytest.raises(ServerError) as caught:
        await api.image(4399)
    assert caught.value.status == 502
    assert caught.value.message == "Bad Gateway"
    assert len(fake.api_requests) == 6  # three tries in all


async def test_malformed_json_is_a_parse_error_and_not_retried(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    fake.malformed_json_next(1)
    with pytest.raises(ResponseParseError) as caught:
        await api.random_images()
    assert caught.value.endpoint == "GET /images/random"
    assert len(fake.api_requests) == 1


async def test_a_dropped_connection_is_retried_through_the_client_only(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    fake.drop_next(1)
    assert (await api.image(4399)).id == "4399"
    assert [r.status for r in fake.api_requests] == [0, 200]
    fake.drop_next(5)
    with pytest.raises(Unavailable):
        await api.image(4399)
    assert [r.status for r in fake.api_requests[2:]] == [0, 0, 0]  # the policy's three tries
    assert api.health.last_error is not None


# ------------------------------------------------------------------ pacing and limits


def virtual_v4_client(vt: VirtualTime, fake: FakeNekosV4API, **pacer: Any) -> NekosV4Client:
    return NekosV4Client(
        fake.base_url,
        pacer=vt.make_pacer(**pacer),
        retry=FAST_RETRY,
        clock=vt,
        sleep=vt.sleep,
        wall_clock=vt.wall,
    )


@pytest.mark.parametrize(("rate", "server_limit"), [(1.0, (1, 1.0)), (4.0, (4, 1.0))])
async def test_many_concurrent_calls_never_meet_the_switched_on_limit(
    rate: float, server_limit: tuple[int, float]
) -> None:
    vt = VirtualTime()
    fake = FakeNekosV4API(DATASET, rate_limit=server_limit, strikes_before_block=3, clock=vt)
    ids = [row.id for row in itertools.islice(DATASET.images, 60)]
    async with fake, virtual_v4_client(vt, fake, interval=1.0 / rate, margin=0.1) as api:
        calls = [api.image(i) if n % 2 else api.random_images(limit=5) for n, i in enumerate(ids)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert fake.count_429 == 0
    assert len(fake.api_requests) == 60
    elapsed, min_gap, median_gap = figures(fake.api_requests)
    assert min_gap >= 1.0 / rate
    print(
        f"\nV4 PACING: rate={rate}/s calls=60 elapsed_virtual={elapsed:.1f}s "
        f"min_gap={min_gap:.3f}s median_gap={median_gap:.3f}s 429s={fake.count_429}"
    )


async def test_a_429_is_honoured_after_its_retry_after() -> None:
    vt = VirtualTime()
    fake = FakeNekosV4API(DATASET, rate_limit=(1, 2.0), clock=vt)
    # The pacer believes in one a second; the server allows one every two.
    async with fake, virtual_v4_client(vt, fake, interval=1.0, margin=0.0) as api:
        await api.image(4399)
        image = await api.image(4400)
        assert image.id == "4400"
        records = fake.api_requests
        assert [r.status for r in records] == [200, 429, 200]
        assert records[2].time - records[1].time >= 1.0  # waited out Retry-After
        assert api.health.rate_limited == 1
        assert api.health.strikes_in_window == 1


async def test_a_block_stops_sending_until_it_lifts() -> None:
    vt = VirtualTime()
    fake = FakeNekosV4API(DATASET, rate_limit=(1, 1.0), clock=vt)
    async with fake, virtual_v4_client(vt, fake) as api:
        fake.block_ip(seconds=1800)
        with pytest.raises(Blocked):
            await api.image(4399)
        with pytest.raises(Blocked):
            await api.stats()
        assert len(fake.api_requests) == 1
        vt.now += 1801
        assert (await api.image(4399)).id == "4399"


async def test_a_rate_limit_without_retry_after_is_still_a_short_wait(
    fake: FakeNekosV4API,
) -> None:
    fake.raw_next(1, status=429, body='{"detail": "slow down"}')
    no_retry = RetryPolicy(rate_limit_retries=0)
    async with client_for(fake, retry=no_retry) as api:
        with pytest.raises(RateLimited) as caught:
            await api.image(4399)
    assert type(caught.value) is RateLimited  # not a block: no Retry-After, no "too many"
    assert caught.value.retry_after == 1.0
    assert caught.value.message == "slow down"


# ------------------------------------------------------------------ tokens, files, factory


async def test_a_configured_token_is_never_sent_to_v4(
    fake: FakeNekosV4API, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = "Tk9" + "a1B2c3D4e5" * 9 + "Zz9Yy8X"
    api = make_client("v4", fake.base_url, token, pacer=Pacer(interval=0.0, margin=0.0))
    assert isinstance(api, NekosV4Client)
    assert not api.has_token
    assert api.token_details is None
    async with api:
        await api.image(4399)
        await api.random_images(limit=3)
    assert [r.has_token for r in fake.requests] == [False, False]
    assert token not in repr(api)
    assert token not in caplog.text
    assert "not sent" in caplog.text


async def test_the_factory_builds_v1_with_its_token(fake: FakeNekosV4API) -> None:
    token = "Tk9" + "a1B2c3D4e5" * 9 + "Zz9Yy8X"
    api = make_client("v1", "http://v1.test/api", token)
    assert isinstance(api, NekosClient)
    assert api.has_token
    assert api.capabilities.version == "v1"
    await api.close()


async def test_downloads_fetch_the_plain_file_and_a_moved_one_is_looked_up_again(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    image = await api.image(4404)
    assert await api.download(image.url, max_bytes=10_000) == solid_png((250, 180, 40))
    fake.move_files()
    with pytest.raises(NotFound):
        await api.download(image.url, max_bytes=10_000)
    fresh = await api.image(4404)  # keep the id, not the URL
    assert fresh.url != image.url
    assert await api.download(fresh.url, max_bytes=10_000) == solid_png((250, 180, 40))
    assert len(fake.api_requests) == 2  # downloads are not API requests
