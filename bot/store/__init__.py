"""Settings persistence behind one small async interface.

``open_store(url)`` picks the backend from a database URL (``sqlite://`` or ``postgresql://``);
everything else goes through :class:`SettingsStore`, so the bot never depends on the backend
behind it.
"""

from __future__ import annotations

from bot.database_url import (
    DatabaseTarget,
    mask_database_url,
    parse_database_url,
    sqlite_path_from_url,
)

from .base import (
    Change,
    ChangeScope,
    SchemaTooNewError,
    SettingsStore,
    StoreClosedError,
    StoreCounts,
    StoreError,
    StoreHealth,
    StoreNotEmptyError,
    StoreSnapshot,
    StoreUnavailable,
)
from .postgres import PostgresSettingsStore
from .sqlite import SqliteSettingsStore

__all__ = [
    "Change",
    "ChangeScope",
    "DatabaseTarget",
    "SchemaTooNewError",
    "SettingsStore",
    "StoreClosedError",
    "StoreCounts",
    "StoreError",
    "StoreHealth",
    "StoreNotEmptyError",
    "StoreSnapshot",
    "StoreUnavailable",
    "mask_database_url",
    "open_store",
    "parse_database_url",
    "sqlite_path_from_url",
]


def open_store(database_url: str) -> SettingsStore:
    """The store for ``database_url``, not yet opened.

    Use ``async with open_store(url) as store:``, or ``await store.open()`` and later
    ``await store.close()``.
    Raises ``ValueError`` for a URL it does not support (without repeating the URL).
    """
    target = parse_database_url(database_url)
    if target.kind == "postgresql":
        return PostgresSettingsStore(target)
    return SqliteSettingsStore(target.location)
