"""Database URLs: which backend they select, and that a password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nekos.models import Rating
from bot.store import (
    Change,
    mask_database_url,
    open_store,
    parse_database_url,
    sqlite_path_from_url,
)
from bot.store.postgres import PostgresSettingsStore

GUILD = 10
ADMIN = 7


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


def test_unsupported_scheme_is_refused_without_echoing_credentials() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme") as info:
        open_store("mysql://root:hunter2@db.internal/x")
    assert "hunter2" not in str(info.value)
    assert "db.internal" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://bot:hunter2@db.internal:5432/bot",
            "postgresql://bot:********@db.internal:5432/bot",
        ),
        ("postgres://bot:hunter2@db/bot", "postgres://bot:********@db/bot"),
        ("POSTGRESQL://bot@db/bot", "postgresql://bot@db/bot"),
        (
            "postgresql://bot@db/bot?sslmode=require&password=hunter2",
            "postgresql://bot@db/bot?sslmode=require&password=********",
        ),
        ("postgresql:///bot?host=/run/postgresql", "postgresql:///bot?host=/run/postgresql"),
    ],
)
def test_postgres_urls_select_postgres_and_show_no_password(url: str, shown: str) -> None:
    target = parse_database_url(url)
    store = open_store(url)

    assert target.kind == "postgresql"
    assert target.display == shown
    assert mask_database_url(url) == shown
    assert isinstance(store, PostgresSettingsStore)
    for text in (repr(target), repr(store), str(store), store.display):
        assert "hunter2" not in text
    assert target.location == url  # the driver gets the URL as given


def test_postgres_url_with_a_bad_port_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="port must be a number") as info:
        parse_database_url("postgresql://bot:hunter2@db:54x2/bot")
    assert "hunter2" not in str(info.value)


def test_mask_of_an_unreadable_url_shows_nothing_of_it() -> None:
    assert "hunter2" not in mask_database_url("bot:hunter2@db/bot")


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
