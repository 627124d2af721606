"""Forgetting departed guilds and deleted channels: now, after a store outage, and by the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.departures import Departures
from bot.nekos.models import Rating
from bot.sharding import owned_by
from bot.store.sqlite import SqliteSettingsStore

ADMIN = 7
# Guild ids whose shard (of 2) is known by construction: the shard is (id >> 22) % 2.
ON_SHARD_0 = (10 << 22) | 1
ALSO_ON_SHARD_0 = (12 << 22) | 2
ON_SHARD_1 = (11 << 22) | 3


class Retries:
    """The departures' sleep between attempts: no real wait; a test can await the first retry."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.first = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.first.set()
        await asyncio.sleep(0.001)

    async def started(self) -> None:
        await asyncio.wait_for(self.first.wait(), 5.0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteSettingsStore]:
    async with SqliteSettingsStore(tmp_path / "settings.db") as opened:
        yield opened


async def configure(store: SqliteSettingsStore, *guild_ids: int) -> None:
    for guild_id in guild_ids:
        await store.set_guild_default(guild_id, Rating.QUESTIONABLE, ADMIN)
        await store.set_channel_override(guild_id, guild_id + 100, Rating.NSFW, ADMIN)


async def test_a_departed_guild_is_forgotten_at_once(store: SqliteSettingsStore) -> None:
    await configure(store, ON_SHARD_0, ON_SHARD_1)
    departures = Departures(store, is_member=lambda g: False)
    departures.guild_removed(ON_SHARD_0)
    await asyncio.wait_for(departures.wait(), 5.0)
    assert await store.stored_guild_ids() == {ON_SHARD_1}


async def test_a_removal_during_a_store_outage_is_done_when_it_is_back(
    store: SqliteSettingsStore, caplog: pytest.LogCaptureFixture
) -> None:
    await configure(store, ON_SHARD_0, ON_SHARD_1)
    retries = Retries()
    departures = Departures(store, is_member=lambda g: False, sleep=retries.sleep)
    await store.close()  # the store is unreachable when Discord says the bot left
    departures.guild_removed(ON_SHARD_0)
    departures.channel_deleted(ON_SHARD_1, ON_SHARD_1 + 100)
    await retries.started()  # the first attempt failed and the task waits to retry
    assert departures.pending == 2
    assert "retrying every 60 s" in caplog.text
    assert retries.asked[0] == 60.0

    await store.open()
    await asyncio.wait_for(departures.wait(), 5.0)
    assert departures.pending == 0
    assert await store.stored_guild_ids() == {ON_SHARD_1}
    assert ON_SHARD_1 + 100 not in (await store.get_guild_settings(ON_SHARD_1)).overrides
    assert "pending deletions are done" in caplog.text
    await departures.close()


async def test_a_guild_rejoined_before_the_retry_keeps_its_new_settings(
    store: SqliteSettingsStore,
) -> None:
    await configure(store, ON_SHARD_0)
    retries = Retries()
    members: set[int] = set()
    departures = Departures(store, is_member=members.__contains__, sleep=retries.sleep)
    await store.close()
    departures.guild_removed(ON_SHARD_0)
    await retries.started()
    members.add(ON_SHARD_0)  # invited back while the store was down
    await store.open()
    await asyncio.wait_for(departures.wait(), 5.0)
    assert await store.stored_guild_ids() == {ON_SHARD_0}
    assert (await store.get_guild_settings(ON_SHARD_0)).default is Rating.QUESTIONABLE


async def test_the_sweep_forgets_only_absent_guilds_of_this_processs_shards(
    store: SqliteSettingsStore,
) -> None:
    await configure(store, ON_SHARD_0, ALSO_ON_SHARD_0, ON_SHARD_1)
    # This process runs shard 0 of 2 and is in ALSO_ON_SHARD_0 only. ON_SHARD_1 is absent from
    # its cache because another process runs that shard: it is not gone.
    departures = Departures(store, is_member={ALSO_ON_SHARD_0}.__contains__)
    departures.sweep(owned_by([0], 2))
    await asyncio.wait_for(departures.wait(), 5.0)
    assert await store.stored_guild_ids() == {ALSO_ON_SHARD_0, ON_SHARD_1}
    assert await store.recent_changes(ON_SHARD_0) == []


async def test_a_sweep_that_meets_an_outage_runs_when_the_store_is_back(
    store: SqliteSettingsStore,
) -> None:
    await configure(store, ON_SHARD_0, ON_SHARD_1)
    retries = Retries()
    departures = Departures(store, is_member=lambda g: False, sleep=retries.sleep)
    await store.close()
    departures.sweep(owned_by([0, 1], 2))
    await retries.started()
    assert departures.pending == 1
    await store.open()
    await asyncio.wait_for(departures.wait(), 5.0)
    assert await store.stored_guild_ids() == frozenset()


async def test_closing_stops_the_retries(store: SqliteSettingsStore) -> None:
    retries = Retries()
    departures = Departures(store, is_member=lambda g: False, sleep=retries.sleep)
    await store.close()
    departures.guild_removed(ON_SHARD_0)
    await retries.started()
    await asyncio.wait_for(departures.close(), 5.0)
    assert departures.pending == 1  # swept at the next start instead
