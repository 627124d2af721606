"""The Nekos API client and pacer against the loopback fake server, over real sockets.

Unlike ``test_nekos_client.py`` (aioresponses), every request here crosses a real TCP connection
to :class:`~tests.fakes.nekos_api.FakeNekosAPI` on 127.0.0.1, so aiohttp's own behaviour
(keep-alive, dropped connections, its silent retry) is part of what is tested.

The pacing tests drive the fake's rate limiter, the pacer and the client from one
:class:`VirtualTime`, so a hundred requests at one per second take a fraction of a real second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.nekos import (
    BadRequest,
    Blocked,
    DownloadTooLarge,
    Forbidden,
    Image,
    InvalidParameter,
    NekosClient,
    NotFound,
    Pacer,
    RateLimited,
    RawPattern,
    ResponseParseError,
    RetryPolicy,
    ServerError,
    Unauthorized,
    Unavailable,
)
from bot.nekos.models import Rating
from tests.fakes.dataset import ImageRow, generate_dataset
from tests.fakes.nekos_api import API_VERSION, ENDPOINTS, FakeNekosAPI, RequestRecord

DATASET = generate_dataset()
FAST_RETRY = RetryPolicy(attempts=3, total_time=10.0, base_delay=0.01, max_delay=0.02)
WALL_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# Names in the dataset made of SIMILAR TO operators, and near-twins an unescaped search would hit.
ARTIST_NAMES = [
    "50% off",
    "50 percent off",
    "under_score",
    "under-score",
    "(paren)",
    "a|b studio",
    "dot.art",
    "star*",
    "+plus+",
    "[bracket]",
    "back\\slash",
    "MiXeD CaSe",
    "Ünïcødé",
    "猫絵師",
]
CHARACTER_NAMES = ["Mio (Summer)", "100% Neko", "Yuki_Onna", "Nekoúmi", "ねこ", "Hana|Kaze"]
CATEGORY_NAMES = ["under_score", "under-score", "50% off", "(paren)", "café", "猫耳"]


def unpaced() -> Pacer:
    """A pacer that spaces nothing: for tests of content and errors, not of pacing."""
    return Pacer(interval=0.0, margin=0.0)


def client_for(fake: FakeNekosAPI, token: str | None = None, **options: Any) -> NekosClient:
    options.setdefault("pacer", unpaced())
    options.setdefault("retry", FAST_RETRY)
    return NekosClient(fake.base_url, token, **options)


@pytest.fixture
async def api(nekos_fake: FakeNekosAPI) -> AsyncIterator[NekosClient]:
    """A token-less client of the shared fake (rate limit off), with fast retries."""
    async with client_for(nekos_fake) as client:
        yield client


@pytest.fixture
async def lister(nekos_fake: FakeNekosAPI) -> AsyncIterator[NekosClient]:
    """A client whose token may list images and set link expiry up to a day."""
    token = nekos_fake.add_token(["image:list", "image:custom-expiry:86400"])
    async with client_for(nekos_fake, token) as client:
        yield client


def gaps(records: Sequence[RequestRecord]) -> list[float]:
    """Seconds between consecutive arrivals at the fake."""
    return [b.time - a.time for a, b in itertools.pairwise(records)]


def assert_image_matches(image: Image, row: ImageRow) -> None:
    assert image.id == row.id
    assert image.rating is Rating.parse(row.nsfw)
    assert urlsplit(image.url).path == f"/storage/{row.file_name}"
    assert [c.id for c in image.categories] == list(row.category_ids)
    assert [c.name for c in image.categories] == [
        DATASET.category_by_id[c].name for c in row.category_ids
    ]
    assert [c.id for c in image.characters] == list(row.character_ids)
    if row.artist_id is None:
        assert image.artist is None
    else:
        assert image.artist is not None
        assert image.artist.id == row.artist_id
        # The reference shape names the artist by id only; the live one carries the name.
        assert image.artist.name in (None, DATASET.artist_by_id[row.artist_id].name)
    assert (image.source.name, image.source.url) == (row.source_name, row.source_url)
    assert image.original is row.original
    assert image.created_at == row.created_at
    assert (image.meta.etag, image.meta.size, image.meta.mimetype, image.meta.color) == (
        row.etag,
        row.size,
        row.mimetype,
        row.color,
    )
    dimens = image.meta.dimens
    assert (dimens.width, dimens.height, dimens.aspect_ratio, dimens.orientation) == (
        row.width,
        row.height,
        row.aspect_ratio,
        row.orientation,
    )


# ------------------------------------------------------------------ endpoints and content


async def test_index_and_stats_describe_the_dataset(api: NekosClient) -> None:
    info = await api.api_info()
    assert info.endpoints == ENDPOINTS
    assert info.version == API_VERSION
    assert info.base_api_route == "/api"

    stats = await api.stats()
    assert stats.images == len(DATASET.images)
    assert dict(stats.ratings) == DATASET.rating_counts()
    assert stats.artists == len(DATASET.artists)
    assert stats.characters == len(DATASET.characters)
    assert stats.categories == len(DATASET.categories)


async def test_token_info_reports_the_tokens_details(lister: NekosClient) -> None:
    details = await lister.token_info()
    assert details.scopes == ("image:list", "image:custom-expiry:86400")
    assert details.owner is not None
    assert details.owner.startswith("tester")
    assert details.max_expiry == 86400
    assert details.expires is not None


async def test_image_list_pages_follow_database_order_with_pagination(
    lister: NekosClient,
) -> None:
    page = await lister.images(limit=25, offset=10)
    assert [i.id for i in page.items] == [r.id for r in DATASET.images[10:35]]
    assert page.pagination is not None
    assert (page.pagination.limit, page.pagination.offset) == (25, 10)
    assert (page.pagination.count, page.pagination.total) == (25, len(DATASET.images))
    for image, row in zip(page.items, DATASET.images[10:35], strict=True):
        assert_image_matches(image, row)

    last = await lister.images(limit=25, offset=len(DATASET.images) - 5)
    assert [i.id for i in last.items] == [r.id for r in DATASET.images[-5:]]
    assert last.pagination is not None
    assert last.pagination.count == 5


async def test_single_image_matches_its_row(api: NekosClient) -> None:
    # Rows that carry the awkward values: no artist, null colour, no aspect ratio, questionable.
    rows = [
        next(r for r in DATASET.images if r.artist_id is None),
        next(r for r in DATASET.images if r.color is None),
        next(r for r in DATASET.images if r.aspect_ratio is None),
        next(r for r in DATASET.images if r.nsfw == "questionable"),
        next(r for r in DATASET.images if r.mimetype == "image/jpeg"),
    ]
    for row in rows:
        assert_image_matches(await api.image(row.id), row)
    # Upper-case ids are normalised by the client and found all the same.
    assert (await api.image(rows[0].id.upper())).id == rows[0].id


async def test_random_images_all_carry_every_requested_category(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    nekos_fake.sample_percent = 100.0
    catgirl = DATASET.category_named("catgirl")
    page = await api.random_images(["Catgirl"], limit=25)
    assert len(page) == 25
    assert page.pagination is None
    assert all(catgirl.id in {c.id for c in image.categories} for image in page.items)

    both = [DATASET.category_named("catgirl").id, DATASET.category_named("smile").id]
    expected = {r.id for r in DATASET.images if set(both) <= set(r.category_ids)}
    page = await api.random_images("catgirl, smile", limit=25)
    assert {i.id for i in page.items} <= expected
    assert len(page) == min(25, len(expected))

    rare = DATASET.category_named("rare find")
    page = await api.random_images(["rare find"], limit=25)
    assert {i.id for i in page.items} == {r.id for r in DATASET.images_in_category(rare.id)}


@pytest.mark.parametrize("name", ["under_score", "50% off", "under-score"])
async def test_random_images_match_category_names_with_wildcard_characters_literally(
    nekos_fake: FakeNekosAPI, api: NekosClient, name: str
) -> None:
    # ILIKE reads % and _ as wildcards: unescaped, "under_score" would also name "under-score".
    nekos_fake.sample_percent = 100.0
    wanted = DATASET.category_named(name)
    page = await api.random_images([name], limit=25)
    expected = {r.id for r in DATASET.images_in_category(wanted.id)}
    assert {i.id for i in page.items} <= expected
    assert len(page) == min(25, len(expected))


async def test_raw_category_patterns_are_sent_with_their_wildcards(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    nekos_fake.sample_percent = 100.0
    page = await api.random_images([RawPattern("rare%")], limit=25)
    rare = DATASET.category_named("rare find")
    assert len(page) == len(DATASET.images_in_category(rare.id))
    # "_" is a wildcard here, so it names both under_score and under-score: the server's 400.
    with pytest.raises(BadRequest):
        await api.random_images(RawPattern("under_score"))


async def test_artist_list_pages_and_counts(api: NekosClient) -> None:
    first = await api.artists()
    assert [a.id for a in first.items] == [a.id for a in DATASET.artists[:25]]
    assert [a.name for a in first.items] == [a.name for a in DATASET.artists[:25]]
    assert first.pagination is not None
    assert (first.pagination.count, first.pagination.total) == (25, len(DATASET.artists))

    tail = await api.artists(limit=25, offset=50)
    assert [a.id for a in tail.items] == [a.id for a in DATASET.artists[50:]]
    assert tail.pagination is not None
    assert tail.pagination.offset == 50

    row = DATASET.artists[0]
    artist = await api.artist(row.id)
    assert (artist.id, artist.name, artist.url) == (row.id, row.name, row.url)
    assert artist.image_count == len(DATASET.images_by_artist(row.id))


async def test_artist_images_page_through_the_artists_work(api: NekosClient) -> None:
    row = max(DATASET.artists, key=lambda a: len(DATASET.images_by_artist(a.id)))
    work = DATASET.images_by_artist(row.id)
    assert len(work) > 5
    page = await api.artist_images(row.id, limit=5, offset=1)
    assert [i.id for i in page.items] == [r.id for r in work[1:6]]
    assert page.pagination is not None
    assert (page.pagination.count, page.pagination.total) == (5, len(work))
    assert all(i.artist is not None and i.artist.id == row.id for i in page.items)

    idle = DATASET.artists[-1]  # the dataset leaves its last two artists without images
    assert DATASET.images_by_artist(idle.id) == ()
    with pytest.raises(NotFound):
        await api.artist_images(idle.id)


@pytest.mark.parametrize("name", ARTIST_NAMES)
async def test_artist_search_finds_names_with_pattern_characters_literally(
    api: NekosClient, name: str
) -> None:
    page = await api.artists(search=name)
    assert [a.name for a in page.items] == [DATASET.artist_named(name).name]
    assert page.pagination is not None
    assert (page.pagination.count, page.pagination.total) == (1, len(DATASET.artists))


@pytest.mark.parametrize("name", CHARACTER_NAMES)
async def test_character_search_finds_names_with_pattern_characters_literally(
    api: NekosClient, name: str
) -> None:
    page = await api.characters(search=name)
    assert [c.name for c in page.items] == [name]
    row = DATASET.character_named(name)
    character = await api.character(row.id)
    assert (character.name, character.source, character.ages) == (
        row.name,
        row.source,
        row.ages or (),
    )
    assert character.image_count == len(DATASET.images_with_character(row.id))


@pytest.mark.parametrize("name", CATEGORY_NAMES)
async def test_category_search_finds_names_with_pattern_characters_literally(
    api: NekosClient, name: str
) -> None:
    page = await api.categories(search=name)
    assert [c.name for c in page.items] == [name]
    row = DATASET.category_named(name)
    category = await api.category(row.id)
    assert (category.name, category.type, category.nsfw) == (row.name, row.type, row.nsfw)
    assert category.image_count == len(DATASET.images_in_category(row.id))


async def test_category_list_pages_cover_every_category(api: NekosClient) -> None:
    first = await api.categories()
    rest = await api.categories(offset=25)
    names = [c.name for c in first.items + rest.items]
    assert names == [c.name for c in DATASET.categories]
    assert rest.pagination is not None
    assert (rest.pagination.count, rest.pagination.total) == (
        len(DATASET.categories) - 25,
        len(DATASET.categories),
    )


async def test_raw_patterns_reach_the_server_as_similar_to(api: NekosClient) -> None:
    page = await api.categories(RawPattern("(catgirl|foxgirl)"))
    assert sorted(c.name for c in page.items) == ["catgirl", "foxgirl"]


async def test_search_length_is_counted_in_utf16_units_like_the_server(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    # An emoji is one Python character but two UTF-16 units, which is what the server counts.
    fits = "😺" * 9  # "%" + 18 units + "%" = 20
    page = await api.artists(fits)
    assert len(page) == 0
    sent = len(nekos_fake.api_requests)
    with pytest.raises(InvalidParameter, match="at most 20"):
        await api.artists("😺" * 10)  # 22 units: the live server would crash with a 500
    assert len(nekos_fake.api_requests) == sent


# ------------------------------------------------------------------ errors


async def test_unknown_category_is_a_bad_request_from_the_server(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    with pytest.raises(BadRequest) as caught:
        await api.random_images(["catgirl", "no such thing"])
    assert caught.value.status == 400
    assert caught.value.code == 400
    assert "do not exist: no such thing" in caught.value.message
    assert caught.value.endpoint == "GET /image/random"
    assert len(nekos_fake.api_requests) == 1  # a 400 is not retried


async def test_unknown_token_is_unauthorized(nekos_fake: FakeNekosAPI) -> None:
    stranger = "Zz" * 50  # well-formed, but the server never issued it
    client = client_for(nekos_fake, stranger)
    with pytest.raises(Unauthorized) as caught:
        await client.start()
    assert "rejected the configured token" in caught.value.message
    assert stranger not in str(caught.value)
    await client.close()

    malformed = client_for(nekos_fake, "not-a-token")
    with pytest.raises(Unauthorized) as caught:
        await malformed.stats()
    await malformed.close()
    assert caught.value.status == 401
    assert "should match" in caught.value.message


async def test_missing_scopes_are_forbidden(nekos_fake: FakeNekosAPI) -> None:
    lister = nekos_fake.add_token(["image:list"])
    async with client_for(nekos_fake, lister) as client:
        with pytest.raises(Forbidden) as caught:
            await client.image(DATASET.images[0].id, expiry=600)
        assert caught.value.status == 403
        assert "custom expiry" in caught.value.message
    scopeless = nekos_fake.add_token([])
    async with client_for(nekos_fake, scopeless) as client:
        with pytest.raises(Forbidden, match="permission"):
            await client.images()
    capped = nekos_fake.add_token(["image:custom-expiry:600"])
    async with client_for(nekos_fake, capped) as client:
        with pytest.raises(Forbidden, match="greater than 600 seconds"):
            await client.random_images(expiry=601)


@pytest.mark.parametrize("kind", ["image", "artist", "character", "category"])
async def test_unknown_ids_are_not_found(api: NekosClient, kind: str) -> None:
    fetch: Callable[[str], Awaitable[object]] = getattr(api, kind)
    with pytest.raises(NotFound) as caught:
        await fetch(UNKNOWN_ID)
    assert caught.value.status == 404
    assert UNKNOWN_ID in caught.value.message


async def test_a_pattern_the_database_rejects_is_a_server_error_after_bounded_retries(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    with pytest.raises(ServerError) as caught:
        await api.artists(RawPattern("(unbalanced"))
    assert caught.value.status == 500
    assert caught.value.message == "Internal Server Error"  # Next.js' text/plain crash page
    assert [r.status for r in nekos_fake.api_requests] == [500] * FAST_RETRY.attempts


@pytest.mark.parametrize(
    ("arm", "status", "message"),
    [
        (lambda fake, n: fake.html_error_next(n, status=502), 502, "Bad Gateway"),
        (lambda fake, n: fake.empty_error_next(n, status=503), 503, "Service Unavailable"),
        (lambda fake, n: fake.fail_next(n, status=500), 500, "Internal Server Error"),
    ],
    ids=["html-502", "empty-503", "json-500"],
)
async def test_server_errors_are_retried_then_raised(
    nekos_fake: FakeNekosAPI,
    api: NekosClient,
    arm: Callable[[FakeNekosAPI, int], None],
    status: int,
    message: str,
) -> None:
    arm(nekos_fake, FAST_RETRY.attempts)
    with pytest.raises(ServerError) as caught:
        await api.stats()
    assert (caught.value.status, caught.value.message) == (status, message)
    assert len(nekos_fake.api_requests) == FAST_RETRY.attempts

    arm(nekos_fake, FAST_RETRY.attempts - 1)
    stats = await api.stats()  # the last try gets through
    assert stats.images == len(DATASET.images)


async def test_malformed_json_is_a_parse_error_and_not_retried(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    nekos_fake.malformed_json_next(1)
    with pytest.raises(ResponseParseError) as caught:
        await api.categories()
    assert caught.value.endpoint == "GET /category"
    assert len(nekos_fake.api_requests) == 1


async def test_dropped_connections_end_as_unavailable_after_the_retry_budget(
    nekos_fake: FakeNekosAPI, api: NekosClient
) -> None:
    nekos_fake.drop_next(FAST_RETRY.attempts)
    with pytest.raises(Unavailable) as caught:
        await api.stats()
    assert caught.value.status is None
    assert "ServerDisconnectedError" in caught.value.message
    # Exactly one request per try: aiohttp's own silent retry would add more (and end early).
    assert [r.status for r in nekos_fake.api_requests] == [0] * FAST_RETRY.attempts
    assert api.health.requests_sent == FAST_RETRY.attempts


async def test_a_dropped_connection_is_retried_only_through_the_pacer() -> None:
    # The fake allows one request per 0.2 s and counts the dropped one: a resend that skips
    # the pacer arrives within milliseconds and earns a 429.
    async with FakeNekosAPI(DATASET, rate_limit=(1, 0.2)) as fake:
        pacer = Pacer(interval=0.2, margin=0.2)
        async with client_for(fake, pacer=pacer) as client:
            fake.drop_next(1)
            stats = await client.stats()
        assert stats.images == len(DATASET.images)
        assert [r.status for r in fake.api_requests] == [0, 200]
        assert fake.count_429 == 0
        assert gaps(fake.api_requests)[0] >= 0.2
        assert pacer.state().requests_started == 2


# ------------------------------------------------------------------ virtual time


class AnswerCountingPacer(Pacer):
    """A :class:`Pacer` that counts the responses the client has reported to it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.answered = 0

    async def observe_headers(self, headers: Mapping[str, str]) -> None:
        await super().observe_headers(headers)
        self.answered += 1


