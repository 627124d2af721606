"""The PostgreSQL store's own behaviour: migrations under a lock, outages, recovery, secrecy.

Runs against the machine's real server (``tests/pg_service.py``), each test in a database of its
own. Outages are made with a loopback proxy between the store and the server: stopped, the
database refuses connections; paused, it stops answering.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import (
    SchemaTooNewError,
    StoreError,
    StoreUnavailable,
    open_store,
    parse_database_url,
)
from bot.store.postgres import PostgresSettingsStore, load_migrations
from bot.store.sql import Migration
from tests.pg_service import PgDatabase, TcpProxy, tcp_proxy, wait_until

GUILD = 10
ADMIN = 7
PASSWORD = "hunter2-do-not-show"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _store(url: str, **options: float) -> PostgresSettingsStore:
    return PostgresSettingsStore(parse_database_url(url), **options)


async def _reads_default(store: PostgresSettingsStore, rating: Rating) -> bool:
    """Whether the store answers, with ``rating`` as the default (``False`` while unreachable)."""
    try:
        return (await store.get_guild_settings(GUILD)).default is rating
    except StoreUnavailable:
        return False


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with tcp_proxy() as started:
        yield started


# --------------------------------------------------------------------------- migrations


async def _schema_versions(database: PgDatabase) -> list[int]:
    async with database.connect() as conn:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_version ORDER BY 1")]


async def test_five_stores_opening_at_once_apply_each_migration_once(
    pg_database: PgDatabase,
) -> None:
    stores = [_store(pg_database.url) for _ in range(5)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        await stores[0].set_guild_default(GUILD, Rating.NSFW, ADMIN)
        for store in stores:
            assert (await store.get_guild_settings(GUILD)).default is Rating.NSFW
    finally:
        await asyncio.gather(*(store.close() for store in stores))

    assert await _schema_versions(pg_database) == [m.version for m in load_migrations()]


async def test_processes_starting_at_once_apply_each_migration_once(
    pg_database: PgDatabase,
) -> None:
    script = (
        "import asyncio, sys\n"
        "from bot.store import open_store\n"
        "async def main():\n"
        "    async with open_store(sys.argv[1]) as store:\n"
        "        print((await store.health_check()).ok)\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            pg_database.url,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))

    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert out.decode().strip() == "True"
    assert await _schema_versions(pg_database) == [m.version for m in load_migrations()]


async def test_empty_database_gets_the_schema(pg_database: PgDatabase) -> None:
    async with _store(pg_database.url):
        pass
    async with pg_database.connect() as conn:
        tables = {
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        id_type = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'channel_overrides' AND column_name = 'channel_id'"
        )
    assert {"guild_settings", "channel_overrides", "settings_audit", "schema_version"} <= tables
    assert id_type == "bigint"  # Discord snowflakes need 64 bits


async def test_snowflake_sized_ids_round_trip(pg_database: PgDatabase) -> None:
    guild, channel, actor = 1_234_567_890_123_456_789, 987_654_321_098_765_432, 2**62
    async with _store(pg_database.url) as store:
        await store.set_channel_override(guild, channel, Rating.QUESTIONABLE, actor)
        settings = await store.get_guild_settings(guild)
        [change] = await store.recent_changes(guild)
    assert settings.overrides == {channel: Rating.QUESTIONABLE}
    assert (change.guild_id, change.channel_id, change.actor_id) == (guild, channel, actor)


async def test_database_from_newer_bot_is_refused(pg_database: PgDatabase) -> None:
    async with _store(pg_database.url):
        pass
    async with pg_database.connect() as conn:
        await conn.execute("INSERT INTO schema_version (version, name) VALUES (999, 'future')")

    with pytest.raises(SchemaTooNewError):
        await _store(pg_database.url).open()


async def test_failed_migration_rolls_back_completely(
    pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Migration(
        version=2,
        name="broken",
        sql="CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
    )
    monkeypatch.setattr(
        "bot.store.postgres.load_migrations", lambda: [*load_migrations()[:1], broken]
    )

    with pytest.raises(StoreError):
        await _store(pg_database.url).open()

    assert await _schema_versions(pg_database) == [1]
    async with pg_database.connect() as conn:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None


async def test_unreadable_rating_is_treated_as_sfw(pg_database: PgDatabase) -> None:
    async with _store(pg_database.url) as store:
        await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        async with pg_database.connect() as conn:
            # Someone loosened the schema and stored a label this bot does not know.
            await conn.execute(
                "ALTER TABLE guild_settings DROP CONSTRAINT guild_settings_default_rating_check"
            )
            await conn.execute("UPDATE guild_settings SET default_rating = 'spicy'")
            await conn.execute("SELECT pg_notify('nekos_settings', $1)", str(GUILD))

        async def default_is_sfw() -> bool:
            return (await store.get_guild_settings(GUILD)).default is Rating.SFW

        await wait_until(default_is_sfw)


# --------------------------------------------------------------------------- outages


async def test_database_down_fails_closed_and_the_store_recovers_by_itself(
    pg_database: PgDatabase, proxy: TcpProxy
) -> None:
    url = pg_database.url_via(proxy.port)
    async with _store(url, timeout=1.0, ping_interval=0.2) as store:
        await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        assert (await store.get_guild_settings(GUILD)).default is Rating.NSFW  # cached

        await proxy.stop()
        await wait_until(lambda: not store.listening)

        with pytest.raises(StoreUnavailable):
            await store.get_guild_settings(GUILD)  # not the cached nsfw
        with pytest.raises(StoreUnavailable):
            await store.set_channel_override(GUILD, 1, Rating.SFW, ADMIN)
        health = await store.health_check()
        assert not health.ok
        assert "not reachable" in health.detail
        assert "\n" not in health.detail

        await proxy.start()  # the same port: the database is back

        await wait_until(lambda: _reads_default(store, Rating.NSFW))
        await wait_until(lambda: store.listening)
        change = await store.set_channel_override(GUILD, 1, Rating.SFW, ADMIN)
        assert change.id is not None
        assert (await store.health_check()).ok
    # Nothing acknowledged was lost and the refused write left no trace.
    async with _store(pg_database.url) as fresh:
        changes = await fresh.recent_changes(GUILD)
        assert [(c.scope.value, c.new) for c in changes] == [
            ("channel", Rating.SFW),
            ("default", Rating.NSFW),
        ]


async def test_a_silent_network_counts_as_down(pg_database: PgDatabase, proxy: TcpProxy) -> None:
    url = pg_database.url_via(proxy.port)
    async with _store(url, timeout=0.5, ping_interval=0.2) as store:
        await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        await store.get_guild_settings(GUILD)

        proxy.pause()
        await wait_until(lambda: not store.listening)
        with pytest.raises(StoreUnavailable):
            await store.get_guild_settings(GUILD)

        proxy.resume()
        await proxy.stop()  # drop the stalled connections, as a network that heals would
        await proxy.start()

        await wait_until(lambda: _reads_default(store, Rating.NSFW))


async def test_terminated_connections_are_replaced_without_a_restart(
    pg_database: PgDatabase,
) -> None:
    async with _store(pg_database.url) as store:
        await store.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
        await wait_until(lambda: store.listening)

        assert await pg_database.terminate_backends() >= 2  # the pool's and the listener's

        # The pool replaces its dead connection on the first use (one retry, no error).
        change = await store.set_channel_override(GUILD, 3, Rating.NSFW, ADMIN)
        assert change.id is not None
        await wait_until(lambda: store.listening)
        assert (await store.get_guild_settings(GUILD)).overrides == {3: Rating.NSFW}


async def test_open_fails_with_a_clear_error_when_nothing_listens(pg_database: PgDatabase) -> None:
    async with tcp_proxy() as closed:
        port = closed.port
    store = open_store(pg_database.url_via(port, password=PASSWORD))

    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL at") as info:
        await store.open()

    assert PASSWORD not in str(info.value)
    assert "********" in str(info.value)


# --------------------------------------------------------------------------- secrecy


async def test_password_never_shows_in_reprs_errors_health_or_logs(
    pg_database: PgDatabase, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = pg_database.url_via(proxy.port, password=PASSWORD)  # trust auth ignores it
    shown: list[str] = []
    store = open_store(url)
    async with store:
        assert isinstance(store, PostgresSettingsStore)
        await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        shown += [repr(store), str(store), (await store.health_check()).detail]
        await proxy.stop()
        await wait_until(lambda: not store.listening)
        for attempt in (
            store.get_guild_settings(GUILD),
            store.set_guild_default(GUILD, Rating.SFW, ADMIN),
            store.recent_changes(GUILD),
        ):
            with pytest.raises(StoreError) as info:
                await attempt
            shown += [str(info.value), repr(info.value), str(info.value.__cause__)]
        shown.append((await store.health_check()).detail)

    assert all(PASSWORD not in text for text in shown), shown
    assert "********" in shown[0]
    assert PASSWORD not in caplog.text
    assert "settings change feed lost" in caplog.text


async def test_notification_payloads_other_than_a_guild_drop_everything(
    pg_database: PgDatabase,
) -> None:
    async with _store(pg_database.url) as store:
        await wait_until(lambda: store.listening)
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        assert (await store.get_guild_settings(GUILD)).default is Rating.SFW
        async with pg_database.connect() as conn:
            await conn.execute("UPDATE guild_settings SET default_rating = 'nsfw'")
            await conn.execute("NOTIFY nekos_settings, '*'")

        async def reloaded() -> bool:
            return (await store.get_guild_settings(GUILD)) == GuildSettings(Rating.NSFW, {})

        await wait_until(reloaded)
