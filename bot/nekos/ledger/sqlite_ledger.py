"""The embedded ledger: processes on one host share a budget through an SQLite file.

Each operation is one ``BEGIN IMMEDIATE`` transaction (read the key's row, apply
:class:`~bot.nekos.ledger.base.KeyState`'s rules, write it back), so concurrent processes are
serialised by SQLite's file lock, which the kernel releases when a process dies, even by
``kill -9``. The file lives in the data folder (``DATA_DIR``).

The clock is :func:`time.time`: every process on the host reads the same one, and unlike
``CLOCK_MONOTONIC`` (also host-wide) it still means something after a reboot, which strikes and
blocks (an hour long) outlive. A backward step cannot stall the budget (the rules clamp the last
start to now); a forward step can let one request start early, once.

The state is small and rewritten often, so the file uses WAL with ``synchronous=NORMAL``: a power
cut may lose the last few writes, never the file. Operations run on one worker thread that owns
the connection, so a lock wait never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .base import (
    DEFAULT_STRIKE_WINDOW,
    BudgetHealth,
    Claim,
    KeyState,
    LedgerUnavailable,
    StrikeResult,
    Verdict,
)

__all__ = ["BUDGET_FILE", "SqliteLedger"]

log = logging.getLogger(__name__)

BUDGET_FILE = "request-budget.db"
"""The ledger's file name inside the data folder."""
LOCK_TIMEOUT = 5.0
"""Seconds one operation waits for another process's transaction before giving up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget (key TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

T = TypeVar("T")


class SqliteLedger:
    """A :class:`~bot.nekos.ledger.base.BudgetLedger` in an SQLite file shared by local processes.

    ``clock`` (Unix seconds) is injectable for tests. The file also keeps a few named values
    (:meth:`get_meta` / :meth:`set_meta`) for the Redis fallback: this folder's id and how many
    hosts shared the budget when Redis was last reachable.
    """

    def __init__(
        self,
        path: Path,
        *,
        strike_window: float = DEFAULT_STRIKE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._window = strike_window
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="budget-ledger")
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SqliteLedger path={str(self.path)!r}>"

    # ------------------------------------------------------------------ plumbing

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_thread, work)

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result
        except (sqlite3.Error, OSError) as exc:
            # A broken connection is reopened on the next operation.
            self._drop_connection()
            raise LedgerUnavailable(f"request budget file {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            self._prepare(connection)
        except sqlite3.Error:
            connection.close()
            raise
        self._connection = connection
        return connection

    @staticmethod
    def _prepare(connection: sqlite3.Connection) -> None:
        """WAL mode and the tables, when several processes open a new file at the same moment.

        Switching to WAL needs the file to itself, and SQLite answers "database is locked" at
        once rather than waiting its busy timeout; so retry briefly (WAL then stays set in the
        file, and later openers find it).
        """
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()
                if not mode or str(mode[0]).lower() != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    def _update(
        self, key: str, apply: Callable[[KeyState, float], T]
    ) -> Callable[[sqlite3.Connection], T]:
        def work(connection: sqlite3.Connection) -> T:
            row = connection.execute("SELECT state FROM budget WHERE key = ?", (key,)).fetchone()
            state = KeyState.from_json(row[0] if row else None)
            result = apply(state, self._clock())
            connection.execute(
                "INSERT INTO budget (key, state) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                (key, state.to_json()),
            )
            return result

        return work

    # ------------------------------------------------------------------ the ledger

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        return await self._run(
            self._update(key, lambda state, now: state.reserve(now, claim, self._window))
        )

    async def hold(self, key: str, seconds: float) -> None:
        await self._run(self._update(key, lambda state, now: state.hold(now, seconds)))

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        return await self._run(
            self._update(
                key,
                lambda state, now: state.strike(now, strike_id, hold, max_strikes, self._window),
            )
        )

    async def block(self, key: str, seconds: float, reason: str) -> None:
        await self._run(self._update(key, lambda state, now: state.block(now, seconds, reason)))

    async def snapshot(self, key: str) -> tuple[KeyState, float]:
        """The key's state and the ledger's clock now (for the Redis fallback's hand-back)."""

        def work(connection: sqlite3.Connection) -> tuple[KeyState, float]:
            row = connection.execute("SELECT state FROM budget WHERE key = ?", (key,)).fetchone()
            return KeyState.from_json(row[0] if row else None), self._clock()

        return await self._run(work)

    def health(self) -> BudgetHealth:
        return BudgetHealth("folder", "shared through the data folder")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop_connection)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ named values

    async def get_meta(self, name: str) -> str | None:
        def work(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            return str(row[0]) if row else None

        return await self._run(work)

    async def set_meta(self, name: str, value: str) -> None:
        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

        await self._run(work)

    async def folder_id(self) -> str:
        """A random id created once per file: which host-local ledger this is."""

        def work(connection: sqlite3.Connection) -> str:
            candidate = uuid.uuid4().hex
            connection.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('folder_id', ?)", (candidate,)
            )
            row = connection.execute("SELECT value FROM meta WHERE name = 'folder_id'").fetchone()
            return str(row[0])

        return await self._run(work)
