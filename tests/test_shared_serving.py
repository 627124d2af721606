"""Lookups and cooldowns shared by processes through Redis (``bot.serving.shared``).

Each "process" here is a :class:`CachedLookups` (or cooldown) with a Redis client of its own;
they share one upstream source, which records every request it receives: that list is what the
API would have seen. Redis is the machine's server under a key prefix of the test's own, or a
private server the test kills and restarts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import settings_from_mapping
from bot.nekos.errors import NotFound
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Image,
    Page,
    Pagination,
    Stats,
    parse_image_data,
    parse_one,
)
from bot.serving import CachedLookups, Cooldown, LookupSettings
from bot.serving.shared import open_shared
from bot.serving.shared.codec import decode, encode
from bot.serving.shared.cooldown import SharedCooldown
from bot.serving.shared.link import RedisLink
from bot.serving.shared.lookups import SharedLookups
from tests.e2e.conftest import DISCORD_TOKEN
from tests.nekos_payloads import LIVE_IMAGE, REFERENCE_CHARACTER, reference_one
from tests.redis_service import PrivateRedis

INTERACTIVE = "interactive"
BACKGROUND = "background"
EPOCH = 1_700_000_000.0
MARGIN = 600.0


class WallClock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now


def rich_image(image_id: str, expires: float | None = EPOCH + 7200) -> Image:
    """A live-shaped image (artist object, categories, signed URL, meta) with ``image_id``."""
    image = parse_one(reference_one(LIVE_IMAGE), parse_image_data, "GET /image")
    when = None if expires is None else dt.datetime.fromtimestamp(expires, dt.UTC)
    return dataclasses.replace(
        image, id=image_id, meta=dataclasses.replace(image.meta, expires=when)
    )


CHARACTER = Character(
    id=REFERENCE_CHARACTER["id"],
    name="Chocola",
    description="A catgirl.",
    source="Nekopara",
    gender="female",
    ages=(16, 17),
    occupations=("patissier", "maid"),
    created_at=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    image_count=12,
)
ARTIST = Artist(id="artist-1", name="Ai Yue", url="https://example.com/a", image_count=3)
STATS = Stats(images=100, ratings={"sfw": 60, "nsfw": 40}, artists=3, characters=2, categories=9)


class RecordingSource:
    """The upstream API: records each request it receives; ``gate`` holds answers back."""

    def __init__(self, images: dict[str, Image] | None = None) -> None:
        self.images = images or {}
        self.requests: list[str] = []
        self.gate: asyncio.Event | None = None

    async def _arrive(self, path: str) -> None:
        self.requests.append(path)
        if self.gate is not None:
            await self.gate.wait()

    async def image(self, id: str, expiry: int | None = None, *, priority: Any) -> Image:
        await self._arrive(f"/image/{id}")
        if id not in self.images:
            raise NotFound("Image not found", status=404, endpoint="GET /image/{id}")
        return self.images[id]

    async def artist(self, id: str, *, priority: Any) -> Artist:
        await self._arrive(f"/artist/{id}")
        return ARTIST

    async def artist_images(
        self, id: str, limit: int = 25, offset: int = 0, expiry: int | None = None, *, priority: Any
    ) -> Page[Image]:
        await self._arrive(f"/artist/{id}/images")
        items = tuple(self.images.values())
        return Page(items=items, pagination=Pagination(limit=limit, offset=0, total=len(items)))

    async def character(self, id: str, *, priority: Any) -> Character:
        await self._arrive(f"/character/{id}")
        return CHARACTER

    async def categories(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Category]:
        await self._arrive("/category")
        return Page(items=(Category(id="c1", name="catgirl", nsfw=False),))

    async def artists(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Artist]:
        await self._arrive("/artist")
        return Page(items=(ARTIST,))

    async def characters(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Character]:
        await self._arrive("/character")
        return Page(items=(CHARACTER,))

    async def stats(self, *, priority: Any) -> Stats:
        await self._arrive("/stats")
        return STATS


class Cluster:
    """Processes (lookups + cooldown) on one Redis, built on demand; closed at the end."""

    def __init__(self, url: str, prefix: str, source: RecordingSource) -> None:
        self.url = url
        self.prefix = prefix
        self.source = source
        self.wall = WallClock()
        self.links: list[RedisLink] = []

    def link(self, *, clock: Callable[[], float] | None = None) -> RedisLink:
        link = RedisLink.from_url(self.url, prefix=self.prefix, location="test", retry_after=0.2)
        if clock is not None:
            link = RedisLink(link.client, prefix=self.prefix, location="test", clock=clock)
        self.links.append(link)
        return link

    def process(self, link: RedisLink | None = None, **options: float) -> CachedLookups:
        shared = SharedLookups(link or self.link(), namespace="fake/v1", **options)
        return CachedLookups(
            self.source,
            interactive_priority=INTERACTIVE,
            background_priority=BACKGROUND,
            settings=LookupSettings(url_margin=MARGIN),
            wall_clock=self.wall,
            shared=shared,
        )

    def cooldown(self, rate: int = 2, per: float = 60.0) -> SharedCooldown:
        return SharedCooldown(self.link(), Cooldown(rate, per))

    async def close(self) -> None:
        for link in self.links:
            await link.close()


@pytest.fixture
async def cluster(redis_url: str, redis_prefix: str) -> AsyncIterator[Cluster]:
    source = RecordingSource({f"img-{n}": rich_image(f"img-{n}") for n in range(3)})
    cluster = Cluster(redis_url, redis_prefix, source)
    yield cluster
    await cluster.close()


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 (state of the code under test, no event)
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------------- the codec


def test_every_kind_of_answer_survives_the_json_round_trip() -> None:
    image = rich_image("img-9")
    values: dict[str, object] = {
        "image": image,
        "artist": ARTIST,
        "character": CHARACTER,
        "artist_images": Page(items=(image,), pagination=Pagination(limit=25, total=1)),
        "category_list": (Category(id="c", name="n", created_at=image.created_at),),
        "artist_list": (ARTIST, Artist(id="bare")),
        "character_list": (CHARACTER,),
        "stats": STATS,
        "character_search": (),
    }
    for kind, value in values.items():
        assert decode(encode(value, kind), kind) == value, kind


# ---------------------------------------------------------------------- lookups


async def test_a_lookup_done_in_one_process_is_answered_in_another_without_an_api_call(
    cluster: Cluster,
) -> None:
    a, b = cluster.process(), cluster.process()
    first = [
        await a.image("img-1"),
        await a.artist("artist-1"),
        await a.character(CHARACTER.id),
        await a.stats(),
        await a.artist_images("artist-1"),
        await a.character_list(),
    ]
    asked = list(cluster.source.requests)
    second = [
        await b.image("img-1"),
        await b.artist("artist-1"),
        await b.character(CHARACTER.id),
        await b.stats(),
        await b.artist_images("artist-1"),
        await b.character_list(),
    ]
    assert second == first  # identical content, nested models and times included
    assert cluster.source.requests == asked  # and the API was asked nothing more
    assert b.metrics().shared_hits == len(second)
    # The list loaded from Redis answers character lookups too, as if loaded here.
    c = cluster.process()
    await c.character_list()
    assert await c.character(CHARACTER.id.upper()) == CHARACTER


async def test_two_processes_asking_at_once_cost_one_api_call(cluster: Cluster) -> None:
    a, b = cluster.process(), cluster.process()
    cluster.source.gate = asyncio.Event()
    first = asyncio.create_task(a.image("img-2"))
    await until(lambda: len(cluster.source.requests) == 1)
    second = asyncio.create_task(b.image("img-2"))
    await until(lambda: b.metrics().shared_waits == 1)
    cluster.source.gate.set()
    assert await first == await second == cluster.source.images["img-2"]
    assert cluster.source.requests == ["/image/img-2"]


async def test_when_the_process_calling_dies_another_calls_itself_once_its_marker_lapses(
    cluster: Cluster, redis_url: str
) -> None:
    b = cluster.process(marker_ttl=0.3)
    # A process took the marker for img-0 and died before answering: its marker stays behind.
    dead = cluster.link()
    _, marker = SharedLookups(dead, namespace="fake/v1").keys("image", "img-0")
    await dead.client.set(marker, "i-dead-process", px=300)
    assert await b.image("img-0") == cluster.source.images["img-0"]
    assert cluster.source.requests == ["/image/img-0"]
    assert b.metrics().shared_waits == 1


async def test_a_member_never_waits_behind_another_process_background_call(
    cluster: Cluster,
) -> None:
    a, b = cluster.process(), cluster.process()
    cluster.source.gate = asyncio.Event()
    background = asyncio.create_task(a.stats(background=True))
    await until(lambda: len(cluster.source.requests) == 1)
    member = asyncio.create_task(b.stats())
    await until(lambda: len(cluster.source.requests) == 2)  # its own call, not a wait
    cluster.source.gate.set()
    assert await member == await background == STATS


async def test_a_404_is_remembered_for_every_process(cluster: Cluster) -> None:
    a, b = cluster.process(), cluster.process()
    with pytest.raises(NotFound) as in_a:
        await a.image("missing")
    with pytest.raises(NotFound) as in_b:
        await b.image("missing")
    assert in_b.value.message == in_a.value.message == "Image not found"
    assert cluster.source.requests == ["/image/missing"]
    assert b.metrics().shared_hits == 1


async def test_an_image_is_not_served_from_redis_past_its_url_deadline(cluster: Cluster) -> None:
    soon = EPOCH + MARGIN + 0.4  # usable for 0.4 s more (the margin taken off)
    cluster.source.images["short"] = rich_image("short", expires=soon)
    cluster.source.images["stale"] = rich_image("stale", expires=EPOCH + MARGIN - 1)
    a, b = cluster.process(), cluster.process()
    await a.image("short")
    assert await b.image("short") == cluster.source.images["short"]
    assert cluster.source.requests == ["/image/short"]  # shared while its URL is good
    await asyncio.sleep(0.5)
    c = cluster.process()  # no copy of its own: only Redis could answer
    await c.image("short")
    assert cluster.source.requests == ["/image/short", "/image/short"]

    # An image whose URL is already inside the margin is never shared at all.
    await a.image("stale")
    await b.image("stale")
    assert cluster.source.requests[-2:] == ["/image/stale", "/image/stale"]


# ---------------------------------------------------------------------- cooldown


async def test_uses_in_one_process_count_in_another_and_a_refund_in_either_frees_them(
    cluster: Cluster,
) -> None:
    a, b = cluster.cooldown(rate=2), cluster.cooldown(rate=2)
    assert await a.take(42) is None
    assert await b.take(42) is None
    wait = await a.take(42)
    assert wait is not None
    assert 59 < wait <= 60
    assert await b.take(7) is None  # another member is not held back
    await b.give_back(42)
    assert await a.take(42) is None
    assert await b.wait_for(42) is not None


# ---------------------------------------------------------------------- failure


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_with_redis_killed_everything_serves_in_process_then_shares_again(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = RecordingSource({f"img-{n}": rich_image(f"img-{n}") for n in range(4)})
    cluster = Cluster(private_redis.url, "t:", source)
    clock = StepClock()
    link_a, link_b = cluster.link(clock=clock), cluster.link(clock=clock)
    a, b = cluster.process(link_a), cluster.process(link_b)
    cool_a = SharedCooldown(link_a, Cooldown(1, 60.0))
    cool_b = SharedCooldown(link_b, Cooldown(1, 60.0))
    try:
        await a.image("img-0")
        await b.image("img-0")
        assert source.requests == ["/image/img-0"]

        await private_redis.kill()
        assert await a.image("img-1") == await b.image("img-1") == source.images["img-1"]
        assert source.requests[1:] == ["/image/img-1", "/image/img-1"]  # each its own
        assert await cool_a.take(5) is None  # the cooldown still holds, in each process
        assert await cool_a.take(5) is not None
        with pytest.raises(NotFound):
            await b.image("gone")

        await private_redis.start()
        clock.now += link_a.retry_after  # the circuit's retry is due
        await a.image("img-2")
        await b.image("img-2")
        assert source.requests[-1] == "/image/img-2"
        assert source.requests.count("/image/img-2") == 1  # shared again
        assert await cool_b.take(9) is None
        assert await cool_a.take(9) is not None
    finally:
        await cluster.close()
    lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(lost) == 2, caplog.text  # once per process, each way
    assert len(back) == 2, caplog.text


async def test_no_redis_password_reaches_the_logs(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    url = private_redis.url.replace("redis://", "redis://:hunter2-redis-secret@")
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": DISCORD_TOKEN, "REDIS_URL": url, "DATA_DIR": str(tmp_path)}
    )
    shared = open_shared(settings)
    assert shared is not None
    await private_redis.kill()
    lookups = CachedLookups(
        RecordingSource({"img-0": rich_image("img-0")}),
        interactive_priority=INTERACTIVE,
        background_priority=BACKGROUND,
        shared=shared.lookups,
    )
    cooldown = shared.cooldown(Cooldown(1, 5.0))
    try:
        assert (await lookups.image("img-0")).id == "img-0"
        assert await cooldown.take(1) is None
    finally:
        await shared.close()
    assert "unreachable" in caplog.text
    assert f"127.0.0.1:{private_redis.port}" in caplog.text
    assert "hunter2" not in caplog.text
