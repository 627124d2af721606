"""Capacity that grows with IPs: one bot process on one IP beside three shard processes on three
IPs sharing the random-image pool through Redis, side by side in one run.

Each variant starts its bot processes (``python -m bot``) against a Discord emulator and a fake
Nekos API at the live rules (1 request/s per client IP, counted on arrival; ten 429s block the
IP). ``1x1``: one process (every shard), no Redis, as today. ``3x3``: ``SHARD_COUNT=3``, one
process per shard, ``NEKOS_API_SOURCE_ADDRESS`` 127.0.0.2 / .3 / .4 (three IPs to the fake),
``REDIS_URL`` with a prefix of the run's own. Guild ``n`` lands on shard ``n % 3``.

Phases, in this order, after start-up traffic settled:

* **shared** (c): ``--burst`` ``/neko random`` (no category) within one second over every guild:
  random-image calls it cost (three processes should cost one process's + 1 at most).
* **rare** (a): single rare categories (half) and pairs of a rare and a mid one (half; ``--pairs``),
  ``--channels`` channels, ``--rate`` commands/s for ``--seconds`` s: commands answered with
  images within 30 s, random-image calls and 429s per IP.
* **fresh** (b): each channel's member asks ``count=10`` of one of 12 categories again as soon
  as answered (saturating): distinct images first shown within the ``--fresh-seconds`` window
  (after ``--warmup``), per second. The dataset has 30 000 images, so draws rarely repeat.
* peak RSS per bot process, and Redis memory (keys under the run's prefix; the server's peak).

    .venv/bin/python -m bench.cluster [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests.bot_process import spawned
from tests.cli_fleet import write_env
from tests.e2e.conftest import shown_image_ids
from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.discord_emulator import DiscordEmulator, InteractionRecord
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import answers, delete_prefix

from .common import RssSampler, configure_logging, figure
from .discord_harness import (
    CONNECT_TIMEOUT,
    DISCORD_TOKEN,
    Final,
    FinalWatcher,
    Seat,
    build_world,
    classify,
    project_settings,
    tail,
    wait_settled,
)
from .shared_budget import DEFAULT_REDIS

ANSWER_LIMIT = 30.0
"""A command counts in (a) when its images arrived within this many seconds."""
CATEGORIES = (
    "catgirl", "foxgirl", "wolfgirl", "bunny girl", "kemonomimi", "maid", "elf", "vampire",
    "long hair", "white hair", "smile", "blush", "beach", "city", "night", "forest", "sky",
)  # fmt: skip
FULL_CATEGORIES, QUICK_CATEGORIES = 150, 45
PAIR_WITH = ("wolfgirl", "maid", "bunny girl", "sky", "night", "city", "white hair")
"""(a): half the commands ask for one of the generic ``tag N`` categories (~250 sfw images each
in the full run), half for one of them with one of these (7-10% of images: ~20 images a pair):
most sets are asked for too rarely to be in stock, so each needs a call of its own."""


def big_dataset(categories: int, quick: bool) -> Dataset:
    """Large enough that the fresh-image phase rarely draws an image twice; the generic
    categories (``tag 33`` …, ~250 sfw images each in the full run) make rare sets. ``quick``:
    small lists, so start-up (the catalogue's pages at 1 request/s) is short."""
    if quick:
        return generate_dataset(images=5000, categories=categories, artists=25, characters=25)
    return generate_dataset(images=30000, categories=categories)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    processes: int
    redis: bool


VARIANTS = (Variant("1x1", 1, False), Variant("3x3", 3, True))


@dataclass
class Run:
    """One variant's world while it runs."""

    emu: DiscordEmulator
    api: FakeNekosAPI
    seats: list[list[Seat]]
    watcher: FinalWatcher
    samplers: list[RssSampler] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)
    """Images shown so far (earlier phases), so (b) counts only fresh ones."""


def random_calls(api: FakeNekosAPI, since: int) -> int:
    return sum(1 for r in api.requests[since:] if "random" in r.path)


def random_calls_per_ip(api: FakeNekosAPI) -> str:
    counts = Counter(r.ip for r in api.requests if "random" in r.path)
    return ",".join(f"{ip}:{n}" for ip, n in sorted(counts.items())) or "none"


def per_ip_429(api: FakeNekosAPI) -> str:
    counts = Counter(r.ip for r in api.requests if r.status == 429)
    ips = sorted({r.ip for r in api.requests})
    return ",".join(f"{ip}:{counts[ip]}" for ip in ips) or "none"


