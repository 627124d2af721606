"""The poster loop on a fake clock, with a real (SQLite) store and a recording ``deliver``."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.autopost.poster import Poster, PostResult
from bot.store import ClaimedPost, ScheduleSpec
from bot.store.sqlite import SqliteSettingsStore

GUILD = 10 << 22
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class Clocks:
    """A wall clock and a monotonic clock that move together, unless the wall clock is stepped."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.offset = dt.timedelta(0)

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.mono - 1000.0) + self.offset

    def monotonic(self) -> float:
        return self.mono


class Channel:
    """Records what ``deliver`` was asked to post, at which (wall) time."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.posts: list[tuple[int, dt.datetime]] = []
        self.real_times: list[float] = []
        """Each post's monotonic time: what members live through, whatever the wall clock says."""
        self.answer: Callable[[ClaimedPost], PostResult] = lambda claim: PostResult.posted()
        self.attempts = 0
        self.attempted_at: list[dt.datetime] = []

    async def deliver(
        self, claim: ClaimedPost, still_held: Callable[[], Awaitable[bool]]
    ) -> PostResult:
        self.attempts += 1
        self.attempted_at.append(self.clocks.wall())
        result = self.answer(claim)
        if result.outcome.value == "posted":
            if not await still_held():
                return PostResult.dropped()
            self.posts.append((claim.schedule.channel_id, self.clocks.wall()))
            self.real_times.append(self.clocks.monotonic())
        return result


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
async def store(tmp_path: Path, clocks: Clocks) -> AsyncIterator[SqliteSettingsStore]:
    async with SqliteSettingsStore(tmp_path / "s.db", clock=clocks.wall) as opened:
        yield opened


def poster(store: SqliteSettingsStore, channel: Channel, clocks: Clocks) -> Poster:
    return Poster(store, channel.deliver, clock=clocks.wall, monotonic=clocks.monotonic)


async def run_for(p: Poster, clocks: Clocks, seconds: int) -> None:
    """Run the poster's rounds once a (fake) second for ``seconds``."""
    for _ in range(seconds):
        await p.run_once()
        await p.drain()
        clocks.mono += 1.0


def gaps(posts: list[tuple[int, dt.datetime]]) -> list[float]:
    """Seconds between consecutive posts, by the wall clock."""
    return [(b - a).total_seconds() for (_, a), (_, b) in itertools.pairwise(posts)]


async def add(store: SqliteSettingsStore, channel: int = 1, interval: int = 60) -> None:
    spec = ScheduleSpec(guild_id=GUILD, channel_id=channel, interval=interval)
    await store.set_schedule(spec, 7, max_per_guild=100)


async def test_posts_follow_the_cadence(store: SqliteSettingsStore, clocks: Clocks) -> None:
    channel = Channel(clocks)
    await add(store, interval=60)

    await run_for(poster(store, channel, clocks), clocks, 600)

    assert len(channel.posts) == 10
    assert set(gaps(channel.posts)) == {60.0}
    [listed] = await store.list_schedules(GUILD)
    assert listed.last_post_at == channel.posts[-1][1]


