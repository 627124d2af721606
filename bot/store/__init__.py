"""Settings persistence behind one small async interface.

``open_store(url)`` picks the backend from a database URL; everything else goes through
:class:`SettingsStore`, so the bot never depends on the backend behind it.
"""

from __future__ import annotations

import re

from .base import (
    Change,
    ChangeScope,
    SchemaTooNewError,
    SettingsStore,
    StoreClosedError,
    StoreError,
    StoreHealth,
)
from .sqlite import MEMORY, SqliteSettingsStore

__all__ = [
    "Change",
    "ChangeScope",
    "SchemaTooNewError",
    "SettingsStore",
    "StoreClosedError",
    "StoreError",
    "StoreHealth",
    "open_store",
    "sqlite_path_from_url",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_SUPPORTED = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:"


def sqlite_path_from_url(database_url: str) -> str:
    """The file path (or ``:memory:``) named by a ``sqlite://`` URL.

    ``sqlite:///data/bot.db`` is relative to the working directory, ``sqlite:////var/bot.db`` is
    absolute, ``sqlite://:memory:`` (or ``sqlite:///:memory:``) is a private in-memory database.
    Errors never repeat the URL, which for other backends may carry a password.
    """
    scheme, sep, rest = database_url.strip().partition("://")
    if not sep or not _SCHEME.match(scheme):
        raise ValueError(f"database URL must look like {_SUPPORTED}")
    if scheme.lower() != "sqlite":
        raise ValueError(
            f"unsupported database URL scheme {scheme.lower()!r}; supported: {_SUPPORTED}"
        )
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/"):
        # sqlite://host/... : SQLite has no host part.
        raise ValueError(f"a sqlite URL has no host part; use {_SUPPORTED}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError("sqlite URL options (?...) are not supported")
    if not path or path.endswith("/"):
        raise ValueError(f"sqlite URL names no database file; use {_SUPPORTED}")
    return path


def open_store(database_url: str) -> SettingsStore:
    """The store for ``database_url``, not yet opened.

    Use ``async with open_store(url) as store:``, or ``await store.open()`` and later
    ``await store.close()``.
    Raises ``ValueError`` for a URL it does not support.
    """
    return SqliteSettingsStore(sqlite_path_from_url(database_url))
