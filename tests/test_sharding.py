"""Which guilds a process owns, and IDENTIFYs spaced per bucket across processes (virtual time)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from bot.nekos.ledger import (
    BudgetHealth,
    Claim,
    LedgerUnavailable,
    MemoryLedger,
    SqliteLedger,
    StrikeResult,
    Verdict,
    VerdictKind,
)
from bot.nekos.ledger.redis_ledger import RedisLedger
from bot.sharding import IdentifyGate, owned_by, shard_of
from tests.fake_clock import FakeClock

# Discord's documentation dissects this snowflake: its timestamp part (id >> 22) is 41944705796.
DOCS_SNOWFLAKE = 175928847299117063
APPLICATION = 1_100_000_000_000_000_001


def test_a_guild_belongs_to_the_shard_its_timestamp_picks() -> None:
    # 41944705796 % 4 == 0, % 3 == 2 (by hand: 4+1+9+4+4+7+0+5+7+9+6 = 56, 56 % 3 == 2).
    assert shard_of(DOCS_SNOWFLAKE, 4) == 0
    assert shard_of(DOCS_SNOWFLAKE, 3) == 2
    assert shard_of(DOCS_SNOWFLAKE, 1) == 0


def test_a_process_owns_only_the_guilds_of_its_shards() -> None:
    owns = owned_by([1, 2], 3)
    assert owns(DOCS_SNOWFLAKE)  # shard 2 of 3
    assert not owned_by([0, 1], 3)(DOCS_SNOWFLAKE)


def gate(
    ledger: MemoryLedger | FailingLedger,
    clock: FakeClock,
    owner: str,
    *,
    concurrency: int = 1,
) -> IdentifyGate:
    async def max_concurrency() -> int:
        return concurrency

    return IdentifyGate(
        [ledger],
        owner=owner,
        application_id=APPLICATION,
        max_concurrency=max_concurrency,
        sleep=clock.sleep,
        memory=MemoryLedger(clock=clock),
    )


async def identify_times(gate: IdentifyGate, clock: FakeClock, shards: list[int]) -> list[float]:
    """Identify ``shards`` one after another as discord.py does; when each was let through."""
    times = []
    for shard in shards:
        assert await gate.wait(shard) is True
        times.append(clock.now - clock.start)
    return times


async def test_two_processes_in_one_bucket_identify_five_seconds_apart() -> None:
    clock = FakeClock()
    shared = MemoryLedger(clock=clock)
    first, second = gate(shared, clock, "process-a"), gate(shared, clock, "process-b")
    a, b = await asyncio.gather(
        identify_times(first, clock, [0, 1]), identify_times(second, clock, [2, 3])
    )
    assert sorted(a + b) == [0.0, 5.0, 10.0, 15.0]


async def test_buckets_are_spaced_apart_from_each_other_only() -> None:
    clock = FakeClock()
    shared = MemoryLedger(clock=clock)
    # max_concurrency 2: shards 0 and 2 share bucket 0, shards 1 and 3 bucket 1.
    first = gate(shared, clock, "process-a", concurrency=2)
    second = gate(shared, clock, "process-b", concurrency=2)
    a, b = await asyncio.gather(
        identify_times(first, clock, [0, 1]), identify_times(second, clock, [2, 3])
    )
    assert a == [0.0, 0.0]  # two buckets: no wait at all
    assert b == [5.0, 5.0]  # each behind its bucket's first IDENTIFY


async def test_the_ledger_key_names_the_application_and_the_bucket() -> None:
    clock = FakeClock()
    four = gate(MemoryLedger(clock=clock), clock, "p", concurrency=4)
    assert await four.key(6) == f"identify:{APPLICATION}:2"
    one = gate(MemoryLedger(clock=clock), clock, "p", concurrency=1)
    assert await one.key(6) == f"identify:{APPLICATION}:0"


async def test_an_unreadable_concurrency_means_one_bucket(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    async def broken() -> int:
        raise OSError("gateway unreachable")

    gated = IdentifyGate(
        [MemoryLedger(clock=clock)],
        owner="p",
        application_id=APPLICATION,
        max_concurrency=broken,
        sleep=clock.sleep,
    )
    assert await gated.max_concurrency() == 1
    assert await gated.key(5) == f"identify:{APPLICATION}:0"
    assert "assuming 1" in caplog.text


class FailingLedger:
    """A shared ledger that cannot be reached, or that pauses (as Redis's fallback does)."""

    def __init__(self, *, pause: bool = False) -> None:
        self.pause = pause

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        if self.pause:
            return Verdict(VerdictKind.PAUSED, 5.0, reason="Redis is unreachable")
        raise LedgerUnavailable("request budget file /nowhere/request-budget.db: disk I/O error")

    async def hold(self, key: str, seconds: float) -> None:
        raise LedgerUnavailable("down")

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        raise LedgerUnavailable("down")

    async def block(self, key: str, seconds: float, reason: str) -> None:
        raise LedgerUnavailable("down")

    def health(self) -> BudgetHealth:
        return BudgetHealth("folder", "unreachable", ok=False)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("pause", [False, True])
async def test_without_the_shared_ledger_logins_are_spaced_in_process_and_logged_once(
    pause: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    gated = gate(FailingLedger(pause=pause), clock, "process-a")
    with caplog.at_level(logging.WARNING, logger="bot.sharding"):
        results = []
        times = []
        for shard in (0, 1, 2):
            results.append(await gated.wait(shard))
            times.append(clock.now - clock.start)
    # Not granted by the shared ledger: the caller adds discord.py's own spacing too.
    assert results == [False, False, False]
    assert times == [0.0, 5.0, 10.0]  # the local fallback still keeps one bucket's 5 s
    warnings = [r for r in caplog.records if "IDENTIFY spacing" in r.getMessage()]
    assert len(warnings) == 1
    assert "this process's own spacing" in warnings[0].getMessage()


async def test_a_shared_ledger_that_recovers_is_used_again() -> None:
    clock = FakeClock()
    flaky = FailingLedger()
    shared = MemoryLedger(clock=clock)

    class Recovering(FailingLedger):
        down = True

        async def reserve(self, key: str, claim: Claim) -> Verdict:
            if self.down:
                return await flaky.reserve(key, claim)
            return await shared.reserve(key, claim)

    ledger = Recovering()
    gated = gate(ledger, clock, "process-a")
    assert await gated.wait(0) is False
    ledger.down = False
    assert await gated.wait(1) is True
    # Another process booking through the shared ledger now waits for this one.
    other = gate(shared, clock, "process-b")
    started = clock.now
    assert await other.wait(2) is True
    assert clock.now - started == 5.0


async def test_with_redis_down_processes_of_one_host_still_space_through_the_data_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    with socket.socket() as probe:  # a port nothing listens on: Redis is down
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"

    def process(owner: str) -> IdentifyGate:
        async def one() -> int:
            return 1

        return IdentifyGate(
            [
                RedisLedger.from_url(dead, prefix="t:"),
                SqliteLedger(tmp_path / "request-budget.db", clock=clock),
            ],
            owner=owner,
            application_id=APPLICATION,
            max_concurrency=one,
            sleep=clock.sleep,
            memory=MemoryLedger(clock=clock),
        )

    first, second = process("a"), process("b")
    try:
        assert await first.wait(0) is False  # granted, but not by the most shared ledger
        started = clock.now
        assert await second.wait(1) is False
        assert clock.now - started == 5.0  # the data folder kept the two processes apart
    finally:
        await first.close()
        await second.close()
    assert "falling back to this host's data folder" in caplog.text
