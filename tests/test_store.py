"""The settings store, on both backends: persistence, audit trail, durability, forgetting.

Backend-specific behaviour lives in ``test_store_sqlite.py`` and ``test_store_postgres.py``;
several processes sharing one database in ``test_store_invalidation.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import (
    ChangeScope,
    SettingsStore,
    StoreClosedError,
    open_store,
)
from tests import store_writer
from tests.store_backends import make_store

GUILD = 10
OTHER_GUILD = 11
ADMIN = 7
REPO_ROOT = Path(__file__).resolve().parents[1]


class StepClock:
    """A clock that advances one second per reading, so audit times are predictable."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[SettingsStore]:
    async with make_store(backend_url, clock=StepClock()) as opened:
        yield opened


# --------------------------------------------------------------------------- settings


async def test_new_guild_has_empty_settings(store: SettingsStore) -> None:
    assert await store.get_guild_settings(GUILD) == GuildSettings()


async def test_set_and_get_default_and_overrides(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 2, Rating.SFW, ADMIN)

    settings = await store.get_guild_settings(GUILD)

    assert settings.default is Rating.QUESTIONABLE
    assert dict(settings.overrides) == {1: Rating.NSFW, 2: Rating.SFW}
    assert await store.get_guild_settings(OTHER_GUILD) == GuildSettings()


async def test_clearing_override_and_default(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)

    await store.set_channel_override(GUILD, 1, None, ADMIN)
    await store.set_guild_default(GUILD, None, ADMIN)

    assert await store.get_guild_settings(GUILD) == GuildSettings()


async def test_settings_survive_restart(backend_url: str) -> None:
    async with open_store(backend_url) as first:
        await first.set_guild_default(GUILD, Rating.NSFW, ADMIN)
        await first.set_channel_override(GUILD, 3, Rating.QUESTIONABLE, ADMIN)
        before = await first.get_guild_settings(GUILD)

    async with open_store(backend_url) as second:
        assert await second.get_guild_settings(GUILD) == before
        assert len(await second.recent_changes(GUILD)) == 2


async def test_store_can_be_reopened_after_close(backend_url: str) -> None:
    store = open_store(backend_url)
    await store.open()
    await store.open()  # idempotent
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.close()
    await store.close()  # idempotent
    await store.open()
    try:
        assert (await store.get_guild_settings(GUILD)).default is Rating.NSFW
    finally:
        await store.close()


async def test_closed_store_refuses_use(backend_url: str) -> None:
    store = open_store(backend_url)

    with pytest.raises(StoreClosedError):
        await store.get_guild_settings(GUILD)
    with pytest.raises(StoreClosedError):
        await store.set_guild_default(GUILD, Rating.SFW, ADMIN)


# --------------------------------------------------------------------------- audit


async def test_changes_are_audited_newest_first(store: SettingsStore) -> None:
    first = await store.set_guild_default(GUILD, Rating.QUESTIONABLE, 1)
    second = await store.set_channel_override(GUILD, 42, Rating.NSFW, 2)
    third = await store.set_channel_override(GUILD, 42, Rating.SFW, 3)

    changes = await store.recent_changes(GUILD)

    assert changes == [third, second, first]
    assert [c.id for c in changes] == sorted((c.id for c in changes if c.id), reverse=True)
    assert (first.scope, first.channel_id, first.old, first.new, first.actor_id) == (
        ChangeScope.DEFAULT,
        None,
        None,
        Rating.QUESTIONABLE,
        1,
    )
    assert (third.scope, third.channel_id, third.old, third.new) == (
        ChangeScope.CHANNEL,
        42,
        Rating.NSFW,
        Rating.SFW,
    )
    assert first.at < second.at < third.at
    assert first.at.tzinfo is not None


async def test_change_descriptions_are_readable(store: SettingsStore) -> None:
    set_default = await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    set_channel = await store.set_channel_override(GUILD, 42, Rating.QUESTIONABLE, ADMIN)
    cleared = await store.set_channel_override(GUILD, 42, None, ADMIN)
    reset = await store.reset_guild(GUILD, ADMIN)

    assert set_default.description == "<@7> set the server default to nsfw (was: not set)"
    assert set_channel.description == "<@7> set <#42> to questionable (was: server default)"
    assert "cleared the override of <#42> (was: questionable)" in cleared.description
    assert reset.description == (
        "<@7> reset the settings (default was: nsfw; 0 channel overrides cleared)"
    )


