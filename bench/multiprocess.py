"""A bot split over processes, beside CLI processes, on one IP: one request budget between them all.

``--bots`` ``python -m bot`` processes run one shard each (``SHARD_COUNT`` = ``--bots``) against
one Discord emulator (``max_concurrency`` 1: every IDENTIFY in one bucket) and one fake Nekos API
at the live rules (1 request/s per IP counted on arrival, rejected ones included; ten 429s within
the hour block the IP for an hour). Per variant:

* ``folder`` — one data folder for every process: the embedded default on one host;
* ``redis`` — a data folder each and one Redis (as processes on separate hosts behind one IP).

1. Start the bots together; wait until every one is connected and the start-up API traffic
   (each process loads the catalogue and stocks its pool) has settled.
2. Burst: ``--commands`` ``/neko random`` within one second, round-robin over ``--guilds`` guilds
   spread evenly over the shards, while ``--cli`` ``python -m bot preview random --count 3``
   processes start together on the same budget.
3. Wait for every final message and every CLI process.

Printed per variant: time until every bot was connected and the smallest gap between two
IDENTIFYs (Discord allows one per 5 s per bucket); the burst's image answers, interactions not
answered exactly once by their shard's process, p50/p99 to the final message, CLI previews
served; then for the whole run (start-up included) upstream requests, 429s, blocked, and the
min / median gap between request arrivals at the fake.

    .venv/bin/python -m bench.multiprocess [--bots 4] [--cli 8] [--commands 40] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bot.sharding import shard_of
from tests.bot_process import spawned
from tests.cli_fleet import (
    PREVIEW_RANDOM,
    finish,
    preview_settings,
    start_cli,
    upstream_report,
    write_env,
)
from tests.fakes.dataset import generate_dataset
from tests.fakes.discord_emulator import DiscordEmulator, InteractionRecord
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import delete_prefix

from .common import configure_logging, figure, fmt_seconds
from .discord_harness import (
    CONNECT_TIMEOUT,
    DISCORD_TOKEN,
    FinalWatcher,
    Seat,
    build_world,
    classify,
    percentile,
    project_settings,
    tail,
    wait_settled,
)
from .shared_budget import DEFAULT_REDIS, add_variant_options, gap, usable_variants

VARIANTS = ("folder", "redis")
MEMBER_COMMANDS = 5
"""Commands per member in one burst: the default cooldown (5 uses per 10 s) allows this."""
FINAL_TIMEOUT = 120.0


@contextlib.asynccontextmanager
async def bots(
    emu: DiscordEmulator, envs: Sequence[dict[str, str]], tmp: Path
) -> AsyncIterator[float]:
    """Start one bot per ``envs`` together; yield the seconds until every one was connected."""
    async with contextlib.AsyncExitStack() as stack:
        logs = []
        started = time.monotonic()
        for number, env in enumerate(envs):
            env_file = write_env(tmp / f"bot{number}.env", env)
            logs.append(tmp / f"bot{number}.log")
            await stack.enter_async_context(spawned("bot", env_file, logs[-1]))
        deadline = started + CONNECT_TIMEOUT + 10 * len(envs)  # IDENTIFYs come 5 s apart

        def ready() -> bool:
            return all("Connected as" in log.read_text("utf-8", "replace") for log in logs)

        while not await asyncio.to_thread(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("a bot never connected:\n" + "\n".join(map(tail, logs)))
            await asyncio.sleep(0.1)
        yield time.monotonic() - started


async def burst(
    emu: DiscordEmulator, seats: list[list[Seat]], commands: int
) -> list[InteractionRecord]:
    """``commands`` ``/neko random`` within one second, round-robin over the guilds."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def send(index: int) -> InteractionRecord:
        guild, turn = index % len(seats), index // len(seats)
        seat = seats[guild][turn // MEMBER_COMMANDS]
        await asyncio.sleep(max(0.0, start + index / commands - loop.time()))
        return await emu.slash(seat.member, seat.channel, "neko", subcommand="random")

    return list(await asyncio.gather(*(send(i) for i in range(commands))))


def not_exactly_once(emu: DiscordEmulator, records: Sequence[InteractionRecord]) -> int:
    """Interactions not sent to exactly one session of their guild's shard, or not answered by
    exactly one accepted callback."""
    wrong = 0
    for rec in records:
        shard = shard_of(rec.channel.guild_id or 0, emu.shards)
        sessions = [session_shard for session_shard, _ in rec.dispatched_to]
        accepted = sum(1 for r in rec.responses if r.accepted)
        wrong += sessions != [shard] or accepted != 1
    return wrong


async def run_variant(variant: str, args: argparse.Namespace, tmp: Path, redis_url: str) -> None:
    folder = tmp / variant
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    shared = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix} if variant == "redis" else {}
    members = max(1, math.ceil(args.commands / (args.guilds * MEMBER_COMMANDS)))
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=args.bots, max_concurrency=1) as emu,
        FakeNekosAPI(generate_dataset(), rate_limit=(1, 1.0), strikes_before_block=10) as api,
    ):
        seats = build_world(emu, args.guilds, members, shards=args.bots)

        def data_dir(name: str) -> Path:
            return folder / ("shared" if variant == "folder" else name)

        envs = [
            {
                **project_settings(emu, api, data_dir(f"bot{shard}")),
                # One settings file for all (as processes on one host, or one database).
                "DATABASE_URL": f"sqlite:///{folder / 'settings.db'}",
                "HEALTH_FILE": str(folder / f"heartbeat-{shard}"),
                "SHARD_COUNT": str(args.bots),
                "SHARD_IDS": str(shard),
                **shared,
            }
            for shard in range(args.bots)
        ]
        async with bots(emu, envs, folder) as connected_s:
            identify_gaps = sorted(g for gaps in emu.identify_gaps().values() for g in gaps)
            await wait_settled(api)
            cli_envs = [
                write_env(
                    folder / f"cli{n}.env",
                    preview_settings(api, data_dir(f"cli{n}"), **shared),
                )
                for n in range(args.cli)
            ]
            async with FinalWatcher(emu) as watcher:
                clis = [await start_cli(PREVIEW_RANDOM, env) for env in cli_envs]
                records = await burst(emu, seats, args.commands)
                futures = [watcher.watch(rec) for rec in records]
                done, _ = await asyncio.wait(futures, timeout=FINAL_TIMEOUT)
                runs = await asyncio.gather(*(finish(cli) for cli in clis))
            finals = [f.result() for f in futures if f in done]
        report = upstream_report(api)
    if variant == "redis":
        await delete_prefix(redis_url, prefix)
    elapsed = [final.elapsed for final in finals] + [math.inf] * (len(records) - len(finals))
    figure(
        "multiprocess",
        variant,
        {
            "bots": args.bots,
            "connected": fmt_seconds(connected_s),
            "identify_min_gap": gap(identify_gaps[0] if identify_gaps else None),
            "served": f"{sum(classify(f.message) == 'image' for f in finals)}/{len(records)}",
            "not_once": not_exactly_once(emu, records),
            "p50_final": fmt_seconds(percentile(elapsed, 0.5)),
            "p99_final": fmt_seconds(percentile(elapsed, 0.99)),
            "cli_served": f"{sum(run.served for run in runs)}/{len(runs)}",
            "upstream": report.requests,
            "429s": report.count_429,
            "blocked": "yes" if report.blocked else "no",
            "min_gap": gap(report.min_gap),
            "median_gap": gap(report.median_gap),
        },
    )


