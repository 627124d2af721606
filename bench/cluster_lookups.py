"""Lookups and cooldowns shared through Redis: three processes on one Redis vs three without.

Per variant, ``--processes`` worker processes (``python -m bench.cluster_lookups --worker``)
open the bot's own wiring (``open_budget``, ``make_api``, ``open_shared``, ``make_lookups``)
against one fake Nekos API (v1; no per-IP limit, the processes' shared budget paced at
``--rate`` requests/s through one data folder, as on one host):

* ``redis`` — ``REDIS_URL`` set: the lookup cache and the cooldown are shared;
* ``local`` — no ``REDIS_URL``: each process caches and counts alone (today's bot);
* ``restart`` — the failure drill: like ``redis`` on a private ``redis-server``, killed
  (``kill -9``) once a third of the distinct lookups reached the API and started again
  ``--down`` seconds later.

Each worker, released together with the others, asks for the same ``--distinct`` lookups (a
third images, a third artists, a third characters by id; its own shuffled order, 8 at a time),
so every lookup is asked in every process. Then it times ``--checks`` cooldown checks (distinct
members). Printed per variant: lookups asked, upstream calls the fake received for them,
p50 / p99 lookup time (ms, over every process's lookups), the time until the slowest process had
all its answers, the lookups answered from Redis and those that waited for another process's
call, those made alone while Redis was unreachable and the lookups that failed (an error a
member would see); the cooldown check's median and p99 (µs).

    .venv/bin/python -m bench.cluster_lookups [--processes 3] [--distinct 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.budget import open_budget
from bot.config import Settings, settings_from_mapping
from bot.nekos.errors import NekosError, NotFound
from bot.serving import CachedLookups, Cooldown, LookupSettings
from bot.serving.assembly import make_api, make_lookups
from bot.serving.cooldown import MemberCooldown
from bot.serving.shared import open_shared
from tests.bot_process import REPO_ROOT, child_environment
from tests.cli_fleet import preview_settings, write_env
from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import PrivateRedis, delete_prefix

from .common import configure_logging, figure
from .discord_harness import percentile
from .shared_budget import DEFAULT_REDIS

VARIANTS = ("redis", "local", "restart")
CONCURRENCY = 8
"""Lookups a worker has under way at once."""
KINDS = ("image", "artist", "character")


# ---------------------------------------------------------------------- one worker process


async def ask(lookups: CachedLookups, kind: str, key: str) -> bool:
    """Whether the lookup was answered (found, or honestly not found)."""
    try:
        if kind == "image":
            await lookups.image(key)
        elif kind == "artist":
            await lookups.artist(key)
        else:
            await lookups.character(key)
    except NotFound:
        return True
    except NekosError:
        return False
    return True


async def time_cooldown(cooldown: MemberCooldown, checks: int) -> list[float]:
    base = random.randrange(1 << 40)
    for user in range(20):  # warm up: the connection and the script cache
        await cooldown.take(base - user - 1)
    durations = []
    for user in range(checks):
        started = time.perf_counter()
        await cooldown.take(base + user)
        durations.append(time.perf_counter() - started)
    return durations


async def worker(settings: Settings, plan: list[list[str]], seed: int, checks: int) -> None:
    random.Random(seed).shuffle(plan)
    budget = open_budget(settings)
    shared = open_shared(settings)
    async with budget, budget.session() as session:
        client = make_api(settings, session=session, budget=budget)
        async with client:
            lookups = make_lookups(
                client,
                LookupSettings(shed_after=None),
                shared=shared.lookups if shared else None,
            )
            local = Cooldown(5, 10.0)
            cooldown: MemberCooldown = shared.cooldown(local) if shared else local
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

            gate = asyncio.Semaphore(CONCURRENCY)
            times: list[float] = []
            failed = 0

            async def one(kind: str, key: str) -> None:
                nonlocal failed
                async with gate:
                    started = time.perf_counter()
                    if not await ask(lookups, kind, key):
                        failed += 1
                    times.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one(kind, key) for kind, key in plan))
            elapsed = time.perf_counter() - started
            cooldown_times = await time_cooldown(cooldown, checks)
            metrics = lookups.metrics()
            await lookups.stop()
    if shared is not None:
        await shared.close()
    print(
        json.dumps(
            {
                "times": times,
                "elapsed": elapsed,
                "failed": failed,
                "cooldown": cooldown_times,
                "shared_hits": metrics.shared_hits,
                "shared_waits": metrics.shared_waits,
                "fallbacks": metrics.shared_fallbacks,
            }
        ),
        flush=True,
    )


# ---------------------------------------------------------------------- the run


def lookup_plan(fake: FakeNekosAPI, distinct: int) -> list[list[str]]:
    data = fake.dataset
    each = distinct // len(KINDS)
    ids = {
        "image": [image.id for image in data.images[:each]],
        "artist": [artist.id for artist in data.artists[:each]],
        "character": [character.id for character in data.characters[:each]],
    }
    return [[kind, key] for kind in KINDS for key in ids[kind]]


def is_lookup(path: str) -> bool:
    return any(path.startswith(f"/api/{kind}/") for kind in KINDS)


async def spawn(env_file: Path, plan_file: Path, seed: int, checks: int) -> Any:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.cluster_lookups",
        "--worker",
        str(env_file),
        str(plan_file),
        str(seed),
        str(checks),
        cwd=REPO_ROOT,
        env=child_environment(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def run_variant(
    variant: str, args: argparse.Namespace, fake: FakeNekosAPI, tmp: Path, redis_url: str
) -> None:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    folder = tmp / variant
    extra = {"NEKOS_API_RATE": str(args.rate), "LOG_LEVEL": "ERROR"}
    server: PrivateRedis | None = None
    if variant == "restart":
        binary = shutil.which("redis-server")
        if binary is None:
            print("cluster_lookups restart: skipped (redis-server is not installed)", flush=True)
            return
        (folder / "redis").mkdir(parents=True)
        server = PrivateRedis(binary, folder / "redis")
        await server.start()
        redis_url = server.url
    if variant != "local":
        extra |= {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix}
    env_file = write_env(folder / "worker.env", preview_settings(fake, folder, **extra))
    plan = lookup_plan(fake, args.distinct)
    plan_file = folder / "plan.json"
    plan_file.write_text(json.dumps(plan), "utf-8")
    before = len([r for r in fake.api_requests if is_lookup(r.path)])
    workers = [
        await spawn(env_file, plan_file, seed, args.checks) for seed in range(args.processes)
    ]
    for process in workers:  # every worker connected and waiting
        assert process.stdout is not None
        line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"a worker did not start: {line!r}")
    for process in workers:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    drill = None
    if server is not None:
        drill = asyncio.create_task(restart(server, fake, before + len(plan) // 3, args.down))
    results = []
    for process in workers:
        out, _ = await process.communicate()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    if drill is not None:
        await drill
    if server is not None:
        await server.kill()
    elif variant == "redis":
        await delete_prefix(redis_url, prefix)
    upstream = len([r for r in fake.api_requests if is_lookup(r.path)]) - before
    times = [t for result in results for t in result["times"]]
    checks = [t for result in results for t in result["cooldown"]]
    figure(
        "cluster_lookups",
        variant,
        {
            "processes": args.processes,
            "distinct": len(plan),
            "asked": len(times),
            "upstream": upstream,
            "p50": f"{1000 * percentile(times, 0.5):.1f}ms",
            "p99": f"{1000 * percentile(times, 0.99):.1f}ms",
            "all_done": f"{max(r['elapsed'] for r in results):.2f}s",
            "from_redis": sum(r["shared_hits"] for r in results),
            "waited_for_another": sum(r["shared_waits"] for r in results),
            "fallbacks": sum(r["fallbacks"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "cooldown_median": f"{1e6 * statistics.median(checks):.0f}us",
            "cooldown_p99": f"{1e6 * percentile(checks, 0.99):.0f}us",
        },
    )


async def restart(server: PrivateRedis, fake: FakeNekosAPI, after: int, down: float) -> None:
    """Kill Redis once ``after`` lookups reached the API; start it again ``down`` s later."""
    while len([r for r in fake.api_requests if is_lookup(r.path)]) < after:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    await server.kill()
    await asyncio.sleep(down)
    await server.start()


async def run(args: argparse.Namespace) -> None:
    async with FakeNekosAPI(generate_dataset(), rate_limit=None) as fake:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-lookups-") as tmp:
            for variant in args.variants:
                await run_variant(variant, args, fake, Path(tmp), args.redis)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=4, metavar=("ENV", "PLAN", "SEED", "CHECKS"))
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=60)
    parser.add_argument("--rate", type=float, default=10.0, help="upstream requests/s (shared)")
    parser.add_argument("--checks", type=int, default=2000, help="cooldown checks per process")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--down", type=float, default=2.0, help="seconds Redis stays killed")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke test)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.worker:
        env, plan, seed, checks = args.worker
        settings = settings_from_mapping(dotenv_values(env))
        lookups = json.loads(Path(plan).read_text("utf-8"))
        asyncio.run(worker(settings, lookups, int(seed), int(checks)))
        return
    if args.quick:
        args.processes, args.distinct, args.rate, args.checks = 2, 12, 40.0, 200
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