async def test_recent_changes_limit(store: SettingsStore) -> None:
    for channel in range(15):
        await store.set_channel_override(GUILD, channel, Rating.NSFW, ADMIN)

    assert len(await store.recent_changes(GUILD)) == 10
    latest = await store.recent_changes(GUILD, limit=3)
    assert [c.channel_id for c in latest] == [14, 13, 12]
    assert await store.recent_changes(GUILD, limit=0) == []
    assert await store.recent_changes(OTHER_GUILD) == []


async def test_no_op_is_returned_but_not_recorded(store: SettingsStore) -> None:
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)

    again = await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    unset = await store.set_guild_default(GUILD, None, ADMIN)

    assert not again.changed
    assert again.id is None
    assert not unset.changed
    assert len(await store.recent_changes(GUILD)) == 1


async def test_reset_clears_everything_and_records_one_change(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.QUESTIONABLE, ADMIN)
    for channel in (1, 2, 3):
        await store.set_channel_override(GUILD, channel, Rating.NSFW, ADMIN)
    await store.set_channel_override(OTHER_GUILD, 1, Rating.NSFW, ADMIN)

    reset = await store.reset_guild(GUILD, 99)

    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert (reset.scope, reset.old, reset.overrides_cleared, reset.actor_id) == (
        ChangeScope.RESET,
        Rating.QUESTIONABLE,
        3,
        99,
    )
    assert (await store.recent_changes(GUILD, limit=1)) == [reset]
    assert (await store.get_guild_settings(OTHER_GUILD)).overrides == {1: Rating.NSFW}


async def test_reset_of_empty_guild_records_nothing(store: SettingsStore) -> None:
    reset = await store.reset_guild(GUILD, ADMIN)

    assert not reset.changed
    assert await store.recent_changes(GUILD) == []


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_writes_all_land_with_their_audit_rows(store: SettingsStore) -> None:
    ratings = list(Rating)

    await asyncio.gather(
        *(
            store.set_channel_override(GUILD, channel, ratings[channel % 3], actor_id=channel)
            for channel in range(200)
        )
    )

    settings = await store.get_guild_settings(GUILD)
    assert dict(settings.overrides) == {c: ratings[c % 3] for c in range(200)}
    changes = await store.recent_changes(GUILD, limit=1000)
    assert len(changes) == 200
    assert {c.actor_id for c in changes} == set(range(200))


async def test_concurrent_writes_to_one_channel_form_a_consistent_chain(
    store: SettingsStore,
) -> None:
    sequence = [Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW] * 67  # consecutive values differ

    returned = await asyncio.gather(
        *(store.set_channel_override(GUILD, 1, r, actor_id=i) for i, r in enumerate(sequence))
    )

    changes = list(reversed(await store.recent_changes(GUILD, limit=1000)))
    # PostgreSQL runs them on several connections, so their order (and which ones find the
    # value already set, a no-op) may differ from the order they were started in.
    assert sorted((c for c in returned if c.id is not None), key=lambda c: c.id or 0) == changes
    assert all(c.old == c.new for c in returned if c.id is None)
    previous: Rating | None = None
    for change in changes:
        assert change.old == previous
        previous = change.new
    assert (await store.get_guild_settings(GUILD)).overrides[1] == previous


# --------------------------------------------------------------------------- kill -9


def _acks(output: str) -> list[int]:
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith("ACK ")]


