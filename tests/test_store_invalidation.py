"""Several processes, one settings database: a change made through one is enforced by all.

Each store instance here stands for a bot process (its own connection(s) and cache); one test
uses a real second process. The bounds are generous: these check that the change arrives, the
time it takes is measured by ``bench/settings_propagation.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import SettingsStore, open_store
from bot.store.postgres import PostgresSettingsStore
from tests import store_writer
from tests.pg_service import PgDatabase, wait_until

GUILD = 10
OTHER_GUILD = 11
ADMIN = 7
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def two_stores(backend_url: str) -> AsyncIterator[tuple[SettingsStore, SettingsStore]]:
    """Two stores on one database, as two bot processes would have."""
    async with open_store(backend_url) as first, open_store(backend_url) as second:
        yield first, second


async def _sees(store: SettingsStore, expected: GuildSettings, guild_id: int = GUILD) -> None:
    async def matches() -> bool:
        return await store.get_guild_settings(guild_id) == expected

    await wait_until(matches)


async def test_every_kind_of_change_reaches_the_other_store(
    two_stores: tuple[SettingsStore, SettingsStore],
) -> None:
    writer, reader = two_stores
    # The reader has the guilds cached before each change.
    assert await reader.get_guild_settings(GUILD) == GuildSettings()
    assert await reader.get_guild_settings(OTHER_GUILD) == GuildSettings()

    await writer.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
    await _sees(reader, GuildSettings(Rating.QUESTIONABLE, {}))

    await writer.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await writer.set_channel_override(GUILD, 2, Rating.SFW, ADMIN)
    await _sees(reader, GuildSettings(Rating.QUESTIONABLE, {1: Rating.NSFW, 2: Rating.SFW}))

    await writer.forget_channel(GUILD, 1)
    await _sees(reader, GuildSettings(Rating.QUESTIONABLE, {2: Rating.SFW}))

    await writer.reset_guild(GUILD, ADMIN)
    await _sees(reader, GuildSettings())

    await writer.set_guild_default(OTHER_GUILD, Rating.NSFW, ADMIN)
    await _sees(reader, GuildSettings(Rating.NSFW, {}), OTHER_GUILD)
    await writer.forget_guild(OTHER_GUILD)
    await _sees(reader, GuildSettings(), OTHER_GUILD)
    assert await reader.recent_changes(OTHER_GUILD) == []


async def test_changes_flow_both_ways(two_stores: tuple[SettingsStore, SettingsStore]) -> None:
    first, second = two_stores
    await first.get_guild_settings(GUILD)
    await second.get_guild_settings(GUILD)

    await first.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await _sees(second, GuildSettings(None, {1: Rating.NSFW}))
    await second.set_channel_override(GUILD, 1, None, ADMIN)
    await _sees(first, GuildSettings())

    audit = await first.recent_changes(GUILD)
    assert [(c.old, c.new) for c in audit] == [(Rating.NSFW, None), (None, Rating.NSFW)]


async def test_writes_by_another_process_are_enforced(backend_url: str) -> None:
    async with open_store(backend_url) as reader:
        assert await reader.get_guild_settings(GUILD) == GuildSettings()  # cached empty
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            store_writer.__file__,
            backend_url,
            str(GUILD),
            "0",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert writer.stdout is not None
        try:
            # Writes 0-3 set channels 1_000_000 + n; write 4 sets the default to sfw.
            acked = [await writer.stdout.readline() for _ in range(5)]
        finally:
            writer.kill()
            await writer.wait()
        assert acked == [f"ACK {n}\n".encode() for n in range(5)]

        async def has_the_acknowledged_writes() -> bool:
            settings = await reader.get_guild_settings(GUILD)
            return settings.default is Rating.SFW and all(
                settings.overrides.get(store_writer.CHANNEL_BASE + n) is store_writer.RATINGS[n % 3]
                for n in range(4)
            )

        await wait_until(has_the_acknowledged_writes)


# --------------------------------------------------------------------------- PostgreSQL feed


async def test_losing_the_change_feed_drops_the_cache(pg_database: PgDatabase) -> None:
    store = open_store(pg_database.url)
    assert isinstance(store, PostgresSettingsStore)
    async with store:
        await wait_until(lambda: store.listening)
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        assert (await store.get_guild_settings(GUILD)).default is Rating.SFW
        async with pg_database.connect() as conn:
            # A change whose notification this store never gets (as if sent while it was away).
            await conn.execute("UPDATE guild_settings SET default_rating = 'nsfw'")
        assert (await store.get_guild_settings(GUILD)).default is Rating.SFW  # cached

        assert await pg_database.terminate_backends("nekos-bot-listener") == 1

        async def reloaded() -> bool:
            return (await store.get_guild_settings(GUILD)).default is Rating.NSFW

        await wait_until(reloaded)
        await wait_until(lambda: store.listening)


async def test_while_the_change_feed_is_down_reads_go_to_the_database(
    pg_database: PgDatabase,
) -> None:
    store = open_store(pg_database.url)
    assert isinstance(store, PostgresSettingsStore)
    async with store, pg_database.connect() as raw:
        await wait_until(lambda: store.listening)
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        await store.get_guild_settings(GUILD)
        # Connections already open keep working; the feed cannot reconnect.
        await pg_database.allow_connections(False)
        try:
            await pg_database.terminate_backends("nekos-bot-listener")
            await wait_until(lambda: not store.listening)

            await raw.execute("UPDATE guild_settings SET default_rating = 'questionable'")
            # No notification, no cache: the very next read sees it.
            assert (await store.get_guild_settings(GUILD)).default is Rating.QUESTIONABLE
            await raw.execute("UPDATE guild_settings SET default_rating = 'nsfw'")
            assert (await store.get_guild_settings(GUILD)).default is Rating.NSFW
            assert "change feed reconnecting" in (await store.health_check()).detail
        finally:
            await pg_database.allow_connections(True)

        await wait_until(lambda: store.listening)
        settings = await store.get_guild_settings(GUILD)
        await raw.execute("UPDATE guild_settings SET default_rating = 'sfw'")  # no notification
        assert await store.get_guild_settings(GUILD) is settings  # cached again
