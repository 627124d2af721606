"""Many processes, one request budget: real ``python -m bot preview`` processes, one fake API.

The fake enforces the live per-IP rules (one request per second, counted on arrival, rejected
ones included; ten 429s within the hour block the IP). Processes that share the data folder (or
Redis) must keep to one budget between them: every command served, no 429, request arrivals at
the fake at least a second apart. Processes bound to different source addresses are different IPs
to the fake and get budgets of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli_fleet import (
    PREVIEW_RANDOM,
    CliRun,
    finish,
    preview_settings,
    start_cli,
    upstream_report,
    write_env,
)
from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import PrivateRedis

pytestmark = pytest.mark.timeout(300)

LIVE_GAP = 1.0
"""The live limit: arrivals from one IP less than a second apart earn a 429."""


@pytest.fixture
async def live_fake() -> AsyncIterator[FakeNekosAPI]:
    async with FakeNekosAPI(
        generate_dataset(), rate_limit=(1, 1.0), strikes_before_block=10
    ) as fake:
        yield fake


async def run_together(env_file: Path, count: int) -> list[CliRun]:
    processes = [await start_cli(PREVIEW_RANDOM, env_file) for _ in range(count)]
    return list(await asyncio.gather(*(finish(p) for p in processes)))


def assert_all_served(runs: list[CliRun]) -> None:
    failed = [run for run in runs if not run.served]
    assert not failed, [(run.code, run.stdout[-300:], run.stderr[-500:]) for run in failed]


def assert_kept_to_the_live_rules(fake: FakeNekosAPI) -> None:
    report = upstream_report(fake)
    assert report.count_429 == 0
    assert not report.blocked
    assert report.min_gap is not None
    assert report.min_gap >= LIVE_GAP, report.gaps


async def requests_seen(fake: FakeNekosAPI, count: int) -> None:
    while len(fake.api_requests) < count:  # noqa: ASYNC110 (the fake's log has no event)
        await asyncio.sleep(0.05)


async def test_eight_previews_on_one_ip_share_the_data_folder_budget(
    live_fake: FakeNekosAPI, tmp_path: Path
) -> None:
    env = write_env(tmp_path / "cli.env", preview_settings(live_fake, tmp_path / "data"))
    runs = await run_together(env, 8)
    assert_all_served(runs)
    assert_kept_to_the_live_rules(live_fake)


async def test_eight_previews_on_one_ip_share_the_budget_through_redis(
    live_fake: FakeNekosAPI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    # Separate data folders: only Redis connects them (as on separate hosts behind one IP).
    envs = [
        write_env(
            tmp_path / f"host{n}" / "cli.env",
            preview_settings(
                live_fake,
                tmp_path / f"host{n}",
                REDIS_URL=redis_url,
                REDIS_KEY_PREFIX=redis_prefix,
            ),
        )
        for n in range(8)
    ]
    processes = [await start_cli(PREVIEW_RANDOM, env) for env in envs]
    runs = list(await asyncio.gather(*(finish(p) for p in processes)))
    assert_all_served(runs)
    assert_kept_to_the_live_rules(live_fake)


async def test_processes_on_different_source_addresses_have_budgets_of_their_own(
    live_fake: FakeNekosAPI, tmp_path: Path
) -> None:
    data = tmp_path / "data"  # one data folder: the address alone keeps the budgets apart
    envs = [
        write_env(
            tmp_path / f"{address}.env",
            preview_settings(live_fake, data, NEKOS_API_SOURCE_ADDRESS=address),
        )
        for address in ("127.0.0.2", "127.0.0.3")
    ]
    processes = [await start_cli(PREVIEW_RANDOM, env) for env in envs for _ in range(3)]
    runs = list(await asyncio.gather(*(finish(p) for p in processes)))
    assert_all_served(runs)

    report = upstream_report(live_fake)
    assert set(report.gaps) == {"127.0.0.2", "127.0.0.3"}
    assert report.count_429 == 0
    for ip, gaps in report.gaps.items():
        assert min(gaps) >= LIVE_GAP, (ip, gaps)
    # Together faster than one budget would allow: the two streams interleave.
    assert min(report.merged_gaps) < LIVE_GAP


async def test_a_process_killed_mid_burst_leaves_the_budget_to_the_others(
    live_fake: FakeNekosAPI, tmp_path: Path
) -> None:
    env = write_env(tmp_path / "cli.env", preview_settings(live_fake, tmp_path / "data"))
    processes = [await start_cli(PREVIEW_RANDOM, env) for _ in range(4)]
    await requests_seen(live_fake, 2)
    victim = processes.pop(0)
    victim.kill()  # SIGKILL: no clean-up of any kind
    await victim.wait()
    processes.append(await start_cli(PREVIEW_RANDOM, env))  # and it is started again
    runs = list(await asyncio.gather(*(finish(p) for p in processes)))
    assert_all_served(runs)
    assert_kept_to_the_live_rules(live_fake)


async def test_redis_restarting_mid_load_causes_no_429_and_serving_resumes(
    live_fake: FakeNekosAPI, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = preview_settings(
        live_fake, tmp_path / "data", REDIS_URL=private_redis.url, REDIS_KEY_PREFIX="t:"
    )
    env = write_env(tmp_path / "cli.env", settings)
    processes = [await start_cli(PREVIEW_RANDOM, env) for _ in range(4)]
    await requests_seen(live_fake, 3)
    await private_redis.kill()
    await requests_seen(live_fake, 6)  # served through the data folder meanwhile
    await private_redis.start()
    processes.append(await start_cli(PREVIEW_RANDOM, env))  # one that starts after the restart
    runs = list(await asyncio.gather(*(finish(p) for p in processes)))
    assert_all_served(runs)
    assert_kept_to_the_live_rules(live_fake)