def _run_writer_and_kill(url: str, first: int, kill_after: int, rng: random.Random) -> list[int]:
    """Start the writer, SIGKILL it at a random moment after ``kill_after`` acknowledgements.

    The kill waits a random fraction of a few write durations after the last ACK it read, so it
    lands anywhere inside a write, not always at its start. Returns every ACK the writer printed.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, store_writer.__file__, url, str(GUILD), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    times: list[float] = []
    try:
        while len(seen) < kill_after:
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"writer exited early: {stderr}")
            seen.append(line)
            times.append(time.monotonic())
        mean_gap = (times[-1] - times[0]) / (len(times) - 1)
        time.sleep(rng.uniform(0, 3 * mean_gap))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return _acks("".join(seen) + rest)


async def test_acknowledged_writes_survive_kill_9(backend_url: str) -> None:
    rng = random.Random(9)
    acked: list[int] = []
    rounds = 6
    for round_number in range(rounds):
        first = round_number * 100_000  # fresh actor ids and channels each round
        acked += _run_writer_and_kill(backend_url, first, rng.randint(10, 40), rng)
    assert len(acked) >= rounds * 10

    async with open_store(backend_url) as store:
        settings = await store.get_guild_settings(GUILD)
        changes = list(reversed(await store.recent_changes(GUILD, limit=1_000_000)))

    recorded_actors = {c.actor_id for c in changes}
    # Every acknowledged write is there ...
    assert set(acked) <= recorded_actors
    # ... and at most one committed-but-unacknowledged write per kill.
    assert len(recorded_actors - set(acked)) <= rounds
    assert len(changes) == len(recorded_actors)

    # No partial state: channel settings and channel audit rows match one to one.
    channel_rows = {c.channel_id: c for c in changes if c.scope is ChangeScope.CHANNEL}
    assert set(channel_rows) == set(settings.overrides)
    for channel_id, change in channel_rows.items():
        assert change.new == settings.overrides[channel_id]
        assert change.new == store_writer.RATINGS[change.actor_id % 3]
    # The default's audit rows chain old -> new and end at the stored default.
    previous: Rating | None = None
    for change in (c for c in changes if c.scope is ChangeScope.DEFAULT):
        assert store_writer.is_default_write(change.actor_id)
        assert change.old == previous
        previous = change.new
    assert settings.default == previous
    for n in acked:
        if store_writer.is_default_write(n):
            assert n in {c.actor_id for c in changes if c.scope is ChangeScope.DEFAULT}
        else:
            assert settings.overrides[store_writer.CHANNEL_BASE + n] == store_writer.RATINGS[n % 3]


# --------------------------------------------------------------------------- forgetting


async def test_forget_guild_deletes_settings_and_audit(store: SettingsStore) -> None:
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(OTHER_GUILD, 1, Rating.QUESTIONABLE, ADMIN)
    await store.get_guild_settings(GUILD)  # cached

    await store.forget_guild(GUILD)

    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert await store.recent_changes(GUILD) == []
    everything = await store.export_snapshot()  # every row of every table
    assert GUILD not in everything.defaults
    assert {guild for guild, _channel in everything.overrides} == {OTHER_GUILD}
    assert {change.guild_id for change in everything.audit} == {OTHER_GUILD}
    assert (await store.get_guild_settings(OTHER_GUILD)).overrides == {1: Rating.QUESTIONABLE}
    assert len(await store.recent_changes(OTHER_GUILD)) == 1


async def test_forget_channel_drops_its_override_only(store: SettingsStore) -> None:
    await store.set_channel_override(GUILD, 1, Rating.NSFW, ADMIN)
    await store.set_channel_override(GUILD, 2, Rating.QUESTIONABLE, ADMIN)
    await store.get_guild_settings(GUILD)  # cached

    assert await store.forget_channel(GUILD, 1) is True
    assert await store.forget_channel(GUILD, 1) is False

    assert dict((await store.get_guild_settings(GUILD)).overrides) == {2: Rating.QUESTIONABLE}
    assert len(await store.recent_changes(GUILD)) == 2  # history kept


async def test_stored_guild_ids_name_every_guild_with_anything_stored(
    store: SettingsStore,
) -> None:
    assert await store.stored_guild_ids() == frozenset()
    snowflake = 1_180_000_000_000_000_001  # a real-sized id: past 2**53, within a BIGINT
    await store.set_guild_default(GUILD, Rating.NSFW, ADMIN)
    await store.set_channel_override(snowflake, 1, Rating.QUESTIONABLE, ADMIN)
    # Set and cleared again: only the audit trail remembers this guild, and it is still data.
    await store.set_guild_default(OTHER_GUILD, Rating.QUESTIONABLE, ADMIN)
    await store.set_guild_default(OTHER_GUILD, None, ADMIN)

    assert await store.stored_guild_ids() == {GUILD, OTHER_GUILD, snowflake}

    await store.forget_guild(OTHER_GUILD)
    assert await store.stored_guild_ids() == {GUILD, snowflake}


# --------------------------------------------------------------------------- export / import


async def test_export_then_import_into_an_empty_store_keeps_everything(
    store: SettingsStore, tmp_path: Path
) -> None:
    await store.set_guild_default(GUILD, Rating.QUESTIONABLE, 1)
    await store.set_channel_override(GUILD, 5, Rating.NSFW, 2)
    await store.set_channel_override(OTHER_GUILD, 6, Rating.SFW, 3)
    await store.reset_guild(OTHER_GUILD, 4)
    exported = await store.export_snapshot()

    async with open_store(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        await copy.import_snapshot(exported)
        assert await copy.export_snapshot() == exported
        assert await copy.get_guild_settings(GUILD) == await store.get_guild_settings(GUILD)
        assert await copy.recent_changes(GUILD) == await store.recent_changes(GUILD)
        # New changes continue the trail after the copied ones.
        later = await copy.set_channel_override(GUILD, 5, Rating.SFW, 9)
    assert later.id is not None
    assert later.id > max(change.id or 0 for change in exported.audit)
    assert later.old is Rating.NSFW
    assert str(exported.counts) == "1 guild default, 1 channel override, 4 audit entries"
