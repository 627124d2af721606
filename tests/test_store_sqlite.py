"""The SQLite store's own behaviour: its file, WAL, the cache, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import SchemaTooNewError, SettingsStore, StoreError
from bot.store.sqlite import MEMORY, Migration, SqliteSettingsStore, load_migrations, migrate

GUILD = 10
ADMIN = 7


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteSettingsStore]:
    async with SqliteSettingsStore(db_path) as opened:
        yield opened


@contextlib.contextmanager
def _raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection behind the store's back; commits and closes on exit."""
    connection = sqlite3.connect(db_path)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


# --------------------------------------------------------------------------- the file


async def test_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "bot.db"

    async with SqliteSettingsStore(path) as store:
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)

    assert path.is_file()


async def test_database_uses_wal_journal(store: SettingsStore, db_path: Path) -> None:
    with _raw(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    # Several shard processes started together on one data folder (each store has a connection
    # and a thread of its own, as in separate processes).
    # The race is narrow (about 1 open in 500 failed before): several fresh files, 16 each.
    for attempt in range(10):
        path = tmp_path / f"settings-{attempt}.db"
        stores = [SqliteSettingsStore(path) for _ in range(16)]
        try:
            await asyncio.gather(*(store.open() for store in stores))
            await stores[0].set_channel_override(1, 10, Rating.NSFW, 5)
            seen = await stores[-1].get_guild_settings(1)
            assert seen.configured_max(10) is Rating.NSFW
        finally:
            for store in stores:
                await store.close()


async def test_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    directory = tmp_path / "is-a-directory.db"
    directory.mkdir()

    with pytest.raises(StoreError):
        await SqliteSettingsStore(directory).open()


async def test_in_memory_store_works() -> None:
    async with SqliteSettingsStore(MEMORY) as store:
        await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
        assert (await store.get_guild_settings(GUILD)).overrides[1] is Rating.NSFW


# --------------------------------------------------------------------------- the cache


async def test_reads_are_cached_and_writes_go_through(db_path: Path) -> None:
    # An hour between checks for other writers: this test sees the cache alone.
    async with SqliteSettingsStore(db_path, change_check_interval=3600) as store:
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        first = await store.get_guild_settings(GUILD)
        # Change the file behind the store's back: a cached read must not see it.
        with _raw(db_path) as raw:
            raw.execute(
                "UPDATE guild_settings SET default_rating = 'nsfw' WHERE guild_id = ?", (GUILD,)
            )

        assert await store.get_guild_settings(GUILD) is first

        await store.set_channel_override(GUILD, 5, Rating.QUESTIONABLE, ADMIN)
        after_write = await store.get_guild_settings(GUILD)
    assert after_write.overrides[5] is Rating.QUESTIONABLE
    assert after_write.default is Rating.SFW  # still the cached default: write-through, no reload


async def test_another_connections_commit_drops_the_cache(db_path: Path) -> None:
    # Checking on every read: the change is seen by the next read.
    async with SqliteSettingsStore(db_path, change_check_interval=0) as store:
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        await store.set_channel_override(GUILD, 5, Rating.QUESTIONABLE, ADMIN)
        assert (await store.get_guild_settings(GUILD)).default is Rating.SFW
        with _raw(db_path) as raw:
            raw.execute("UPDATE guild_settings SET default_rating = 'nsfw'")
            raw.execute("DELETE FROM channel_overrides")

        assert await store.get_guild_settings(GUILD) == GuildSettings(Rating.NSFW, {})


async def test_own_writes_do_not_drop_the_cache(db_path: Path) -> None:
    async with SqliteSettingsStore(db_path, change_check_interval=0) as store:
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)
        cached = await store.get_guild_settings(GUILD)
        await store.set_guild_default(GUILD + 1, Rating.NSFW, ADMIN)

        assert await store.get_guild_settings(GUILD) is cached


# --------------------------------------------------------------------------- migrations


def _schema(db_path: Path) -> tuple[list[int], set[str]]:
    with _raw(db_path) as raw:
        versions = [r[0] for r in raw.execute("SELECT version FROM schema_version ORDER BY 1")]
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    return versions, indexes


