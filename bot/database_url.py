"""Database URLs: which backend, where, and how to show one without its password.

Pure string handling, no I/O and no heavy imports: ``bot.config`` validates ``DATABASE_URL`` with
it at start-up (also for ``health``), and ``bot.store`` picks its backend with it. No error raised
here repeats the URL, which may carry a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "MEMORY",
    "SUPPORTED_URLS",
    "DatabaseTarget",
    "mask_database_url",
    "parse_database_url",
    "sqlite_path_from_url",
]

MEMORY: Final = ":memory:"
"""The SQLite path of a private in-memory database (for tests)."""

MASK: Final = "********"
SUPPORTED_URLS: Final = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://:memory: "
    "or postgresql://user:password@host:5432/database"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
# libpq-style query options that carry a secret (asyncpg accepts ?password=...).
_SECRET_OPTIONS = frozenset({"password", "sslpassword"})

Kind = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed database URL. ``display`` is safe to log; ``location`` and ``secrets`` are not."""

    kind: Kind
    display: str
    location: str = field(repr=False)
    """SQLite: the file path (or :data:`MEMORY`); PostgreSQL: the DSN handed to the driver."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Passwords in the URL, for log redaction."""


def _split_scheme(database_url: str) -> tuple[str, str]:
    scheme, sep, rest = database_url.strip().partition("://")
    if not sep or not _SCHEME.match(scheme):
        raise ValueError(f"database URL must look like {SUPPORTED_URLS}")
    return scheme.lower(), rest


def sqlite_path_from_url(database_url: str) -> str:
    """The file path (or ``:memory:``) named by a ``sqlite://`` URL.

    ``sqlite:///data/bot.db`` is relative to the working directory, ``sqlite:////var/bot.db`` is
    absolute, ``sqlite://:memory:`` (or ``sqlite:///:memory:``) is a private in-memory database.
    """
    scheme, rest = _split_scheme(database_url)
    if scheme != "sqlite":
        raise ValueError(f"not a sqlite URL (scheme {scheme!r}); use {SUPPORTED_URLS}")
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/"):
        # sqlite://host/... : SQLite has no host part.
        raise ValueError(f"a sqlite URL has no host part; use {SUPPORTED_URLS}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError("sqlite URL options (?...) are not supported")
    if not path or path.endswith("/"):
        raise ValueError(f"sqlite URL names no database file; use {SUPPORTED_URLS}")
    return path


def _postgres_target(url: str) -> DatabaseTarget:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("the PostgreSQL URL's port must be a number") from None
    if parts.fragment:
        raise ValueError("a PostgreSQL URL has no #fragment")
    secrets: list[str] = []
    netloc = parts.netloc
    if parts.password:
        secrets.append(parts.password)
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{netloc.rpartition('@')[2]}"
    options = parse_qsl(parts.query, keep_blank_values=True)
    shown_options = []
    for key, value in options:
        if key.lower() in _SECRET_OPTIONS and value:
            secrets.append(value)
            value = MASK
        shown_options.append((key, value))
    query = urlencode(shown_options, safe="*/")
    # Built by hand: urlunsplit drops the empty host of postgresql:///db?host=/socket.
    display = f"{parts.scheme.lower()}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return DatabaseTarget("postgresql", display, url.strip(), tuple(secrets))


def parse_database_url(database_url: str) -> DatabaseTarget:
    """The backend and location named by ``database_url``; ``ValueError`` if unsupported."""
    scheme, _rest = _split_scheme(database_url)
    if scheme == "sqlite":
        path = sqlite_path_from_url(database_url)
        return DatabaseTarget(
            "sqlite", f"sqlite:///{path}" if path != MEMORY else "sqlite://" + MEMORY, path
        )
    if scheme in _POSTGRES_SCHEMES:
        return _postgres_target(database_url)
    raise ValueError(f"unsupported database URL scheme {scheme!r}; supported: {SUPPORTED_URLS}")


def mask_database_url(database_url: str) -> str:
    """``database_url`` with any password replaced by ``********`` (a placeholder if unreadable)."""
    try:
        return parse_database_url(database_url).display
    except ValueError:
        return "<unreadable database URL>"
