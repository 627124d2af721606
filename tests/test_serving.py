"""Tests for bot.serving: the random-image pool, lookups cache, coalescing, fairness, cooldown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bot.nekos.errors import BadRequest, NotFound, ServerError
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Image,
    ImageMeta,
    Page,
    Pagination,
    Rating,
    Stats,
)
from bot.serving import (
    CachedLookups,
    Coalescer,
    Cooldown,
    ImagePool,
    ImageRequest,
    LookupSettings,
    PoolSettings,
    ServeResult,
    ServeStatus,
    TTLCache,
)
from bot.serving.protocols import ClaimVerdict

INTERACTIVE = "interactive"
BACKGROUND = "background"
EPOCH = 1_700_000_000.0


class FakeClock:
    """A settable clock, in seconds."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_ids = itertools.count(1)


def make_image(
    categories: Sequence[str] = (),
    rating: Rating = Rating.SFW,
    *,
    image_id: str | None = None,
    expires: float | None = EPOCH + 3600,
) -> Image:
    when = None if expires is None else dt.datetime.fromtimestamp(expires, dt.UTC)
    return Image(
        id=image_id or f"img-{next(_ids)}",
        url="https://cdn.example/signed",
        rating=rating,
        categories=tuple(Category(id=f"cat-{name}", name=name) for name in categories),
        meta=ImageMeta(expires=when),
    )


@dataclass
class Call:
    categories: tuple[str, ...]
    limit: int
    expiry: int | None
    priority: Any


Responder = Callable[[tuple[str, ...], int], "list[Image] | Exception"]


def echo_categories(categories: tuple[str, ...], limit: int) -> list[Image]:
    """A full batch of fresh sfw images having exactly the requested categories."""
    return [make_image(categories) for _ in range(limit)]


class FakeRandomSource:
    """In-memory ``random_images``: records calls, can be held at a gate, answers via responder."""

    def __init__(self, responder: Responder = echo_categories) -> None:
        self.responder = responder
        self.calls: list[Call] = []
        self.gate: asyncio.Event | None = None

    async def random_images(
        self,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        *,
        priority: Any,
    ) -> Page[Image]:
        self.calls.append(Call(tuple(categories), limit, expiry, priority))
        if self.gate is not None:
            await self.gate.wait()
        result = self.responder(tuple(categories), limit)
        if isinstance(result, Exception):
            raise result
        return Page(items=tuple(result))


class FakeEstimator:
    def __init__(self, wait: float = 0.0, queue_length: int = 0, idle: float = math.inf) -> None:
        self.wait = wait
        self.queue_length = queue_length
        self.idle = idle

    def estimated_wait(self) -> float:
        return self.wait

    def members_idle_for(self) -> float:
        return 0.0 if self.queue_length else self.idle


def make_pool(
    source: FakeRandomSource,
    clock: FakeClock | None = None,
    estimator: FakeEstimator | None = None,
    **settings: Any,
) -> ImagePool:
    return ImagePool(
        source,
        interactive_priority=INTERACTIVE,
        background_priority=BACKGROUND,
        settings=PoolSettings(**settings),
        estimator=estimator,
        clock=clock or FakeClock(),
        rng=random.Random(1234),
    )


def accept_all(image: Image) -> bool:
    return True


def req(
    guild: int | None = 1,
    channel: int = 10,
    user: int = 100,
    categories: Sequence[str] = (),
    count: int = 1,
    max_rating: Rating = Rating.SFW,
    accept: Callable[[Image], bool] = accept_all,
) -> ImageRequest:
    return ImageRequest(
        guild_key=guild,
        channel_key=channel,
        user_id=user,
        categories=frozenset(categories),
        count=count,
        max_rating=max_rating,
        accept=accept,
    )


WAIT = 10.0
"""Most seconds a result may take (a bound against hangs, never a measurement)."""


async def settle() -> None:
    """Let every ready task run until the loop is idle."""
    for _ in range(20):
        await asyncio.sleep(0)


async def wait_for_calls(source: FakeRandomSource, n: int) -> None:
    for _ in range(200):
        if len(source.calls) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {n} upstream calls, saw {len(source.calls)}")


# ---------------------------------------------------------------------- requests


def test_request_lowercases_categories_and_bounds_count() -> None:
    request = req(categories=[" CatGirl ", "Blonde"])
    assert request.categories == frozenset({"catgirl", "blonde"})
    with pytest.raises(ValueError, match="count"):
        req(count=0)
    with pytest.raises(ValueError, match="count"):
        req(count=11)
    with pytest.raises(ValueError, match="empty"):
        req(categories=["  "])


# ---------------------------------------------------------------------- pool matching


async def test_stock_serves_a_request_whose_categories_are_a_subset_case_insensitively() -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(["Catgirl", "Blonde"]) for _ in range(n)])
    pool = make_pool(source)

    first = await pool.take(req(guild=1, categories=["catgirl", "blonde"]))
    second = await pool.take(req(guild=2, channel=20, categories=["CATGIRL"]))

    assert first.status is ServeStatus.FULL
    assert first.upstream_calls == 1
    assert second.status is ServeStatus.FULL
    assert second.upstream_calls == 0
    assert len(source.calls) == 1
    assert source.calls[0].categories == ("blonde", "catgirl")
    assert source.calls[0].limit == 25
    assert source.calls[0].priority == INTERACTIVE


async def test_stock_image_lacking_a_requested_category_is_not_served() -> None:
    source = FakeRandomSource()
    pool = make_pool(source)
    await pool.take(req(categories=["catgirl"]))

    result = await pool.take(req(guild=2, categories=["catgirl", "blonde"]))

    assert len(source.calls) == 2
    assert source.calls[1].categories == ("blonde", "catgirl")
    assert {"catgirl", "blonde"} <= result.images[0].category_names


async def test_image_above_max_rating_is_skipped_and_stays_pooled_for_a_later_request() -> None:
    nsfw = make_image(rating=Rating.NSFW)
    source = FakeRandomSource(lambda cats, n: [nsfw, make_image()])
    pool = make_pool(source)

    sfw_result = await pool.take(req(guild=1, max_rating=Rating.SFW))
    nsfw_result = await pool.take(
        req(guild=2, channel=20, max_rating=Rating.NSFW, accept=lambda i: i.rating is Rating.NSFW)
    )

    assert sfw_result.images[0].rating is Rating.SFW
    assert nsfw_result.images == (nsfw,)
    assert nsfw_result.upstream_calls == 0
    assert len(source.calls) == 1


async def test_image_the_gating_filter_rejects_stays_pooled_for_a_later_request() -> None:
    wanted, other = make_image(["a"]), make_image(["a"])
    source = FakeRandomSource(lambda cats, n: [wanted, other])
    pool = make_pool(source)

    first = await pool.take(req(guild=1, accept=lambda i: i is other))
    later = await pool.take(req(guild=2, channel=20, accept=lambda i: i is wanted))

    assert first.images == (other,)
    assert later.images == (wanted,)
    assert later.upstream_calls == 0
    assert len(source.calls) == 1


