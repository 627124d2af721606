"""The shared random-image pool with real ``python -m bot`` processes: two shard processes on
two egress addresses (``NEKOS_API_SOURCE_ADDRESS`` 127.0.0.2 and 127.0.0.3, two IPs to the fake
API at the live one-request-a-second rule), sharing the pool through Redis.

Members of both shards' guilds ask ``/neko random`` for different categories at once: every
command is answered with an image, the random-image calls leave from both addresses (the work
went to both budgets), and the fake never answers 429. Then a category first asked for in shard
0's guild is asked for in shard 1's: answered from the shared stock, with no further call.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tests.cli_fleet import upstream_report
from tests.e2e.conftest import DISCORD_TOKEN, SMALL_CATALOGUE, final_message, shown_image_ids
from tests.e2e.test_shards import SHARDS, World, bot_for, connected, guilds_on_every_shard
from tests.fakes.dataset import generate_dataset
from tests.fakes.discord_emulator import DiscordEmulator
from tests.fakes.nekos_api import FakeNekosAPI

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ADDRESSES = ("127.0.0.2", "127.0.0.3")
CATEGORIES = ("tag 40", "tag 41", "tag 42", "tag 43", "tag 44", "tag 45")
"""Rare categories (~1% of the images each): no batch for one holds images for the others, so
each needs a call of its own and there is work for both addresses."""
ANSWER_TIMEOUT = 40.0


async def test_two_shard_processes_on_two_addresses_share_one_pool(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=SHARDS, max_concurrency=1) as emu,
        FakeNekosAPI(
            generate_dataset(categories=150, **SMALL_CATALOGUE),
            rate_limit=(1, 1.0),
            strikes_before_block=10,
        ) as fake,
    ):
        seats = guilds_on_every_shard(emu)
        sharing = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": redis_prefix}
        world = World(emu, fake, tmp_path, seats, sharing, shared_folder=False)
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for shard, address in enumerate(ADDRESSES):
                world.extra["NEKOS_API_SOURCE_ADDRESS"] = address  # read when the env is written
                bots.append(
                    await stack.enter_async_context(bot_for(world, shard, f"shard{shard}.log"))
                )
            await connected(world, *bots)
            since = len(fake.requests)
            everyone = [seat for shard in sorted(seats) for seat in seats[shard]]
            records = [
                await emu.slash(
                    seat.user,
                    seat.channel,
                    "neko",
                    subcommand="random",
                    options={"categories": category},
                )
                for seat, category in zip(everyone, CATEGORIES, strict=True)
            ]
            messages = await asyncio.gather(
                *(final_message(rec, ANSWER_TIMEOUT) for rec in records)
            )
            # A category shard 0's guild asked for, now in shard 1's: its stock has the batch.
            before = len(fake.requests)
            seat = seats[1][0]
            again = await emu.slash(
                seat.user,
                seat.channel,
                "neko",
                subcommand="random",
                options={"categories": CATEGORIES[0]},
            )
            from_stock = await final_message(again, ANSWER_TIMEOUT)
            calls_after = [r for r in fake.requests[before:] if "random" in r.path]

    for message in messages:
        assert shown_image_ids(message), message
    assert shown_image_ids(from_stock), from_stock
    assert calls_after == [], [(r.ip, r.query) for r in calls_after]
    random_calls = [r for r in fake.requests[since:] if "random" in r.path]
    assert {r.ip for r in random_calls} == set(ADDRESSES), [(r.ip, r.query) for r in random_calls]
    report = upstream_report(fake)
    assert report.count_429 == 0
    assert not report.blocked
    emu.assert_no_violations()
