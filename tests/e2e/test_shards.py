"""One bot split over two ``python -m bot`` processes (``SHARD_COUNT=2``, ``SHARD_IDS`` 0 and 1).

Both run as real subprocesses against one Discord emulator and one fake Nekos API at the live
per-IP rules (one request a second, counted on arrival; ten 429s block the IP), sharing the
request budget through one data folder (the default) or through Redis (a data folder each, as
on two hosts). A guild's interactions reach only the session of its shard, so each must be
answered exactly once, by the process running that shard; the processes' IDENTIFYs must be five
seconds apart (one ``max_concurrency`` bucket); the fake must never answer 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.sharding import IDENTIFY_SPACING
from tests.bot_process import spawned
from tests.cli_fleet import upstream_report, write_env
from tests.e2e.conftest import DISCORD_TOKEN, SMALL_CATALOGUE, final_message, message_text
from tests.fakes.dataset import generate_dataset
from tests.fakes.discord_emulator import (
    ChannelRecord,
    ChannelType,
    DiscordEmulator,
    InteractionRecord,
    UserRecord,
)
from tests.fakes.nekos_api import FakeNekosAPI

pytestmark = pytest.mark.timeout(300)

SHARDS = 2
GUILDS_PER_SHARD = 3
CONNECT_TIMEOUT = 60.0
ANSWER_TIMEOUT = 40.0
LIVE_GAP = 1.0
SEND_JITTER = 0.5
"""Allowed between a granted IDENTIFY and its arrival at the emulator (a busy 2-core box can
hold one process back a little); without coordination the two arrive together, ~0 s apart."""


@dataclass(frozen=True)
class Seat:
    """A guild's owner in its text channel, and the shard the guild lands on."""

    user: UserRecord
    channel: ChannelRecord
    shard: int


@dataclass
class World:
    emu: DiscordEmulator
    fake: FakeNekosAPI
    tmp: Path
    seats: dict[int, list[Seat]]
    extra: dict[str, str] = field(default_factory=dict)
    shared_folder: bool = True

    def env_file(self, shard: int) -> Path:
        folder = self.tmp / ("data" if self.shared_folder else f"host{shard}")
        return write_env(
            self.tmp / f"shard{shard}.env",
            {
                "DISCORD_TOKEN": DISCORD_TOKEN,
                "DISCORD_API_BASE_URL": self.emu.api_base,
                "NEKOS_API_BASE_URL": self.fake.base_url,
                # One settings database for both, as several processes of one bot share it.
                "DATABASE_URL": f"sqlite:///{self.tmp / 'settings.db'}",
                "DATA_DIR": str(folder),
                "HEALTH_FILE": str(self.tmp / f"heartbeat-{shard}"),
                "SHARD_COUNT": str(SHARDS),
                "SHARD_IDS": str(shard),
                "LOG_LEVEL": "INFO",
                "COOLDOWN_USES": "1000",
                **self.extra,
            },
        )

    def session_of(self, shard: int) -> str:
        """The id of the latest gateway session opened for ``shard``."""
        return [r for r in self.emu.identify_log if r.shard_id == shard][-1].session_id


def guilds_on_every_shard(emu: DiscordEmulator) -> dict[int, list[Seat]]:
    """:data:`GUILDS_PER_SHARD` guilds on each shard, each with its owner in a text channel."""
    seats: dict[int, list[Seat]] = {}
    for shard in range(SHARDS):
        for number in range(GUILDS_PER_SHARD):
            owner = emu.add_user(f"owner{shard}-{number}")
            guild = emu.add_guild(f"Guild {shard}-{number}", owner, shard=(shard, SHARDS))
            channel = emu.add_channel(guild, ChannelType.GUILD_TEXT, "general")
            seats.setdefault(shard, []).append(Seat(owner, channel, shard))
    return seats


@pytest.fixture(params=["folder", "redis"])
def sharing(request: pytest.FixtureRequest) -> dict[str, str]:
    """How the processes share the budget: one data folder, or Redis (settings to add)."""
    if request.param == "folder":
        return {}
    return {
        "REDIS_URL": request.getfixturevalue("redis_url"),
        "REDIS_KEY_PREFIX": request.getfixturevalue("redis_prefix"),
    }


@pytest.fixture
async def world(sharing: dict[str, str], tmp_path: Path) -> AsyncIterator[World]:
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=SHARDS, max_concurrency=1) as emu,
        FakeNekosAPI(
            generate_dataset(**SMALL_CATALOGUE), rate_limit=(1, 1.0), strikes_before_block=10
        ) as fake,
    ):
        seats = guilds_on_every_shard(emu)
        # With Redis, a data folder each: only Redis connects them, as on two hosts.
        yield World(emu, fake, tmp_path, seats, sharing, shared_folder=not sharing)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@dataclass(frozen=True)
class BotProcess:
    process: asyncio.subprocess.Process
    log: Path


@contextlib.asynccontextmanager
async def bot_for(world: World, shard: int, log_name: str) -> AsyncIterator[BotProcess]:
    """``python -m bot`` running ``shard`` (SIGTERMed on exit); killed ones are left as they are."""
    log_path = world.tmp / log_name
    async with spawned("bot", world.env_file(shard), log_path) as process:
        yield BotProcess(process, log_path)