async def test_image_leaves_the_pool_a_margin_before_its_url_expires() -> None:
    clock = FakeClock()
    source = FakeRandomSource(lambda cats, n: [make_image(expires=EPOCH + 3600)])
    pool = make_pool(source, clock, expiry_margin=600, max_uses=5)
    await pool.take(req(guild=1))
    assert len(pool) == 1

    clock.now = EPOCH + 2999
    assert (await pool.take(req(guild=2, channel=20))).upstream_calls == 0
    clock.now = EPOCH + 3000
    assert pool.stock() == 0
    assert len(pool) == 0
    assert pool.metrics().expired == 1


async def test_peek_image_finds_a_pooled_image_while_its_url_is_fresh_without_using_it() -> None:
    clock = FakeClock()
    wanted = make_image(image_id="seen", expires=EPOCH + 3600)
    source = FakeRandomSource(lambda cats, n: [wanted, make_image()])
    pool = make_pool(source, clock, expiry_margin=600, max_uses=5)
    await pool.take(req(guild=1))

    assert pool.peek_image("seen") is wanted
    assert pool.peek_image("never-pooled") is None
    assert pool.stock() == 2  # peeking reserves nothing
    clock.now = EPOCH + 3000
    assert pool.peek_image("seen") is None


async def test_image_already_inside_the_margin_on_arrival_is_never_pooled() -> None:
    clock = FakeClock()
    source = FakeRandomSource(lambda cats, n: [make_image(expires=EPOCH + 300)])
    pool = make_pool(source, clock, expiry_margin=600)

    result = await pool.take(req())

    assert result.status is ServeStatus.NOTHING_MATCHED
    assert len(source.calls) == 3
    assert len(pool) == 0


async def test_image_without_expiry_gets_the_default_lifetime_from_arrival() -> None:
    clock = FakeClock()
    source = FakeRandomSource(lambda cats, n: [make_image(expires=None)])
    pool = make_pool(source, clock, no_expiry_lifetime=120, max_uses=5)
    await pool.take(req(guild=1))

    clock.advance(119)
    assert pool.stock() == 1
    clock.advance(1)
    assert pool.stock() == 0


async def test_same_image_is_never_shown_twice_in_a_channel_within_the_window() -> None:
    fixed = [make_image(image_id=f"fixed-{n}") for n in range(3)]
    source = FakeRandomSource(lambda cats, n: list(fixed))
    pool = make_pool(source, max_uses=10)

    shown = [(await pool.take(req(channel=10))).images[0].id for _ in range(3)]
    fourth = await pool.take(req(channel=10))

    assert sorted(shown) == ["fixed-0", "fixed-1", "fixed-2"]
    assert fourth.status is ServeStatus.NOTHING_MATCHED
    assert fourth.images == ()


async def test_same_image_may_be_shown_in_another_channel() -> None:
    only = make_image(image_id="only")
    source = FakeRandomSource(lambda cats, n: [only])
    pool = make_pool(source, max_uses=10)

    here = await pool.take(req(guild=1, channel=10))
    same_guild_other_channel = await pool.take(req(guild=1, channel=11))
    other_guild = await pool.take(req(guild=2, channel=20))

    assert here.images == same_guild_other_channel.images == other_guild.images == (only,)
    assert len(source.calls) == 1


async def test_image_may_repeat_in_a_channel_once_it_leaves_the_window() -> None:
    fixed = [make_image(image_id=f"fixed-{n}") for n in range(3)]
    source = FakeRandomSource(lambda cats, n: list(fixed))
    pool = make_pool(source, max_uses=10, repeat_window=2)

    shown = [(await pool.take(req(channel=10))).images[0].id for _ in range(3)]
    fourth = await pool.take(req(channel=10))

    assert fourth.images[0].id == shown[0]
    assert fourth.upstream_calls == 0


async def test_images_a_guild_has_not_had_are_preferred_even_if_used_more_elsewhere() -> None:
    p, q = make_image(image_id="p"), make_image(image_id="q")
    source = FakeRandomSource(lambda cats, n: [p, q])
    pool = make_pool(source, max_uses=3)
    await pool.take(req(guild=1, channel=10, accept=lambda i: i is p))
    await pool.take(req(guild=2, channel=20, accept=lambda i: i is q))
    await pool.take(req(guild=3, channel=30, accept=lambda i: i is q))

    # p was used once (by guild 1), q twice (by others): guild 1 still gets q first.
    result = await pool.take(req(guild=1, channel=11))

    assert result.images == (q,)
    assert len(source.calls) == 1


async def test_pool_size_is_bounded_and_the_most_used_then_soonest_expiring_go_first() -> None:
    clock = FakeClock()
    expiries = iter([EPOCH + 1800.0 + n for n in range(25)] + [EPOCH + 3600.0] * 25)

    def batch(cats: tuple[str, ...], n: int) -> list[Image]:
        return [make_image(cats, expires=next(expiries)) for _ in range(n)]

    pool = make_pool(FakeRandomSource(batch), clock, capacity=30)
    await pool.take(req(guild=1))
    fresh = await pool.take(req(guild=1, categories=["x"]))

    assert len(pool) == 30
    assert pool.metrics().evicted == 20
    assert pool.stock(["x"]) == 25
    assert fresh.images[0].category_names == {"x"}
    # The survivors of the first batch are the ones expiring last.
    assert pool.stock() - pool.stock(["x"]) == 5


async def test_ten_images_for_one_request_are_all_distinct() -> None:
    pool = make_pool(FakeRandomSource())
    result = await pool.take(req(count=10))
    assert len(result.images) == 10
    assert result.status is ServeStatus.FULL
    assert len({i.id for i in result.images}) == 10


# ---------------------------------------------------------------------- coalescing


async def test_fifty_concurrent_identical_requests_share_one_upstream_call() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=3)

    tasks = [
        asyncio.create_task(pool.take(req(guild=n, channel=n, categories=["catgirl"])))
        for n in range(50)
    ]
    await settle()
    source.gate.set()
    results = await asyncio.gather(*tasks)

    assert len(source.calls) == 1
    assert all(r.status is ServeStatus.FULL and r.upstream_calls == 1 for r in results)
    assert pool.metrics().coalesced_waits == 49
    assert pool.metrics().upstream_calls == 1


async def test_images_nobody_took_stay_pooled_after_a_coalesced_call() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=1)
    tasks = [asyncio.create_task(pool.take(req(guild=n, channel=n))) for n in range(10)]
    await settle()
    source.gate.set()
    await asyncio.gather(*tasks)

    assert len(pool) == 15
    later = await pool.take(req(guild=99, channel=99))
    assert later.upstream_calls == 0
    assert len(source.calls) == 1


# ---------------------------------------------------------------------- background requests


def background_req(**kwargs: Any) -> ImageRequest:
    plain = req(**kwargs)
    return ImageRequest(
        guild_key=plain.guild_key,
        channel_key=plain.channel_key,
        user_id=0,
        categories=plain.categories,
        count=plain.count,
        max_rating=plain.max_rating,
        accept=plain.accept,
        background=True,
    )


async def test_background_request_is_served_from_stock_without_a_call() -> None:
    source = FakeRandomSource()
    pool = make_pool(source)
    await pool.take(req(categories=["cat"]))  # stocks 24 more

    result = await pool.take(background_req(guild=2, channel=20, categories=["cat"]))

    assert result.status is ServeStatus.FULL
    assert len(source.calls) == 1


