"""The Redis ledger's script against a real Redis, and failing over to the data folder and back.

The script uses the server's clock, so these tests pick spacings far longer than the test takes
(30 s) and check what the answers say, not how long anything took. Each test has its own key
prefix on the shared server; the outage tests run a private ``redis-server`` they kill.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.nekos import Blocked, RateLimited
from bot.nekos.ledger import Claim, KeyState, SqliteLedger, VerdictKind
from bot.nekos.ledger.failover import PROBE_INTERVAL, FailoverLedger
from bot.nekos.ledger.redis_ledger import RedisLedger
from bot.nekos.pacing import Pacer
from tests.redis_service import PrivateRedis

KEY = "default@api.example:443"
LONG = 30.0


def claim(owner: str, priority: int = 1, spacing: float = LONG, more: bool = False) -> Claim:
    return Claim(owner=owner, priority=priority, spacing=spacing, more_demand=more)


@pytest.fixture
async def ledger(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisLedger]:
    ledger = RedisLedger.from_url(redis_url, prefix=redis_prefix)
    yield ledger
    await ledger.close()


async def go_now(ledger: RedisLedger, owner: str = "opener") -> None:
    """Take a start with no spacing (so the test's own claims see a start just made)."""
    answer = await ledger.reserve(KEY, claim(owner, spacing=0.0))
    assert answer.kind is VerdictKind.GO


# ------------------------------------------------------------------------- the script


async def test_a_key_redis_knows_nothing_about_waits_one_spacing_first(
    ledger: RedisLedger, redis_url: str, redis_prefix: str
) -> None:
    first = await ledger.reserve_with_epoch(KEY, claim("a"))
    assert first.verdict.kind is VerdictKind.WAIT
    assert LONG - 1 < first.verdict.wait <= LONG
    again = await ledger.reserve_with_epoch(KEY, claim("a"))
    assert again.epoch == first.epoch

    # Redis restarted (its keys gone): a new epoch, and one spacing of silence again.
    other = RedisLedger.from_url(redis_url, prefix=redis_prefix)
    await other._client.delete(*ledger.keys(KEY))
    await other.close()
    after = await ledger.reserve_with_epoch(KEY, claim("a"))
    assert after.epoch != first.epoch
    assert after.verdict.kind is VerdictKind.WAIT


async def test_starts_are_spaced_by_the_slower_of_two_spacings(ledger: RedisLedger) -> None:
    await go_now(ledger)
    answer = await ledger.reserve(KEY, claim("b"))
    assert answer.kind is VerdictKind.WAIT
    assert LONG - 1 < answer.wait <= LONG
    # The last start's own spacing counts too: a faster token cannot squeeze in after it.
    await asyncio.sleep(1.05)
    assert (await ledger.reserve(KEY, claim("slow", spacing=1.0))).kind is VerdictKind.GO
    fast = await ledger.reserve(KEY, claim("unlimited", spacing=0.0))
    assert fast.kind is VerdictKind.WAIT


async def test_background_yields_to_members_waiting_in_another_process(
    ledger: RedisLedger,
) -> None:
    await go_now(ledger)
    assert (await ledger.reserve(KEY, claim("bot", spacing=0.0, more=True))).kind is (
        VerdictKind.GO
    )
    refused = await ledger.reserve(KEY, claim("prefetch", priority=2, spacing=0.0))
    assert (refused.kind, refused.demand) == (VerdictKind.WAIT, 1)
    assert (await ledger.reserve(KEY, claim("bot", spacing=0.0))).kind is VerdictKind.GO
    served = await ledger.reserve(KEY, claim("prefetch", priority=2, spacing=0.0))
    assert served.kind is VerdictKind.GO
    assert served.peers == 2  # opener and bot reserved within the minute


async def test_a_hold_delays_every_process(ledger: RedisLedger) -> None:
    await go_now(ledger)
    await ledger.hold(KEY, LONG)
    answer = await ledger.reserve(KEY, claim("b", spacing=0.0))
    assert answer.kind is VerdictKind.WAIT
    assert LONG - 1 < answer.wait <= LONG


async def test_strikes_from_every_process_spend_one_budget(ledger: RedisLedger) -> None:
    await go_now(ledger)
    assert (await ledger.strike(KEY, "s1", hold=0.0, max_strikes=3)).strikes == 1
    assert (await ledger.strike(KEY, "s2", hold=0.0, max_strikes=3)).blocked_for is None
    third = await ledger.strike(KEY, "s3", hold=0.0, max_strikes=3)
    assert third.strikes == 3
    assert third.blocked_for is not None
    assert 3599 < third.blocked_for <= 3600
    answer = await ledger.reserve(KEY, claim("other", spacing=0.0))
    assert (answer.kind, answer.reason, answer.strikes) == (VerdictKind.BLOCKED, "strikes", 3)


async def test_a_server_block_is_shared_with_its_reason(ledger: RedisLedger) -> None:
    await ledger.block(KEY, 3600, "server")
    answer = await ledger.reserve(KEY, claim("other", spacing=0.0))
    assert (answer.kind, answer.reason) == (VerdictKind.BLOCKED, "server")
    assert 3599 < answer.wait <= 3600


async def test_merging_a_local_copy_restores_strikes_and_block_once(ledger: RedisLedger) -> None:
    local = KeyState(strikes={"s1": 990.0, "s2": 995.0}, block_until=1600.0, block_reason="server")
    await ledger.merge(KEY, local, now=1000.0)
    await ledger.merge(KEY, local, now=1000.0)  # every process of the host may hand it back
    answer = await ledger.reserve(KEY, claim("a", spacing=0.0))
    assert (answer.kind, answer.reason, answer.strikes) == (VerdictKind.BLOCKED, "server", 2)
    assert 599 < answer.wait <= 600


async def test_hosts_sharing_the_key_are_counted(ledger: RedisLedger) -> None:
    one = await ledger.reserve_with_epoch(KEY, claim("a", spacing=0.0), host="host-1")
    two = await ledger.reserve_with_epoch(KEY, claim("b", spacing=0.0), host="host-2")
    unasked = await ledger.reserve_with_epoch(KEY, claim("c", spacing=0.0))
    assert (one.hosts, two.hosts, unasked.hosts) == (1, 2, None)


async def test_the_state_expires_when_nobody_uses_the_key(ledger: RedisLedger) -> None:
    await go_now(ledger)
    await ledger.strike(KEY, "s1", hold=0.0, max_strikes=3)
    for key in ledger.keys(KEY)[:2]:
        ttl = await ledger._client.ttl(key)
        assert 3600 < ttl <= 7200  # outlives the strike window, then goes


# ------------------------------------------------------------------------- failing over


@pytest.fixture
def folder(tmp_path: Path) -> SqliteLedger:
    """This host's data folder (the failover ledger closes it)."""
    return SqliteLedger(tmp_path / "data" / "request-budget.db")


async def wait_for_probe() -> None:
    await asyncio.sleep(PROBE_INTERVAL + 0.05)


async def test_a_lone_host_falls_back_to_the_data_folder_and_back(
    private_redis: PrivateRedis, folder: SqliteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), folder)
    try:
        first = await ledger.reserve(KEY, claim("a", spacing=0.0))
        assert first.kind is VerdictKind.GO
        assert ledger.health().description == "shared via Redis"

        await private_redis.kill()
        fallback = await ledger.reserve(KEY, claim("a", spacing=0.0))
        assert ledger.mode == "fallback"
        assert fallback.kind is VerdictKind.GO
        health = ledger.health()
        assert health.description.startswith("host-local (Redis unreachable since ")
        assert not health.ok
        # A 429 while Redis is down is kept in the folder...
        await ledger.strike(KEY, "while-down", hold=0.0, max_strikes=3)

        await private_redis.start()
        await wait_for_probe()
        await ledger.reserve(KEY, claim("a", spacing=0.0))
        assert ledger.mode == "redis"
        # ...and handed to Redis when it is back.
        remote = RedisLedger.from_url(private_redis.url, prefix="t:")
        assert (await remote.reserve(KEY, claim("b", spacing=0.0))).strikes == 1
        await remote.close()
        warnings = [r.getMessage() for r in caplog.records if r.name.endswith("failover")]
        assert len(warnings) == 2, warnings  # once when it fell back, once when it recovered
    finally:
        await ledger.close()


