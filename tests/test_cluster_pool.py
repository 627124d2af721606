"""The random-image pool shared through Redis (``bot/serving/cluster``): several pools on one key
prefix stand for several processes, each with its own recording source (its own IP) and pacer.

What a member would see: a batch fetched in one process serves commands in another without
another call; the same ask in two processes costs one call; an image serves at most
``max_uses`` commands and never repeats in a channel within its window, whichever process
answers (even a restarted one); an image past its signed URL's deadline is never served; a job
whose taker died is fetched again after its lease, and a member whose job another process
took is never told "busy" for it (a slow taker's batch still serves them; a dead taker's job
goes through their own pacer); with Redis killed, pools serve on their own
and share again once it is back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.nekos.errors import NotFound
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Dimensions,
    Image,
    ImageMeta,
    Page,
    Rating,
    Source,
)
from bot.nekos.pacing import Priority
from bot.serving.cluster import SharedPool, open_shared_pool
from bot.serving.cluster.codec import image_from_json, image_to_json, images_from_text
from bot.serving.pool import ImagePool, ImageRequest, PoolSettings, ServeStatus
from tests.bot_process import REPO_ROOT, child_environment
from tests.redis_service import PrivateRedis

pytestmark = pytest.mark.timeout(60)

WAIT = 15.0
"""Most seconds a condition may take to come true (a bound, never a measurement)."""


def image(image_id: str, category: str, *, expires_in: float = 3600.0) -> Image:
    return Image(
        id=image_id,
        url=f"https://cdn.example/{image_id}.png?sig=x",
        rating=Rating.SFW,
        categories=(Category(id=f"c-{category}", name=category),),
        meta=ImageMeta(expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)),
    )


@dataclass
class RecordingSource:
    """A fake API for one process (one IP): records every call; fresh images each call, or the
    same ``fixed`` batch, then 404 after ``batches`` calls."""

    name: str
    batch: int = 5
    fixed: bool = False
    batches: int | None = None
    expires_in: float = 3600.0
    delay: float = 0.0
    calls: list[tuple[str, ...]] = field(default_factory=list)

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        priority: Any,
    ) -> Page[Image]:
        self.calls.append(tuple(categories))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.batches is not None and len(self.calls) > self.batches:
            raise NotFound("nothing", endpoint="random")
        tag = "-".join(categories) or "any"
        serial = "x" if self.fixed else f"{self.name}{len(self.calls)}"
        return Page(
            items=tuple(
                image(
                    f"{tag}-{serial}-{n}",
                    categories[0] if categories else "misc",
                    expires_in=self.expires_in,
                )
                for n in range(self.batch)
            )
        )


@dataclass
class FakePacer:
    """The process's pacer as the fetcher sees it: free (0 s) or busy."""

    wait: float = 0.0
    queue_length: int = 0
    idle: float = 1000.0
    shared_wait: float | None = None
    """A members' batch's wait, when it differs (lookups queued, which it goes ahead of)."""

    def estimated_wait(self, priority: Priority = Priority.INTERACTIVE) -> float:
        if priority is Priority.SHARED and self.shared_wait is not None:
            return self.shared_wait
        return self.wait

    def members_idle_for(self) -> float:
        return self.idle


@dataclass
class Proc:
    """One "process": its source, pacer, shared part and pool."""

    source: RecordingSource
    pacer: FakePacer
    shared: SharedPool
    pool: ImagePool


Settings = PoolSettings(batch_size=5, max_uses=1, prefetch_target=0, hot_threshold=1e9)


@pytest.fixture
async def procs(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., Awaitable[Proc]]]:
    made: list[Proc] = []

    async def make(
        name: str,
        *,
        url: str = redis_url,
        source: RecordingSource | None = None,
        settings: PoolSettings = Settings,
        pacer: FakePacer | None = None,
        clock: Callable[[], float] = time.time,
        start: bool = True,
        **options: Any,
    ) -> Proc:
        options.setdefault("poll", 0.02)
        shared = open_shared_pool(
            url, prefix=redis_prefix, owner=f"{name}:{uuid.uuid4().hex[:6]}", **options
        )
        src = source or RecordingSource(name)
        pace = pacer or FakePacer()
        pool = ImagePool(
            shared.shared_source(src, background_priority=Priority.BACKGROUND),
            interactive_priority=Priority.SHARED,
            background_priority=Priority.BACKGROUND,
            settings=settings,
            estimator=None,
            clock=clock,
            claims=shared.claims(settings),
            fetch_slots=shared.fetch_slots,
        )
        shared.attach(pool, src, pace, background_idle=settings.background_idle)
        if start:
            shared.start()
        proc = Proc(src, pace, shared, pool)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        await proc.shared.close()


