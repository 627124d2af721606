"""The PostgreSQL settings store (asyncpg), for many bot processes sharing one database.

- Writes: one transaction per change (setting plus audit row), serialized per guild by
  ``pg_advisory_xact_lock(guild_id)`` across every process, returning only after COMMIT (with
  ``synchronous_commit=on``, so "Saved" means the change is durable).
- Other processes' changes: every write sends ``NOTIFY nekos_settings, '<guild id>'`` inside its
  transaction, so it is delivered exactly when the change commits. Each store LISTENs on a
  connection of its own and drops that guild from its cache. When that connection is lost the
  store stops trusting its cache: every read goes to the database (fresh, or failing closed)
  until the listener is back, and the cache is cleared again then, since changes may have been
  missed meanwhile. A listener that stops answering pings counts as lost.
- Outages: a read or write that cannot reach the database raises :class:`StoreUnavailable`
  within ``timeout`` seconds; the pool opens new connections by itself once the server is back.
- Migrations: ``migrations/postgres/NNNN_name.sql``, applied at open under a session advisory
  lock, so several processes starting at once apply each exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import asyncpg

from bot.database_url import MASK, DatabaseTarget

from .base import StoreClosedError, StoreError, StoreHealth, StoreUnavailable
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

__all__ = ["CHANNEL", "PostgresSettingsStore", "load_migrations"]

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

T = TypeVar("T")

CHANNEL: Final = "nekos_settings"
"""The NOTIFY channel; the payload is a guild id, or ``*`` for every guild."""
ALL_GUILDS: Final = "*"
# Two int4 keys ("neko", 1): a different key space from the bigint guild locks.
_MIGRATION_LOCK: Final = (0x6E656B6F, 1)
_SERVER_SETTINGS: Final = {"application_name": "nekos-bot", "synchronous_commit": "on"}
# The change feed's connection, told apart in pg_stat_activity.
_LISTENER_SETTINGS: Final = {**_SERVER_SETTINGS, "application_name": "nekos-bot-listener"}
OPEN_TIMEOUT: Final = 10.0
_RETRY_MIN, _RETRY_MAX = 0.2, 5.0
_STABLE = 30.0
"""Seconds a change feed connection must last to count as healthy again (resets the backoff)."""

# What "the database cannot be reached" looks like from asyncpg.
_UNREACHABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE 08: connection exceptions
    asyncpg.InterfaceError,  # the connection is closed or in a broken state
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    # What asyncpg raises on a connection the server terminated while it was idle (#1069).
    asyncpg.exceptions.InternalClientError,
)


def load_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations in order."""
    return read_migrations("postgres")