async def connected(world: World, *bots: BotProcess) -> None:
    """Wait until every bot logged that it is ready (all of its shards' guilds are cached)."""

    def ready() -> bool:
        return all("Connected as" in read(bot.log) for bot in bots)

    try:
        await world.emu.wait_until(ready, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        logs = "\n---\n".join(read(bot.log)[-3000:] for bot in bots)
        pytest.fail(f"a bot never connected:\n{logs}")


async def fire(world: World, seats: list[Seat]) -> list[InteractionRecord]:
    return [
        await world.emu.slash(seat.user, seat.channel, "neko", subcommand="random")
        for seat in seats
    ]


async def answered(records: list[InteractionRecord]) -> None:
    await asyncio.gather(*(final_message(rec, ANSWER_TIMEOUT) for rec in records))


def accepted(rec: InteractionRecord) -> int:
    return sum(1 for response in rec.responses if response.accepted)


def every_seat(world: World) -> Iterator[Seat]:
    return itertools.chain.from_iterable(world.seats.values())


def assert_kept_to_the_live_rules(fake: FakeNekosAPI) -> None:
    report = upstream_report(fake)
    assert report.requests > 0
    assert report.count_429 == 0
    assert not report.blocked
    assert report.min_gap is not None
    assert report.min_gap >= LIVE_GAP, report.gaps


async def test_each_process_answers_exactly_its_own_shards_interactions(world: World) -> None:
    emu = world.emu
    async with bot_for(world, 0, "shard0.log") as bot0, bot_for(world, 1, "shard1.log") as bot1:
        await connected(world, bot0, bot1)

        # One IDENTIFY per shard, five seconds apart: both are in bucket 0 (max_concurrency 1).
        assert sorted(r.shard_id for r in emu.identify_log) == [0, 1]
        assert [r.shard_count for r in emu.identify_log] == [SHARDS, SHARDS]
        (gap,) = emu.identify_gaps()[0]
        assert gap >= IDENTIFY_SPACING - SEND_JITTER, emu.identify_log
        # Commands are registered once, by the process running shard 0.
        assert emu.command_syncs == [None]
        assert "Command sync is left to the process running shard 0" in read(bot1.log)

        records = await fire(world, list(every_seat(world)))
        await answered(records)

        # /neko about on shard 1's process counts its own servers, and the bot's in all.
        seat = world.seats[1][0]
        about = await emu.slash(seat.user, seat.channel, "neko", subcommand="about")
        text = message_text(await final_message(about, ANSWER_TIMEOUT))
        assert "Servers: 3 on this process's shards (1 of 2), about 6 in all" in text

    sessions = {shard: world.session_of(shard) for shard in range(SHARDS)}
    for seat, rec in zip(every_seat(world), records, strict=True):
        assert rec.dispatched_to == [(seat.shard, sessions[seat.shard])], rec
        assert accepted(rec) == 1, rec.responses
    emu.assert_no_violations()
    assert_kept_to_the_live_rules(world.fake)


def on_shard(records: list[InteractionRecord], shard: int) -> list[InteractionRecord]:
    return [rec for rec in records if rec.dispatched_to[0][0] == shard]


async def test_a_killed_process_restarts_and_serves_its_shard_again(world: World) -> None:
    emu = world.emu
    first_half = {shard: row[:2] for shard, row in world.seats.items()}
    later = {shard: row[2:] for shard, row in world.seats.items()}
    async with bot_for(world, 0, "shard0.log") as bot0:
        async with bot_for(world, 1, "shard1.log") as bot1:
            await connected(world, bot0, bot1)
            victim_session = world.session_of(1)
            burst = await fire(world, first_half[0] + first_half[1])
            # Mid-burst: once shard 1's process answered something, it is killed outright.
            await emu.wait_until(lambda: any(map(accepted, on_shard(burst, 1))), ANSWER_TIMEOUT)
            bot1.process.kill()  # SIGKILL: no clean-up of any kind
            await bot1.process.wait()

        # The other process keeps serving its shard, through the same shared budget.
        survivors = on_shard(burst, 0) + await fire(world, later[0])
        await answered(survivors)

        async with bot_for(world, 1, "shard1-restarted.log") as bot1_again:
            await connected(world, bot1_again)
            assert world.session_of(1) != victim_session
            after_restart = await fire(world, later[1] + first_half[1])
            await answered(after_restart)
            for rec in after_restart:
                assert rec.dispatched_to == [(1, world.session_of(1))]

    for rec in burst:
        assert accepted(rec) <= 1, rec.responses  # never answered twice
    for rec in survivors + after_restart:
        assert accepted(rec) == 1, rec.responses
    # Only interactions the killed process had received but not answered went unanswered.
    lost = {rec.id for rec in emu.unanswered()}
    assert lost <= {rec.id for rec in on_shard(burst, 1)}
    assert emu.violations == []
    # The restarted process (catalogue, pool) and the survivor kept to one budget throughout.
    assert_kept_to_the_live_rules(world.fake)