def ask(category: str, channel: int = 1, *, guild: int = 1, count: int = 1) -> ImageRequest:
    return ImageRequest(
        guild_key=guild,
        channel_key=channel,
        user_id=7,
        categories=frozenset({category}),
        count=count,
        max_rating=Rating.SFW,
        accept=lambda _image: True,
    )


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (the pools expose no event for this)
            await asyncio.sleep(0.02)


def calls(*procs: Proc) -> int:
    return sum(len(p.source.calls) for p in procs)


async def test_images_survive_a_json_round_trip() -> None:
    rich = Image(
        id="img-1",
        url="https://cdn.example/1.png",
        rating=Rating.QUESTIONABLE,
        artist=Artist(id="a1", name="Artist", url="https://a.example", image_count=3),
        source=Source(name="pixiv", url="https://pixiv.example/1"),
        categories=(Category(id="c1", name="Catgirl", nsfw=False, type="character"),),
        characters=(Character(id="ch1", name="Neko", ages=(17, 18), occupations=("maid",)),),
        created_at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        original=True,
        meta=ImageMeta(
            etag="e",
            size=10,
            mimetype="image/png",
            color="#fff",
            expires=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            dimens=Dimensions(width=1, height=2, aspect_ratio="1:2", orientation="portrait"),
        ),
        tags=("catgirl",),
        api_rating="suggestive",
        ages_known=False,
    )
    assert image_from_json(image_to_json(rich)) == rich
    assert images_from_text("[]") == ()


async def test_a_batch_fetched_in_one_process_serves_a_command_in_another(procs: Any) -> None:
    a, b = await procs("a"), await procs("b")
    first = await a.pool.take(ask("catgirl", channel=1))
    assert first.status is ServeStatus.FULL
    assert calls(a, b) == 1
    await until(lambda: b.pool.stock(["catgirl"]) > 0)
    second = await b.pool.take(ask("catgirl", channel=2, guild=2))
    assert second.status is ServeStatus.FULL
    assert second.upstream_calls == 0
    assert calls(a, b) == 1  # no further call anywhere


async def test_the_same_set_asked_in_two_processes_at_once_costs_one_call(procs: Any) -> None:
    a = await procs("a", source=RecordingSource("a", delay=0.3))
    b = await procs("b", source=RecordingSource("b", delay=0.3))
    one, two = await asyncio.gather(
        a.pool.take(ask("foxgirl", channel=1)), b.pool.take(ask("foxgirl", channel=2, guild=2))
    )
    assert one.status is ServeStatus.FULL
    assert two.status is ServeStatus.FULL
    assert calls(a, b) == 1


async def test_work_goes_to_the_process_whose_pacer_is_free(procs: Any) -> None:
    busy = await procs("busy", pacer=FakePacer(wait=100.0))
    free = await procs("free")
    result = await busy.pool.take(ask("neko"))
    assert result.status is ServeStatus.FULL
    assert busy.source.calls == []
    assert free.source.calls == [("neko",)]


async def test_a_call_asked_while_the_feed_finds_its_place_still_gets_the_batch(
    procs: Any,
) -> None:
    # A process asking right after start-up, before its feed read the stream's end: another
    # process's batch landing in between used to be skipped, and the member waited for nothing.
    asker = await procs("asker", pacer=FakePacer(wait=100.0), member_wait=3.0, start=False)
    free = await procs("free")
    asked = asyncio.create_task(asker.pool.take(ask("neko")))
    await asyncio.sleep(0.3)
    asker.shared.start()
    result = await asyncio.wait_for(asked, WAIT)
    assert result.status is ServeStatus.FULL
    assert asker.source.calls == []
    assert free.source.calls == [("neko",)]


