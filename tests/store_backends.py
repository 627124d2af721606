"""Both settings-store backends for the store tests: one fixture, one constructor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.store import parse_database_url
from bot.store.postgres import PostgresSettingsStore
from bot.store.sql import SqlSettingsStore
from bot.store.sqlite import SqliteSettingsStore
from tests.pg_service import PgDatabase

BACKENDS = ("sqlite", "postgres")


def make_store(url: str, **options: Any) -> SqlSettingsStore:
    """The store for ``url`` with backend-specific ``options`` (``clock`` works for both)."""
    target = parse_database_url(url)
    if target.kind == "sqlite":
        return SqliteSettingsStore(target.location, **options)
    return PostgresSettingsStore(target, **options)


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once per backend (PostgreSQL: a database of the test's own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'settings.db'}"
    database: PgDatabase = request.getfixturevalue("pg_database")
    return database.url
