"""The settings store: persistence, audit trail, durability, migrations, URL parsing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import (
    Change,
    ChangeScope,
    SchemaTooNewError,
    SettingsStore,
    StoreClosedError,
    StoreError,
    open_store,
    sqlite_path_from_url,
)
from bot.store.sqlite import MEMORY, Migration, SqliteSettingsStore, load_migrations, migrate
from tests import store_writer

GUILD = 10
OTHER_GUILD = 11
ADMIN = 7
REPO_ROOT = Path(__file__).resolve().parents[1]


class StepClock:
    """A clock that advances one second per reading, so audit times are predictable."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteSettingsStore]:
    async with SqliteSettingsStore(db_path, clock=StepClock()) as opened:
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


# --------------------------------------------------------------------------- settings


async def test_new_guild_has_empty_settings(store: SettingsStore) -> None:
    assert await store.get_guild_settings(GUILD) == GuildSettings()


async def test_set_and_get_default_and_overrides(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 2, Rating.SFW, ADMIN)

    settings = await store.get_guild_settings(GUILD)

    assert settings.default is Rating.QUESTIONABLE
    assert dict(settings.overrides) == {1: Rating.NSFW, 2: Rating.SFW}
    assert await store.get_guild_settings(OTHER_GUILD) == GuildSettings()


async def test_clearing_override_and_default(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)

    await store.set_channel_override(GUILD, 1, None, ADMIN)
    await store.set_guild_default(GUILD, None, ADMIN)

    assert await store.get_guild_settings(GUILD) == GuildSettings()


async def test_reads_are_cached_and_writes_go_through(
    store: SqliteSettingsStore, db_path: Path
) -> None:
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


async def test_settings_survive_restart(db_path: Path) -> None:
    async with SqliteSettingsStore(db_path) as first:
        await first.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        await first.set_channel_override(GUILD, 3, Rating.QUESTIONABLE, ADMIN)
        before = await first.get_guild_settings(GUILD)

    async with SqliteSettingsStore(db_path) as second:
        assert await second.get_guild_settings(GUILD) == before
        assert len(await second.recent_changes(GUILD)) == 2


async def test_store_can_be_reopened_after_close(db_path: Path) -> None:
    store = SqliteSettingsStore(db_path)
    await store.open()
    await store.open()  # idempotent
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.close()
    await store.close()  # idempotent
    await store.open()
    try:
        assert (await store.get_guild_settings(GUILD)).default is Rating.NSFW
    finally:
        await store.close()


async def test_closed_store_refuses_use(db_path: Path) -> None:
    store = SqliteSettingsStore(db_path)

    with pytest.raises(StoreClosedError):
        await store.get_guild_settings(GUILD)
    with pytest.raises(StoreClosedError):
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)


async def test_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "bot.db"

    async with SqliteSettingsStore(path) as store:
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)

    assert path.is_file()


async def test_database_uses_wal_journal(store: SettingsStore, db_path: Path) -> None:
    with _raw(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    directory = tmp_path / "is-a-directory.db"
    directory.mkdir()

    with pytest.raises(StoreError):
        await SqliteSettingsStore(directory).open()


async def test_in_memory_store_works() -> None:
    async with SqliteSettingsStore(MEMORY) as store:
        await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
        assert (await store.get_guild_settings(GUILD)).overrides[1] is Rating.NSFW


# --------------------------------------------------------------------------- audit


async def test_changes_are_audited_newest_first(store: SettingsStore) -> None:
    first = await store.set_guild_default(GUILD, Rating.QUESTIONABLE, 1)
    second = await store.set_channel_override(GUILD, 42, Rating.NSFW, 2)
    third = await store.set_channel_override(GUILD, 42, Rating.SFW, 3)

    changes = await store.recent_changes(GUILD)

    assert changes == [third, second, first]
    assert [c.id for c in changes] == sorted((c.id for c in changes if c.id), reverse=True)
    assert (first.scope, first.channel_id, first.old, first.new, first.actor_id) == (
        ChangeScope.DEFAULT,
        None,
        None,
        Rating.QUESTIONABLE,
        1,
    )
    assert (third.scope, third.channel_id, third.old, third.new) == (
        ChangeScope.CHANNEL,
        42,
        Rating.NSFW,
        Rating.SFW,
    )
    assert first.at < second.at < third.at
    assert first.at.tzinfo is not None


async def test_change_descriptions_are_readable(store: SettingsStore) -> None:
    set_default = await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    set_channel = await store.set_channel_override(GUILD, 42, Rating.QUESTIONABLE, ADMIN)
    cleared = await store.set_channel_override(GUILD, 42, None, ADMIN)
    reset = await store.reset_guild(GUILD, ADMIN)

    assert set_default.description == "<@7> set the server default to nsfw (was: not set)"
    assert set_channel.description == "<@7> set <#42> to questionable (was: server default)"
    assert "cleared the override of <#42> (was: questionable)" in cleared.description
    assert reset.description == (
        "<@7> reset the settings (default was: nsfw; 0 channel overrides cleared)"
    )


async def test_recent_changes_limit(store: SettingsStore) -> None:
    for channel in range(15):
        await store.set_channel_override(GUILD, channel, Rating.NSFW, ADMIN)

    assert len(await store.recent_changes(GUILD)) == 10
    latest = await store.recent_changes(GUILD, limit=3)
    assert [c.channel_id for c in latest] == [14, 13, 12]
    assert await store.recent_changes(GUILD, limit=0) == []
    assert await store.recent_changes(OTHER_GUILD) == []


async def test_no_op_is_returned_but_not_recorded(store: SettingsStore) -> None:
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)

    again = await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    unset = await store.set_guild_default(GUILD, None, ADMIN)

    assert not again.changed
    assert again.id is None
    assert not unset.changed
    assert len(await store.recent_changes(GUILD)) == 1


