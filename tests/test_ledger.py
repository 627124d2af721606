"""The request budget's ledger: one budget for every process that shares a key.

Each rule is checked on the in-memory ledger and on the data-folder (SQLite) ledger with a virtual
clock; two ledger objects on one file stand for two processes. Then pacers sharing a ledger: the
spacing, strikes, holds, blocks and priorities hold across them. Redis: tests/test_ledger_redis.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.nekos import Blocked
from bot.nekos.ledger import (
    BudgetLedger,
    Claim,
    LedgerUnavailable,
    MemoryLedger,
    SqliteLedger,
    VerdictKind,
)
from bot.nekos.pacing import BACKGROUND, INTERACTIVE, SHARED, Pacer
from tests.fake_clock import FakeClock

KEY = "default@api.example:443"
EPS = 1e-6

LedgerFactory = Callable[[], BudgetLedger]


@pytest.fixture
def clock() -> FakeClock:
    # Unix-like seconds: the folder ledger's clock is the wall clock.
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture(params=["memory", "folder"])
async def ledgers(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[LedgerFactory]:
    """Makes ledgers that share one budget store: 'processes' of one host."""
    opened: list[BudgetLedger] = []
    memory = MemoryLedger(clock=clock)

    def make() -> BudgetLedger:
        ledger: BudgetLedger = (
            memory
            if request.param == "memory"
            else SqliteLedger(tmp_path / "data" / "request-budget.db", clock=clock)
        )
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        await ledger.close()


def claim(owner: str, priority: int = 1, spacing: float = 1.1, more: bool = False) -> Claim:
    return Claim(owner=owner, priority=priority, spacing=spacing, more_demand=more)


async def test_a_second_start_within_the_spacing_waits_the_rest_of_it(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    one, two = ledgers(), ledgers()
    assert (await one.reserve(KEY, claim("a"))).kind is VerdictKind.GO
    clock.advance(0.4)
    answer = await two.reserve(KEY, claim("b"))
    assert answer.kind is VerdictKind.WAIT
    assert answer.wait == pytest.approx(0.7)
    clock.advance(0.7)
    assert (await two.reserve(KEY, claim("b"))).kind is VerdictKind.GO


async def test_other_keys_have_budgets_of_their_own(ledgers: LedgerFactory) -> None:
    ledger = ledgers()
    assert (await ledger.reserve(KEY, claim("a"))).kind is VerdictKind.GO
    assert (await ledger.reserve("127.0.0.2@api.example:443", claim("a"))).kind is VerdictKind.GO


async def test_the_slower_spacing_of_two_processes_wins(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    ledger = ledgers()
    # A process without a token (1.1 s) after one whose token allows 0.6 s, and the reverse.
    assert (await ledger.reserve(KEY, claim("token", spacing=0.6))).kind is VerdictKind.GO
    answer = await ledger.reserve(KEY, claim("plain", spacing=1.1))
    assert answer.wait == pytest.approx(1.1)
    clock.advance(1.1)
    assert (await ledger.reserve(KEY, claim("plain", spacing=1.1))).kind is VerdictKind.GO
    assert (await ledger.reserve(KEY, claim("token", spacing=0.6))).wait == pytest.approx(1.1)


async def test_background_yields_while_another_process_has_members_waiting(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    bot, prefetcher = ledgers(), ledgers()
    assert (await bot.reserve(KEY, claim("bot", more=True))).kind is VerdictKind.GO
    clock.advance(1.1)
    # The slot is free, but "bot" said more members wait: the background request steps back.
    answer = await prefetcher.reserve(KEY, claim("prefetch", priority=2))
    assert answer.kind is VerdictKind.WAIT
    assert answer.demand == 1
    assert (await bot.reserve(KEY, claim("bot", more=False))).kind is VerdictKind.GO
    clock.advance(1.1)
    assert (await prefetcher.reserve(KEY, claim("prefetch", priority=2))).kind is VerdictKind.GO


async def test_a_waiting_process_keeps_its_demand_marker_until_it_is_served(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    ledger = ledgers()
    await ledger.reserve(KEY, claim("a"))
    assert (await ledger.reserve(KEY, claim("member-waiting"))).kind is VerdictKind.WAIT
    clock.advance(1.1)
    assert (await ledger.reserve(KEY, claim("prefetch", priority=2))).kind is VerdictKind.WAIT
    assert (await ledger.reserve(KEY, claim("member-waiting"))).kind is VerdictKind.GO
    clock.advance(1.1)
    assert (await ledger.reserve(KEY, claim("prefetch", priority=2))).kind is VerdictKind.GO


async def test_a_dead_process_demand_marker_expires(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    ledger = ledgers()
    await ledger.reserve(KEY, claim("killed", more=True))  # then kill -9: never asks again
    clock.advance(1.1 + 2.0 + EPS)
    assert (await ledger.reserve(KEY, claim("prefetch", priority=2))).kind is VerdictKind.GO


async def test_a_hold_from_any_process_delays_every_start(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    one, two = ledgers(), ledgers()
    await one.hold(KEY, 5.0)
    answer = await two.reserve(KEY, claim("b"))
    assert answer.kind is VerdictKind.WAIT
    assert answer.wait == pytest.approx(5.0)


async def test_strikes_are_counted_across_processes_and_the_budget_blocks_every_one(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    one, two, three = ledgers(), ledgers(), ledgers()
    first = await one.strike(KEY, "s1", hold=1.1, max_strikes=3)
    assert (first.strikes, first.blocked_for) == (1, None)
    clock.advance(100)
    assert (await two.strike(KEY, "s2", hold=1.1, max_strikes=3)).strikes == 2
    clock.advance(100)
    third = await three.strike(KEY, "s3", hold=1.1, max_strikes=3)
    assert third.strikes == 3
    assert third.blocked_for == pytest.approx(3600 - 200)  # until the first leaves the hour

    answer = await one.reserve(KEY, claim("a"))
    assert answer.kind is VerdictKind.BLOCKED
    assert answer.reason == "strikes"
    assert answer.wait == pytest.approx(3400)
    clock.advance(3400)
    answer = await two.reserve(KEY, claim("b"))
    assert answer.kind is VerdictKind.GO
    assert answer.strikes == 2


async def test_a_server_block_is_shared_with_its_reason(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    one, two = ledgers(), ledgers()
    await one.block(KEY, 3600, "server")
    answer = await two.reserve(KEY, claim("b"))
    assert (answer.kind, answer.reason) == (VerdictKind.BLOCKED, "server")
    assert answer.wait == pytest.approx(3600)


async def test_a_wall_clock_stepped_back_does_not_stall_the_budget(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    ledger = ledgers()
    await ledger.reserve(KEY, claim("a"))
    clock.now -= 600  # NTP stepped the clock back ten minutes
    answer = await ledger.reserve(KEY, claim("a"))
    assert answer.wait <= 1.1 + EPS


async def test_peers_count_the_other_processes_of_the_last_minute(
    ledgers: LedgerFactory, clock: FakeClock
) -> None:
    ledger = ledgers()
    for owner in ("a", "b", "c"):
        await ledger.reserve(KEY, claim(owner))
    assert (await ledger.reserve(KEY, claim("a"))).peers == 2
    clock.advance(61)
    assert (await ledger.reserve(KEY, claim("a"))).peers == 0


# ------------------------------------------------------------------------- the folder ledger


async def test_the_folder_keeps_strikes_and_blocks_across_restarts(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "request-budget.db"
    before = SqliteLedger(path, clock=clock)
    await before.strike(KEY, "s1", hold=1.1, max_strikes=3)
    await before.block(KEY, 600, "server")
    folder = await before.folder_id()
    await before.close()

    after = SqliteLedger(path, clock=clock)
    try:
        answer = await after.reserve(KEY, claim("restarted"))
        assert (answer.kind, answer.reason, answer.strikes) == (VerdictKind.BLOCKED, "server", 1)
        assert await after.folder_id() == folder
    finally:
        await after.close()


async def test_an_unusable_folder_is_reported_not_crashed(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    ledger = SqliteLedger(blocker / "request-budget.db")
    try:
        with pytest.raises(LedgerUnavailable, match="request budget file"):
            await ledger.reserve(KEY, claim("a"))
    finally:
        await ledger.close()


# ------------------------------------------------------------------------- pacers sharing one


def shared_pacers(clock: FakeClock, ledger: BudgetLedger, count: int) -> list[Pacer]:
    return [
        Pacer(
            clock=clock,
            sleep=clock.sleep,
            wall_clock=clock.wall,
            ledger=ledger,
            budget_key=KEY,
            owner=f"process-{n}",
        )
        for n in range(count)
    ]


async def test_pacers_sharing_a_ledger_space_their_starts_together(clock: FakeClock) -> None:
    pacers = shared_pacers(clock, MemoryLedger(clock=clock), 3)
    starts: list[float] = []

    async def one(pacer: Pacer) -> None:
        await pacer.acquire()
        starts.append(clock())

    await asyncio.gather(*(one(pacer) for pacer in pacers for _ in range(4)))
    starts.sort()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 12
    assert all(gap >= 1.1 - EPS for gap in gaps), gaps


async def test_a_429_in_one_process_holds_the_others_and_counts_once_for_all(
    clock: FakeClock,
) -> None:
    one, two = shared_pacers(clock, MemoryLedger(clock=clock), 2)
    await one.acquire()
    struck = clock()
    await one.strike(5.0)
    await two.acquire()
    assert clock() - struck >= 5.1 - EPS
    assert two.state().strikes_in_window == 1


async def test_the_strike_budget_is_spent_by_all_processes_together(clock: FakeClock) -> None:
    pacers = shared_pacers(clock, MemoryLedger(clock=clock), 3)
    await pacers[0].strike(1.0)
    await pacers[1].strike(1.0)
    with pytest.raises(Blocked):
        await pacers[2].strike(1.0)  # the third hit within the hour, from a third process
    with pytest.raises(Blocked) as caught:
        await pacers[0].acquire()
    assert "3 rate-limit hits" in caught.value.message
    assert pacers[1].estimated_wait() == 0.0  # it has not asked yet; its next request will tell
    with pytest.raises(Blocked):
        await pacers[1].acquire()
    assert pacers[1].estimated_wait() == pytest.approx(3600, abs=2)  # after its own hold


async def test_a_server_block_seen_by_one_process_stops_the_others(clock: FakeClock) -> None:
    one, two = shared_pacers(clock, MemoryLedger(clock=clock), 2)
    await one.block(3600)
    with pytest.raises(Blocked) as caught:
        await two.acquire(endpoint="GET /image/random")
    assert "blocked this IP" in caught.value.message
    assert two.state().requests_started == 0


async def test_background_in_one_process_waits_for_members_waiting_in_another(
    clock: FakeClock,
) -> None:
    bot, prefetcher = shared_pacers(clock, MemoryLedger(clock=clock), 2)
    await bot.acquire(INTERACTIVE)
    order: list[str] = []

    async def member(n: int) -> None:
        await bot.acquire(SHARED if n % 2 else INTERACTIVE)
        order.append(f"member{n}")

    async def prefetch() -> None:
        await prefetcher.acquire(BACKGROUND)
        order.append("prefetch")

    members = [asyncio.create_task(member(n)) for n in range(3)]
    await asyncio.sleep(0)
    await asyncio.gather(prefetch(), *members)
    assert order[-1] == "prefetch"
    assert sorted(order[:-1]) == ["member0", "member1", "member2"]


async def test_the_pacer_reports_the_budget_it_shares(clock: FakeClock, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "request-budget.db", clock=clock)
    try:
        one, two = shared_pacers(clock, ledger, 2)
        await one.acquire()
        await two.acquire()
        state = two.state()
        assert state.budget == "shared through the data folder"
        assert state.budget_ok
        assert state.budget_peers == 1
    finally:
        await ledger.close()
    assert Pacer().state().budget == "this process only"


async def test_a_refused_background_request_does_not_hold_back_this_process_members(
    clock: FakeClock,
) -> None:
    ledger = MemoryLedger(clock=clock)
    (pacer,) = shared_pacers(clock, ledger, 1)
    # Another process took a slot and still has members waiting.
    await ledger.reserve(KEY, claim("other-process", more=True))
    clock.advance(1.1)
    prefetch = asyncio.create_task(pacer.acquire(BACKGROUND))
    for _ in range(5):
        await asyncio.sleep(0)
    assert pacer.state().requests_started == 0  # refused: members wait elsewhere
    before = clock()
    await pacer.acquire(INTERACTIVE)  # a member here is not refused, and goes at once
    assert clock() == before
    prefetch.cancel()
    await asyncio.gather(prefetch, return_exceptions=True)
