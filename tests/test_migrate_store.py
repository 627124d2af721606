"""Copying a store to another (``migrate-store``): nothing lost, nothing overwritten by accident."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.nekos.models import Rating
from bot.store import (
    ChangeScope,
    SettingsStore,
    StoreError,
    StoreNotEmptyError,
    StoreSnapshot,
    open_store,
)
from bot.store.migrate import copy_store
from tests.pg_service import fresh_database
from tests.store_backends import make_store

GUILD, OTHER_GUILD, ADMIN = 10, 11, 7


class StepClock:
    """Audit times one minute apart, in the past, so copies can be told from new writes."""

    def __init__(self) -> None:
        self.now = dt.datetime(2023, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


@contextlib.asynccontextmanager
async def database_url(kind: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    async with fresh_database() as database:
        yield database.url


async def fill(url: str) -> StoreSnapshot:
    """Settings and an audit trail with every kind of change; returns what the store holds."""
    async with make_store(url, clock=StepClock()) as store:
        await store.set_guild_default(GUILD, Rating.QUESTIONABLE, 1)
        for channel, rating in ((100, Rating.NSFW), (101, Rating.SFW), (102, Rating.NSFW)):
            await store.set_channel_override(GUILD, channel, rating, 2)
        await store.set_channel_override(GUILD, 102, None, 3)
        await store.forget_channel(GUILD, 101)  # a deleted channel: not audited
        await store.set_guild_default(OTHER_GUILD, Rating.NSFW, 4)
        await store.set_channel_override(OTHER_GUILD, 200, Rating.QUESTIONABLE, 5)
        await store.reset_guild(OTHER_GUILD, 6)
        await store.set_guild_default(OTHER_GUILD, Rating.SFW, 7)
        return await store.export_snapshot()


DIRECTIONS = [
    ("sqlite", "postgres"),
    ("postgres", "sqlite"),
    ("sqlite", "sqlite"),
    ("postgres", "postgres"),
]


@pytest.mark.parametrize(("source_kind", "target_kind"), DIRECTIONS)
async def test_copy_keeps_settings_and_the_whole_audit_trail(
    source_kind: str, target_kind: str, tmp_path: Path
) -> None:
    async with (
        database_url(source_kind, tmp_path, "source") as source_url,
        database_url(target_kind, tmp_path, "target") as target_url,
    ):
        original = await fill(source_url)

        report = await copy_store(source_url, target_url)

        assert str(report.counts) == "2 guild defaults, 1 channel override, 9 audit entries"
        assert str(report).startswith("copied 2 guild defaults, 1 channel override, 9 audit")
        async with open_store(target_url) as target:
            assert await target.export_snapshot() == original
            assert await target.get_guild_settings(GUILD) == await _settings(source_url, GUILD)
            trail = await target.recent_changes(OTHER_GUILD)
            assert [c.scope for c in trail] == [
                ChangeScope.DEFAULT,
                ChangeScope.RESET,
                ChangeScope.CHANNEL,
                ChangeScope.DEFAULT,
            ]
            assert trail[1].overrides_cleared == 1
            assert trail[-1].at.microsecond == 678_901  # times are kept to the microsecond
            # The trail goes on after the copied entries.
            later = await target.set_channel_override(GUILD, 100, Rating.SFW, 9)
            assert later.id is not None
            assert later.id > max(c.id or 0 for c in original.audit)
            assert later.old is Rating.NSFW
        # The source is left as it was.
        async with open_store(source_url) as source:
            assert await source.export_snapshot() == original


async def _settings(url: str, guild_id: int) -> object:
    async with open_store(url) as store:
        return await store.get_guild_settings(guild_id)


@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
async def test_a_target_that_holds_data_is_refused_unless_replaced(
    target_kind: str, tmp_path: Path
) -> None:
    async with database_url(target_kind, tmp_path, "target") as target_url:
        source_url = f"sqlite:///{tmp_path / 'source.db'}"
        original = await fill(source_url)
        async with open_store(target_url) as target:
            await target.set_channel_override(99, 1, Rating.NSFW, 42)
            before = await target.export_snapshot()

        with pytest.raises(StoreNotEmptyError, match="already holds 0 guild defaults, 1 chan"):
            await copy_store(source_url, target_url)
        async with open_store(target_url) as target:
            assert await target.export_snapshot() == before  # untouched

        await copy_store(source_url, target_url, replace=True)
        async with open_store(target_url) as target:
            assert await target.export_snapshot() == original


async def test_an_empty_source_is_refused(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'empty.db'}"
    async with open_store(source_url):
        pass

    with pytest.raises(StoreError, match="holds no settings and no audit entries"):
        await copy_store(source_url, f"sqlite:///{tmp_path / 'target.db'}")


async def test_a_missing_source_file_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "tpyo.db"

    with pytest.raises(StoreError, match="does not exist"):
        await copy_store(f"sqlite:///{missing}", f"sqlite:///{tmp_path / 'target.db'}")

    assert not missing.exists()
    assert not (tmp_path / "target.db").exists()


async def test_copying_a_database_onto_itself_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    await fill(url)

    with pytest.raises(StoreError, match="same database"):
        await copy_store(url, url, replace=True)


async def test_import_is_one_transaction(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    original = await fill(source_url)
    broken = StoreSnapshot(
        original.defaults,
        original.overrides,
        (*original.audit, original.audit[0]),  # a duplicate id: the last insert fails
    )
    target: SettingsStore
    async with open_store(f"sqlite:///{tmp_path / 'target.db'}") as target:
        with pytest.raises(StoreError):
            await target.import_snapshot(broken)
        assert not (await target.export_snapshot()).counts  # nothing half-copied