async def test_reset_clears_everything_and_records_one_change(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
    for channel in (1, 2, 3):
        await store.set_channel_override(GUILD, channel, Rating.NSFW, ADMIN)
    await store.set_channel_override(OTHER_GUILD, 1, Rating.NSFW, ADMIN)

    reset = await store.reset_guild(GUILD, 99)

    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert (reset.scope, reset.old, reset.overrides_cleared, reset.actor_id) == (
        ChangeScope.RESET,
        Rating.QUESTIONABLE,
        3,
        99,
    )
    assert (await store.recent_changes(GUILD, limit=1)) == [reset]
    assert (await store.get_guild_settings(OTHER_GUILD)).overrides == {1: Rating.NSFW}


async def test_reset_of_empty_guild_records_nothing(store: SettingsStore) -> None:
    reset = await store.reset_guild(GUILD, ADMIN)

    assert not reset.changed
    assert await store.recent_changes(GUILD) == []


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_writes_all_land_with_their_audit_rows(store: SettingsStore) -> None:
    ratings = list(Rating)

    await asyncio.gather(
        *(
            store.set_channel_override(GUILD, channel, ratings[channel % 3], actor_id=channel)
            for channel in range(200)
        )
    )

    settings = await store.get_guild_settings(GUILD)
    assert dict(settings.overrides) == {c: ratings[c % 3] for c in range(200)}
    changes = await store.recent_changes(GUILD, limit=1000)
    assert len(changes) == 200
    assert {c.actor_id for c in changes} == set(range(200))


async def test_concurrent_writes_to_one_channel_form_a_consistent_chain(
    store: SettingsStore,
) -> None:
    sequence = [Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW] * 67  # consecutive values differ

    returned = await asyncio.gather(
        *(store.set_channel_override(GUILD, 1, r, actor_id=i) for i, r in enumerate(sequence))
    )

    changes = list(reversed(await store.recent_changes(GUILD, limit=1000)))
    assert sorted(returned, key=lambda c: c.id or 0) == changes
    previous: Rating | None = None
    for change in changes:
        assert change.old == previous
        previous = change.new
    assert (await store.get_guild_settings(GUILD)).overrides[1] == previous


# --------------------------------------------------------------------------- kill -9


def _acks(output: str) -> list[int]:
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith("ACK ")]


