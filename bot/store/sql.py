"""What the SQL backends share: every query, the audit rows, migrations and the cache discipline.

A backend (``sqlite.py``, ``postgres.py``) supplies transactions, reads and its driver's
conversions (the ``_`` hooks of :class:`SqlSettingsStore`); the queries here are written once
with PostgreSQL's ``$n`` placeholders, which the SQLite backend turns into ``?n``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
import logging
import re
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from bot.gating import GuildSettings
from bot.nekos.models import Rating

from .base import (
    Change,
    ChangeScope,
    SchemaTooNewError,
    SettingsStore,
    StoreCounts,
    StoreError,
    StoreHealth,
    StoreNotEmptyError,
    StoreSnapshot,
)
from .cache import CacheUpdate, SettingsCache

__all__ = [
    "Clock",
    "Migration",
    "SqlSettingsStore",
    "Tx",
    "pending_migrations",
    "read_migrations",
    "utcnow",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], dt.datetime]
Row = tuple[Any, ...]

_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
TABLES: Final = ("guild_settings", "channel_overrides", "settings_audit")

_LOAD_SETTINGS: Final = (
    # One statement, so one snapshot: the default and the overrides always belong together.
    "SELECT CAST(NULL AS BIGINT), default_rating FROM guild_settings WHERE guild_id = $1"
    " UNION ALL SELECT channel_id, rating FROM channel_overrides WHERE guild_id = $1"
)
_AUDIT_COLUMNS: Final = (
    "id, guild_id, actor_id, scope, channel_id, old_rating, new_rating, overrides_cleared,"
    " changed_at"
)
_INSERT_AUDIT: Final = (
    "INSERT INTO settings_audit (guild_id, actor_id, scope, channel_id, old_rating, new_rating,"
    " overrides_cleared, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"
)
_COUNTS: Final = (
    "SELECT (SELECT COUNT(*) FROM guild_settings), (SELECT COUNT(*) FROM channel_overrides),"
    " (SELECT COUNT(*) FROM settings_audit)"
)


def utcnow() -> dt.datetime:
    """The default audit clock: now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class Tx(Protocol):
    """A backend's connection inside a transaction (or, for reads, a plain connection)."""

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """Rows of ``sql`` as tuples."""

    async def execute(self, sql: str, *args: object) -> int:
        """Run ``sql``; the number of rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run ``sql`` once per parameter row."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step, from ``migrations/<dialect>/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


def read_migrations(dialect: str) -> list[Migration]:
    """A dialect's packaged migrations in order; :class:`StoreError` if numbering has a gap."""
    root = importlib.resources.files("bot.store").joinpath("migrations", dialect)
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


def pending_migrations(current: int, migrations: Sequence[Migration]) -> list[Migration]:
    """The ``migrations`` after schema version ``current``, in order.

    Raises :class:`SchemaTooNewError` if the database is ahead of ``migrations``: it was written
    by a newer bot, and this one must not touch it.
    """
    newest = migrations[-1].version if migrations else 0
    if current > newest:
        raise SchemaTooNewError(
            f"database schema is version {current}, this bot knows up to {newest}; "
            "upgrade the bot instead of downgrading the database"
        )
    return [m for m in migrations if m.version > current]


def rating_from_db(value: object) -> Rating | None:
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


def _settings_from_rows(rows: Iterable[Row]) -> GuildSettings:
    default: Rating | None = None
    overrides: dict[int, Rating] = {}
    for channel_id, label in rows:
        rating = rating_from_db(label)
        if channel_id is None:
            default = rating
        elif rating is not None:
            overrides[int(channel_id)] = rating
    return GuildSettings(default=default, overrides=overrides)


