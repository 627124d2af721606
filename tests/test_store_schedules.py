"""Scheduled posts in the store, on both backends: admins' changes, claims, leases, races."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.nekos.models import Rating
from bot.store import (
    ChangeScope,
    ClaimedPost,
    ScheduleLimitError,
    ScheduleSpec,
    ShardFilter,
)
from bot.store.sql import SqlSettingsStore
from tests.store_backends import make_store

GUILD = 10 << 22  # shard 0 of 2
OTHER_GUILD = (11 << 22) | 5  # shard 1 of 2
ADMIN = 7
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=2)


class Clock:
    """The admins' clock: settable."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def spec(channel: int, interval: int = 60, guild: int = GUILD, **kwargs: object) -> ScheduleSpec:
    return ScheduleSpec(guild_id=guild, channel_id=channel, interval=interval, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(backend_url: str, clock: Clock) -> AsyncIterator[SqlSettingsStore]:
    async with make_store(backend_url, clock=clock) as opened:
        yield opened


async def claim(store: SqlSettingsStore, seconds: float, owner: str = "p1") -> list[ClaimedPost]:
    return await store.claim_schedules(at(seconds), owner, lease=LEASE, limit=100)


async def test_a_schedule_is_kept_with_its_options_and_audited(store: SqlSettingsStore) -> None:
    asked = spec(1, 7200, categories=("Maid", "catgirl"), count=3, rating=Rating.QUESTIONABLE)
    schedule, replaced = await store.set_schedule(asked, ADMIN, max_per_guild=10)

    assert replaced is None
    [listed] = await store.list_schedules(GUILD)
    assert listed == schedule
    assert listed.spec.categories == ("catgirl", "maid")
    assert (listed.next_due, listed.last_post_at, listed.paused_reason) == (T0, None, None)
    [change] = await store.recent_changes(GUILD)
    assert change.scope is ChangeScope.AUTOPOST_SET
    assert change.description == (
        f"<@{ADMIN}> scheduled posts in <#1>: every 2h, 3 images, only questionable, "
        "with catgirl, maid"
    )


async def test_adding_again_replaces_and_waits_an_interval_after_the_last_post(
    store: SqlSettingsStore, clock: Clock
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    [claimed] = await claim(store, 0)
    await store.finish_schedule(claimed, at(1))
    clock.now = at(10)

    schedule, replaced = await store.set_schedule(spec(1, 3600), ADMIN, max_per_guild=10)

    assert replaced is not None
    assert replaced.spec.interval == 60
    assert schedule.next_due == at(3601)
    assert schedule.last_post_at == at(1)
    assert len(await store.list_schedules(GUILD)) == 1
    assert "(replaced the previous schedule)" in (await store.recent_changes(GUILD))[0].description


async def test_the_per_guild_cap_refuses_a_new_channel_but_not_a_replacement(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1), ADMIN, max_per_guild=2)
    await store.set_schedule(spec(2), ADMIN, max_per_guild=2)
    with pytest.raises(ScheduleLimitError):
        await store.set_schedule(spec(3), ADMIN, max_per_guild=2)
    await store.set_schedule(spec(2, 120), ADMIN, max_per_guild=2)
    await store.set_schedule(spec(3, guild=OTHER_GUILD), ADMIN, max_per_guild=2)

    assert [s.channel_id for s in await store.list_schedules(GUILD)] == [1, 2]


async def test_a_claim_moves_the_due_time_on_so_nobody_claims_it_again(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)

    [first] = await claim(store, 0.5, "p1")
    assert first.due_at == T0
    assert await claim(store, 1, "p2") == []
    assert await store.schedule_held(1, "p1")
    assert not await store.schedule_held(1, "p2")
    await store.finish_schedule(first, at(1))

    assert await claim(store, 59, "p2") == []
    [second] = await claim(store, 60.5, "p2")
    assert second.due_at == at(60)
    [listed] = await store.list_schedules(GUILD)
    assert (listed.last_post_at, listed.next_due, listed.lease_owner) == (at(1), at(120), "p2")


async def test_a_claim_that_was_never_finished_is_lost_once_not_posted_twice(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    await claim(store, 0, "crashed")  # the process dies before posting

    # The due time it took stays taken; the next one waits for its lease (2 minutes) to end.
    assert await claim(store, 60) == []
    [next_one] = await claim(store, 121)
    assert next_one.due_at == at(60)
    [listed] = await store.list_schedules(GUILD)
    assert listed.next_due == at(181)  # posted late by more than half: the grid restarts


async def test_a_schedule_is_never_claimed_within_half_an_interval_of_its_last_post(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    [first] = await claim(store, 0)
    await store.finish_schedule(first, at(45))  # a slow post: done 45 s after its due time

    assert await claim(store, 60) == []  # due, but only 15 s after the last post
    [second] = await claim(store, 75)
    assert second.due_at == at(60)


async def test_restart_between_due_times_posts_missed_ones_once(
    backend_url: str, clock: Clock
) -> None:
    async with make_store(backend_url, clock=clock) as first:
        await first.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
        [claimed] = await claim(first, 0)
        await first.finish_schedule(claimed, at(0))
    # Down for ten intervals; a new process opens the same database.
    async with make_store(backend_url, clock=clock) as second:
        caught_up = await claim(second, 600)
        again = await claim(second, 601)
        assert [c.due_at for c in caught_up] == [at(60)]
        assert again == []
        [listed] = await second.list_schedules(GUILD)
        assert listed.next_due == at(660)


async def test_a_clock_stepped_back_re_anchors_the_schedule_without_a_post(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    [claimed] = await claim(store, 0)
    await store.finish_schedule(claimed, at(0))

    assert await claim(store, -3600) == []  # an hour back: no post, but re-anchored
    [listed] = await store.list_schedules(GUILD)
    assert listed.next_due == at(-3600 + 60)
    assert await claim(store, -3600 + 59) == []
    assert len(await claim(store, -3600 + 60)) == 1


async def test_a_skip_released_with_a_retry_is_claimable_again_then_on_the_same_grid(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    [first] = await claim(store, 0)
    await store.release_schedule(first, retry_at=at(15))

    [listed] = await store.list_schedules(GUILD)
    assert listed.lease_owner is None
    assert listed.next_post == at(15)
    assert await claim(store, 14) == []
    [again] = await claim(store, 15)
    assert again.due_at == at(0)  # the same due time, so its lateness counts from then
    await store.finish_schedule(again, at(15))
    assert await claim(store, 59) == []
    [third] = await claim(store, 60)  # the grid held: not 15 + 60
    assert third.due_at == at(60)


async def test_release_and_suspend_end_the_lease(store: SqlSettingsStore) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    await store.set_schedule(spec(2, 60), ADMIN, max_per_guild=10)
    one, two = await claim(store, 0)
    await store.release_schedule(one)
    assert await store.suspend_schedule(two, "I'm missing **Send Messages** there") is True

    listed = {s.channel_id: s for s in await store.list_schedules(GUILD)}
    assert listed[1].lease_owner is None
    assert listed[1].last_post_at is None
    assert listed[2].paused_reason == "I'm missing **Send Messages** there"
    assert [c.schedule.channel_id for c in await claim(store, 60)] == [1]
    [change] = await store.recent_changes(GUILD, limit=1)
    assert change.description == (
        "The bot paused the scheduled posts of <#2>: I'm missing **Send Messages** there"
    )


async def test_pause_resume_remove_by_an_admin(store: SqlSettingsStore, clock: Clock) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    [claimed] = await claim(store, 0)
    paused = await store.pause_schedule(GUILD, 1, ADMIN, f"paused by <@{ADMIN}>")

    assert paused is not None
    assert paused.paused
    assert not await store.schedule_held(1, "p1")  # a post under way is dropped
    assert await store.suspend_schedule(claimed, "late failure") is False
    assert await claim(store, 600) == []

    clock.now = at(1000)
    resumed = await store.resume_schedule(GUILD, 1, ADMIN)
    assert resumed is not None
    assert resumed.next_due == at(1000)
    assert not resumed.paused
    assert await store.remove_schedule(GUILD, 1, ADMIN) is True
    assert await store.remove_schedule(GUILD, 1, ADMIN) is False
    assert await store.pause_schedule(GUILD, 1, ADMIN, "x") is None
    assert await store.resume_schedule(GUILD, 1, ADMIN) is None
    scopes = [c.scope for c in await store.recent_changes(GUILD)]
    assert scopes == [
        ChangeScope.AUTOPOST_REMOVE,
        ChangeScope.AUTOPOST_RESUME,
        ChangeScope.AUTOPOST_PAUSE,
        ChangeScope.AUTOPOST_SET,
    ]


async def test_claims_keep_to_the_shards_of_the_process(store: SqlSettingsStore) -> None:
    await store.set_schedule(spec(1), ADMIN, max_per_guild=10)
    await store.set_schedule(spec(2, guild=OTHER_GUILD), ADMIN, max_per_guild=10)
    shard_one = ShardFilter.of(2, [1])
    assert shard_one is not None

    mine = await store.claim_schedules(at(0), "p", lease=LEASE, limit=10, shards=shard_one)

    assert [c.schedule.guild_id for c in mine] == [OTHER_GUILD]
    assert ShardFilter.of(2, [0, 1]) is None
    assert ShardFilter.of(None, None) is None


async def test_deleted_channels_and_left_guilds_take_their_schedules(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1), ADMIN, max_per_guild=10)
    await store.set_schedule(spec(2), ADMIN, max_per_guild=10)

    assert await store.forget_channel(GUILD, 1) is True
    assert [s.channel_id for s in await store.list_schedules(GUILD)] == [2]
    assert (await store.recent_changes(GUILD, limit=1))[0].detail == "channel deleted"
    await store.forget_guild(GUILD)
    assert await store.list_schedules(GUILD) == []


async def test_migrate_store_copies_schedules_with_their_state(
    store: SqlSettingsStore, tmp_path: object, clock: Clock
) -> None:
    await store.set_schedule(spec(1, 60, rating=Rating.SFW), ADMIN, max_per_guild=10)
    [claimed] = await claim(store, 0)
    await store.finish_schedule(claimed, at(2))
    snapshot = await store.export_snapshot()

    async with make_store("sqlite:///:memory:", clock=clock) as copy:
        await copy.import_snapshot(snapshot)
        copied = await copy.export_snapshot()

    assert copied == snapshot
    assert str(snapshot.counts).endswith(", 1 scheduled post")
    [kept] = copied.schedules
    assert (kept.last_post_at, kept.next_due, kept.spec.rating) == (at(2), at(60), Rating.SFW)


async def test_two_processes_racing_claim_each_due_time_exactly_once(
    backend_url: str, clock: Clock
) -> None:
    async with (
        make_store(backend_url, clock=clock) as one,
        make_store(backend_url, clock=clock) as two,
    ):
        for channel in range(1, 41):
            await one.set_schedule(spec(channel, 60), ADMIN, max_per_guild=100)
        claimed: dict[tuple[int, dt.datetime], list[str]] = {}
        for second in range(0, 300, 7):
            rounds = await asyncio.gather(
                *(
                    store.claim_schedules(at(second), name, lease=LEASE, limit=15)
                    for store, name in ((one, "one"), (two, "two"), (one, "one"), (two, "two"))
                )
            )
            for posts in rounds:
                for post in posts:
                    claimed.setdefault((post.schedule.channel_id, post.due_at), []).append(
                        post.owner
                    )
                    await (one if post.owner == "one" else two).finish_schedule(post, at(second))

    assert all(len(owners) == 1 for owners in claimed.values()), claimed
    # Every schedule was posted about every minute over five minutes: 5 due times each.
    per_channel = [sum(1 for c, _ in claimed if c == ch) for ch in range(1, 41)]
    assert set(per_channel) <= {4, 5}, per_channel
    assert {o for owners in claimed.values() for o in owners} == {"one", "two"}


async def test_snapshot_schedules_compare_equal_field_by_field(store: SqlSettingsStore) -> None:
    schedule, _ = await store.set_schedule(spec(1), ADMIN, max_per_guild=10)
    [listed] = await store.list_schedules(GUILD)
    assert dataclasses.asdict(listed) == dataclasses.asdict(schedule)


async def test_a_lease_taken_before_the_clock_was_stepped_back_does_not_block(
    store: SqlSettingsStore,
) -> None:
    await store.set_schedule(spec(1, 60), ADMIN, max_per_guild=10)
    await claim(store, 0, "crashed")  # holds a lease until 120 on the old clock, then dies

    assert await claim(store, -3600) == []  # re-anchored: a wait of one interval from now
    [posted] = await claim(store, -3600 + 60)
    assert posted.owner == "p1"
