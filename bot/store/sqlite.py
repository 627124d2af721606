"""The SQLite settings store (aiosqlite).

Durability: WAL journal with ``synchronous=FULL``, so a commit is on disk before a write method
returns and survives ``kill -9`` or a power cut. One connection serves the process; an
:class:`asyncio.Lock` keeps its transactions from interleaving, and every write (setting plus
audit row) is a single ``BEGIN IMMEDIATE`` ... ``COMMIT``.

Several processes on one host may share the file. SQLite's ``PRAGMA data_version`` changes when
another connection commits; a read checks it at most every ``change_check_interval`` seconds
(0.5 by default) and drops the whole cache when it moved, so another process's change is
enforced here within that interval.

The schema comes from numbered files ``migrations/sqlite/NNNN_name.sql``, applied in order at
open, each in its own transaction together with its row in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from bot.database_url import MEMORY

from .base import StoreClosedError, StoreError
from .sql import (
    Clock,
    Migration,
    Row,
    SqlSettingsStore,
    Tx,
    pending_migrations,
    read_migrations,
    utcnow,
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

_BUSY_TIMEOUT_MS = 5_000
CHANGE_CHECK_INTERVAL: Final = 0.5
"""Seconds between checks for other processes' commits (bounds how stale the cache can be)."""

T = TypeVar("T")


def load_migrations() -> list[Migration]:
    """The packaged SQLite migrations in order."""
    return read_migrations("sqlite")


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


@functools.lru_cache(maxsize=128)
def _numbered(sql: str) -> str:
    """PostgreSQL's ``$1`` placeholders as SQLite's equivalent ``?1``."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


async def _exec(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> int:
    async with db.execute(sql, params) as cursor:
        return cursor.rowcount


async def _fetchone(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _wal_mode(db: aiosqlite.Connection) -> str:
    """Switch to WAL mode (once per file) and say the mode now in force.

    Several processes opening a new file at once: the switch needs the file to itself, and
    SQLite answers "database is locked" at once rather than waiting its busy timeout; so retry
    for up to the busy timeout (WAL then stays set in the file, and later openers find it).
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            row = await _fetchone(db, "PRAGMA journal_mode")
            if row is None or str(row[0]).lower() != "wal":
                row = await _fetchone(db, "PRAGMA journal_mode = WAL")
            return str(row[0]).lower() if row is not None else "?"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


class _SqliteTx(Tx):
    """:class:`Tx` on an aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._db.execute(_numbered(sql), args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def execute(self, sql: str, *args: object) -> int:
        return await _exec(self._db, _numbered(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._db.executemany(_numbered(sql), rows)


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
    db: aiosqlite.Connection, migrations: Sequence[Migration], clock: Clock = utcnow
) -> list[int]:
    """Apply the ``migrations`` not yet applied, each in one transaction; return their versions.

    ``db`` must be in autocommit mode (``isolation_level=None``). Raises
    :class:`SchemaTooNewError` if the database is ahead of ``migrations``.
    """
    applied: list[int] = []
    for migration in pending_migrations(await schema_version(db), migrations):
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


async def _data_version(db: aiosqlite.Connection) -> int:
    row = await _fetchone(db, "PRAGMA data_version")
    return int(row[0])


class SqliteSettingsStore(SqlSettingsStore):
    """:class:`SettingsStore` on a SQLite file (or :data:`MEMORY`).

    ``change_check_interval``: how often (seconds, at most) a read checks whether another process
    committed; tests may raise it to observe the cache alone.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock = utcnow,
        change_check_interval: float = CHANGE_CHECK_INTERVAL,
    ) -> None:
        super().__init__(clock=clock)
        self._path = str(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._check_interval = change_check_interval
        self._next_check = 0.0
        self._data_version = 0

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        return f"<SqliteSettingsStore path={self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The database file (or :data:`MEMORY`)."""
        return self._path

    @property
    def display(self) -> str:
        return f"sqlite {self._path}"

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
                await _exec(db, f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                mode = await _wal_mode(db)
                if mode != "wal" and self._path != MEMORY:
                    raise StoreError(f"settings database refused WAL mode (got {mode!r})")
                # FULL: in WAL mode, each commit syncs the log, so an acknowledged write survives.
                await _exec(db, "PRAGMA synchronous = FULL")
                await migrate(db, load_migrations(), self._clock)
                self._data_version = await _data_version(db)
            except BaseException as exc:
                await db.close()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot prepare settings database: {exc}") from exc
                raise
            self._db = db
            self._cache.clear()
            self._next_check = time.monotonic() + self._check_interval
            log.info("settings store open at %s", self._path)

    async def close(self) -> None:
        async with self._lock:
            db, self._db = self._db, None
            self._cache.clear()
            if db is not None:
                await db.close()

    async def _locked(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``body`` alone on the connection, turning SQLite errors into StoreError."""
        async with self._lock:
            if self._db is None:
                raise StoreClosedError("the settings store is not open")
            try:
                return await body(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"settings database error: {exc}") from exc

    # ------------------------------------------------------------------ SqlSettingsStore hooks

    async def _in_transaction(
        self, begin: str, body: Callable[[Tx], Awaitable[T]], db: aiosqlite.Connection
    ) -> T:
        await _exec(db, begin)
        try:
            result = await body(_SqliteTx(db))
            await _exec(db, "COMMIT")
        except BaseException:
            if db.in_transaction:
                await _exec(db, "ROLLBACK")
            raise
        return result

    async def _read(self, body: Callable[[Tx], Awaitable[T]], *, snapshot: bool = False) -> T:
        if snapshot:
            # A deferred transaction reads one snapshot even while other processes write.
            return await self._locked(lambda db: self._in_transaction("BEGIN", body, db))
        return await self._locked(lambda db: body(_SqliteTx(db)))

    async def _write_tx(self, guild_id: int | None, body: Callable[[Tx], Awaitable[T]]) -> T:
        # The connection lock serializes this process's writes; BEGIN IMMEDIATE, other processes'.
        return await self._locked(lambda db: self._in_transaction("BEGIN IMMEDIATE", body, db))

    async def _claim_tx(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        # BEGIN IMMEDIATE: one process claims at a time, so a due time is claimed once.
        return await self._locked(lambda db: self._in_transaction("BEGIN IMMEDIATE", body, db))

    @property
    def _lock_due_rows(self) -> str:
        return ""

    def _time_to_db(self, at: dt.datetime) -> object:
        # Fixed width in UTC, so stored times compare correctly as text (the claim's WHERE).
        return at.astimezone(dt.UTC).isoformat(timespec="microseconds")

    def _time_from_db(self, value: Any) -> dt.datetime:
        return dt.datetime.fromisoformat(str(value))

    async def _sync_cache(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._check_interval
        version = await self._locked(_data_version)
        if version != self._data_version:
            # Another connection committed: any cached guild may have changed.
            self._data_version = version
            self._cache.clear()