async def send_at_rate(
    run: Run, rate: float, seconds: float, options: Sequence[dict[str, Any]]
) -> list[tuple[InteractionRecord, float]]:
    """``/neko random`` at ``rate``/s for ``seconds``, round-robin over the guilds, with each
    command's options taken in turn from ``options``; (record, send time) each."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    total = max(1, round(rate * seconds))

    async def send(index: int) -> tuple[InteractionRecord, float]:
        seat = run.seats[index % len(run.seats)][0]
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        sent = loop.time()
        rec = await run.emu.slash(
            seat.member, seat.channel, "neko", subcommand="random", options=options[index]
        )
        return rec, sent

    return list(await asyncio.gather(*(send(i) for i in range(total))))


async def finals(
    run: Run, records: Sequence[tuple[InteractionRecord, float]], limit: float
) -> list[Final | None]:
    """Each record's final message and its emulator seconds from the command (None if it had
    none within ``limit`` seconds from now)."""
    futures = [run.watcher.watch(rec) for rec, _ in records]
    await asyncio.wait(futures, timeout=max(0.0, limit))
    return [f.result() if f.done() and not f.cancelled() else None for f in futures]


async def phase_shared(run: Run, burst: int) -> int:
    since = len(run.api.requests)
    records = await send_at_rate(run, burst, 1.0, [{}] * burst)
    for result in await finals(run, records, 60.0):
        if result is not None:
            run.shown.update(shown_image_ids(result.message))
    return random_calls(run.api, since)


async def phase_rare(
    run: Run, rate: float, seconds: float, rng: random.Random, categories: int, pairs: float
) -> Counter[str]:
    rare_tags = [f"tag {n}" for n in range(33, categories)]
    total = max(1, round(rate * seconds))
    options = [
        {"categories": rng.choice(rare_tags)}
        if rng.random() < 1 - pairs  # the same draw as before --pairs: the default run unchanged
        else {"categories": f"{rng.choice(PAIR_WITH)}, {rng.choice(rare_tags)}"}
        for _ in range(total)
    ]
    records = await send_at_rate(run, rate, seconds, options)
    results = await finals(run, records, ANSWER_LIMIT + 5)
    kinds: Counter[str] = Counter()
    for result in results:
        if result is None:
            kinds["missing"] += 1
            continue
        run.shown.update(shown_image_ids(result.message))
        kind = classify(result.message)
        kinds["late" if kind == "image" and result.elapsed > ANSWER_LIMIT else kind] += 1
    return kinds


async def phase_fresh(run: Run, seconds: float, warmup: float) -> float:
    """Every channel's member asks ``count=10`` of their own category again as soon as the last
    answer came (far more than the upstream feeds); distinct images first shown (in the whole
    run) within the window after ``warmup``, per second."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    window = (start + warmup, start + warmup + seconds)
    first_shown: dict[str, float] = {}

    async def member(index: int) -> None:
        seat = run.seats[index][0]
        category = CATEGORIES[index % 12]
        while loop.time() < window[1]:
            rec = await run.emu.slash(
                seat.member,
                seat.channel,
                "neko",
                subcommand="random",
                options={"categories": category, "count": 10},
            )
            result = (await finals(run, [(rec, loop.time())], window[1] + 5 - loop.time()))[0]
            if result is None:
                return
            now = loop.time()
            for image_id in shown_image_ids(result.message):
                first_shown.setdefault(image_id, now)

    await asyncio.gather(*(member(i) for i in range(len(run.seats))))
    fresh = [
        at for image_id, at in first_shown.items()
        if window[0] <= at <= window[1] and image_id not in run.shown
    ]  # fmt: skip
    run.shown.update(first_shown)
    return len(fresh) / seconds


