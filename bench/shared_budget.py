"""Many processes, one request budget: N ``python -m bot preview random --count 3`` at once.

Each variant gets its own fake Nekos API enforcing the live per-IP rules (one request per second,
rejected requests counted, ten 429s within the hour block the IP for an hour) and starts N CLI
processes together on one IP:

* ``separate`` — every process with a data folder of its own and no Redis: one budget per
  process, as before the shared budget (the issue's "1 of 8 served");
* ``folder`` — one data folder for all: the embedded default;
* ``redis`` — a data folder each, one Redis (as processes on separate hosts behind one IP).

Printed per variant: served, 429s, blocked, upstream requests, min / median gap between request
arrivals at the fake, wall time. Then the ledger's own cost: ``reservations`` reservations with
no spacing on a private key, straight to the ledger and through ``Pacer.acquire`` (median and p99
ms), against an in-process pacer with no ledger.

    .venv/bin/python -m bench.shared_budget [--processes 8] [--quick] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bot.nekos.ledger import BudgetLedger, Claim, SqliteLedger
from bot.nekos.ledger.redis_ledger import RedisLedger
from bot.nekos.pacing import Pacer
from tests.cli_fleet import (
    PREVIEW_RANDOM,
    finish,
    preview_settings,
    start_cli,
    upstream_report,
    write_env,
)
from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import answers, delete_prefix

from .common import configure_logging, figure, fmt_seconds

VARIANTS = ("separate", "folder", "redis")
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms"


def gap(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.3f}s"


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


# ---------------------------------------------------------------------- N processes, one IP


async def run_fleet(variant: str, processes: int, tmp: Path, redis_url: str) -> None:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    async with FakeNekosAPI(
        generate_dataset(), rate_limit=(1, 1.0), strikes_before_block=10
    ) as fake:
        envs = []
        for number in range(processes):
            folder = tmp / variant / ("shared" if variant == "folder" else f"process{number}")
            extra = (
                {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix} if variant == "redis" else {}
            )
            envs.append(
                write_env(folder / f"cli{number}.env", preview_settings(fake, folder, **extra))
            )
        started = time.monotonic()
        children = [await start_cli(PREVIEW_RANDOM, env) for env in envs]
        runs = await asyncio.gather(*(finish(child) for child in children))
        elapsed = time.monotonic() - started
        report = upstream_report(fake)
    if variant == "redis":
        await delete_prefix(redis_url, prefix)
    figure(
        "shared_budget",
        variant,
        {
            "served": f"{sum(run.served for run in runs)}/{processes}",
            "429s": report.count_429,
            "blocked": "yes" if report.blocked else "no",
            "upstream": report.requests,
            "min_gap": gap(report.min_gap),
            "median_gap": gap(report.median_gap),
            "wall": fmt_seconds(elapsed),
        },
    )


# ---------------------------------------------------------------------- the ledger's own cost


async def timed(count: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(20):  # warm up: connections, the script cache, the file
        await call()
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


def cost_line(label: str, durations: list[float]) -> None:
    figure(
        "shared_budget",
        label,
        {
            "calls": len(durations),
            "median": ms(statistics.median(durations)),
            "p99": ms(p99(durations)),
        },
    )


async def ledger_cost(name: str, ledger: BudgetLedger, count: int) -> None:
    key = f"bench-{uuid.uuid4().hex[:8]}"
    claim = Claim(owner="bench", priority=1, spacing=0.0)
    cost_line(f"{name} reserve", await timed(count, lambda: ledger.reserve(key, claim)))
    pacer = Pacer(interval=0.0, margin=0.0, ledger=ledger, budget_key=key + "-pacer")
    cost_line(f"{name} acquire", await timed(count, pacer.acquire))


async def costs(count: int, tmp: Path, redis_url: str | None) -> None:
    alone = Pacer(interval=0.0, margin=0.0)
    cost_line("in-process acquire", await timed(count, alone.acquire))
    folder = SqliteLedger(tmp / "cost" / "request-budget.db")
    try:
        await ledger_cost("folder", folder, count)
    finally:
        await folder.close()
    if redis_url is None:
        return
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    remote = RedisLedger.from_url(redis_url, prefix=prefix)
    try:
        await ledger_cost("redis", remote, count)
    finally:
        await remote.close()
        await delete_prefix(redis_url, prefix)


def add_variant_options(parser: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    """``--variants`` (comma-separated), ``--redis-url`` ('' to skip Redis) and ``--verbose``."""
    parser.add_argument("--variants", default=",".join(variants), help="comma-separated")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' to skip Redis")
    parser.add_argument("--verbose", action="store_true")


async def usable_variants(variants: str, redis_url: str | None) -> tuple[list[str], str | None]:
    """The comma-separated ``variants`` to run, without ``redis`` when Redis does not answer."""
    if redis_url is not None and not await answers(redis_url):
        print(f"# Redis not reachable at {redis_url}: the Redis figures are skipped", flush=True)
        redis_url = None
    return [v for v in variants.split(",") if v and (v != "redis" or redis_url)], redis_url


async def run(args: argparse.Namespace) -> None:
    processes = 3 if args.quick else args.processes
    reservations = 100 if args.quick else args.reservations
    variants, redis_url = await usable_variants(args.variants, args.redis_url)
    print(
        f"# shared_budget: {processes} x `python -m bot {' '.join(PREVIEW_RANDOM)}` started "
        f"together on one IP; fake API at the live rules (1 request/s per IP, block after 10 "
        f"429s); ledger cost over {reservations} calls",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-shared-budget-") as folder:
        tmp = Path(folder)
        for variant in variants:
            await run_fleet(variant, processes, tmp, redis_url or DEFAULT_REDIS)
        await costs(reservations, tmp, redis_url)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the shared-budget benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.shared_budget", description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--reservations", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="3 processes, 100 calls")
    add_variant_options(parser, VARIANTS)
    args = parser.parse_args(argv)
    args.redis_url = args.redis_url or None
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
