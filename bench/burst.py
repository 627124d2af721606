"""Burst: 50 ``/neko random`` within one second, over 10 guilds (one channel each) and 5 categories.

The bot has just started (catalogue loaded, pool empty), the worst moment for a burst. For each
variant it prints the share acknowledged within Discord's 3 seconds, the time to the final
message (p50/p99), upstream calls, 429s received and whether the fake blocked the IP. Real time:
the naive paced bot needs about a minute (one upstream call per command).

    .venv/bin/python -m bench.burst [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.serving import PoolSettings

from .common import (
    POOLED,
    QUICK_LIMITS,
    REAL_LIMITS,
    Commands,
    Limits,
    Summary,
    add_common_arguments,
    configure_logging,
    describe_settings,
    figure,
    fmt_errors,
    fmt_pct,
    fmt_seconds,
    open_stack,
    pool_settings_from,
    selected_variants,
    summarize,
)

CATEGORIES = ("catgirl", "foxgirl", "maid", "night", "wallpaper")
"""Five categories from very popular (catgirl) to modest (maid, night: ~230 of 2900 images)."""


@dataclass(frozen=True, slots=True)
class BurstPlan:
    """The burst: ``commands`` arrivals spread uniformly over ``spread`` seconds."""

    commands: int = 50
    guilds: int = 10
    categories: int = 5
    spread: float = 1.0


@dataclass(frozen=True, slots=True)
class BurstResult:
    summary: Summary
    upstream_calls: int
    count_429: int
    blocked: bool
    coalesced: int


def schedule(plan: BurstPlan, rng: random.Random) -> list[tuple[float, int, str]]:
    """``(offset seconds, guild index, category)`` per command, in arrival order."""
    names = CATEGORIES[: plan.categories]
    offsets = sorted(rng.uniform(0.0, plan.spread) for _ in range(plan.commands))
    return [(offset, rng.randrange(plan.guilds), rng.choice(names)) for offset in offsets]


async def run_burst(
    variant: str, plan: BurstPlan, limits: Limits, settings: PoolSettings, seed: int
) -> BurstResult:
    """One burst against a freshly started ``variant``."""
    arrivals = schedule(plan, random.Random(seed))
    async with open_stack(variant, limits=limits, pool_settings=settings, seed=seed) as stack:
        commands = Commands(stack)
        start = time.monotonic() + 0.05
        tasks = []
        for number, (offset, guild, category) in enumerate(arrivals):
            arrived = start + offset
            await asyncio.sleep(max(0.0, arrived - time.monotonic()))
            tasks.append(
                asyncio.create_task(
                    commands.random(
                        guild_id=1_000 + guild,
                        channel_id=2_000 + guild,
                        user_id=3_000 + number,
                        categories=category,
                        arrived=arrived,
                    )
                )
            )
        # Ample time for a bot that makes one paced call per command, then stop waiting.
        budget = plan.commands * limits.spacing * 1.5 + 10 * limits.spacing + 5.0
        _, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        summary = summarize(commands.outcomes, now=time.monotonic())
        coalesced = stack.pool.metrics().coalesced_waits if stack.pool is not None else 0
        return BurstResult(
            summary, stack.upstream_calls(), stack.count_429, stack.blocked, coalesced
        )


def result_fields(result: BurstResult) -> dict[str, object]:
    s = result.summary
    return {
        "acked_within_3s": fmt_pct(s.acked_within_3s),
        "p50_final": fmt_seconds(s.p50_final, s.p50_is_lower_bound),
        "p99_final": fmt_seconds(s.p99_final, s.p99_is_lower_bound),
        "upstream_calls": result.upstream_calls,
        "429s": result.count_429,
        "blocked": "yes" if result.blocked else "no",
        "served": f"{s.with_images}/{s.commands}",
        "ready_within_3s": fmt_pct(s.ready_within_3s),
        "deferred": s.deferred,
        "coalesced": result.coalesced,
        "errors": fmt_errors(s.errors),
    }


def median_fields(results: Sequence[BurstResult]) -> dict[str, object]:
    """Each figure's median over the runs (p99 lower-bound marks kept if any run had one)."""

    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    summaries = [r.summary for r in results]
    p50 = [s.p50_final for s in summaries if s.p50_final is not None]
    p99 = [s.p99_final for s in summaries if s.p99_final is not None]
    blocked = sum(r.blocked for r in results)
    return {
        "acked_within_3s": fmt_pct(med([s.acked_within_3s for s in summaries])),
        "p50_final": fmt_seconds(
            med(p50) if p50 else None, any(s.p50_is_lower_bound for s in summaries)
        ),
        "p99_final": fmt_seconds(
            med(p99) if p99 else None, any(s.p99_is_lower_bound for s in summaries)
        ),
        "upstream_calls": f"{med([r.upstream_calls for r in results]):g}",
        "429s": f"{med([r.count_429 for r in results]):g}",
        "blocked": "no" if not blocked else f"yes({blocked}/{len(results)})",
        "served": f"{med([s.with_images for s in summaries]):g}/{summaries[0].commands}",
        "ready_within_3s": fmt_pct(med([s.ready_within_3s for s in summaries])),
        "runs": len(results),
    }


async def run(args: argparse.Namespace) -> None:
    limits = QUICK_LIMITS if args.quick else REAL_LIMITS
    plan = (
        BurstPlan(commands=10, guilds=3, categories=2, spread=0.2)
        if args.quick
        else BurstPlan(args.commands, args.guilds, args.categories, args.spread)
    )
    settings = pool_settings_from(args.pool_setting)
    variants = selected_variants(args.variants)
    print(
        f"# burst: {plan.commands} /neko random over {plan.spread:g}s, {plan.guilds} guilds, "
        f"{plan.categories} categories; {limits.describe()}; "
        f"pool settings: {describe_settings(settings)}",
        flush=True,
    )
    results: dict[str, list[BurstResult]] = {variant: [] for variant in variants}
    for run_number in range(1, args.repeat + 1):
        for variant in variants:
            result = await run_burst(
                variant,
                plan,
                limits,
                settings if variant == POOLED else PoolSettings(),
                args.seed + run_number - 1,
            )
            results[variant].append(result)
            label = variant if args.repeat == 1 else f"{variant} run {run_number}/{args.repeat}"
            figure("burst", label, result_fields(result))
    if args.repeat > 1:
        for variant in variants:
            figure("burst", variant, median_fields(results[variant]))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the burst benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--repeat", type=int, default=1, help="runs; >1 adds median lines")
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--categories", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--spread", type=float, default=1.0, help="seconds the burst spans")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