async def redis_memory(url: str, prefix: str) -> str:
    client = aioredis.Redis.from_url(url)
    try:
        used = 0
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            used += int(await client.memory_usage(key) or 0)
        info = await client.info("memory")
        return f"{used / 1024:.0f}KiB(server_peak={info.get('used_memory_peak_human')})"
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def bots(run: Run, envs: Sequence[dict[str, str]], tmp: Path) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        logs = []
        for number, env in enumerate(envs):
            env_file = write_env(tmp / f"bot{number}.env", env)
            logs.append(tmp / f"bot{number}.log")
            process = await stack.enter_async_context(spawned("bot", env_file, logs[-1]))
            sampler = await stack.enter_async_context(RssSampler(process.pid))
            run.samplers.append(sampler)
        deadline = time.monotonic() + CONNECT_TIMEOUT + 10 * len(envs)

        def ready() -> bool:
            return all("Connected as" in log.read_text("utf-8", "replace") for log in logs)

        while not await asyncio.to_thread(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("a bot never connected:\n" + "\n".join(map(tail, logs)))
            await asyncio.sleep(0.1)
        yield


async def run_variant(
    variant: Variant, args: argparse.Namespace, tmp: Path, redis_url: str | None
) -> dict[str, object]:
    folder = tmp / variant.name
    folder.mkdir()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    rng = random.Random(11)
    shards = variant.processes
    categories = QUICK_CATEGORIES if args.quick else FULL_CATEGORIES
    quiet = 1.0 if args.quick else 2.0
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=shards, max_concurrency=1) as emu,
        FakeNekosAPI(
            big_dataset(categories, args.quick), rate_limit=(1, 1.0), strikes_before_block=10
        ) as api,
        FinalWatcher(emu) as watcher,
    ):
        seats = build_world(emu, args.channels, 1, shards=shards)
        run = Run(emu, api, seats, watcher)
        envs = []
        for shard in range(shards):
            env = {
                **project_settings(emu, api, folder / f"bot{shard}"),
                "DATABASE_URL": f"sqlite:///{folder / 'settings.db'}",
                "HEALTH_FILE": str(folder / f"heartbeat-{shard}"),
                "COOLDOWN_USES": "100000",
            }
            if shards > 1:
                env |= {
                    "SHARD_COUNT": str(shards),
                    "SHARD_IDS": str(shard),
                    "NEKOS_API_SOURCE_ADDRESS": f"127.0.0.{shard + 2}",
                }
            if variant.redis and redis_url is not None:
                env |= {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix}
            envs.append(env)
        async with bots(run, envs, folder):
            await wait_settled(api, quiet)
            shared_calls = await phase_shared(run, args.burst)
            await wait_settled(api, quiet)
            rare = await phase_rare(run, args.rate, args.seconds, rng, categories, args.pairs)
            await wait_settled(api, quiet)  # the rare backlog drained: (b) from an idle upstream
            fresh = await phase_fresh(run, args.fresh_seconds, args.warmup)
            memory = await redis_memory(redis_url, prefix) if variant.redis and redis_url else "-"
        if variant.redis and redis_url:
            await delete_prefix(redis_url, prefix)
        ips = sorted({r.ip for r in api.requests})
        fields: dict[str, object] = {
            "processes": variant.processes,
            "ips": len(ips),
            "burst_calls": shared_calls,
            "rare_served_30s": f"{rare['image']}/{rare.total()}",
            "rare_other": ",".join(f"{k}:{n}" for k, n in sorted(rare.items()) if k != "image")
            or "none",
            "fresh_per_s": f"{fresh:.1f}",
            "random_calls_per_ip": random_calls_per_ip(api),
            "429s_per_ip": per_ip_429(api),
            "peak_rss_mib": "/".join(f"{s.peak_mib:.0f}" for s in run.samplers),
            "redis_mem": memory,
        }
    figure("cluster", variant.name, fields)
    return fields


def ratio(one: str, many: str) -> str:
    a, b = (float(x.split("/")[0]) for x in (one, many))
    return f"{b / a:.2f}x" if a else "inf"


async def run(args: argparse.Namespace) -> None:
    redis_url: str | None = args.redis_url or None
    if redis_url is not None and not await answers(redis_url):
        print(f"# Redis not reachable at {redis_url}: 3x3 runs without sharing", flush=True)
        redis_url = None
    variants = [v if v.processes == 1 else Variant("2x2", 2, True) for v in VARIANTS]
    if not args.quick:
        variants = list(VARIANTS)
    print(
        f"# cluster: fake API at 1 request/s per IP; (c) burst of {args.burst} /neko random in "
        f"1 s; (a) rare sets {args.rate:g}/s for {args.seconds:g} s over {args.channels} "
        f"channels, {args.pairs:.0%} pairs; (b) count=10 saturating, every channel's member "
        f"in a loop, {args.fresh_seconds:g} s window",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        for variant in variants:
            results.append(await run_variant(variant, args, Path(scratch), redis_url))
    one, many = results[0], results[-1]
    figure(
        "cluster",
        "ratio",
        {
            "rare_served": ratio(str(one["rare_served_30s"]), str(many["rare_served_30s"])),
            "fresh_per_s": ratio(str(one["fresh_per_s"]), str(many["fresh_per_s"])),
            "burst_calls": f"{many['burst_calls']}<={int(str(one['burst_calls'])) + 1}",
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the cluster benchmark and print one figure line per variant, then the ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--rate", type=float, default=6.0, help="(a) commands per second")
    parser.add_argument("--seconds", type=float, default=40.0, help="(a) duration")
    parser.add_argument(
        "--pairs",
        type=float,
        default=0.5,
        help="(a) share of pairs (each all but unique: a call of its own); the rest single rare "
        "categories, which one call stocks for several commands",
    )
    parser.add_argument("--fresh-seconds", type=float, default=20.0, help="(b) window")
    parser.add_argument("--warmup", type=float, default=3.0, help="(b) before the window")
    parser.add_argument("--burst", type=int, default=50, help="(c) commands in one second")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' to skip Redis")
    parser.add_argument("--quick", action="store_true", help="1 vs 2 processes, short phases")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.channels, args.rate, args.seconds = 6, 2.0, 2.0
        args.fresh_seconds, args.warmup, args.burst = 2.0, 0.5, 10
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
