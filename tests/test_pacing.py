"""The process-wide pacer: spacing, FIFO fairness, priorities, holds, strikes and blocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import time

import pytest

from bot.nekos import Blocked, TokenInfo
from bot.nekos.pacing import (
    BACKGROUND,
    INTERACTIVE,
    SHARED,
    Pacer,
    Priority,
    RequestPacer,
    parse_rate_limit_reset,
    parse_retry_after,
)
from tests.fake_clock import WALL_EPOCH, FakeClock

EPS = 1e-9


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_pacer(clock: FakeClock, **kwargs: float) -> Pacer:
    return Pacer(clock=clock, sleep=clock.sleep, wall_clock=clock.wall, **kwargs)  # type: ignore[arg-type]


async def run_acquirers(
    pacer: Pacer, clock: FakeClock, priorities: list[Priority]
) -> list[tuple[int, float]]:
    """Start one acquirer per priority, in order; return (index, start time) in grant order."""
    granted: list[tuple[int, float]] = []

    async def one(index: int, priority: Priority) -> None:
        await pacer.acquire(priority)
        granted.append((index, clock()))

    tasks = []
    for index, priority in enumerate(priorities):
        tasks.append(asyncio.create_task(one(index, priority)))
        await asyncio.sleep(0)  # each joins the queue before the next one is created
    await asyncio.gather(*tasks)
    return granted


def test_pacer_implements_the_protocol() -> None:
    assert isinstance(Pacer(), RequestPacer)


async def test_concurrent_acquirers_start_interval_plus_margin_apart_in_fifo_order(
    clock: FakeClock,
) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    granted = await run_acquirers(pacer, clock, [INTERACTIVE] * 10)

    assert [index for index, _ in granted] == list(range(10))
    starts = [t for _, t in granted]
    assert starts[0] == clock.start  # the first request does not wait
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 1.1 - EPS for gap in gaps), gaps
    assert pacer.state().requests_started == 10


async def test_spacing_holds_across_bursts_separated_by_idle_time(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()
    first = clock()
    clock.advance(0.5)
    await pacer.acquire()
    assert clock() - first >= 1.1 - EPS
    clock.advance(5.0)
    before = clock()
    await pacer.acquire()
    assert clock() == before  # idle long enough: no wait


async def test_members_idle_time_counts_from_their_last_start_and_ignores_background(
    clock: FakeClock,
) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    assert pacer.members_idle_for() == math.inf  # nothing started yet
    await pacer.acquire(SHARED)
    clock.advance(2.0)
    await pacer.acquire(BACKGROUND)  # a prefetch or a scheduled post is not a member
    clock.advance(1.0)
    assert pacer.members_idle_for() == pytest.approx(3.0)
    waiting = asyncio.create_task(pacer.acquire(INTERACTIVE))
    await asyncio.sleep(0)
    assert pacer.members_idle_for() == 0.0  # a member is waiting now
    await waiting
    assert pacer.members_idle_for() == 0.0


async def test_background_waits_for_every_queued_interactive_request(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()  # occupies the current slot so everyone below has to queue
    order = [BACKGROUND, BACKGROUND, BACKGROUND, INTERACTIVE, INTERACTIVE, INTERACTIVE]
    granted = await run_acquirers(pacer, clock, order)

    assert [index for index, _ in granted] == [3, 4, 5, 0, 1, 2]
    starts = [t for _, t in granted]
    assert all(b - a >= 1.1 - EPS for a, b in itertools.pairwise(starts))


async def test_a_shared_batch_goes_before_single_member_lookups(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()
    order = [INTERACTIVE, BACKGROUND, INTERACTIVE, SHARED]
    granted = await run_acquirers(pacer, clock, order)

    assert [index for index, _ in granted] == [3, 0, 2, 1]
    # A lookup queued behind a shared batch waits one slot more; the estimate says so.
    assert pacer.estimated_wait(SHARED) <= pacer.estimated_wait(INTERACTIVE)


async def test_shared_batches_and_lookups_alternate_while_both_wait(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire(SHARED)
    order = [SHARED, SHARED, SHARED, INTERACTIVE, INTERACTIVE]
    granted = await run_acquirers(pacer, clock, order)

    # After a shared slot a waiting lookup goes next; shared goes first otherwise.
    assert [index for index, _ in granted] == [3, 0, 4, 1, 2]


async def test_background_takes_a_slot_when_no_interactive_request_waits(
    clock: FakeClock,
) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    before = clock()
    await pacer.acquire(BACKGROUND)
    assert clock() == before


async def test_cancelled_waiter_gives_up_its_place(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()
    doomed = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    survivor = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    assert pacer.queue_length == 2

    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert pacer.queue_length == 1
    await survivor
    assert pacer.queue_length == 0


async def test_estimated_wait_and_queue_length_count_who_is_ahead(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    assert pacer.estimated_wait() == 0.0
    assert pacer.queue_length == 0

    await pacer.acquire()
    assert pacer.estimated_wait() == pytest.approx(1.1)

    tasks = [asyncio.create_task(pacer.acquire(INTERACTIVE)) for _ in range(2)]
    tasks += [asyncio.create_task(pacer.acquire(BACKGROUND)) for _ in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert pacer.queue_length == 5
    # Two interactive waiters ahead of a new interactive request; five of a background one.
    assert pacer.estimated_wait(INTERACTIVE) == pytest.approx(1.1 + 2 * 1.1)
    assert pacer.estimated_wait(BACKGROUND) == pytest.approx(1.1 + 5 * 1.1)
    assert pacer.state().queue_length == 5
    await asyncio.gather(*tasks)
    assert pacer.queue_length == 0


def held_pacer(clock: FakeClock) -> Pacer:
    """A pacer whose waiters never wake on their own (time moves only by ``clock.advance``)."""

    async def forever(delay: float) -> None:
        await asyncio.Event().wait()

    return Pacer(clock=clock, sleep=forever, wall_clock=clock.wall, interval=1.0, margin=0.1)


async def grant(pacer: Pacer, clock: FakeClock, priorities: list[Priority]) -> None:
    for priority in priorities:
        await pacer.acquire(priority)
        clock.advance(1.1)


async def queue(pacer: Pacer, priorities: list[Priority]) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(pacer.acquire(p)) for p in priorities]
    for _ in range(3):
        await asyncio.sleep(0)
    return tasks


async def cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_lookup_estimate_counts_the_batches_that_will_take_alternate_slots(
    clock: FakeClock,
) -> None:
    busy, idle = held_pacer(clock), held_pacer(clock)
    # A pool that keeps fetching: shared and interactive grants alternate.
    await grant(busy, clock, [SHARED, INTERACTIVE] * 5)
    await grant(idle, clock, [INTERACTIVE] * 10)
    await busy.acquire(SHARED)
    await idle.acquire(INTERACTIVE)

    tasks = await queue(busy, [INTERACTIVE] * 4) + await queue(idle, [INTERACTIVE] * 4)

    # Four lookups ahead: four slots, plus four batches expected between them when the pool
    # has been taking every other slot (no batch is queued at this instant).
    assert busy.estimated_wait(INTERACTIVE) == pytest.approx(1.1 + 8 * 1.1)
    assert idle.estimated_wait(INTERACTIVE) == pytest.approx(1.1 + 4 * 1.1)
    # A batch alternates with the lookups: it waits for one of them (a batch went last).
    assert busy.estimated_wait(SHARED) == pytest.approx(1.1 + 1 * 1.1)
    await cancel(tasks)


async def test_a_queued_batch_counts_once_even_without_recent_batches(clock: FakeClock) -> None:
    pacer = held_pacer(clock)
    await pacer.acquire(INTERACTIVE)
    tasks = await queue(pacer, [SHARED, INTERACTIVE, INTERACTIVE])

    assert pacer.estimated_wait(INTERACTIVE) == pytest.approx(1.1 + 3 * 1.1)
    await cancel(tasks)


async def test_retry_after_from_a_strike_holds_every_caller(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()
    struck_at = clock()
    await pacer.strike(5.0, endpoint="GET /stats")
    assert pacer.estimated_wait() == pytest.approx(5.1)
    await pacer.acquire()
    assert clock() - struck_at >= 5.1 - EPS
    assert pacer.strikes_in_window == 1


async def test_zero_remaining_holds_until_the_reset(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=0.0, margin=0.1)
    reset_ms = (clock.wall() + dt.timedelta(seconds=0.7)).timestamp() * 1000
    await pacer.observe_headers(
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{reset_ms:.0f}"}
    )
    before = clock()
    await pacer.acquire()
    assert clock() - before == pytest.approx(0.8, abs=0.01)


async def test_reset_further_than_one_window_is_capped_as_clock_skew(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    far = (clock.wall() + dt.timedelta(minutes=30)).timestamp()
    await pacer.observe_headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{far}"})
    assert pacer.estimated_wait() == pytest.approx(1.1)


async def test_remaining_requests_left_means_no_hold(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=0.0, margin=0.1)
    await pacer.observe_headers({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "1"})
    await pacer.observe_headers({"X-RateLimit-Remaining": "junk"})
    assert pacer.estimated_wait() == 0.0


async def test_strike_budget_blocks_before_the_server_would(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1, max_strikes=3)
    first = clock()
    await pacer.strike(1.0)
    clock.advance(100)
    await pacer.strike(1.0)
    clock.advance(100)
    with pytest.raises(Blocked) as caught:
        await pacer.strike(1.0, endpoint="GET /image/random")

    blocked = caught.value
    lifts = WALL_EPOCH + dt.timedelta(seconds=first - clock.start + 3600)
    assert blocked.until == lifts
    assert blocked.retry_after == pytest.approx(3600 - 200)
    assert blocked.endpoint == "GET /image/random"
    assert pacer.blocked_until == lifts
    assert pacer.estimated_wait() == pytest.approx(3400)

    with pytest.raises(Blocked):
        await pacer.acquire()
    assert pacer.state().requests_started == 0

    clock.advance(3400)  # the first strike leaves the window
    await pacer.acquire()
    assert pacer.strikes_in_window == 2
    assert pacer.blocked_until is None


async def test_strikes_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    pacer = make_pacer(clock, max_strikes=2, strike_window=60.0)
    await pacer.strike(0.0)
    clock.advance(61)
    await pacer.strike(0.0)  # the first one aged out: still within budget
    assert pacer.strikes_in_window == 1


async def test_server_block_stops_sending_until_it_lifts(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.block(3600, endpoint="GET /stats")
    with pytest.raises(Blocked) as caught:
        await pacer.acquire(endpoint="GET /image/random")
    assert "blocked this IP" in caught.value.message
    assert caught.value.endpoint == "GET /image/random"
    assert pacer.blocked_until == WALL_EPOCH + dt.timedelta(seconds=3600)
    assert pacer.state().blocked_until == pacer.blocked_until

    clock.advance(3600)
    await pacer.acquire()
    assert pacer.blocked_until is None


async def test_queued_waiters_fail_fast_when_a_block_starts(clock: FakeClock) -> None:
    pacer = make_pacer(clock, interval=1.0, margin=0.1)
    await pacer.acquire()
    waiters = [asyncio.create_task(pacer.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    await pacer.block(600)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, Blocked) for r in results)
    assert pacer.state().requests_started == 1
    assert pacer.queue_length == 0


@pytest.mark.parametrize(
    ("scopes", "spacing", "max_strikes"),
    [
        (("api:ratelimit:5-10-9",), 2.0 + 0.1, 3),  # 5 per 10 s, block after 9 hits
        (("api:ratelimit:4-1-30",), 0.25 + 0.1, 3),  # budget never above the configured 3
        (("api:ratelimit:2-1-3",), 0.5 + 0.1, 1),  # a third of 3 hits
        (("image:list", "api:ratelimit:nonsense"), 1.0 + 0.1, 3),  # unreadable: keep defaults
        (("api:ratelimit:disabled",), 0.0, 3),
    ],
)
async def test_token_rate_limit_scope_is_adopted(
    clock: FakeClock, scopes: tuple[str, ...], spacing: float, max_strikes: int
) -> None:
    pacer = make_pacer(clock)
    await pacer.adopt_token(TokenInfo(scopes=scopes))
    assert pacer.spacing == pytest.approx(spacing)
    assert pacer.max_strikes == max_strikes
    assert pacer.state().interval == pytest.approx(spacing)


async def test_disabled_rate_limit_lets_requests_start_together(clock: FakeClock) -> None:
    pacer = make_pacer(clock)
    await pacer.adopt_token(TokenInfo(scopes=("api:ratelimit:disabled",)))
    granted = await run_acquirers(pacer, clock, [INTERACTIVE] * 5)
    assert {t for _, t in granted} == {clock.start}


async def test_real_clock_spacing_with_short_interval() -> None:
    # The injected-clock tests above cover the logic; this one checks the real sleep path.
    pacer = Pacer(interval=0.04, margin=0.01)
    starts: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(5)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.05 - 0.005 for gap in gaps), gaps


def test_pacer_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="negative"):
        Pacer(interval=-1)
    with pytest.raises(ValueError, match="max_strikes"):
        Pacer(max_strikes=0)
    with pytest.raises(ValueError, match="strike_window"):
        Pacer(strike_window=0)


NOW = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(int(NOW.timestamp() * 1000) + 800), 0.8),  # Unix milliseconds (Upstash)
        (str(int(NOW.timestamp()) + 2), 2.0),  # Unix seconds
        ("2", 2.0),  # seconds from now
        ("2024-01-01T12:00:05Z", 5.0),  # ISO 8601
        (str(int(NOW.timestamp()) - 10), 0.0),  # already past
        ("whenever", None),
        (None, None),
    ],
)
def test_rate_limit_reset_accepts_every_common_spelling(
    value: str | None, expected: float | None
) -> None:
    result = parse_rate_limit_reset(value, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-3)