class SqlSettingsStore(SettingsStore):
    """The :class:`SettingsStore` logic on top of a backend's transactions.

    ``clock`` gives the audit timestamps (timezone-aware UTC); tests may inject one.
    """

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._cache = SettingsCache()

    # ------------------------------------------------------------------ backend hooks

    @property
    @abstractmethod
    def display(self) -> str:
        """Where the store is, for operators; never contains a password."""

    @abstractmethod
    async def _read(self, body: Callable[[Tx], Awaitable[T]], *, snapshot: bool = False) -> T:
        """Run ``body`` on a connection (``snapshot``: all its queries see one snapshot)."""

    @abstractmethod
    async def _write_tx(self, guild_id: int | None, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction and return only after COMMIT.

        ``guild_id`` is the guild the write touches (``None``: every guild). The backend
        serializes writes to it and makes the change visible to other processes' caches.
        """

    @abstractmethod
    def _time_to_db(self, at: dt.datetime) -> object:
        """An audit timestamp as the driver stores it."""

    @abstractmethod
    def _time_from_db(self, value: Any) -> dt.datetime:
        """An audit timestamp as the driver returns it, timezone-aware."""

    async def _sync_cache(self) -> None:
        """Drop cached entries other processes may have changed (before a read)."""

    def _cache_trusted(self) -> bool:
        """Whether cached entries are known to be current (else every read goes to the database)."""
        return True

    async def _after_import(self, tx: Tx) -> None:
        """Backend bookkeeping after rows were inserted with explicit ids."""

    # ------------------------------------------------------------------ the cache discipline

    async def _write(
        self,
        guild_id: int | None,
        body: Callable[[Tx], Awaitable[tuple[T, CacheUpdate]]],
    ) -> T:
        """Run a write; update this process's cache only once the transaction is committed."""
        try:
            result, update = await self._write_tx(guild_id, body)
        except BaseException:
            # The outcome may be unknown (e.g. the connection dropped during COMMIT): reload.
            self._forget_cached(guild_id)
            raise
        if guild_id is None:
            self._cache.clear()
        else:
            self._cache.apply(guild_id, update)
        return result

    def _forget_cached(self, guild_id: int | None) -> None:
        if guild_id is None:
            self._cache.clear()
        else:
            self._cache.invalidate(guild_id)

    # ------------------------------------------------------------------ reads

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        await self._sync_cache()
        trusted = self._cache_trusted()
        if trusted and (cached := self._cache.get(guild_id)) is not None:
            return cached
        generation = self._cache.generation

        async def load(tx: Tx) -> GuildSettings:
            # Another caller may have filled the cache while this one waited for a connection.
            if trusted and (again := self._cache.get(guild_id)) is not None:
                return again
            return _settings_from_rows(await tx.fetch(_LOAD_SETTINGS, guild_id))

        settings = await self._read(load)
        if trusted:
            self._cache.fill(guild_id, settings, generation)
        return settings

    def _change_from_row(self, row: Row) -> Change:
        (row_id, guild_id, actor_id, scope, channel_id, old, new, cleared, changed_at) = row
        return Change(
            guild_id=int(guild_id),
            actor_id=int(actor_id),
            scope=ChangeScope(scope),
            channel_id=None if channel_id is None else int(channel_id),
            old=rating_from_db(old),
            new=rating_from_db(new),
            at=self._time_from_db(changed_at),
            overrides_cleared=int(cleared),
            id=int(row_id),
        )

    async def recent_changes(self, guild_id: int, limit: int = 10) -> list[Change]:
        if limit <= 0:
            return []

        async def query(tx: Tx) -> list[Change]:
            rows = await tx.fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM settings_audit WHERE guild_id = $1"
                " ORDER BY id DESC LIMIT $2",
                guild_id,
                limit,
            )
            return [self._change_from_row(row) for row in rows]

        return await self._read(query)

    async def _counts(self, tx: Tx) -> StoreCounts:
        [(defaults, overrides, audit)] = await tx.fetch(_COUNTS)
        return StoreCounts(int(defaults), int(overrides), int(audit))

    async def health_check(self) -> StoreHealth:
        async def probe(tx: Tx) -> str:
            [(version,)] = await tx.fetch("SELECT MAX(version) FROM schema_version")
            return f"schema v{version}, {await self._counts(tx)}"

        try:
            summary = await self._read(probe)
        except StoreError as exc:
            return StoreHealth(ok=False, detail=f"{self.display}: {exc}")
        return StoreHealth(ok=True, detail=f"{self.display}: {summary}")

    async def export_snapshot(self) -> StoreSnapshot:
        async def body(tx: Tx) -> StoreSnapshot:
            defaults = {
                int(guild_id): rating
                for guild_id, label in await tx.fetch(
                    "SELECT guild_id, default_rating FROM guild_settings ORDER BY guild_id"
                )
                if (rating := rating_from_db(label)) is not None
            }
            overrides = {
                (int(guild_id), int(channel_id)): rating
                for guild_id, channel_id, label in await tx.fetch(
                    "SELECT guild_id, channel_id, rating FROM channel_overrides"
                    " ORDER BY guild_id, channel_id"
                )
                if (rating := rating_from_db(label)) is not None
            }
            rows = await tx.fetch(f"SELECT {_AUDIT_COLUMNS} FROM settings_audit ORDER BY id")
            return StoreSnapshot(defaults, overrides, tuple(map(self._change_from_row, rows)))

        return await self._read(body, snapshot=True)

    # ------------------------------------------------------------------ writes

    def _audit_row(self, change: Change) -> tuple[object, ...]:
        """The audit columns after ``id``, in :data:`_AUDIT_COLUMNS` order."""
        return (
            change.guild_id,
            change.actor_id,
            change.scope.value,
            change.channel_id,
            _rating_to_db(change.old),
            _rating_to_db(change.new),
            change.overrides_cleared,
            self._time_to_db(change.at),
        )

    async def _audit(self, tx: Tx, change: Change) -> Change:
        [(row_id,)] = await tx.fetch(_INSERT_AUDIT, *self._audit_row(change))
        return dataclasses.replace(change, id=int(row_id))

    async def set_channel_override(
        self, guild_id: int, channel_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        async def body(tx: Tx) -> tuple[Change, CacheUpdate]:
            rows = await tx.fetch(
                "SELECT rating FROM channel_overrides WHERE guild_id = $1 AND channel_id = $2",
                guild_id,
                channel_id,
            )
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.CHANNEL,
                channel_id=channel_id,
                old=rating_from_db(rows[0][0]) if rows else None,
                new=rating,
                at=self._clock(),
            )
            if not change.changed:
                return change, _with_override(channel_id, rating)
            if rating is None:
                await tx.execute(
                    "DELETE FROM channel_overrides WHERE guild_id = $1 AND channel_id = $2",
                    guild_id,
                    channel_id,
                )
            else:
                await tx.execute(
                    "INSERT INTO channel_overrides (guild_id, channel_id, rating)"
                    " VALUES ($1, $2, $3)"
                    " ON CONFLICT (guild_id, channel_id) DO UPDATE SET rating = excluded.rating",
                    guild_id,
                    channel_id,
                    rating.label,
                )
            return await self._audit(tx, change), _with_override(channel_id, rating)

        return await self._write(guild_id, body)

    async def _default_of(self, tx: Tx, guild_id: int) -> Rating | None:
        rows = await tx.fetch(
            "SELECT default_rating FROM guild_settings WHERE guild_id = $1", guild_id
        )
        return rating_from_db(rows[0][0]) if rows else None

    async def set_guild_default(
        self, guild_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        def update(settings: GuildSettings) -> GuildSettings:
            return GuildSettings(default=rating, overrides=settings.overrides)

        async def body(tx: Tx) -> tuple[Change, CacheUpdate]:
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.DEFAULT,
                channel_id=None,
                old=await self._default_of(tx, guild_id),
                new=rating,
                at=self._clock(),
            )
            if not change.changed:
                return change, update
            if rating is None:
                await tx.execute("DELETE FROM guild_settings WHERE guild_id = $1", guild_id)
            else:
                await tx.execute(
                    "INSERT INTO guild_settings (guild_id, default_rating) VALUES ($1, $2)"
                    " ON CONFLICT (guild_id)"
                    " DO UPDATE SET default_rating = excluded.default_rating",
                    guild_id,
                    rating.label,
                )
            return await self._audit(tx, change), update

        return await self._write(guild_id, body)

    async def reset_guild(self, guild_id: int, actor_id: int) -> Change:
        async def body(tx: Tx) -> tuple[Change, CacheUpdate]:
            old = await self._default_of(tx, guild_id)
            await tx.execute("DELETE FROM guild_settings WHERE guild_id = $1", guild_id)
            cleared = await tx.execute(
                "DELETE FROM channel_overrides WHERE guild_id = $1", guild_id
            )
            change = Change(
                guild_id=guild_id,
                actor_id=actor_id,
                scope=ChangeScope.RESET,
                channel_id=None,
                old=old,
                new=None,
                at=self._clock(),
                overrides_cleared=max(cleared, 0),
            )
            if change.changed:
                change = await self._audit(tx, change)
            return change, lambda _settings: GuildSettings()

        return await self._write(guild_id, body)

    async def forget_guild(self, guild_id: int) -> None:
        async def body(tx: Tx) -> tuple[None, CacheUpdate]:
            for table in TABLES:
                await tx.execute(f"DELETE FROM {table} WHERE guild_id = $1", guild_id)
            return None, None

        await self._write(guild_id, body)
        log.info("forgot the settings and audit trail of guild %d", guild_id)

    async def stored_guild_ids(self) -> frozenset[int]:
        async def query(tx: Tx) -> frozenset[int]:
            rows = await tx.fetch(
                " UNION ".join(f"SELECT guild_id FROM {table}" for table in TABLES)
            )
            return frozenset(int(guild_id) for (guild_id,) in rows)

        return await self._read(query)

    async def forget_channel(self, guild_id: int, channel_id: int) -> bool:
        # Not audited: nobody acted, Discord deleted the channel.
        async def body(tx: Tx) -> tuple[bool, CacheUpdate]:
            removed = await tx.execute(
                "DELETE FROM channel_overrides WHERE guild_id = $1 AND channel_id = $2",
                guild_id,
                channel_id,
            )
            return removed > 0, _with_override(channel_id, None)

        return await self._write(guild_id, body)

    async def import_snapshot(self, snapshot: StoreSnapshot, *, replace: bool = False) -> None:
        async def body(tx: Tx) -> tuple[None, CacheUpdate]:
            held = await self._counts(tx)
            if held and not replace:
                raise StoreNotEmptyError(f"{self.display} already holds {held}")
            if replace:
                for table in TABLES:
                    await tx.execute(f"DELETE FROM {table}")
            await tx.executemany(
                "INSERT INTO guild_settings (guild_id, default_rating) VALUES ($1, $2)",
                [(guild_id, rating.label) for guild_id, rating in snapshot.defaults.items()],
            )
            await tx.executemany(
                "INSERT INTO channel_overrides (guild_id, channel_id, rating) VALUES ($1, $2, $3)",
                [(g, c, rating.label) for (g, c), rating in snapshot.overrides.items()],
            )
            await tx.executemany(
                f"INSERT INTO settings_audit ({_AUDIT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [(change.id, *self._audit_row(change)) for change in snapshot.audit],
            )
            await self._after_import(tx)
            return None, None

        await self._write(None, body)