async def test_a_scheduled_post_takes_images_members_used_up_before_fresh_stock() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, max_uses=1)
    shown = (await pool.take(req(guild=1, channel=10, count=3))).images  # 22 left in stock

    post = await pool.take(background_req(guild=2, channel=20, count=3))

    assert {image.id for image in post.images} == {image.id for image in shown}
    assert pool.stock() == 22  # what members can still have is untouched
    assert len(source.calls) == 1


async def test_a_scheduled_post_never_repeats_in_its_channel_what_members_used_up_there() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, max_uses=1)
    shown = (await pool.take(req(guild=1, channel=10, count=3))).images

    post = await pool.take(background_req(guild=1, channel=10, count=3))

    assert post.status is ServeStatus.FULL
    assert not {image.id for image in post.images} & {image.id for image in shown}
    assert pool.stock() == 19


async def test_members_never_get_images_they_used_up_back_from_scheduled_posts() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, max_uses=1)
    shown = (await pool.take(req(guild=1, channel=10, count=3))).images
    await pool.take(background_req(guild=2, channel=20, count=3))

    later = await pool.take(req(guild=3, channel=30, count=10))

    assert not {image.id for image in later.images} & {image.id for image in shown}


# A member still waiting after ``reuse_after`` takes images other servers used up. The tests
# wait on results (or on a later request's timer, which fires after an earlier one's), never
# on the clock.
REUSE = 0.05
PAIR = ["cat", "maid"]


async def use_up_a_batch(source: FakeRandomSource, pool: ImagePool, count: int) -> set[str]:
    """Guild 1's channel 10 uses up a whole batch of PAIR images; the API then holds calls."""
    shown = await pool.take(req(guild=1, channel=10, categories=PAIR, count=count))
    assert shown.status is ServeStatus.FULL
    source.gate = asyncio.Event()
    return {image.id for image in shown.images}


async def test_a_member_still_waiting_gets_images_other_servers_used_up() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, batch_size=3, max_uses=1, reuse_after=REUSE)
    shown = await use_up_a_batch(source, pool, 3)

    result = await asyncio.wait_for(
        pool.take(req(guild=2, channel=20, categories=PAIR, count=2)), WAIT
    )

    ids = {image.id for image in result.images}
    assert result.status is ServeStatus.FULL
    assert len(ids) == 2
    assert ids <= shown
    assert result.reused == ids
    assert pool.metrics().reused == 2
    assert source.gate is not None
    source.gate.set()  # the call it no longer waits for still stocks the pool
    await settle()
    assert pool.stock(PAIR) == 3


async def test_a_long_wait_never_reuses_an_image_its_channel_showed() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, batch_size=3, max_uses=1, reuse_after=REUSE)
    shown = await use_up_a_batch(source, pool, 3)
    same_channel = asyncio.create_task(pool.take(req(guild=1, channel=10, categories=PAIR)))
    await settle()

    other = await asyncio.wait_for(pool.take(req(guild=2, channel=20, categories=PAIR)), WAIT)

    assert other.reused  # its timer fired, so the earlier request's did too
    assert not same_channel.done()
    assert source.gate is not None
    source.gate.set()
    result = await asyncio.wait_for(same_channel, WAIT)
    assert result.status is ServeStatus.FULL
    assert not {image.id for image in result.images} & shown
    assert result.reused == frozenset()


async def test_a_member_still_waiting_keeps_looking_for_images_it_may_reuse() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, batch_size=3, max_uses=1, repeat_window=3, reuse_after=REUSE)
    pool.offer([make_image(["dog"]) for _ in range(3)])
    shown = await use_up_a_batch(source, pool, 3)  # in channel 10: nothing it may reuse yet
    task = asyncio.create_task(pool.take(req(guild=1, channel=10, user=101, categories=PAIR)))
    await asyncio.sleep(REUSE * 3)
    assert not task.done()

    # three more images in channel 10 push the used-up batch out of its no-repeat window
    dogs = await pool.take(req(guild=1, channel=10, user=102, categories=["dog"], count=3))
    assert dogs.status is ServeStatus.FULL
    result = await asyncio.wait_for(task, WAIT)

    assert {image.id for image in result.images} <= shown
    assert result.reused