async def test_a_restart_between_due_times_neither_repeats_nor_skips(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    await add(store, interval=60)
    await run_for(poster(store, channel, clocks), clocks, 90)
    # A new process (fresh memory) takes over after 10 s of downtime.
    clocks.mono += 10
    await run_for(poster(store, channel, clocks), clocks, 150)

    assert len(channel.posts) == 5  # at 0, 60, 120, 180, 240
    assert set(gaps(channel.posts)) == {60.0}


async def test_a_long_downtime_gives_one_catch_up_post_not_one_per_missed_interval(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    await add(store, interval=60)
    await run_for(poster(store, channel, clocks), clocks, 30)
    clocks.mono += 3600  # an hour down
    await run_for(poster(store, channel, clocks), clocks, 90)

    assert len(channel.posts) == 3  # before, the catch-up, one interval after it
    assert gaps(channel.posts)[1] == 60.0


async def test_a_wall_clock_stepped_forward_causes_no_burst_and_no_close_posts(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    await add(store, interval=60)
    p = poster(store, channel, clocks)
    await run_for(p, clocks, 5)  # posted at 0
    clocks.offset += dt.timedelta(days=1)  # NTP steps the clock a day ahead
    await run_for(p, clocks, 200)

    assert 3 <= len(channel.posts) <= 4
    real_gaps = [b - a for a, b in itertools.pairwise(channel.real_times)]
    assert min(real_gaps) >= 30.0, real_gaps
    assert max(real_gaps) <= 120.0, real_gaps  # late by less than one interval


async def test_a_wall_clock_stepped_back_causes_no_stall_longer_than_an_interval(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    await add(store, interval=60)
    p = poster(store, channel, clocks)
    await run_for(p, clocks, 5)
    clocks.offset -= dt.timedelta(days=1)
    await run_for(p, clocks, 130)

    real_gaps = [b - a for a, b in itertools.pairwise(channel.real_times)]
    assert 2 <= len(channel.posts) <= 3, real_gaps
    assert all(30.0 <= gap <= 121.0 for gap in real_gaps), real_gaps


async def test_a_schedule_that_fails_for_good_is_paused_after_one_attempt(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    channel.answer = lambda claim: PostResult.paused("I'm missing **Send Messages** there")
    await add(store, interval=60)
    p = poster(store, channel, clocks)

    await run_for(p, clocks, 600)

    assert channel.attempts == 1
    assert p.stats.paused == 1
    [listed] = await store.list_schedules(GUILD)
    assert listed.paused_reason == "I'm missing **Send Messages** there"


async def test_nothing_to_show_skips_this_time_and_keeps_the_schedule(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    channel.answer = lambda claim: PostResult.skipped("Nothing matched right now")
    await add(store, interval=60)
    p = poster(store, channel, clocks)

    await run_for(p, clocks, 180)

    # Tried again a quarter interval later while within half an interval of the due time, then
    # left to the next due time: a bounded retry, never a loop.
    offsets = [(t - T0).total_seconds() for t in channel.attempted_at]
    assert offsets == [0, 15, 30, 60, 75, 90, 120, 135, 150]
    [listed] = await store.list_schedules(GUILD)
    assert listed.paused_reason is None
    assert listed.last_post_at is None


async def test_a_post_skipped_for_a_moment_comes_on_its_retry_and_the_cadence_holds(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)
    answers = iter([PostResult.skipped("The Nekos API isn't answering right now")])
    channel.answer = lambda claim: next(answers, PostResult.posted())
    await add(store, interval=3600)

    await run_for(poster(store, channel, clocks), clocks, 2 * 3600 + 1)

    # An hourly post skipped at 12:00 comes at 12:01, and the next at 13:00 as planned.
    assert [t.strftime("%H:%M:%S") for _, t in channel.posts] == [
        "12:01:00",
        "13:00:00",
        "14:00:00",
    ]


async def test_a_post_that_failed_unexpectedly_waits_for_its_next_due_time(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)

    def broken(claim: ClaimedPost) -> PostResult:
        raise RuntimeError("a bug")

    channel.answer = broken
    await add(store, interval=60)

    await run_for(poster(store, channel, clocks), clocks, 120)

    offsets = [(t - T0).total_seconds() for t in channel.attempted_at]
    assert offsets == [0, 60]  # logged once per due time, no retries of a bug


async def test_a_schedule_removed_while_its_post_was_being_made_is_not_posted(
    store: SqliteSettingsStore, clocks: Clocks
) -> None:
    channel = Channel(clocks)

    def removed_meanwhile(claim: ClaimedPost) -> PostResult:
        asyncio.get_running_loop().create_task(store.remove_schedule(GUILD, 1, 7))
        return PostResult.posted()

    await add(store, interval=60)
    channel.answer = removed_meanwhile
    original = channel.deliver

    async def slow(claim: ClaimedPost, still_held: Callable[[], Awaitable[bool]]) -> PostResult:
        result = channel.answer(claim)
        await asyncio.sleep(0.05)  # the admin's removal commits meanwhile
        if not await still_held():
            return PostResult.dropped()
        channel.posts.append((claim.schedule.channel_id, clocks.wall()))
        return result

    channel.deliver = slow  # type: ignore[method-assign]
    p = poster(store, channel, clocks)
    await run_for(p, clocks, 5)
    channel.deliver = original  # type: ignore[method-assign]

    assert channel.posts == []
    assert p.stats.dropped == 1


async def test_two_posters_on_one_store_post_each_due_time_once(
    store: SqliteSettingsStore, clocks: Clocks, tmp_path: Path
) -> None:
    channel = Channel(clocks)
    for n in range(1, 21):
        await add(store, channel=n, interval=60)
    async with SqliteSettingsStore(tmp_path / "s.db", clock=clocks.wall) as other:
        posters = [poster(store, channel, clocks), poster(other, channel, clocks)]
        for _ in range(300):
            await asyncio.gather(*(p.run_once() for p in posters))
            await asyncio.gather(*(p.drain() for p in posters))
            clocks.mono += 1.0

    per_channel = {n: [t for ch, t in channel.posts if ch == n] for n in range(1, 21)}
    assert all(len(times) == 5 for times in per_channel.values()), per_channel
    assert all(len(set(times)) == len(times) for times in per_channel.values())
    assert posters[0].stats.posted + posters[1].stats.posted == 100