async def test_the_first_start_after_falling_back_waits_one_spacing(
    private_redis: PrivateRedis, folder: SqliteLedger
) -> None:
    ledger = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), folder)
    try:
        await ledger.reserve(KEY, claim("a", spacing=0.0))
        await private_redis.kill()
        answer = await ledger.reserve(KEY, claim("a"))
        assert answer.kind is VerdictKind.WAIT
        assert LONG - 1 < answer.wait <= LONG
    finally:
        await ledger.close()


async def test_a_redis_restart_between_two_requests_forgets_no_strike(
    private_redis: PrivateRedis, folder: SqliteLedger
) -> None:
    ledger = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), folder)
    try:
        await ledger.reserve(KEY, claim("a", spacing=0.0))
        await ledger.strike(KEY, "s1", hold=0.0, max_strikes=3)
        await ledger.strike(KEY, "s2", hold=0.0, max_strikes=3)
        await private_redis.kill()
        await private_redis.start()  # between two requests: this process never saw it down
        answer = await ledger.reserve(KEY, claim("a", spacing=0.0))
        assert answer.kind is VerdictKind.WAIT  # asks again after handing its copy back
        result = await ledger.strike(KEY, "s3", hold=0.0, max_strikes=3)
        assert result.strikes == 3
        assert result.blocked_for is not None
    finally:
        await ledger.close()