class UsedUpElsewhere:
    """Claims as another process sees them: every image was used up there (so only a reuse,
    which counts against the channel's window alone, is granted)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []

    async def claim(
        self, request: ImageRequest, images: Sequence[Image], *, reuse: bool = False
    ) -> list[ClaimVerdict]:
        self.asked.extend((image.id, reuse) for image in images)
        return [ClaimVerdict.GRANTED if reuse else ClaimVerdict.USED_UP for _ in images]


async def test_fresh_images_used_up_elsewhere_are_reused_at_once_after_a_long_wait() -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(cats, image_id="late-1", expires=None)])
    source.gate = asyncio.Event()
    claims = UsedUpElsewhere()
    pool = ImagePool(
        source,
        interactive_priority=INTERACTIVE,
        background_priority=BACKGROUND,
        settings=PoolSettings(reuse_after=REUSE),
        claims=claims,
    )
    task = asyncio.create_task(pool.take(req(categories=["late"])))
    await asyncio.sleep(REUSE * 3)  # the batch comes after the member waited REUSE_AFTER
    source.gate.set()
    result = await asyncio.wait_for(task, WAIT)

    # Refused as used up, it is theirs to reuse at once: their wait counts from the start,
    # not from the refusal, and costs no second call.
    assert result.status is ServeStatus.FULL
    assert [i.id for i in result.images] == ["late-1"]
    assert result.reused == {"late-1"}
    assert claims.asked == [("late-1", False), ("late-1", True)]
    assert len(source.calls) == 1


async def test_a_member_with_some_reused_images_waits_for_the_rest_when_nobody_else_waits() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, batch_size=3, max_uses=1, reuse_after=REUSE)
    shown = await use_up_a_batch(source, pool, 3)
    task = asyncio.create_task(pool.take(req(guild=2, channel=20, categories=PAIR, count=5)))
    async with asyncio.timeout(WAIT):
        while pool.metrics().reused < 3:  # noqa: ASYNC110 (the pool has no event for this)
            await asyncio.sleep(0.01)
    assert not task.done()

    assert source.gate is not None
    source.gate.set()
    result = await asyncio.wait_for(task, WAIT)

    ids = [image.id for image in result.images]
    assert result.status is ServeStatus.FULL
    assert len(set(ids)) == 5
    assert result.reused == shown
    assert len(set(ids) - shown) == 2


async def test_reuse_after_zero_keeps_a_member_waiting_for_fresh_images() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, batch_size=3, max_uses=1, reuse_after=0)
    shown = await use_up_a_batch(source, pool, 3)
    task = asyncio.create_task(pool.take(req(guild=2, channel=20, categories=PAIR)))
    await asyncio.sleep(REUSE * 4)
    assert not task.done()

    assert source.gate is not None
    source.gate.set()
    result = await asyncio.wait_for(task, WAIT)

    assert not {image.id for image in result.images} & shown
    assert pool.metrics().reused == 0


async def test_a_fetch_only_background_requests_wait_on_goes_at_background_priority() -> None:
    source = FakeRandomSource()
    pool = make_pool(source)

    result = await pool.take(background_req(categories=["cat"]))

    assert result.status is ServeStatus.FULL
    assert [c.priority for c in source.calls] == [BACKGROUND]


async def test_a_background_fetch_never_takes_the_members_fetch_slot() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, max_concurrent_fetches=1)
    post = asyncio.create_task(pool.take(background_req(categories=["dog"])))
    await wait_for_calls(source, 1)

    member = asyncio.create_task(pool.take(req(guild=2, channel=20, categories=["cat"])))
    await wait_for_calls(source, 2)

    assert [(c.categories, c.priority) for c in source.calls] == [
        (("dog",), BACKGROUND),
        (("cat",), INTERACTIVE),
    ]
    source.gate.set()
    assert (await member).status is ServeStatus.FULL
    assert (await post).status is ServeStatus.FULL


async def test_a_member_joining_a_background_wait_gets_a_fetch_at_members_priority() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source)
    post = asyncio.create_task(pool.take(background_req(categories=["cat"])))
    await wait_for_calls(source, 1)

    member = asyncio.create_task(pool.take(req(guild=2, channel=20, categories=["cat"])))
    await wait_for_calls(source, 2)

    assert [c.priority for c in source.calls] == [BACKGROUND, INTERACTIVE]
    source.gate.set()
    assert (await member).status is ServeStatus.FULL
    assert (await post).status is ServeStatus.FULL


async def test_a_background_request_joins_a_members_fetch_instead_of_making_its_own() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source)
    member = asyncio.create_task(pool.take(req(categories=["cat"])))
    await wait_for_calls(source, 1)

    post = asyncio.create_task(pool.take(background_req(guild=2, channel=20, categories=["cat"])))
    await settle()
    source.gate.set()

    assert (await member).status is ServeStatus.FULL
    assert (await post).status is ServeStatus.FULL
    assert [c.priority for c in source.calls] == [INTERACTIVE]


async def test_members_are_dealt_a_scarce_batch_before_background_requests() -> None:
    batches = itertools.count(1)

    def two_per_call(cats: tuple[str, ...], n: int) -> list[Image]:
        batch = next(batches)
        return [make_image(cats, image_id=f"batch{batch}-{i}") for i in range(2)]

    source = FakeRandomSource(two_per_call)
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=1)
    # Three scheduled posts wait first; then two members ask for the same set.
    posts = [
        asyncio.create_task(pool.take(background_req(guild=n, channel=n, categories=["cat"])))
        for n in range(1, 4)
    ]
    await wait_for_calls(source, 1)
    members = [
        asyncio.create_task(pool.take(req(guild=n, channel=n, categories=["cat"])))
        for n in range(10, 12)
    ]
    await settle()
    source.gate.set()

    member_images = [r.images[0].id for r in await asyncio.gather(*members)]
    await asyncio.gather(*posts)

    # The first batch to arrive (the posts' own fetch) went to the members, though they came later.
    assert sorted(member_images) == ["batch1-0", "batch1-1"]


async def test_a_background_fetch_waits_while_members_wait_on_the_pacer() -> None:
    source = FakeRandomSource()
    estimator = FakeEstimator(queue_length=2)
    pool = make_pool(source, estimator=estimator)
    post = asyncio.create_task(pool.take(background_req(categories=["cat"])))
    await settle()
    await pool.prefetch_once()
    assert source.calls == []  # members are queued for upstream: no slot taken from them

    estimator.queue_length = 0
    await pool.prefetch_once()  # the pool's tick starts it once they are served

    assert (await post).status is ServeStatus.FULL
    assert [(c.categories, c.priority) for c in source.calls] == [(("cat",), BACKGROUND)]


async def test_a_background_fetch_waits_until_members_have_been_idle_a_while() -> None:
    # Near saturation a slot taken the moment nobody waits still holds back the next member:
    # a scheduled post's fetch waits until no member's request started for background_idle.
    source = FakeRandomSource()
    estimator = FakeEstimator(idle=1.0)
    pool = make_pool(source, estimator=estimator, background_idle=3.0)
    post = asyncio.create_task(pool.take(background_req(categories=["cat"])))
    await settle()
    await pool.prefetch_once()
    assert source.calls == []

    estimator.idle = 3.5
    await pool.prefetch_once()

    assert (await post).status is ServeStatus.FULL
    assert [(c.categories, c.priority) for c in source.calls] == [(("cat",), BACKGROUND)]


async def test_a_background_request_out_of_patience_settles_for_what_it_has() -> None:
    source = FakeRandomSource()
    clock = FakeClock()
    pool = make_pool(
        source, clock, estimator=FakeEstimator(queue_length=5), background_patience=20.0
    )
    post = asyncio.create_task(pool.take(background_req(categories=["cat"])))
    await settle()
    clock.advance(19)
    await pool.prefetch_once()
    assert not post.done()

    clock.advance(2)
    await pool.prefetch_once()

    assert (await post).status is ServeStatus.NOTHING_MATCHED
    assert source.calls == []


async def test_should_defer_ignores_sets_only_background_requests_wait_on() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, defer_after=1.5, slot_seconds=1.0)
    posts = [
        asyncio.create_task(pool.take(background_req(guild=n, channel=n, categories=[f"t{n}"])))
        for n in range(5)
    ]
    await settle()

    assert pool.should_defer(req(categories=["cat"])) is False
    source.gate.set()
    await asyncio.gather(*posts)


# ---------------------------------------------------------------------- fairness


async def test_flood_from_one_guild_does_not_delay_another_guild_for_the_same_category() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=1)
    flood = [
        asyncio.create_task(pool.take(req(guild=1, channel=1000 + n, categories=["catgirl"])))
        for n in range(100)
    ]
    await settle()
    calls_when_b_done: list[int] = []

    async def guild_b() -> None:
        result = await pool.take(req(guild=2, channel=2000, categories=["catgirl"]))
        assert result.status is ServeStatus.FULL
        calls_when_b_done.append(len(source.calls))

    b = asyncio.create_task(guild_b())
    await settle()
    source.gate.set()
    await asyncio.gather(b, *flood)

    assert calls_when_b_done == [1]
    assert len(source.calls) == 5  # 100 + 1 images at 25 a call, no image used twice


async def test_flood_from_one_guild_delays_another_guild_by_at_most_one_upstream_slot() -> None:
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source)
    flood = [
        asyncio.create_task(pool.take(req(guild=1, channel=1000 + n, categories=[f"c{n}"])))
        for n in range(100)
    ]
    await wait_for_calls(source, 1)
    calls_when_b_done: list[int] = []

    async def guild_b() -> None:
        await pool.take(req(guild=2, channel=2000, categories=["rare"]))
        calls_when_b_done.append(len(source.calls))

    b = asyncio.create_task(guild_b())
    await settle()
    source.gate.set()
    await asyncio.gather(b, *flood)

    assert calls_when_b_done == [2]
    assert source.calls[1].categories == ("rare",)
    assert len(source.calls) == 101


async def test_fresh_images_are_dealt_round_robin_between_guilds() -> None:
    answers: list[list[Image] | Exception] = [[make_image() for _ in range(10)]]
    source = FakeRandomSource(
        lambda cats, n: answers.pop(0) if answers else NotFound("none", status=404)
    )
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=1)
    a = [asyncio.create_task(pool.take(req(guild=1, channel=100 + n))) for n in range(10)]
    b = [asyncio.create_task(pool.take(req(guild=2, channel=200 + n))) for n in range(10)]
    await settle()
    source.gate.set()
    a_results = await asyncio.gather(*a)
    b_results = await asyncio.gather(*b)

    # Oldest first within a guild: the first five of each guild got one.
    assert [len(r.images) for r in a_results] == [1] * 5 + [0] * 5
    assert [len(r.images) for r in b_results] == [1] * 5 + [0] * 5


# ---------------------------------------------------------------------- bounded attempts


async def test_unsatisfiable_request_makes_three_attempts_then_reports_nothing_matched() -> None:
    source = FakeRandomSource()  # only sfw images
    pool = make_pool(source)

    result = await pool.take(req(max_rating=Rating.NSFW, accept=lambda i: i.rating is Rating.NSFW))

    assert result.status is ServeStatus.NOTHING_MATCHED
    assert result.images == ()
    assert result.upstream_calls == 3
    assert len(source.calls) == 3
    # What nobody could use stays pooled for others.
    assert len(pool) == 75


async def test_not_found_counts_as_an_attempt_not_as_proof_of_absence() -> None:
    answers: list[list[Image] | Exception] = [NotFound("nothing sampled", status=404)]

    def responder(cats: tuple[str, ...], n: int) -> list[Image] | Exception:
        return answers.pop(0) if answers else [make_image(cats)]

    source = FakeRandomSource(responder)
    pool = make_pool(source)

    result = await pool.take(req(categories=["rare"]))

    assert result.status is ServeStatus.FULL
    assert result.upstream_calls == 2
    assert pool.metrics().upstream_not_found == 1


async def test_repeated_not_found_ends_in_nothing_matched_after_three_calls() -> None:
    source = FakeRandomSource(lambda cats, n: NotFound("nothing sampled", status=404))
    pool = make_pool(source)

    result = await pool.take(req(categories=["rare"]))

    assert result.status is ServeStatus.NOTHING_MATCHED
    assert result.upstream_calls == 3
    assert len(source.calls) == 3


async def test_request_settles_for_partial_when_attempts_bring_too_few() -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(cats)])
    pool = make_pool(source)

    result = await pool.take(req(count=5))

    assert result.status is ServeStatus.PARTIAL
    assert len(result.images) == 3
    assert result.upstream_calls == 3
    assert pool.metrics().partial == 1


@pytest.mark.parametrize("partial_when_busy", [True, False])
async def test_a_request_with_some_images_stops_trying_while_other_sets_wait(
    partial_when_busy: bool,
) -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(cats)])
    source.gate = asyncio.Event()
    pool = make_pool(source, partial_when_busy=partial_when_busy)
    greedy = asyncio.create_task(pool.take(req(guild=1, categories=["rare"], count=5)))
    await wait_for_calls(source, 1)
    other = asyncio.create_task(pool.take(req(guild=2, channel=20, categories=["other"])))
    await settle()
    source.gate.set()
    result, _ = await asyncio.gather(greedy, other)

    assert result.status is ServeStatus.PARTIAL
    if partial_when_busy:
        # One image after its first call, while "other" waited: it settles for that.
        assert (len(result.images), result.upstream_calls) == (1, 1)
    else:
        assert (len(result.images), result.upstream_calls) == (3, 3)


async def busy_pool_take(
    pool: ImagePool, source: FakeRandomSource, request: ImageRequest
) -> ServeResult:
    """Take ``request`` while a member of another guild waits for another set."""
    source.gate = asyncio.Event()
    asked = asyncio.create_task(pool.take(request))
    await wait_for_calls(source, len(source.calls) + 1)
    other = asyncio.create_task(pool.take(req(guild=9, channel=90, categories=["other"])))
    await settle()
    source.gate.set()
    result, _ = await asyncio.gather(asked, other)
    source.gate = None
    return result


@pytest.mark.parametrize("others_wait", [True, False])
async def test_a_call_bringing_only_what_the_channel_showed_ends_the_wait_while_others_wait(
    others_wait: bool,
) -> None:
    small = [make_image(["small"], image_id="small-1"), make_image(["small"], image_id="small-2")]
    source = FakeRandomSource(
        lambda cats, n: list(small) if cats == ("small",) else echo_categories(cats, n)
    )
    pool = make_pool(source, max_uses=3)
    first = await pool.take(req(categories=["small"], count=2))
    assert {i.id for i in first.images} == {"small-1", "small-2"}
    calls_before = len(source.calls)

    again = req(categories=["small"])  # the same channel: it has shown both
    result = await (busy_pool_take(pool, source, again) if others_wait else pool.take(again))

    assert result.status is ServeStatus.NOTHING_MATCHED
    assert result.shown_here
    own_calls = [c for c in source.calls[calls_before:] if c.categories == ("small",)]
    # While another set waits, one call that brought only what was shown here is enough.
    assert len(own_calls) == (1 if others_wait else 3)
    # Another channel is served those images from stock.
    elsewhere = await pool.take(req(guild=2, channel=20, categories=["small"]))
    assert elsewhere.status is ServeStatus.FULL


async def test_a_call_bringing_only_images_above_the_channel_ends_the_wait_while_others_wait() -> (
    None
):
    source = FakeRandomSource(
        lambda cats, n: (
            [make_image(cats, Rating.NSFW) for _ in range(n)]
            if cats == ("spicy",)
            else echo_categories(cats, n)
        )
    )
    pool = make_pool(source)

    result = await busy_pool_take(pool, source, req(categories=["spicy"]))

    assert result.status is ServeStatus.NOTHING_MATCHED
    assert not result.shown_here
    assert [c.categories for c in source.calls].count(("spicy",)) == 1


async def test_an_empty_answer_still_gets_every_attempt_while_others_wait() -> None:
    answers: list[list[Image] | Exception] = [NotFound("nothing sampled", status=404)] * 2

    def responder(cats: tuple[str, ...], n: int) -> list[Image] | Exception:
        if cats == ("rare",) and answers:
            return answers.pop(0)
        return echo_categories(cats, n)

    source = FakeRandomSource(responder)
    pool = make_pool(source)

    result = await busy_pool_take(pool, source, req(categories=["rare"]))

    # A sample that missed a rare set says nothing about it: the third call finds it.
    assert result.status is ServeStatus.FULL
    assert [c.categories for c in source.calls].count(("rare",)) == 3


async def test_a_set_that_keeps_coming_back_empty_is_answered_at_once_for_a_while() -> None:
    clock = FakeClock()
    source = FakeRandomSource(lambda cats, n: [])
    pool = make_pool(source, clock, barren_memory=60)
    first = await pool.take(req(guild=1, categories=["rare"]))
    assert (first.status, first.upstream_calls) == (ServeStatus.NOTHING_MATCHED, 3)

    clock.advance(30)
    again = await pool.take(req(guild=2, channel=20, categories=["rare"]))
    assert (again.status, again.upstream_calls) == (ServeStatus.NOTHING_MATCHED, 0)
    assert len(source.calls) == 3
    # Other sets are not affected.
    assert (await pool.take(req(guild=3, channel=30, categories=["other"]))).upstream_calls == 3

    clock.advance(31)  # the first empty answers are over a minute old: try again
    source.responder = echo_categories
    later = await pool.take(req(guild=4, channel=40, categories=["rare"]))
    assert (later.status, later.upstream_calls) == (ServeStatus.FULL, 1)


async def test_recent_empty_answers_count_towards_a_new_requests_attempts() -> None:
    clock = FakeClock()

    def empty_a_while_later(cats: tuple[str, ...], n: int) -> list[Image]:
        clock.advance(25)
        return []

    source = FakeRandomSource(empty_a_while_later)
    pool = make_pool(source, clock, barren_memory=60)
    await pool.take(req(guild=1, categories=["thin"]))  # empty at +25, +50, +75
    clock.advance(10)  # +85: the answers at +50 and +75 are recent, the first is not

    source.responder = lambda cats, n: []
    result = await pool.take(req(guild=2, channel=20, categories=["thin"]))

    assert (result.status, result.upstream_calls) == (ServeStatus.NOTHING_MATCHED, 1)


async def test_barren_memory_zero_gives_every_request_its_own_attempts() -> None:
    source = FakeRandomSource(lambda cats, n: [])
    pool = make_pool(source, barren_memory=0)
    await pool.take(req(guild=1, categories=["rare"]))
    again = await pool.take(req(guild=2, channel=20, categories=["rare"]))
    assert again.upstream_calls == 3
    assert len(source.calls) == 6


async def test_losing_images_to_other_guilds_does_not_use_up_attempts() -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(cats)])
    source.gate = asyncio.Event()
    pool = make_pool(source, max_uses=1)
    tasks = [asyncio.create_task(pool.take(req(guild=n, channel=n))) for n in range(5)]
    await settle()
    source.gate.set()
    results = await asyncio.gather(*tasks)

    assert all(r.status is ServeStatus.FULL for r in results)
    assert len(source.calls) == 5


async def test_bad_request_reaches_the_waiting_request() -> None:
    source = FakeRandomSource(lambda cats, n: BadRequest("unknown category", status=400))
    pool = make_pool(source)

    with pytest.raises(BadRequest):
        await pool.take(req(categories=["nope"]))
    assert len(source.calls) == 1
    assert pool.metrics().waiting == 0


async def test_error_after_some_images_gives_partial_with_the_error() -> None:
    error = ServerError("boom", status=500)
    source = FakeRandomSource(lambda cats, n: [make_image(), make_image()])
    pool = make_pool(source, max_uses=1)
    await pool.take(req(guild=1))  # leaves one image in stock
    source.responder = lambda cats, n: error

    result = await pool.take(req(guild=2, channel=20, count=3))

    assert result.status is ServeStatus.PARTIAL
    assert len(result.images) == 1
    assert result.error is error
    assert pool.metrics().upstream_errors == 1


async def test_cancelled_request_returns_its_images_to_the_pool() -> None:
    source = FakeRandomSource(lambda cats, n: [make_image(), make_image()])
    pool = make_pool(source, max_uses=1)
    await pool.take(req(guild=1))
    assert len(pool) == 1
    source.gate = asyncio.Event()

    pending = asyncio.create_task(pool.take(req(guild=2, channel=20, count=2)))
    await wait_for_calls(source, 2)
    assert len(pool) == 0  # its stock image is reserved while it waits
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending

    assert len(pool) == 1
    assert pool.metrics().waiting == 0
    again = await pool.take(req(guild=2, channel=20))
    assert again.upstream_calls == 0
    assert again.status is ServeStatus.FULL
    source.gate.set()
    await settle()


# ---------------------------------------------------------------------- should_defer


async def test_should_defer_is_false_when_stock_can_serve_the_request() -> None:
    estimator = FakeEstimator(wait=10.0)
    pool = make_pool(FakeRandomSource(), estimator=estimator)
    await pool.take(req(guild=1))

    assert pool.should_defer(req(guild=2, channel=20, count=3)) is False


async def test_should_defer_is_true_when_upstream_is_needed_and_the_wait_is_long() -> None:
    estimator = FakeEstimator(wait=2.0)
    pool = make_pool(FakeRandomSource(), estimator=estimator)

    assert pool.should_defer(req()) is True
    estimator.wait = 0.5
    assert pool.should_defer(req()) is False


async def test_should_defer_counts_category_sets_queued_in_the_pool() -> None:
    estimator = FakeEstimator(wait=0.2)
    source = FakeRandomSource()
    source.gate = asyncio.Event()
    pool = make_pool(source, estimator=estimator)
    tasks = [
        asyncio.create_task(pool.take(req(guild=n, channel=n, categories=[f"c{n}"])))
        for n in range(4)
    ]
    await settle()

    assert pool.should_defer(req(guild=9, channel=9, categories=["other"])) is True
    source.gate.set()
    await asyncio.gather(*tasks)


# ---------------------------------------------------------------------- prefetch


async def test_prefetch_tops_up_a_hot_category_set_at_background_priority() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, prefetch_target=40, hot_threshold=2)
    await pool.take(req(guild=1, categories=["catgirl"]))
    await pool.take(req(guild=2, channel=20, categories=["catgirl"]))
    assert len(source.calls) == 1
    assert pool.stock(["catgirl"]) < 40

    assert await pool.prefetch_once() is True
    assert source.calls[-1].priority == BACKGROUND
    assert source.calls[-1].categories == ("catgirl",)
    assert pool.stock(["catgirl"]) >= 40
    assert await pool.prefetch_once() is False
    assert pool.metrics().prefetch_calls == 1


async def test_sets_only_scheduled_posts_ask_for_are_not_prefetched() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, prefetch_target=40, hot_threshold=2)
    for guild in range(1, 5):
        await pool.take(background_req(guild=guild, channel=guild * 10, categories=["catgirl"]))
    calls = len(source.calls)

    assert await pool.prefetch_once() is False
    assert len(source.calls) == calls


async def test_cold_category_set_is_not_prefetched() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, prefetch_target=40, hot_threshold=2)
    await pool.take(req(categories=["catgirl"]))

    assert await pool.prefetch_once() is False
    assert len(source.calls) == 1


async def test_demand_cools_down_over_time() -> None:
    clock = FakeClock()
    source = FakeRandomSource()
    pool = make_pool(source, clock, prefetch_target=40, hot_threshold=2, demand_half_life=60)
    await pool.take(req(guild=1, categories=["a"]))
    await pool.take(req(guild=2, channel=20, categories=["a"]))
    clock.advance(120)

    assert await pool.prefetch_once() is False


async def test_prefetch_waits_while_a_member_waits_on_the_pacer_or_the_pool() -> None:
    estimator = FakeEstimator(queue_length=1)
    source = FakeRandomSource()
    pool = make_pool(source, estimator=estimator, prefetch_target=40, hot_threshold=2)
    await pool.take(req(guild=1))
    await pool.take(req(guild=2, channel=20))

    assert await pool.prefetch_once() is False
    estimator.queue_length = 0
    source.gate = asyncio.Event()
    member = asyncio.create_task(pool.take(req(guild=3, channel=30, categories=["new"])))
    await settle()
    assert await pool.prefetch_once() is False
    assert all(call.priority == INTERACTIVE for call in source.calls)
    source.gate.set()
    await member


async def test_a_scheduled_post_waiting_for_a_quiet_moment_does_not_stop_prefetch() -> None:
    estimator = FakeEstimator(idle=0.5)  # members used the upstream half a second ago
    source = FakeRandomSource()
    pool = make_pool(source, estimator=estimator, prefetch_target=40, hot_threshold=2)
    await pool.take(req(guild=1, categories=["catgirl"]))
    await pool.take(req(guild=2, channel=20, categories=["catgirl"]))
    post = asyncio.create_task(pool.take(background_req(guild=3, channel=30, categories=["rare"])))
    await settle()
    assert [call.categories for call in source.calls] == [("catgirl",)]  # the post still waits

    assert await pool.prefetch_once() is True
    assert source.calls[-1].categories == ("catgirl",)
    assert pool.stock(["catgirl"]) >= 40
    post.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await post


async def test_prefetch_backs_off_a_set_whose_fetch_brought_nothing() -> None:
    clock = FakeClock()
    answers: list[list[Image] | Exception] = [[make_image(["rare"])]]
    source = FakeRandomSource(lambda cats, n: answers.pop(0) if answers else [])
    pool = make_pool(source, clock, prefetch_target=10, hot_threshold=1.5, prefetch_backoff=60)
    await pool.take(req(guild=1, categories=["rare"]))
    await pool.take(req(guild=2, channel=20, categories=["rare"]))

    assert await pool.prefetch_once() is True  # brings nothing
    assert await pool.prefetch_once() is False
    clock.advance(61)
    assert await pool.prefetch_once() is True


async def test_stop_ends_prefetch_even_when_a_round_loses_the_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With REDIS_URL a prefetch round goes through redis-py, whose asyncio.wait_for loses a cancel
    # landing as a command finishes on Python 3.11 (CPython gh-86296): stopping waited forever.
    pool = make_pool(FakeRandomSource(), prefetch_interval=0.01)
    lost: list[bool] = []

    async def losing_round() -> bool:
        try:
            await asyncio.sleep(0.5)  # the stop lands here, not in the short pause
        except asyncio.CancelledError:
            lost.append(True)
        return False

    monkeypatch.setattr(pool, "prefetch_once", losing_round)
    pool.start()
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(pool.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert stopping in done
    assert lost == [True]


async def test_start_runs_prefetch_in_the_background_and_stop_ends_it() -> None:
    source = FakeRandomSource()
    pool = make_pool(source, prefetch_target=60, hot_threshold=2, prefetch_interval=0.01)
    await pool.take(req(guild=1))
    await pool.take(req(guild=2, channel=20))

    pool.start()
    pool.start()  # idempotent
    for _ in range(500):
        if pool.stock() >= 60:
            break
        await asyncio.sleep(0.01)
    await pool.stop()
    calls = len(source.calls)
    await asyncio.sleep(0.05)

    assert pool.stock() >= 60
    assert [c.priority for c in source.calls[1:]] == [BACKGROUND] * (calls - 1)
    assert len(source.calls) == calls


# ---------------------------------------------------------------------- metrics


async def test_metrics_count_served_images_calls_hits_and_misses() -> None:
    pool = make_pool(FakeRandomSource())
    await pool.take(req(guild=1, count=2))
    await pool.take(req(guild=2, channel=20, count=3))

    m = pool.metrics()
    assert (m.requests, m.images_served, m.pool_hits, m.pool_misses) == (2, 5, 1, 1)
    assert (m.upstream_calls, m.upstream_images) == (1, 25)
    assert m.pool_size == 25
    assert m.waiting == 0


async def test_dm_requests_use_the_user_as_the_audience() -> None:
    pool = make_pool(FakeRandomSource())
    result = await pool.take(req(guild=None, channel=5, user=42))
    assert result.status is ServeStatus.FULL
    assert req(guild=None, user=42).audience == ("user", 42)


# ---------------------------------------------------------------------- cooldown


def test_cooldown_allows_rate_uses_per_window_then_reports_the_wait() -> None:
    clock = FakeClock(0.0)
    cooldown = Cooldown(2, 10.0, clock=clock)

    assert cooldown.check(1) is None
    clock.advance(3)
    assert cooldown.check(1) is None
    assert cooldown.check(1) == pytest.approx(7.0)
    clock.advance(7)
    assert cooldown.check(1) is None


def test_cooldown_is_per_user_and_refusals_do_not_extend_it() -> None:
    clock = FakeClock(0.0)
    cooldown = Cooldown(1, 5.0, clock=clock)

    assert cooldown.check(1) is None
    assert cooldown.check(2) is None
    clock.advance(4)
    assert cooldown.check(1) == pytest.approx(1.0)
    assert cooldown.retry_after(1) == pytest.approx(1.0)
    clock.advance(1)
    assert cooldown.retry_after(1) is None
    assert cooldown.check(1) is None
    cooldown.reset(1)
    assert cooldown.check(1) is None


def test_cooldown_refund_gives_back_a_use_that_did_not_count() -> None:
    clock = FakeClock(0.0)
    cooldown = Cooldown(2, 10.0, clock=clock)
    assert cooldown.check(1) is None
    assert cooldown.check(1) is None
    cooldown.refund(1)  # the second command was an input error
    assert cooldown.check(1) is None
    assert cooldown.check(1) == pytest.approx(10.0)
    cooldown.refund(2)  # nobody to refund: no error
    assert cooldown.check(2) is None


def test_cooldown_tracks_a_bounded_number_of_users() -> None:
    cooldown = Cooldown(1, 60.0, clock=FakeClock(0.0), max_users=3)
    for user in range(10):
        cooldown.check(user)
    assert len(cooldown) == 3


# ---------------------------------------------------------------------- TTL cache and coalescer


def test_ttl_cache_entry_expires_after_its_lifetime() -> None:
    clock = FakeClock(0.0)
    cache: TTLCache[str, int] = TTLCache(10, 5.0, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2, ttl=1.0)
    cache.set("c", 3, ttl=0)

    clock.advance(4.9)
    assert cache.get("a") == 1
    assert "b" not in cache
    assert "c" not in cache
    clock.advance(0.1)
    assert cache.get("a") is None
    assert cache.get("a", -1) == -1
    assert len(cache) == 0


def test_ttl_cache_evicts_least_recently_used_when_full() -> None:
    cache: TTLCache[str, int] = TTLCache(2, 60.0, clock=FakeClock(0.0))
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.set("c", 3)

    assert "a" in cache
    assert "c" in cache
    assert "b" not in cache


async def test_coalescer_shares_one_call_and_its_outcome() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    gate = asyncio.Event()
    started = 0

    async def work() -> int:
        nonlocal started
        started += 1
        await gate.wait()
        return 7

    tasks = [asyncio.create_task(coalescer.run("k", work)) for _ in range(10)]
    await settle()
    gate.set()

    assert await asyncio.gather(*tasks) == [7] * 10
    assert started == 1
    assert coalescer.joins == 9
    assert not coalescer.in_flight("k")


async def test_coalescer_shares_an_error_and_survives_a_cancelled_caller() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise ServerError("down", status=503)

    first = asyncio.create_task(coalescer.run("k", failing))
    second = asyncio.create_task(coalescer.run("k", failing))
    await settle()
    first.cancel()
    await settle()
    gate.set()

    with pytest.raises(ServerError):
        await second
    assert first.cancelled()
    assert coalescer.calls == 1


# ---------------------------------------------------------------------- cached lookups


class FakeLookupSource:
    """In-memory lookup endpoints that count calls and can be held at a gate."""

    def __init__(self, n_categories: int = 60) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.gate: asyncio.Event | None = None
        self.image_expires: float | None = EPOCH + 3600
        self.category_rows = [Category(id=f"c{n}", name=f"cat{n}") for n in range(n_categories)]

    async def _enter(self, what: str, arg: Any, priority: Any) -> None:
        self.calls.append((what, arg, priority))
        if self.gate is not None:
            await self.gate.wait()

    async def image(self, id: str, expiry: int | None = None, *, priority: Any) -> Image:
        await self._enter("image", id, priority)
        if id == "missing":
            raise NotFound("no such image", status=404, endpoint="/image/missing")
        return make_image(image_id=id, expires=self.image_expires)

    async def artist(self, id: str, *, priority: Any) -> Artist:
        await self._enter("artist", id, priority)
        return Artist(id=id, name="someone")

    async def artist_images(
        self,
        id: str,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Any,
    ) -> Page[Image]:
        await self._enter("artist_images", (id, limit, offset), priority)
        return Page(items=(make_image(expires=self.image_expires),))

    async def character(self, id: str, *, priority: Any) -> Character:
        await self._enter("character", id, priority)
        return Character(id=id, name="someone")

    async def categories(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Category]:
        await self._enter("categories", offset, priority)
        rows = self.category_rows[offset : offset + limit]
        return Page(
            items=tuple(rows),
            pagination=Pagination(limit, offset, len(rows), len(self.category_rows)),
        )

    async def artists(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Artist]:
        await self._enter("artists", offset, priority)
        return Page(items=(Artist(id="a1"), Artist(id="a2")) if offset == 0 else ())

    async def characters(
        self, search: str | None = None, limit: int = 25, offset: int = 0, *, priority: Any
    ) -> Page[Character]:
        await self._enter("characters", offset, priority)
        rows = [Character(id=f"ch{n}", name=f"c{n}") for n in range(25)]
        return Page(items=tuple(rows) if offset == 0 else ())

    async def stats(self, *, priority: Any) -> Stats:
        await self._enter("stats", None, priority)
        return Stats(images=10, ratings={"sfw": 10})


def make_lookups(
    source: FakeLookupSource, clock: FakeClock | None = None, **settings: Any
) -> CachedLookups:
    return CachedLookups(
        source,
        interactive_priority=INTERACTIVE,
        background_priority=BACKGROUND,
        settings=LookupSettings(**settings),
        clock=clock or FakeClock(0.0),
        wall_clock=FakeClock(EPOCH),
    )


async def test_concurrent_identical_lookups_make_one_upstream_call() -> None:
    source = FakeLookupSource()
    source.gate = asyncio.Event()
    lookups = make_lookups(source)

    tasks = [asyncio.create_task(lookups.image("abc")) for _ in range(30)]
    await settle()
    source.gate.set()
    results = await asyncio.gather(*tasks)

    assert len(source.calls) == 1
    assert all(r is results[0] for r in results)
    assert lookups.metrics().coalesced == 29


async def test_lookup_is_cached_until_its_lifetime_ends() -> None:
    clock = FakeClock(0.0)
    source = FakeLookupSource()
    lookups = make_lookups(source, clock, artist_ttl=60)

    await lookups.artist("a")
    clock.advance(59)
    await lookups.artist("a")
    assert len(source.calls) == 1
    clock.advance(1)
    await lookups.artist("a")
    assert len(source.calls) == 2
    assert lookups.metrics().hits == 1
    assert lookups.metrics().misses == 2


async def test_cached_image_is_dropped_before_its_signed_url_expires() -> None:
    clock = FakeClock(0.0)
    source = FakeLookupSource()
    source.image_expires = EPOCH + 700  # 100 s left once the 600 s margin is taken off
    lookups = make_lookups(source, clock, image_ttl=300)

    await lookups.image("x")
    clock.advance(99)
    await lookups.image("x")
    clock.advance(1)
    await lookups.image("x")

    assert [c[0] for c in source.calls] == ["image", "image"]


async def test_not_found_lookup_is_remembered_briefly() -> None:
    clock = FakeClock(0.0)
    source = FakeLookupSource()
    lookups = make_lookups(source, clock, not_found_ttl=30)

    for _ in range(3):
        with pytest.raises(NotFound):
            await lookups.image("missing")
    assert len(source.calls) == 1
    clock.advance(30)
    with pytest.raises(NotFound):
        await lookups.image("missing")
    assert len(source.calls) == 2


async def test_category_list_fetches_every_page_once() -> None:
    source = FakeLookupSource(n_categories=60)
    lookups = make_lookups(source)

    first = await lookups.category_list()
    second = await lookups.category_list()

    assert [c.name for c in first] == [f"cat{n}" for n in range(60)]
    assert second is first
    assert [c[1] for c in source.calls] == [0, 25, 50]


async def test_full_list_stops_on_an_empty_page_and_at_the_page_cap() -> None:
    source = FakeLookupSource(n_categories=500)
    lookups = make_lookups(source, max_list_pages=4)

    assert len(await lookups.artist_list()) == 2
    assert len(await lookups.character_list()) == 25  # full page, then an empty one
    assert len(await lookups.category_list()) == 100
    assert [c[0] for c in source.calls].count("categories") == 4


async def test_other_lookups_are_cached_by_their_arguments() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)

    await lookups.artist_images("a", 25, 0)
    await lookups.artist_images("a", 25, 0)
    await lookups.artist_images("a", 25, 25)
    await lookups.character("c")
    await lookups.character("c")
    await lookups.stats()
    await lookups.stats()

    assert [c[0] for c in source.calls] == ["artist_images", "artist_images", "character", "stats"]


async def test_background_lookup_uses_background_priority_and_joins_an_interactive_call() -> None:
    source = FakeLookupSource()
    source.gate = asyncio.Event()
    lookups = make_lookups(source)

    interactive = asyncio.create_task(lookups.stats())
    await settle()
    background = asyncio.create_task(lookups.stats(background=True))
    await settle()
    source.gate.set()
    await asyncio.gather(interactive, background)
    assert source.calls == [("stats", None, INTERACTIVE)]

    await lookups.category_list(background=True)
    assert {c[2] for c in source.calls if c[0] == "categories"} == {BACKGROUND}


async def test_interactive_lookup_does_not_wait_behind_a_background_call() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    source.gate = asyncio.Event()
    background = asyncio.create_task(lookups.character("c", background=True))
    await settle()

    source.gate = None  # the interactive call is not held
    member = await lookups.character("c")

    assert member.id == "c"
    assert not background.done()
    assert [c[2] for c in source.calls] == [BACKGROUND, INTERACTIVE]
    lookups.clear()
    background.cancel()


async def test_cancelling_a_flight_cancels_it_for_every_caller() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    gate = asyncio.Event()

    async def slow() -> int:
        await gate.wait()
        return 1

    callers = [asyncio.create_task(coalescer.run("k", slow)) for _ in range(2)]
    await settle()
    coalescer.cancel("k")
    coalescer.cancel("missing")  # nothing in flight: no error
    results = await asyncio.gather(*callers, return_exceptions=True)

    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert not coalescer.in_flight("k")