class VirtualTime:
    """One virtual clock for the fake's rate limiter, the pacer and the client.

    ``sleep`` first lets every request the pacer has already let go reach the fake and its
    answer reach the pacer (on loopback that takes milliseconds, far below any interval), then
    jumps the clock to the deadline. So waits cost no real time, and the fake stamps each
    arrival with the virtual moment the pacer released it.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.start = start
        self.pacer: AnswerCountingPacer | None = None

    def __call__(self) -> float:
        return self.now

    def wall(self) -> dt.datetime:
        return WALL_EPOCH + dt.timedelta(seconds=self.now - self.start)

    def unix(self) -> float:
        return WALL_EPOCH.timestamp() + (self.now - self.start)

    def make_pacer(self, **options: Any) -> AnswerCountingPacer:
        self.pacer = AnswerCountingPacer(
            clock=self, sleep=self.sleep, wall_clock=self.wall, **options
        )
        return self.pacer

    async def sleep(self, delay: float) -> None:
        deadline = self.now + max(0.0, delay)
        await self._settle()
        self.now = max(self.now, deadline)
        await asyncio.sleep(0)

    async def _settle(self) -> None:
        pacer = self.pacer
        if pacer is None:
            return
        give_up = time.monotonic() + 10.0
        while pacer.answered < pacer.state().requests_started:
            if time.monotonic() > give_up:
                raise AssertionError("a request the pacer let go never got an answer")
            await asyncio.sleep(0.0005)


def virtual_client(
    vt: VirtualTime, fake: FakeNekosAPI, token: str | None = None, **pacer_options: Any
) -> NekosClient:
    return NekosClient(
        fake.base_url,
        token,
        pacer=vt.make_pacer(**pacer_options),
        retry=FAST_RETRY,
        clock=vt,
        sleep=vt.sleep,
        wall_clock=vt.wall,
    )


def mixed_calls(client: NekosClient, count: int) -> list[tuple[Awaitable[Any], str]]:
    """``count`` calls cycling over four endpoints, each with the id it must return."""
    artists = list(itertools.islice(itertools.cycle(DATASET.artists), count))
    categories = list(itertools.islice(itertools.cycle(DATASET.categories), count))
    characters = list(itertools.islice(itertools.cycle(DATASET.characters), count))
    kinds: list[Callable[[int], tuple[Awaitable[Any], str]]] = [
        lambda i: (client.image(DATASET.images[i].id), DATASET.images[i].id),
        lambda i: (client.artist(artists[i].id), artists[i].id),
        lambda i: (client.category(categories[i].id), categories[i].id),
        lambda i: (client.character(characters[i].id), characters[i].id),
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


def figures(records: Sequence[RequestRecord]) -> tuple[float, float, float]:
    spacing = gaps(records)
    return records[-1].time - records[0].time, min(spacing), statistics.median(spacing)


async def test_100_concurrent_calls_at_one_request_per_second_get_no_429() -> None:
    vt = VirtualTime()
    fake = FakeNekosAPI(
        DATASET, rate_limit=(1, 1.0), strikes_before_block=10, clock=vt, wall_clock=vt.unix
    )
    async with fake, virtual_client(vt, fake, interval=1.0, margin=0.1) as client:
        calls = mixed_calls(client, 100)
        started = time.perf_counter()
        results = await asyncio.gather(*(call for call, _ in calls), return_exceptions=True)
        real = time.perf_counter() - started

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert [r.id for r in results] == [wanted for _, wanted in calls]
    records = fake.api_requests
    assert len(records) == 100
    assert fake.count_429 == 0
    assert all(r.status == 200 for r in records)
    elapsed, min_gap, median_gap = figures(records)
    assert min_gap >= 1.0
    assert fake.blocked_ips == set()
    print(
        f"\nCONCURRENCY: calls=100 elapsed_virtual={elapsed:.1f}s min_gap={min_gap:.3f}s "
        f"median_gap={median_gap:.3f}s 429s={fake.count_429} real_elapsed={real:.2f}s"
    )


async def test_six_concurrent_calls_in_real_time_get_no_429() -> None:
    async with (
        FakeNekosAPI(DATASET, rate_limit=(1, 1.0), strikes_before_block=10) as fake,
        client_for(fake, pacer=Pacer(interval=1.0, margin=0.1)) as client,
    ):
        calls = mixed_calls(client, 6)
        started = time.monotonic()
        results = await asyncio.gather(*(call for call, _ in calls), return_exceptions=True)
        elapsed_real = time.monotonic() - started

    assert [getattr(r, "id", r) for r in results] == [wanted for _, wanted in calls]
    records = fake.api_requests
    assert len(records) == 6
    assert fake.count_429 == 0
    elapsed, min_gap, median_gap = figures(records)
    assert min_gap >= 1.0
    print(
        f"\nCONCURRENCY-REALTIME: calls=6 elapsed={elapsed_real:.2f}s "
        f"first_to_last_arrival={elapsed:.2f}s min_gap={min_gap:.3f}s "
        f"median_gap={median_gap:.3f}s 429s={fake.count_429}"
    )


# ------------------------------------------------------------------ blocks and 429 storms


async def test_a_server_block_raises_blocked_and_nothing_is_sent_until_it_lifts() -> None:
    vt = VirtualTime()
    fake = FakeNekosAPI(DATASET, rate_limit=(1, 1.0), clock=vt, wall_clock=vt.unix)
    async with fake, virtual_client(vt, fake) as client:
        fake.block_ip()
        with pytest.raises(Blocked) as caught:
            await client.stats()
        ahead = (caught.value.until - vt.wall()).total_seconds()
        assert 3599.0 <= ahead <= 3601.0
        assert caught.value.status == 429
        assert len(fake.api_requests) == 1

        for _ in range(5):
            with pytest.raises(Blocked) as again:
                await client.categories()
            assert again.value.until == caught.value.until
        vt.now += 1800.0
        with pytest.raises(Blocked):
            await client.stats()
        assert len(fake.api_requests) == 1  # nothing sent while blocked
        assert client.health.blocked_until == caught.value.until

        vt.now += 1801.0
        stats = await client.stats()
        assert stats.images == len(DATASET.images)
        assert [r.status for r in fake.api_requests] == [429, 200]
        assert client.health.blocked_until is None


async def test_the_strike_budget_stops_a_429_storm_before_the_server_bans() -> None:
    # The server allows one request per 5 s while the pacer believes one per second.
    vt = VirtualTime()
    fake = FakeNekosAPI(
        DATASET, rate_limit=(1, 5.0), strikes_before_block=10, clock=vt, wall_clock=vt.unix
    )
    async with fake, virtual_client(vt, fake, interval=1.0, margin=0.1) as client:
        results = await asyncio.gather(*(client.stats() for _ in range(20)), return_exceptions=True)
        blocked = [r for r in results if isinstance(r, Blocked)]
        # The rest got through, or gave up on a 429 whose wait outlasted their time budget.
        assert all(
            getattr(r, "images", None) == len(DATASET.images) or type(r) is RateLimited
            for r in results
            if not isinstance(r, Blocked)
        )
        assert blocked, "the strike budget never stopped the storm"

        rejected = [r for r in fake.api_requests if r.status == 429]
        assert 1 <= fake.count_429 == len(rejected) <= 3  # the default budget: 3 an hour
        assert fake.blocked_ips == set()
        assert fake.strikes() == fake.count_429 < fake.strikes_before_block
        # The pause lifts an hour after the first 429, when that strike leaves the window.
        lifts = WALL_EPOCH + dt.timedelta(seconds=rejected[0].time - vt.start + 3600.0)
        for error in blocked:
            assert abs((error.until - lifts).total_seconds()) < 1e-3
        assert client.health.strikes_in_window == fake.count_429

        sent = len(fake.api_requests)
        vt.now += 600.0
        with pytest.raises(Blocked):
            await client.stats()
        assert len(fake.api_requests) == sent
        assert client.health.rate_limited == fake.count_429
        completed = sum(1 for r in results if not isinstance(r, BaseException))
        print(
            f"\nSTORM: calls=20 completed={completed} blocked={len(blocked)} "
            f"429s={fake.count_429} budget={client.pacer.state().strikes_in_window} "
            f"server_bans={len(fake.blocked_ips)}"
        )


# ------------------------------------------------------------------ tokens


async def test_a_token_rate_limit_scope_is_adopted_and_respected() -> None:
    vt = VirtualTime()
    fake = FakeNekosAPI(DATASET, rate_limit=(1, 1.0), clock=vt, wall_clock=vt.unix)
    async with fake:
        token = fake.add_token(["api:ratelimit:5-1-10"])
        async with virtual_client(vt, fake, token) as client:
            spacing = client.pacer.state().interval
            assert spacing == pytest.approx(0.2 + 0.1)
            calls = mixed_calls(client, 20)
            results = await asyncio.gather(*(c for c, _ in calls), return_exceptions=True)
    assert [getattr(r, "id", r) for r in results] == [wanted for _, wanted in calls]
    records = fake.api_requests
    assert [r.path for r in records[:1]] == ["/api/token"]
    assert len(records) == 21
    assert fake.count_429 == 0
    elapsed, min_gap, median_gap = figures(records)
    assert min_gap >= 0.2
    print(
        f"\nTOKEN-CONCURRENCY: calls=20 scope=5-1-10 spacing={spacing:.3f}s "
        f"elapsed_virtual={elapsed:.1f}s min_gap={min_gap:.3f}s "
        f"median_gap={median_gap:.3f}s 429s={fake.count_429}"
    )


async def test_a_custom_expiry_scope_allows_a_day_long_link(nekos_fake: FakeNekosAPI) -> None:
    token = nekos_fake.add_token(["image:custom-expiry:86400"])
    row = DATASET.images[3]
    async with client_for(nekos_fake, token) as client:
        before = nekos_fake.wall_clock()
        image = await client.image(row.id, expiry=86400)
        page = await client.random_images(limit=3, expiry=86400)
        with pytest.raises(Forbidden):
            await client.image(row.id, expiry=86401)
    for found in (image, *page.items):
        expires = int(parse_qs(urlsplit(found.url).query)["expires"][0])
        assert before + 86400 - 1 <= expires <= nekos_fake.wall_clock() + 86400
        assert found.meta.expires is not None
        assert abs(found.meta.expires.timestamp() - (before + 86400)) < 5
    sent = [r.query.get("expiry") for r in nekos_fake.api_requests]
    assert sent == [None, "86400", "86400", "86401"]  # GET /token at start, then the calls


# ------------------------------------------------------------------ downloads


async def raw_get(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


async def test_download_returns_the_files_bytes_without_pacing_or_token(
    nekos_fake: FakeNekosAPI, lister: NekosClient
) -> None:
    for row in (
        next(r for r in DATASET.images if r.mimetype == "image/png"),
        next(r for r in DATASET.images if r.mimetype == "image/jpeg"),
    ):
        image = await lister.image(row.id)
        paced = lister.pacer.state().requests_started
        data = await lister.download(image.url, max_bytes=1_000_000)
        assert data == await raw_get(image.url)
        signature = b"\x89PNG\r\n\x1a\n" if row.mimetype == "image/png" else b"\xff\xd8"
        assert data.startswith(signature)
        assert lister.pacer.state().requests_started == paced
    storage = [r for r in nekos_fake.requests if r.path.startswith("/storage/")]
    assert storage
    assert not any(r.has_token for r in storage)


async def test_download_over_the_cap_stops_at_the_declared_length(api: NekosClient) -> None:
    image = await api.image(DATASET.images[0].id)
    size = len(await raw_get(image.url))
    assert await api.download(image.url, max_bytes=size) is not None
    with pytest.raises(DownloadTooLarge) as caught:
        await api.download(image.url, max_bytes=size - 1)
    # Decided from Content-Length, before the body was read.
    assert (caught.value.size, caught.value.max_bytes) == (size, size - 1)


async def test_expired_or_tampered_links_fail_as_forbidden_without_the_signature() -> None:
    wall = [time.time()]
    async with FakeNekosAPI(DATASET, rate_limit=None, wall_clock=lambda: wall[0]) as fake:
        async with client_for(fake) as client:
            image = await client.image(DATASET.images[0].id)
            signature = parse_qs(urlsplit(image.url).query)["token"][0]

            tampered = image.url.replace(signature, "0" * len(signature))
            with pytest.raises(Forbidden, match="invalid signature"):
                await client.download(tampered, max_bytes=100_000)

            wall[0] += 3601
            with pytest.raises(Forbidden) as caught:
                await client.download(image.url, max_bytes=100_000)
        storage = [r for r in fake.requests if r.path.startswith("/storage/")]
    assert caught.value.message == "jwt expired"
    assert caught.value.status == 403
    assert signature not in str(caught.value)
    assert signature not in (caught.value.endpoint or "")
    assert [r.status for r in storage] == [403, 403]  # client errors are not retried


async def test_uuid_objects_are_accepted_as_ids(api: NekosClient) -> None:
    with pytest.raises(NotFound):
        await api.category(uuid.UUID(UNKNOWN_ID))