async def run(args: argparse.Namespace) -> None:
    variants, redis_url = await usable_variants(args.variants, args.redis_url)
    print(
        f"# multiprocess: {args.bots} x `python -m bot` (SHARD_COUNT={args.bots}, one shard "
        f"each) and {args.cli} x `python -m bot {' '.join(PREVIEW_RANDOM)}` on one IP; burst of "
        f"{args.commands} /neko random in 1 s over {args.guilds} guilds on every shard; fake API "
        f"at the live rules (1 request/s per IP, block after 10 429s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-multiprocess-") as scratch:
        for variant in variants:
            await run_variant(variant, args, Path(scratch), redis_url or DEFAULT_REDIS)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the multi-process benchmark and print one figure line per variant."""
    parser = argparse.ArgumentParser(prog="python -m bench.multiprocess", description=__doc__)
    parser.add_argument("--bots", type=int, default=4, help="bot processes, one shard each")
    parser.add_argument("--cli", type=int, default=8, help="preview processes beside them")
    parser.add_argument("--commands", type=int, default=40)
    parser.add_argument("--guilds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="2 bots, 2 previews, 8 commands")
    add_variant_options(parser, VARIANTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.bots, args.cli, args.commands, args.guilds = 2, 2, 8, 4
        args.variants = "folder"
    if min(args.bots, args.commands, args.guilds) < 1 or args.cli < 0:
        parser.error("--bots, --commands and --guilds must be at least 1")
    args.redis_url = args.redis_url or None
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