def _run_writer_and_kill(
    db_path: Path, first: int, kill_after: int, rng: random.Random
) -> list[int]:
    """Start the writer, SIGKILL it at a random moment after ``kill_after`` acknowledgements.

    The kill waits a random fraction of a few write durations after the last ACK it read, so it
    lands anywhere inside a write, not always at its start. Returns every ACK the writer printed.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, store_writer.__file__, str(db_path), str(GUILD), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    times: list[float] = []
    try:
        while len(seen) < kill_after:
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"writer exited early: {stderr}")
            seen.append(line)
            times.append(time.monotonic())
        mean_gap = (times[-1] - times[0]) / (len(times) - 1)
        time.sleep(rng.uniform(0, 3 * mean_gap))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return _acks("".join(seen) + rest)


async def test_acknowledged_writes_survive_kill_9(db_path: Path) -> None:
    rng = random.Random(9)
    acked: list[int] = []
    rounds = 6
    for round_number in range(rounds):
        first = round_number * 100_000  # fresh actor ids and channels each round
        acked += _run_writer_and_kill(db_path, first, rng.randint(10, 40), rng)
    assert len(acked) >= rounds * 10

    async with SqliteSettingsStore(db_path) as store:
        settings = await store.get_guild_settings(GUILD)
        changes = list(reversed(await store.recent_changes(GUILD, limit=1_000_000)))

    recorded_actors = {c.actor_id for c in changes}
    # Every acknowledged write is there ...
    assert set(acked) <= recorded_actors
    # ... and at most one committed-but-unacknowledged write per kill.
    assert len(recorded_actors - set(acked)) <= rounds
    assert len(changes) == len(recorded_actors)

    # No partial state: channel settings and channel audit rows match one to one.
    channel_rows = {c.channel_id: c for c in changes if c.scope is ChangeScope.CHANNEL}
    assert set(channel_rows) == set(settings.overrides)
    for channel_id, change in channel_rows.items():
        assert change.new == settings.overrides[channel_id]
        assert change.new == store_writer.RATINGS[change.actor_id % 3]
    # The default's audit rows chain old -> new and end at the stored default.
    previous: Rating | None = None
    for change in (c for c in changes if c.scope is ChangeScope.DEFAULT):
        assert store_writer.is_default_write(change.actor_id)
        assert change.old == previous
        previous = change.new
    assert settings.default == previous
    for n in acked:
        if store_writer.is_default_write(n):
            assert n in {c.actor_id for c in changes if c.scope is ChangeScope.DEFAULT}
        else:
            assert settings.overrides[store_writer.CHANNEL_BASE + n] == store_writer.RATINGS[n % 3]


# --------------------------------------------------------------------------- forgetting


async def test_forget_guild_deletes_settings_and_audit(
    store: SqliteSettingsStore, db_path: Path
) -> None:
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(OTHER_GUILD, 1, Rating.QUESTIONABLE, ADMIN)
    await store.get_guild_settings(GUILD)  # cached

    await store.forget_guild(GUILD)

    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert await store.recent_changes(GUILD) == []
    with _raw(db_path) as raw:
        for table in ("guild_settings", "channel_overrides", "settings_audit"):
            count = raw.execute(f"SELECT COUNT(*) FROM {table} WHERE guild_id = ?", (GUILD,))
            assert count.fetchone()[0] == 0, table
    assert (await store.get_guild_settings(OTHER_GUILD)).overrides == {1: Rating.QUESTIONABLE}
    assert len(await store.recent_changes(OTHER_GUILD)) == 1


async def test_forget_channel_drops_its_override_only(store: SettingsStore) -> None:
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 2, Rating.QUESTIONABLE, ADMIN)
    await store.get_guild_settings(GUILD)  # cached

    assert await store.forget_channel(GUILD, 1) is True
    assert await store.forget_channel(GUILD, 1) is False

    assert dict((await store.get_guild_settings(GUILD)).overrides) == {2: Rating.QUESTIONABLE}
    assert len(await store.recent_changes(GUILD)) == 2  # history kept


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
    assert versions == [1, 2]
    assert "settings_audit_by_guild" in indexes
    assert settings == GuildSettings(Rating.QUESTIONABLE, {5: Rating.NSFW})
    assert change.old is Rating.NSFW


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


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/bot.db", "data/bot.db"),
        ("sqlite:////var/lib/bot/bot.db", "/var/lib/bot/bot.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///x.db", "x.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path_from_url(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:hunter2@db.internal:5432/bot",
        "postgres://bot:hunter2@db/bot",
        "mysql://root:hunter2@localhost/x",
    ],
)
def test_unsupported_scheme_is_refused_without_echoing_credentials(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme") as info:
        open_store(url)
    assert "hunter2" not in str(info.value)
    assert "db.internal" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["data/bot.db", "", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        sqlite_path_from_url(url)


def test_malformed_url_without_scheme_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="database URL must look like") as info:
        sqlite_path_from_url("user:hunter2@somewhere")
    assert "hunter2" not in str(info.value)


async def test_open_store_from_url_round_trip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/via-url.db"  # tmp_path is absolute: four slashes in all

    async with open_store(url) as store:
        change = await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        health = await store.health_check()

    assert isinstance(change, Change)
    assert health.ok
    assert (tmp_path / "via-url.db").is_file()
    assert not (await store.health_check()).ok  # closed now