async def test_a_process_that_never_reached_redis_pauses(
    private_redis: PrivateRedis, folder: SqliteLedger
) -> None:
    await private_redis.kill()
    ledger = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), folder)
    pacer = Pacer(ledger=ledger, budget_key=KEY)
    try:
        with pytest.raises(RateLimited) as caught:
            await pacer.acquire(endpoint="GET /image/random")
        assert not isinstance(caught.value, Blocked)
        assert "Redis" in caught.value.message
        assert pacer.state().budget.startswith("paused: Redis unreachable since ")
        assert not pacer.state().budget_ok

        await private_redis.start()
        await wait_for_probe()
        await pacer.acquire()  # waits out the fresh key's one spacing, then goes
        assert pacer.state().budget == "shared via Redis"
    finally:
        await ledger.close()


async def test_a_host_that_shares_the_key_with_others_pauses_when_redis_goes(
    private_redis: PrivateRedis, folder: SqliteLedger, tmp_path: Path
) -> None:
    elsewhere = SqliteLedger(tmp_path / "other-host" / "request-budget.db")
    other = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), elsewhere)
    ledger = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), folder)
    try:
        await other.reserve(KEY, claim("other-host", spacing=0.0))
        await ledger.reserve(KEY, claim("this-host", spacing=0.0))
        await private_redis.kill()
        answer = await ledger.reserve(KEY, claim("this-host", spacing=0.0))
        assert answer.kind is VerdictKind.PAUSED
        assert ledger.mode == "paused"
    finally:
        await ledger.close()
        await other.close()


async def test_a_restarted_process_remembers_it_was_alone(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "request-budget.db"
    before = FailoverLedger(
        RedisLedger.from_url(private_redis.url, prefix="t:"), SqliteLedger(path)
    )
    await before.reserve(KEY, claim("a", spacing=0.0))
    await before.close()
    await private_redis.kill()

    after = FailoverLedger(RedisLedger.from_url(private_redis.url, prefix="t:"), SqliteLedger(path))
    try:
        await after.reserve(KEY, claim("a", spacing=0.0))
        assert after.mode == "fallback"
    finally:
        await after.close()