async def test_closing_a_process_ends_its_loops_even_when_python_loses_the_cancel(
    procs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.11's asyncio.wait_for, which redis-py sends every command through, swallows a
    # cancel landing as the command finishes (CPython gh-86296): the fetcher and the feed went on
    # and closing the process (shutdown) waited for them forever. Here each turn loses the cancel
    # the way wait_for does.
    proc = await procs("p")
    assert proc.shared.fetcher is not None
    assert proc.shared.feed is not None
    lost: list[str] = []

    def losing(name: str) -> Callable[[], Awaitable[bool]]:
        async def turn() -> bool:
            try:
                await asyncio.sleep(0.5)  # the close lands here, not in the fetcher's short poll
            except asyncio.CancelledError:
                lost.append(name)
            return False

        return turn

    monkeypatch.setattr(proc.shared.fetcher, "step", losing("fetcher"))
    monkeypatch.setattr(proc.shared.feed, "read_once", losing("feed"))
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(proc.shared.close())
    done, _ = await asyncio.wait({closing}, timeout=WAIT)
    assert closing in done
    assert sorted(lost) == ["feed", "fetcher"]


def lookups_queued() -> FakePacer:
    """A pacer 100 s behind on lookups, which a members' batch would go ahead of."""
    return FakePacer(wait=100.0, queue_length=90, shared_wait=0.0)


async def test_a_batch_waiting_for_a_process_behind_on_lookups_is_taken_after_its_patience(
    procs: Any,
) -> None:
    queued = await procs("queued", pacer=lookups_queued())
    asker = await procs("asker", pacer=FakePacer(wait=100.0), member_wait=30.0)
    result = await asyncio.wait_for(asker.pool.take(ask("neko")), WAIT)
    assert result.status is ServeStatus.FULL
    assert asker.source.calls == []
    assert queued.source.calls == [("neko",)]


async def test_lookups_go_first_where_another_process_is_free(procs: Any) -> None:
    queued = await procs("queued", pacer=lookups_queued())
    free = await procs("free")
    for name in ("neko", "kitsune", "maid"):
        result = await queued.pool.take(ask(name))
        assert result.status is ServeStatus.FULL
    assert queued.source.calls == []
    assert free.source.calls == [("neko",), ("kitsune",), ("maid",)]


async def test_a_job_nobody_can_take_falls_back_to_the_own_pacer(procs: Any) -> None:
    alone = await procs("alone", pacer=FakePacer(wait=100.0), member_wait=0.5)
    result = await alone.pool.take(ask("neko"))
    assert result.status is ServeStatus.FULL
    assert alone.source.calls == [("neko",)]


async def taken_by_a_process_that_dies(
    asker: Proc, dead: Proc, redis_url: str, request: ImageRequest
) -> asyncio.Task[Any]:
    """``asker`` asks; once the job is queued, ``dead`` takes it and never finishes it."""
    task = asyncio.create_task(asker.pool.take(request))
    client = aioredis.Redis.from_url(redis_url)
    try:
        await until_async(lambda: client.zcard(asker.shared.queue.queue_key))
    finally:
        await client.aclose()
    assert await dead.shared.queue.take(int(Priority.BACKGROUND), "dead") is not None
    return task


async def test_a_job_whose_taker_died_is_fetched_again_after_its_lease(
    procs: Any, redis_url: str
) -> None:
    asker = await procs("asker", pacer=FakePacer(wait=100.0), lease=0.5)
    dead = await procs("dead", lease=0.5, start=False)
    task = await taken_by_a_process_that_dies(asker, dead, redis_url, ask("kitsune"))
    rescuer = await procs("rescuer", lease=0.5)
    result = await task
    assert result.status is ServeStatus.FULL
    assert dead.source.calls == []
    assert rescuer.source.calls == [("kitsune",)]


async def test_a_member_whose_job_another_process_is_slow_to_fetch_still_gets_its_batch(
    procs: Any,
) -> None:
    # The asker's own pacer is busy, so the other process takes the job; its call takes longer
    # than the asker's wait (which also covered the job's time in the queue).
    asker = await procs("asker", pacer=FakePacer(wait=100.0), member_wait=0.3, lease=5.0)
    slow = await procs("slow", source=RecordingSource("slow", delay=1.0), lease=5.0)
    result = await asker.pool.take(ask("kitsune"))
    assert result.status is ServeStatus.FULL
    assert [i.id.split("-")[1] for i in result.images] == ["slow1"]
    assert asker.source.calls == []
    assert slow.source.calls == [("kitsune",)]


async def test_a_member_whose_job_was_taken_by_a_process_that_died_is_served_by_its_own(
    procs: Any, redis_url: str
) -> None:
    asker = await procs("asker", pacer=FakePacer(wait=100.0), member_wait=0.3, lease=0.5)
    dead = await procs("dead", lease=0.5, start=False)
    task = await taken_by_a_process_that_dies(asker, dead, redis_url, ask("kitsune"))
    result = await task  # no other process to take it again: not "busy", the own pacer
    assert result.status is ServeStatus.FULL
    assert asker.source.calls == [("kitsune",)]
    assert dead.source.calls == []


async def until_async(count: Callable[[], Awaitable[int]]) -> None:
    async with asyncio.timeout(WAIT):
        while not await count():  # noqa: ASYNC110 (Redis has no event for it here)
            await asyncio.sleep(0.02)


async def test_expired_images_are_never_served_from_the_shared_stock(procs: Any) -> None:
    now = [time.time()]
    a = await procs("a", source=RecordingSource("a", expires_in=900.0))
    b = await procs("b", pacer=FakePacer(wait=100.0), clock=lambda: now[0])
    await a.pool.take(ask("neko", channel=1))
    await until(lambda: b.pool.stock(["neko"]) > 0)
    first_batch = {f"neko-a1-{n}" for n in range(5)}
    a.source.expires_in = 3600.0  # later batches last longer
    now[0] += 400.0  # past the deadline: 900 s to expiry, less the 600 s margin
    assert b.pool.stock(["neko"]) == 0
    result = await b.pool.take(ask("neko", channel=2, guild=2))
    assert result.images
    assert not {i.id for i in result.images} & first_batch


async def test_an_image_serves_at_most_max_uses_commands_across_processes(procs: Any) -> None:
    settings = PoolSettings(batch_size=5, max_uses=2, repeat_window=0, prefetch_target=0)
    a = await procs("a", source=RecordingSource("a", fixed=True, batches=1), settings=settings)
    b = await procs("b", source=RecordingSource("b", fixed=True, batches=1), settings=settings)
    await a.pool.take(ask("neko", channel=0))
    await until(lambda: b.pool.stock(["neko"]) > 0)
    served: Counter[str] = Counter()
    shown = 0
    for n in range(1, 16):
        proc = a if n % 2 else b
        result = await proc.pool.take(ask("neko", channel=n, guild=n))
        served.update(i.id for i in result.images)
        shown += len(result.images)
    # five images, two uses each, one taken by the first command
    assert shown == 10 - 1
    assert max(served.values()) <= 2


async def test_a_scheduled_post_may_show_images_members_used_up_in_any_process(
    procs: Any,
) -> None:
    settings = PoolSettings(batch_size=5, max_uses=1, repeat_window=100, prefetch_target=0)
    a = await procs("a", source=RecordingSource("a", fixed=True, batches=1), settings=settings)
    b = await procs("b", source=RecordingSource("b", fixed=True, batches=1), settings=settings)
    first = await a.pool.take(ask("neko", channel=1, count=3))
    await until(lambda: b.pool.stock(["neko"]) > 0)
    second = await a.pool.take(ask("neko", channel=2, guild=2, count=2))
    assert len(first.images) + len(second.images) == 5  # every image used up by members
    spent_calls = calls(a, b)

    post = replace(ask("neko", channel=3, guild=3, count=2), background=True)
    result = await b.pool.take(post)

    assert result.status is ServeStatus.FULL
    assert {i.id for i in result.images} <= {i.id for i in first.images + second.images}
    assert calls(a, b) == spent_calls


async def test_a_member_who_waited_long_may_get_images_used_up_in_another_process(
    procs: Any,
) -> None:
    # max_attempts 5: b does not know which three a used, and each of them it picks first is
    # refused (at most three) before it finds the two left; three rounds were not always enough.
    settings = PoolSettings(
        batch_size=5,
        max_uses=1,
        repeat_window=100,
        prefetch_target=0,
        reuse_after=0.2,
        max_attempts=5,
    )
    a = await procs("a", source=RecordingSource("a", fixed=True), settings=settings)
    b = await procs("b", source=RecordingSource("b", fixed=True), settings=settings)
    first = await a.pool.take(ask("neko", channel=1, count=3))
    await until(lambda: b.pool.stock(["neko"]) > 0)
    second = await b.pool.take(ask("neko", channel=2, guild=2, count=2))
    assert len(first.images) + len(second.images) == 5  # every image used up by members
    a.source.delay = b.source.delay = 60.0  # the API now answers nothing in time

    result = await asyncio.wait_for(a.pool.take(ask("neko", channel=3, guild=3, count=3)), WAIT)

    # Redis counted every one of them used up; a member's long wait may still show them
    assert result.status is ServeStatus.FULL
    assert result.reused == {i.id for i in result.images}
    assert result.reused <= {i.id for i in first.images}


async def test_no_repeat_in_a_channel_across_processes_and_after_a_restart(procs: Any) -> None:
    settings = PoolSettings(batch_size=5, max_uses=10, repeat_window=100, prefetch_target=0)
    a = await procs("a", source=RecordingSource("a", fixed=True), settings=settings)
    b = await procs("b", source=RecordingSource("b", fixed=True), settings=settings)
    shown: list[str] = []
    for proc in (a, b, a, b, a):
        result = await proc.pool.take(ask("neko", channel=1))
        shown.extend(i.id for i in result.images)
    assert len(shown) == len(set(shown)) == 5
    await a.shared.close()
    restarted = await procs("a2", source=RecordingSource("a2", fixed=True), settings=settings)
    again = await restarted.pool.take(ask("neko", channel=1))
    assert not {i.id for i in again.images} & set(shown)
    elsewhere = await restarted.pool.take(ask("neko", channel=2))
    assert elsewhere.status is ServeStatus.FULL


async def test_redis_restarted_mid_use_pools_serve_alone_then_share_again(
    procs: Any, private_redis: PrivateRedis
) -> None:
    a = await procs("a", url=private_redis.url)
    b = await procs("b", url=private_redis.url)
    assert (await a.pool.take(ask("neko"))).status is ServeStatus.FULL
    await private_redis.kill()
    during_a = await a.pool.take(ask("foxgirl", channel=2))
    during_b = await b.pool.take(ask("kitsune", channel=3))
    assert during_a.status is ServeStatus.FULL
    assert during_b.status is ServeStatus.FULL
    assert ("foxgirl",) in a.source.calls
    assert ("kitsune",) in b.source.calls
    await private_redis.start()
    await until(lambda: a.shared.link.up and b.shared.link.up)
    before = calls(a, b)
    assert (await a.pool.take(ask("maid", channel=4))).status is ServeStatus.FULL
    await until(lambda: b.pool.stock(["maid"]) > 0)
    shared = await b.pool.take(ask("maid", channel=5, guild=5))
    assert shared.status is ServeStatus.FULL
    assert shared.upstream_calls == 0
    assert calls(a, b) == before + 1


async def test_background_work_waits_until_members_have_been_idle(procs: Any) -> None:
    only = await procs("only", pacer=FakePacer(idle=0.0))
    post = ImageRequest(
        guild_key=9,
        channel_key=9,
        user_id=9,
        categories=frozenset({"sky"}),
        max_rating=Rating.SFW,
        accept=lambda _image: True,
        background=True,
    )
    scheduled = asyncio.create_task(only.pool.take(post))
    member = await only.pool.take(ask("neko"))
    assert member.status is ServeStatus.FULL
    assert only.source.calls == [("neko",)]  # the post's job waits in the queue
    only.pacer.idle = 1000.0  # members idle: the fetcher may take background work now
    assert (await scheduled).status is ServeStatus.FULL
    assert only.source.calls == [("neko",), ("sky",)]


def test_without_redis_the_bot_loads_nothing_of_the_shared_pool() -> None:
    code = (
        "import sys, bot.core, bot.serving.assembly; "
        "print([m for m in ('redis', 'bot.serving.cluster') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=child_environment(),
    )
    assert done.stdout.strip() == "[]", done.stderr