def _rowcount(status: str) -> int:
    """Rows affected, from a command status such as ``DELETE 3`` or ``INSERT 0 1``."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class _PgTx(Tx):
    """:class:`Tx` on an asyncpg connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return [tuple(record) for record in await self._conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: object) -> int:
        return _rowcount(await self._conn.execute(sql, *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._conn.executemany(sql, rows)


class _Attempt:
    """Whether an operation got as far as sending COMMIT (after which it must not be retried)."""

    committing = False


class PostgresSettingsStore(SqlSettingsStore):
    """:class:`SettingsStore` on PostgreSQL.

    ``timeout``: seconds an operation may take before it fails as :class:`StoreUnavailable` (keep
    it under Discord's 3 s answer window). ``ping_interval``: how often the listener connection is
    checked; a silent one counts as lost after about twice this.
    """

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        clock: Clock = utcnow,
        timeout: float = 2.0,
        ping_interval: float = 1.0,
        pool_size: int = 10,
    ) -> None:
        if target.kind != "postgresql":
            raise ValueError("PostgresSettingsStore needs a postgresql:// URL")
        super().__init__(clock=clock)
        self._target = target
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._open_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._listening = False

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"<PostgresSettingsStore {self._target.display} {state}>"

    @property
    def display(self) -> str:
        return self._target.display

    @property
    def listening(self) -> bool:
        """Whether the change feed is connected (so the cache is trusted)."""
        return self._listening

    def _describe(self, exc: BaseException) -> str:
        """``exc`` in a few words, with any password from the URL masked."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        text = " ".join(text.split())  # one line, for logs and `check`
        for secret in self._target.secrets:
            text = text.replace(secret, MASK)
        return text

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            pool = asyncpg.create_pool(
                self._target.location,
                # No floor: connections open on demand, so an outage logs nothing from the
                # pool's own reconnect loop (the store says it once).
                min_size=0,
                max_size=self._pool_size,
                timeout=self._timeout,
                server_settings=_SERVER_SETTINGS,
            )
            try:
                async with asyncio.timeout(OPEN_TIMEOUT):
                    await pool
                await self._migrate(pool)
            except BaseException as exc:
                pool.terminate()
                if isinstance(exc, (*_UNREACHABLE, ValueError)):
                    raise StoreUnavailable(
                        f"cannot connect to PostgreSQL at {self.display}: {self._describe(exc)}"
                    ) from exc
                if isinstance(exc, asyncpg.PostgresError):
                    raise StoreError(
                        f"cannot prepare settings database {self.display}: {self._describe(exc)}"
                    ) from exc
                raise
            self._pool = pool
            self._cache.clear()
            self._listener = asyncio.create_task(self._listen_forever(), name="settings-listener")
            log.info("settings store open at %s", self.display)

    async def _migrate(self, pool: asyncpg.Pool[asyncpg.Record]) -> list[int]:
        applied: list[int] = []
        async with pool.acquire() as conn:
            # Session lock: other processes opening now wait here, then find nothing to do.
            await conn.execute("SELECT pg_advisory_lock($1, $2)", *_MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = await conn.fetchval(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                )
                for migration in pending_migrations(int(current), load_migrations()):
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                    log.info(
                        "applied settings migration %04d_%s", migration.version, migration.name
                    )
                    applied.append(migration.version)
            finally:
                # A broken connection has released the lock already.
                with contextlib.suppress(*_UNREACHABLE):
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", *_MIGRATION_LOCK)
        return applied

    async def close(self) -> None:
        async with self._open_lock:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            pool, self._pool = self._pool, None
            self._listening = False
            self._cache.clear()
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), self._timeout)
                except (*_UNREACHABLE, asyncpg.PostgresError):
                    pool.terminate()

    # ------------------------------------------------------------------ operations

    async def _run(self, op: Callable[[Connection, _Attempt], Awaitable[T]]) -> T:
        """Run ``op`` on a pooled connection within ``timeout``; retry once on a dead connection.

        A pooled connection may have died while idle (the server restarted): the first attempt
        fails and the pool replaces the connection. An attempt that already sent COMMIT is never
        repeated.
        """
        pool = self._pool
        if pool is None:
            raise StoreClosedError("the settings store is not open")
        try:
            async with asyncio.timeout(self._timeout):
                for retry in (True, False):
                    attempt = _Attempt()
                    try:
                        async with pool.acquire() as conn:
                            try:
                                return await op(conn, attempt)
                            except (*_UNREACHABLE, asyncio.CancelledError):
                                # Never hand a connection that failed (or stalled) mid-query
                                # back to the pool: asyncpg may leave it half-broken.
                                conn.terminate()
                                raise
                    except _UNREACHABLE:
                        if not retry or attempt.committing:
                            raise
                        log.debug("settings database connection lost; retrying once")
                raise AssertionError("unreachable")  # pragma: no cover
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is not reachable ({self._describe(exc)})") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"settings database error: {self._describe(exc)}") from exc

    async def _read(self, body: Callable[[Tx], Awaitable[T]], *, snapshot: bool = False) -> T:
        async def op(conn: Connection, _attempt: _Attempt) -> T:
            if not snapshot:
                return await body(_PgTx(conn))
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await body(_PgTx(conn))

        return await self._run(op)

    async def _write_tx(self, guild_id: int | None, body: Callable[[Tx], Awaitable[T]]) -> T:
        async def op(conn: Connection, attempt: _Attempt) -> T:
            async with conn.transaction():
                if guild_id is None:
                    # An import replaces everything: keep every writer out until it commits.
                    await conn.execute(
                        "LOCK TABLE guild_settings, channel_overrides, settings_audit"
                        " IN SHARE ROW EXCLUSIVE MODE"
                    )
                else:
                    # Writes to one guild queue here, across processes: an audit row's "old"
                    # value is then always the previous change's "new".
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", guild_id)
                result = await body(_PgTx(conn))
                payload = ALL_GUILDS if guild_id is None else str(guild_id)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                attempt.committing = True  # leaving the block sends COMMIT
            return result

        return await self._run(op)

    async def _after_import(self, tx: Tx) -> None:
        # Rows came with their ids: move the identity past them.
        await tx.fetch(
            "SELECT setval(pg_get_serial_sequence('settings_audit', 'id'),"
            " COALESCE(MAX(id), 0) + 1, false) FROM settings_audit"
        )

    def _time_to_db(self, at: dt.datetime) -> object:
        return at

    def _time_from_db(self, value: Any) -> dt.datetime:
        stamp: dt.datetime = value
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)

    def _cache_trusted(self) -> bool:
        return self._listening

    async def health_check(self) -> StoreHealth:
        health = await super().health_check()
        if not health.ok:
            return health
        feed = "change feed listening" if self._listening else "change feed reconnecting"
        return StoreHealth(ok=health.ok, detail=f"{health.detail}; {feed}")

    # ------------------------------------------------------------------ the change feed

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            guild_id = int(str(payload))
        except ValueError:
            self._cache.clear()  # "*" (an import) or anything unexpected: drop everything
            return
        self._cache.invalidate(guild_id)

    async def _listen_forever(self) -> None:
        """Keep a LISTEN connection up; while it is down, the cache is not trusted."""
        delay = _RETRY_MIN
        lost_at: float | None = None
        while True:
            try:
                conn: Connection = await asyncpg.connect(
                    self._target.location,
                    timeout=self._timeout,
                    server_settings=_LISTENER_SETTINGS,
                )
            except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "settings change feed cannot connect (%s); reading settings straight "
                        "from PostgreSQL until it can",
                        self._describe(exc),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            connected_at = time.monotonic()
            try:
                reason = await self._follow(conn, lost_at)
            except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
                reason = self._describe(exc)
            except Exception as exc:  # a bug must not end the feed for good: log it, go on
                log.exception("settings change feed failed unexpectedly")
                reason = self._describe(exc)
            finally:
                self._listening = False
                self._cache.clear()
                conn.terminate()
            lost_at = time.monotonic()
            log.warning(
                "settings change feed lost (%s); reading settings straight from PostgreSQL "
                "until it is back",
                reason,
            )
            # A feed that keeps dropping right after connecting backs off like a failed connect.
            delay = _RETRY_MIN if lost_at - connected_at > _STABLE else min(delay * 2, _RETRY_MAX)
            await asyncio.sleep(delay)

    async def _follow(self, conn: Connection, lost_at: float | None) -> str:
        """LISTEN on ``conn`` and watch it; return why it was lost."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        # From here on every commit reaches _on_notify; what was cached before may be stale.
        self._cache.clear()
        self._listening = True
        if lost_at is not None:
            log.info("settings change feed restored after %.1f s", time.monotonic() - lost_at)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping_interval):
                    await closed.wait()
                return "connection closed"
            # A connection can also die silently (a dropped network): it must answer pings.
            await conn.fetchval("SELECT 1", timeout=self._ping_interval)
