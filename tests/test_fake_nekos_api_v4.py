"""Tests of the fake Nekos API v4 server itself, over real loopback sockets."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.dataset_v4 import (
    BODY_TAGS,
    EXPLICIT_TAGS,
    GENERAL_TAGS,
    PLANTED,
    YOUTH_TAGS,
    V4Dataset,
    V4ImageRow,
    generate_v4_dataset,
)
from tests.fakes.fake_server import solid_png
from tests.fakes.nekos_api_v4 import REMOVE, FakeNekosV4API

REPO = Path(__file__).resolve().parents[1]


class ManualClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def fake() -> AsyncIterator[FakeNekosV4API]:
    async with FakeNekosV4API() as server:
        yield server


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    redirects: bool = True,
    **params: str | int,
) -> tuple[int, dict[str, str], Any]:
    query = {k: str(v) for k, v in params.items()}
    async with session.get(
        url, params=query, headers=headers or {}, allow_redirects=redirects
    ) as response:
        body: Any = (
            await response.json()
            if response.content_type == "application/json"
            else await response.read()
        )
        return response.status, dict(response.headers), body


# ---------------------------------------------------------------------------- dataset


def test_dataset_is_deterministic_with_increasing_integer_ids() -> None:
    first, again = generate_v4_dataset(seed=3, images=300), generate_v4_dataset(seed=3, images=300)
    assert first.images == again.images
    ids = [image.id for image in first.images]
    assert ids == sorted(ids)
    assert len(set(ids)) == 300
    assert all(isinstance(i, int) for i in ids)
    assert generate_v4_dataset(seed=4, images=300).images != first.images


def test_dataset_is_mostly_safe_with_all_four_ratings() -> None:
    counts = generate_v4_dataset().rating_counts()
    total = sum(counts.values())
    assert counts["safe"] / total > 0.6
    assert all(counts[label] > 0 for label in ("suggestive", "borderline", "explicit"))


def test_dataset_carries_the_documented_vocabulary_and_the_planted_cases() -> None:
    dataset = generate_v4_dataset()
    seen = {tag for image in dataset.images for tag in image.tags}
    for tag in ("girl", "boy", "catgirl", "kemonomimi", "sword"):
        assert tag in seen
    assert seen <= set(GENERAL_TAGS + BODY_TAGS + EXPLICIT_TAGS + YOUTH_TAGS)
    for planted in PLANTED.values():
        assert dataset.by_id[planted.id] == planted
    # The classifier's errors the bot must survive: explicit tags rated safe, youth above safe.
    assert any(i.rating == "safe" and set(i.tags) & set(EXPLICIT_TAGS) for i in dataset.images)
    assert any(i.rating != "safe" and set(i.tags) & set(YOUTH_TAGS) for i in dataset.images)
    assert {i.host for i in dataset.images} == {0, 1}
    assert any(i.artist_name is None for i in dataset.images)
    assert any(i.source_url is None for i in dataset.images)


# ---------------------------------------------------------------------------- /images


async def test_images_lists_items_and_the_total_count(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, body = await get(session, fake.url("/images"))
    assert status == 200
    assert set(body) == {"items", "count"}
    assert body["count"] == len(fake.dataset.images)
    assert len(body["items"]) == 100  # the default limit
    assert [i["id"] for i in body["items"]] == [r.id for r in fake.dataset.images[:100]]


async def test_images_pages_cover_every_match_once(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    seen: list[int] = []
    offset = 0
    while True:
        _, _, body = await get(
            session, fake.url("/images"), limit=100, offset=offset, rating="suggestive"
        )
        seen += [item["id"] for item in body["items"]]
        assert body["count"] == fake.dataset.rating_counts()["suggestive"]
        if len(body["items"]) < 100:
            break
        offset += 100
    assert len(seen) == len(set(seen)) == fake.dataset.rating_counts()["suggestive"]


@pytest.mark.parametrize(
    ("params", "loc", "kind"),
    [
        ({"limit": 0}, ["query", "limit"], "greater_than_equal"),
        ({"limit": 101}, ["query", "limit"], "less_than_equal"),
        ({"limit": "ten"}, ["query", "limit"], "int_parsing"),
        ({"offset": -1}, ["query", "offset"], "greater_than_equal"),
        ({"rating": "safe,spicy"}, ["query", "rating", 1], "literal_error"),
    ],
)
async def test_bad_parameters_answer_422_with_a_detail_list(
    fake: FakeNekosV4API,
    session: aiohttp.ClientSession,
    params: dict[str, Any],
    loc: list[Any],
    kind: str,
) -> None:
    status, _, body = await get(session, fake.url("/images"), **params)
    assert status == 422
    (error,) = body["detail"]
    assert error["loc"] == loc
    assert error["type"] == kind
    assert isinstance(error["msg"], str)
    assert error["msg"]


async def test_every_bad_parameter_is_listed_at_once(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, body = await get(session, fake.url("/images/random"), limit=500, rating="x")
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["query", "limit"], ["query", "rating", 0]]


# ---------------------------------------------------------------------------- filters


async def test_filters_are_comma_lists(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    _, _, body = await get(
        session,
        fake.url("/images"),
        rating="safe,suggestive",
        tags="girl,catgirl",
        without_tags="sword, Glasses",
    )
    assert body["count"] > 0
    for item in body["items"]:
        assert item["rating"] in ("safe", "suggestive")
        assert {"girl", "catgirl"} <= set(item["tags"])
        assert not {"sword", "glasses"} & set(item["tags"])
    expected = fake.dataset.matching(
        ratings=("safe", "suggestive"), tags=("girl", "catgirl"), without_tags=("sword", "glasses")
    )
    assert body["count"] == len(expected)


async def test_a_repeated_key_counts_once_with_its_last_value(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    async with session.get(fake.url("/images?rating=explicit&rating=safe&limit=100")) as response:
        body = await response.json()
    assert {item["rating"] for item in body["items"]} == {"safe"}


async def test_an_unknown_tag_matches_nothing(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    _, _, listed = await get(session, fake.url("/images"), tags="no such tag")
    assert listed == {"items": [], "count": 0}
    status, _, body = await get(session, fake.url("/images/random"), tags="no such tag")
    assert (status, body) == (200, [])


async def test_an_empty_random_match_can_be_a_404(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    fake.random_empty = "404"
    status, _, body = await get(session, fake.url("/images/random"), tags="no such tag")
    assert (status, body) == (404, {"detail": "Not Found"})


# ---------------------------------------------------------------------------- /images/random


async def test_random_is_a_bare_array_of_distinct_matches(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, body = await get(session, fake.url("/images/random"))
    assert status == 200
    assert isinstance(body, list)
    assert len(body) == 10
    _, _, many = await get(session, fake.url("/images/random"), limit=100, rating="safe")
    assert len(many) == 100 == len({item["id"] for item in many})
    assert {item["rating"] for item in many} == {"safe"}


async def test_random_gives_fewer_when_fewer_match(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    _, _, body = await get(session, fake.url("/images/random"), limit=50, tags="loli")
    expected = {row.id for row in fake.dataset.matching(tags=("loli",))}
    assert {item["id"] for item in body} == expected


# ---------------------------------------------------------------------------- /images/{id}


async def test_an_image_has_the_documented_shape(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, body = await get(session, fake.url("/images/4399"))
    assert status == 200
    url = body.pop("url")
    assert body == {
        "id": 4399,
        "rating": "safe",
        "color_dominant": [75, 52, 122],
        "color_palette": [[220, 190, 229], [75, 52, 122], [40, 30, 60]],
        "artist_name": None,
        "tags": ["weapon", "sword", "girl"],
        "source_url": None,
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/nekos-api/images/original/[0-9a-f-]+\.png", url)
    assert "?" not in url  # plain, not signed


@pytest.mark.parametrize(
    "path", ["/images/123456789", "/images/4399/more", "/elsewhere", "/images/4399/file/x"]
)
async def test_unknown_things_answer_404_detail(
    fake: FakeNekosV4API, session: aiohttp.ClientSession, path: str
) -> None:
    status, _, body = await get(session, fake.url(path))
    assert (status, body) == (404, {"detail": "Not Found"})


async def test_a_non_integer_id_is_a_422_on_the_path(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, body = await get(session, fake.url("/images/abc"))
    assert status == 422
    assert body["detail"][0]["loc"] == ["path", "id"]


async def test_overrides_change_and_remove_fields(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    fake.image_overrides[4399] = {"color_dominant": [1.0, 2.5, 3], "tags": REMOVE, "extra": 1}
    _, _, body = await get(session, fake.url("/images/4399"))
    assert body["color_dominant"] == [1.0, 2.5, 3]
    assert "tags" not in body
    assert body["extra"] == 1


# ---------------------------------------------------------------------------- files


async def test_file_routes_redirect_to_the_image_file(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, headers, _ = await get(session, fake.url("/images/4399/file"), redirects=False)
    assert status == 302
    _, _, image = await get(session, fake.url("/images/4399"))
    assert headers["Location"] == image["url"]
    status, _, data = await get(session, headers["Location"])
    assert status == 200
    assert data == solid_png((75, 52, 122))


async def test_random_file_follows_the_filters(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, headers, _ = await get(
        session, fake.url("/images/random/file"), redirects=False, tags="loli"
    )
    assert status == 302
    files = {fake.file_url(row) for row in fake.dataset.matching(tags=("loli",))}
    assert headers["Location"] in files
    status, _, body = await get(session, fake.url("/images/random/file"), tags="no such tag")
    assert (status, body) == (404, {"detail": "Not Found"})


async def test_files_live_on_two_hosts_and_can_move(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    _, _, moved = await get(session, fake.url("/images/4404"))
    _, _, home = await get(session, fake.url("/images/4399"))
    assert f":{fake.files_port}/" in moved["url"]
    assert f":{fake.port}/" in home["url"]
    assert (await get(session, moved["url"]))[0] == 200
    fake.move_files()
    assert (await get(session, moved["url"]))[0] == 404  # the old URL is stale
    assert (await get(session, home["url"]))[0] == 404
    _, _, fresh = await get(session, fake.url("/images/4404"))
    assert fresh["url"] != moved["url"]
    assert (await get(session, fresh["url"]))[0] == 200


async def test_file_downloads_are_logged_but_not_api_requests(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(1)
    status, _, body = await get(session, fake.url("/images/4399"))
    assert (status, body) == (500, {"detail": "Internal Server Error"})
    _, _, image = await get(session, fake.url("/images/4399"))
    fake.fail_next(1)
    status, _, _ = await get(session, image["url"])
    assert status == 200  # files are never faulted
    assert fake.pending_faults == 1
    assert [r.path.startswith("/v4") for r in fake.requests] == [True, True, False]
    assert len(fake.api_requests) == 2


# ---------------------------------------------------------------------------- limits, faults


async def test_no_rate_limit_by_default(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    replies = await asyncio.gather(*(get(session, fake.url("/images/4399")) for _ in range(20)))
    assert {status for status, _, _ in replies} == {200}
    assert all(not any(h.startswith("X-RateLimit") for h in headers) for _, headers, _ in replies)
    assert fake.count_429 == 0


async def test_a_switched_on_limit_answers_429_with_retry_after_only(
    session: aiohttp.ClientSession,
) -> None:
    clock = ManualClock(100.0)
    async with FakeNekosV4API(rate_limit=(1, 1.0), clock=clock, strikes_before_block=3) as fake:
        assert (await get(session, fake.url("/images/4399")))[0] == 200
        status, headers, body = await get(session, fake.url("/images/4399"))
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert not any(h.startswith("X-RateLimit") for h in headers)
        assert body == {"detail": "Too many requests"}
        clock.advance(1.0)
        assert (await get(session, fake.url("/images/4399")))[0] == 200
        # Two more hits make three strikes: the IP is blocked for the block time.
        await get(session, fake.url("/images/4399"))
        status, headers, _ = await get(session, fake.url("/images/4399"))
        assert status == 429
        assert fake.is_blocked("127.0.0.1")
        clock.advance(5.0)
        status, headers, body = await get(session, fake.url("/images/4399"))
        assert status == 429
        assert int(headers["Retry-After"]) > 60
        assert "blocked" in body["detail"]
        assert fake.count_429 == 4


async def test_the_limit_is_per_client_ip(session: aiohttp.ClientSession) -> None:
    clock = ManualClock(100.0)
    async with FakeNekosV4API(rate_limit=(1, 1.0), clock=clock) as fake:
        first = await get(
            session, fake.url("/images/4399"), headers={"X-Forwarded-For": "10.0.0.1"}
        )
        other = await get(
            session, fake.url("/images/4399"), headers={"X-Forwarded-For": "10.0.0.2"}
        )
        again = await get(
            session, fake.url("/images/4399"), headers={"X-Forwarded-For": "10.0.0.1"}
        )
    assert (first[0], other[0], again[0]) == (200, 200, 429)
    assert [r.ip for r in fake.requests] == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]


async def test_faults_fire_in_order(fake: FakeNekosV4API, session: aiohttp.ClientSession) -> None:
    fake.fail_next(1, status=503, message="down for maintenance")
    fake.html_error_next(1)
    fake.malformed_json_next(1)
    fake.empty_error_next(1)
    fake.raw_next(1, status=422, body='{"detail": "tags: too long"}')
    url = fake.url("/images/random")
    assert await _raw(session, url) == (503, '{"detail":"down for maintenance"}')
    status, text = await _raw(session, url)
    assert status == 502
    assert "<html>" in text
    status, text = await _raw(session, url)
    assert status == 200
    assert text.startswith("[{")
    assert not text.endswith("]")
    assert await _raw(session, url) == (503, "")
    assert await _raw(session, url) == (422, '{"detail": "tags: too long"}')
    assert (await _raw(session, url))[0] == 200


async def _raw(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_a_dropped_connection_is_recorded(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    fake.drop_next(2)  # aiohttp resends an idempotent request once by itself
    with pytest.raises(aiohttp.ClientError):
        await get(session, fake.url("/images/4399"))
    assert [r.status for r in fake.requests] == [0, 0]


async def test_authorization_is_ignored_and_recorded(
    fake: FakeNekosV4API, session: aiohttp.ClientSession
) -> None:
    status, _, _ = await get(
        session, fake.url("/images/4399"), headers={"Authorization": "Bearer whatever"}
    )
    assert status == 200
    assert fake.requests[-1].has_token


async def test_a_hand_made_dataset_is_served() -> None:
    row = V4ImageRow(
        id=7,
        file_name="seven.png",
        rating="suggestive",
        tags=("boy",),
        color_dominant=(1, 2, 3),
        color_palette=(),
        artist_name="A",
        source_url=None,
    )
    async with FakeNekosV4API(V4Dataset.from_rows([row])) as fake, aiohttp.ClientSession() as s:
        _, _, body = await get(s, fake.url("/images"))
    assert body["count"] == 1
    assert body["items"][0]["id"] == 7


# ---------------------------------------------------------------------------- command line


@pytest.fixture
def cli_process() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.nekos_api_v4", "--port", "0", "--images", "50"],
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
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v4", base_url)
    _, _, body = await get(session, base_url + "/images", limit=1)
    assert body["count"] == 50
