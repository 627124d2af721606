"""Privacy deletions that survive a settings-store outage and a bot that was away.

A server that removed the bot keeps nothing here. When the database cannot be written at the
moment Discord says so, the deletion is retried until it can; a removal the bot never heard of
(it was stopped) is found by the sweep at READY, which a process running some of the shards
does for those shards' guilds only.
"""

from __future__ import annotations

import pytest

from bot import departures
from bot.nekos.models import Rating
from bot.store import open_store
from tests.e2e.conftest import Stack, eventually, message_text
from tests.pg_service import PgDatabase, tcp_proxy, wait_until

# Guild ids on a known shard of 2 (a guild's shard is (id >> 22) % 2), not in the emulator.
LEFT_ON_SHARD_0 = (1_000 << 22) | 5
LEFT_ON_SHARD_1 = (1_001 << 22) | 5


async def test_a_guild_left_during_a_database_outage_is_forgotten_once_it_is_back(
    stack: Stack,
    pg_database: PgDatabase,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(departures, "RETRY_INTERVAL", 0.5)
    async with tcp_proxy() as proxy, stack.run(DATABASE_URL=pg_database.url_via(proxy.port)) as bot:
        _, saved = await stack.configure(stack.owner, "default", level="questionable")
        assert "Saved." in message_text(saved)

        await proxy.stop()
        stack.emu.remove_guild(stack.guild)
        await wait_until(lambda: "retrying every" in caplog.text, timeout=20.0)  # tried, failed
        assert bot.departures.pending == 1

        await proxy.start()
        await wait_until(lambda: bot.departures.pending == 0, timeout=20.0)

    async with open_store(pg_database.url) as store:
        assert await store.stored_guild_ids() == frozenset()
    stack.emu.assert_no_violations()


async def test_ready_forgets_guilds_left_while_away_on_this_processs_shards_only(
    stack: Stack,
) -> None:
    async with open_store(stack.env["DATABASE_URL"]) as store:
        for guild_id in (stack.guild.id, LEFT_ON_SHARD_0, LEFT_ON_SHARD_1):
            await store.set_guild_default(guild_id, Rating.QUESTIONABLE, stack.owner.id)

    # This process runs shard 0 of 2: shard 1's guilds are another process's, not gone.
    async with stack.run(SHARD_COUNT="2", SHARD_IDS="0") as bot:

        async def swept() -> bool:
            return await bot.store.stored_guild_ids() == {stack.guild.id, LEFT_ON_SHARD_1}

        await eventually(swept, timeout=10.0)


async def test_a_single_process_sweeps_every_guild_it_left_while_away(stack: Stack) -> None:
    async with open_store(stack.env["DATABASE_URL"]) as store:
        for guild_id in (stack.guild.id, LEFT_ON_SHARD_0, LEFT_ON_SHARD_1):
            await store.set_guild_default(guild_id, Rating.QUESTIONABLE, stack.owner.id)

    async with stack.run() as bot:

        async def swept() -> bool:
            return await bot.store.stored_guild_ids() == {stack.guild.id}

        await eventually(swept, timeout=10.0)
        assert (await bot.store.get_guild_settings(stack.guild.id)).default is Rating.QUESTIONABLE
