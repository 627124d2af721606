"""The SQLite settings store (aiosqlite).

Durability: WAL journal with ``synchronous=FULL``, so a commit is on disk before a write method
returns and survives ``kill -9`` or a power cut. One connection serves the process; an
:class:`asyncio.Lock` keeps its transactions from interleaving, and every write (setting plus
audit row) is a single ``BEGIN IMMEDIATE`` ... ``COMMIT``.

The schema comes from numbered files ``migrations/NNNN_name.sql``, applied in order at open, each
in its own transaction together with its row in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.resources
import logging
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from bot.gating import GuildSettings
from bot.nekos.models import Rating

from .base import (
    Change,
    ChangeScope,
    SchemaTooNewError,
    SettingsStore,
    StoreClosedError,
    StoreError,
    StoreHealth,
)

__all__ = [
    "MEMORY",
    "Migration",
    "SqliteSettingsStore",
    "load_migrations",
    "migrate",
    "schema_version",
]

log = logging.getLogger(__name__)

MEMORY: Final = ":memory:"
"""The path of a private in-memory database (for tests)."""

_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_BUSY_TIMEOUT_MS = 5_000

T = TypeVar("T")
Clock = Callable[[], dt.datetime]
# A write's cache update, applied under the lock after commit (None: drop the cached entry).
CacheUpdate = Callable[[GuildSettings], GuildSettings] | None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step, from ``migrations/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations in order; raise :class:`StoreError` if numbering has a gap."""
    root = importlib.resources.files("bot.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in root.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise StoreError(f"migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def _split_statements(script: str) -> Iterator[str]:
    """Split SQL into complete statements; sqlite3.complete_statement knows strings and comments."""
    # executescript would COMMIT first, so a migration cannot run inside our own transaction.
    buffer: list[str] = []
    for char in script:
        buffer.append(char)
        if char == ";" and sqlite3.complete_statement("".join(buffer)):
            statement = "".join(buffer).strip()
            buffer.clear()
            if statement:
                yield statement
    rest = "".join(buffer)
    if _strip_comments(rest).strip():
        raise StoreError("migration ends with an unterminated statement")


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


async def _exec(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> int:
    async with db.execute(sql, params) as cursor:
        return cursor.rowcount


async def _exec_insert(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> int:
    async with db.execute(sql, params) as cursor:
        row_id = cursor.lastrowid
    if row_id is None:
        raise StoreError("insert did not yield a row id")
    return row_id


async def _fetchone(
    db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    async with db.execute(sql, params) as cursor:
        row: sqlite3.Row | None = await cursor.fetchone()
        return row


async def _fetchall(
    db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> Iterable[sqlite3.Row]:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchall()


async def schema_version(db: aiosqlite.Connection) -> int:
    """The highest applied migration (0 for an empty database); creates the bookkeeping table."""
    await _exec(
        db,
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    row = await _fetchone(db, "SELECT MAX(version) FROM schema_version")
    return int(row[0]) if row is not None and row[0] is not None else 0


async def migrate(
    db: aiosqlite.Connection, migrations: Sequence[Migration], clock: Clock = _utcnow
) -> list[int]:
    """Apply the ``migrations`` not yet applied, each in one transaction; return their versions.

    ``db`` must be in autocommit mode (``isolation_level=None``). Raises
    :class:`SchemaTooNewError` if the database is ahead of ``migrations``.
    """
    current = await schema_version(db)
    newest = migrations[-1].version if migrations else 0
    if current > newest:
        raise SchemaTooNewError(
            f"database schema is version {current}, this bot knows up to {newest}; "
            "upgrade the bot instead of downgrading the database"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version <= current:
            continue
        await _exec(db, "BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if await schema_version(db) >= migration.version:
                await _exec(db, "COMMIT")
                continue
            for statement in _split_statements(migration.sql):
                await _exec(db, statement)
            await _exec(
                db,
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, clock().isoformat()),
            )
            await _exec(db, "COMMIT")
        except BaseException:
            await _exec(db, "ROLLBACK")
            raise
        log.info("applied settings migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def _rating_from_db(value: object) -> Rating | None:
    """A stored label; an unreadable one is treated as the most restrictive setting, ``sfw``."""
    if value is None:
        return None
    try:
        return Rating.from_label(str(value))
    except ValueError:
        log.warning("unreadable rating %r in the settings database; using sfw", value)
        return Rating.SFW


def _rating_to_db(rating: Rating | None) -> str | None:
    return rating.label if rating is not None else None


def _with_override(channel_id: int, rating: Rating | None) -> CacheUpdate:
    def update(settings: GuildSettings) -> GuildSettings:
        overrides = dict(settings.overrides)
        if rating is None:
            overrides.pop(channel_id, None)
        else:
            overrides[channel_id] = rating
        return GuildSettings(default=settings.default, overrides=overrides)

    return update


class SqliteSettingsStore(SettingsStore):
    """:class:`SettingsStore` on a SQLite file (or :data:`MEMORY`).

    ``clock`` gives the audit timestamps (timezone-aware UTC); tests may inject one.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = _utcnow) -> None:
        self._path = str(path)
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._cache: dict[int, GuildSettings] = {}

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        return f"<SqliteSettingsStore path={self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The database file (or :data:`MEMORY`)."""
        return self._path

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        async with self._lock:
            if self._db is not None:
                return
            if self._path != MEMORY:
                parent = Path(self._path).parent
                await asyncio.to_thread(parent.mkdir, parents=True, exist_ok=True)
            try:
                db = await aiosqlite.connect(self._path, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open settings database {self._path!r}: {exc}") from exc
            try:
                db.row_factory = sqlite3.Row
                await _exec(db, f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                row = await _fetchone(db, "PRAGMA journal_mode = WAL")
                mode = str(row[0]).lower() if row is not None else "?"
                if mode != "wal" and self._path != MEMORY:
                    raise StoreError(f"settings database refused WAL mode (got {mode!r})")
                # FULL: in WAL mode, each commit syncs the log, so an acknowledged write survives.
                await _exec(db, "PRAGMA synchronous = FULL")
                await migrate(db, load_migrations(), self._clock)
            except BaseException as exc:
                await db.close()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot prepare settings database: {exc}") from exc
                raise
            self._db = db
            self._cache.clear()
            log.info("settings store open at %s", self._path)

    async def close(self) -> None:
        async with self._lock:
            db, self._db = self._db, None
            self._cache.clear()
            if db is not None:
                await db.close()

    def _require_open(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreClosedError("the settings store is not open")
        return self._db

    async def _locked(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``body`` alone on the connection, turning SQLite errors into StoreError."""
        async with self._lock:
            db = self._require_open()
            try:
                return await body(db)
            except sqlite3.Error as exc:
                raise StoreError(f"settings database error: {exc}") from exc

    async def _write(
        self,
        guild_id: int,
        body: Callable[[aiosqlite.Connection], Awaitable[tuple[T, CacheUpdate]]],
    ) -> T:
        """Run ``body`` in one transaction; update the cache only after COMMIT returned."""

        async def run(db: aiosqlite.Connection) -> T:
            try:
                await _exec(db, "BEGIN IMMEDIATE")
                try:
                    result, update = await body(db)
                    await _exec(db, "COMMIT")
                except BaseException:
                    if db.in_transaction:
                        await _exec(db, "ROLLBACK")
                    raise
            except BaseException:
                # The outcome is unknown (e.g. cancelled during COMMIT): reload on next read.
                self._cache.pop(guild_id, None)
                raise
            cached = self._cache.get(guild_id)
            if update is None:
                self._cache.pop(guild_id, None)
            elif cached is not None:
                self._cache[guild_id] = update(cached)
            return result

        return await self._locked(run)

    # ------------------------------------------------------------------ reads

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached

        async def load(db: aiosqlite.Connection) -> GuildSettings:
            # Another caller may have filled the cache while this one waited for the lock.
            again = self._cache.get(guild_id)
            if again is not None:
                return again
            row = await _fetchone(
                db, "SELECT default_rating FROM guild_settings WHERE guild_id = ?", (guild_id,)
            )
            rows = await _fetchall(
                db,
                "SELECT channel_id, rating FROM channel_overrides WHERE guild_id = ?",
                (guild_id,),
            )
            overrides: dict[int, Rating] = {}
            for channel_id, label in rows:
                rating = _rating_from_db(label)
                if rating is not None:
                    overrides[int(channel_id)] = rating
            settings = GuildSettings(
                default=_rating_from_db(row[0]) if row is not None else None,
                overrides=overrides,
            )
            self._cache[guild_id] = settings
            return settings

        return await self._locked(load)

    async def recent_changes(self, guild_id: int, limit: int = 10) -> list[Change]:
        if limit <= 0:
            return []

        async def query(db: aiosqlite.Connection) -> list[Change]:
            rows = await _fetchall(
                db,
                "SELECT id, actor_id, scope, channel_id, old_rating, new_rating,"
                " overrides_cleared, changed_at"
                " FROM settings_audit WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
                (guild_id, limit),
            )
            return [
                Change(
                    guild_id=guild_id,
                    actor_id=int(row["actor_id"]),
                    scope=ChangeScope(row["scope"]),
                    channel_id=None if row["channel_id"] is None else int(row["channel_id"]),
                    old=_rating_from_db(row["old_rating"]),
                    new=_rating_from_db(row["new_rating"]),
                    at=dt.datetime.fromisoformat(row["changed_at"]),
                    overrides_cleared=int(row["overrides_cleared"]),
                    id=int(row["id"]),
                )
                for row in rows
            ]

        return await self._locked(query)

    async def health_check(self) -> StoreHealth:
        async def probe(db: aiosqlite.Connection) -> StoreHealth:
            version = await schema_version(db)
            row = await _fetchone(db, "SELECT COUNT(*) FROM guild_settings")
            guilds = int(row[0]) if row is not None else 0
            return StoreHealth(
                ok=True,
                detail=f"sqlite {self._path}: schema v{version}, {guilds} guild default(s) set",
            )

        try:
            return await self._locked(probe)
        except StoreError as exc:
            return StoreHealth(ok=False, detail=str(exc))

    # ------------------------------------------------------------------ writes

    async def _audit(self, db: aiosqlite.Connection, change: Change) -> Change:
        row_id = await _exec_insert(
            db,
            "INSERT INTO settings_audit (guild_id, actor_id, scope, channel_id, old_rating,"
            " new_rating, overrides_cleared, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.guild_id,
                change.actor_id,
                change.scope.value,
                change.channel_id,
                _rating_to_db(change.old),
                _rating_to_db(change.new),
                change.overrides_cleared,
                change.at.isoformat(),
            ),
        )
        return dataclasses.replace(change, id=row_id)

    async def set_channel_override(
        self, guild_id: int, channel_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        async def body(db: aiosqlite.Connection) -> tuple[Change, CacheUpdate]:
            row = await _fetchone(
                db,
                "SELECT rating FROM channel_overrides WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.CHANNEL,
                channel_id=channel_id,
                old=_rating_from_db(row[0]) if row is not None else None,
                new=rating,
                at=self._clock(),
            )
            if not change.changed:
                return change, _with_override(channel_id, rating)
            if rating is None:
                await _exec(
                    db,
                    "DELETE FROM channel_overrides WHERE guild_id = ? AND channel_id = ?",
                    (guild_id, channel_id),
                )
            else:
                await _exec(
                    db,
                    "INSERT INTO channel_overrides (guild_id, channel_id, rating) VALUES (?, ?, ?)"
                    " ON CONFLICT (guild_id, channel_id) DO UPDATE SET rating = excluded.rating",
                    (guild_id, channel_id, rating.label),
                )
            return await self._audit(db, change), _with_override(channel_id, rating)

        return await self._write(guild_id, body)

    async def set_guild_default(
        self, guild_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        def update(settings: GuildSettings) -> GuildSettings:
            return GuildSettings(default=rating, overrides=settings.overrides)

        async def body(db: aiosqlite.Connection) -> tuple[Change, CacheUpdate]:
            row = await _fetchone(
                db, "SELECT default_rating FROM guild_settings WHERE guild_id = ?", (guild_id,)
            )
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.DEFAULT,
                channel_id=None,
                old=_rating_from_db(row[0]) if row is not None else None,
                new=rating,
                at=self._clock(),
            )
            if not change.changed:
                return change, update
            if rating is None:
                await _exec(db, "DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            else:
                await _exec(
                    db,
                    "INSERT INTO guild_settings (guild_id, default_rating) VALUES (?, ?)"
                    " ON CONFLICT (guild_id)"
                    " DO UPDATE SET default_rating = excluded.default_rating",
                    (guild_id, rating.label),
                )
            return await self._audit(db, change), update

        return await self._write(guild_id, body)

    async def reset_guild(self, guild_id: int, actor_id: int) -> Change:
        async def body(db: aiosqlite.Connection) -> tuple[Change, CacheUpdate]:
            row = await _fetchone(
                db, "SELECT default_rating FROM guild_settings WHERE guild_id = ?", (guild_id,)
            )
            await _exec(db, "DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            cleared = await _exec(
                db, "DELETE FROM channel_overrides WHERE guild_id = ?", (guild_id,)
            )
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.RESET,
                channel_id=None,
                old=_rating_from_db(row[0]) if row is not None else None,
                new=None,
                at=self._clock(),
                overrides_cleared=max(cleared, 0),
            )
            if change.changed:
                change = await self._audit(db, change)
            return change, lambda _settings: GuildSettings()

        return await self._write(guild_id, body)

    async def forget_guild(self, guild_id: int) -> None:
        async def body(db: aiosqlite.Connection) -> tuple[None, CacheUpdate]:
            for table in ("guild_settings", "channel_overrides", "settings_audit"):
                await _exec(db, f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
            return None, None

        await self._write(guild_id, body)
        log.info("forgot the settings and audit trail of guild %d", guild_id)

    async def forget_channel(self, guild_id: int, channel_id: int) -> bool:
        # Not audited: nobody acted, Discord deleted the channel.
        async def body(db: aiosqlite.Connection) -> tuple[bool, CacheUpdate]:
            removed = await _exec(
                db,
                "DELETE FROM channel_overrides WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            return removed > 0, _with_override(channel_id, None)

        return await self._write(guild_id, body)