def test_packaged_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()

    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert len(migrations) >= 2


async def test_empty_database_gets_every_migration(store: SettingsStore, db_path: Path) -> None:
    versions, indexes = _schema(db_path)

    assert versions == [m.version for m in load_migrations()]
    assert "settings_audit_by_guild" in indexes


async def test_version_1_database_is_upgraded_and_keeps_data(db_path: Path) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as db:
        assert await migrate(db, load_migrations()[:1]) == [1]
        await db.execute("INSERT INTO guild_settings VALUES (?, 'questionable')", (GUILD,))
        await db.execute("INSERT INTO channel_overrides VALUES (?, 5, 'nsfw')", (GUILD,))
    versions, indexes = _schema(db_path)
    assert versions == [1]
    assert "settings_audit_by_guild" not in indexes

    async with SqliteSettingsStore(db_path) as store:
        settings = await store.get_guild_settings(GUILD)
        change = await store.set_channel_override(GUILD, 5, Rating.SFW, ADMIN)

    versions, indexes = _schema(db_path)
    assert versions == [m.version for m in load_migrations()]
    assert "settings_audit_by_guild" in indexes
    assert settings == GuildSettings(Rating.QUESTIONABLE, {5: Rating.NSFW})
    assert change.old is Rating.NSFW


async def test_audit_trail_survives_the_rebuild_for_schedules(db_path: Path) -> None:
    # 0003 rebuilds settings_audit (a new CHECK): rows, ids and the id sequence must survive.
    async with aiosqlite.connect(db_path, isolation_level=None) as db:
        assert await migrate(db, load_migrations()[:2]) == [1, 2]
        for row_id in (1, 2, 7):
            await db.execute(
                "INSERT INTO settings_audit (id, guild_id, actor_id, scope, channel_id,"
                " old_rating, new_rating, changed_at)"
                " VALUES (?, ?, ?, 'channel', 5, NULL, 'nsfw', '2024-05-01T10:00:00+00:00')",
                (row_id, GUILD if row_id < 7 else GUILD + 1, ADMIN),
            )
        # Guild GUILD + 1 is forgotten: its row goes, but its id must never be reused.
        await db.execute("DELETE FROM settings_audit WHERE id = 7")

    async with SqliteSettingsStore(db_path) as store:
        kept = await store.recent_changes(GUILD)
        change = await store.set_guild_default(GUILD, Rating.SFW, ADMIN)

    assert [c.id for c in kept] == [2, 1]
    assert kept[0].description == f"<@{ADMIN}> set <#5> to nsfw (was: server default)"
    assert change.id == 8


async def test_database_from_newer_bot_is_refused(db_path: Path) -> None:
    async with SqliteSettingsStore(db_path):
        pass
    with _raw(db_path) as raw:
        raw.execute("INSERT INTO schema_version VALUES (999, 'future', '2099-01-01')")

    with pytest.raises(SchemaTooNewError):
        await SqliteSettingsStore(db_path).open()


async def test_failed_migration_rolls_back_completely(db_path: Path) -> None:
    broken = Migration(
        version=2,
        name="broken",
        sql="CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
    )
    async with aiosqlite.connect(db_path, isolation_level=None) as db:
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, [load_migrations()[0], broken])
        assert not db.in_transaction

    versions, _ = _schema(db_path)
    with _raw(db_path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert versions == [1]
    assert "half_done" not in tables


async def test_migration_with_semicolons_in_strings_and_comments(db_path: Path) -> None:
    tricky = Migration(
        version=1,
        name="tricky",
        sql="-- a comment; with a semicolon\n"
        "CREATE TABLE t (v TEXT DEFAULT 'a;b');\n"
        "INSERT INTO t (v) VALUES ('x;y'); INSERT INTO t DEFAULT VALUES;\n",
    )
    async with aiosqlite.connect(db_path, isolation_level=None) as db:
        await migrate(db, [tricky])
        async with db.execute("SELECT v FROM t ORDER BY rowid") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == ["x;y", "a;b"]
