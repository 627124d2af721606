"""Sustained: saturating single-category load for N seconds -> images served per second.

``--members`` members, each in a guild of their own, ask ``/neko random categories=catgirl``
again ``--think`` seconds after each answer, far more than the upstream can feed. The API gives
at most 25 images per call at 1 call per second (25 images/s; 22.7/s at the pacer's spacing of
1.1 s). Figures are taken over the window after a short warm-up:

* ``images_per_s`` — images delivered to members per second. The pool lets one image serve up
  to ``max_uses`` guilds, so this can exceed the upstream's ceiling;
* ``upstream_images_per_s`` — images received from the API per second (bounded by the ceiling);
* ``pooled-noreuse`` is the pool with ``max_uses=1``: every delivery is a fresh upstream image,
  so its ``images_per_s`` is directly comparable with the 25/s ceiling.

    .venv/bin/python -m bench.sustained [--seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Sequence

from bot.serving import PoolSettings

from .common import (
    NAIVE_PACED,
    NAIVE_UNPACED,
    POOLED,
    QUICK_LIMITS,
    REAL_LIMITS,
    Commands,
    Limits,
    add_common_arguments,
    configure_logging,
    describe_settings,
    figure,
    fmt_errors,
    fmt_pct,
    fmt_seconds,
    open_stack,
    pool_settings_from,
    summarize,
)

NOREUSE = "pooled-noreuse"
SUSTAINED_VARIANTS = (POOLED, NOREUSE, NAIVE_PACED, NAIVE_UNPACED)
BATCH = 25
"""Images per upstream call the API allows."""


@dataclasses.dataclass(frozen=True, slots=True)
class Load:
    seconds: float
    warmup: float
    members: int
    think: float
    category: str
    count: int
    drain: float


async def run_variant(
    variant: str, load: Load, limits: Limits, settings: PoolSettings, seed: int
) -> dict[str, object]:
    """Run the load against a fresh ``variant`` and return its figures."""
    base = POOLED if variant == NOREUSE else variant
    if variant == NOREUSE:
        settings = dataclasses.replace(settings, max_uses=1)
    async with open_stack(base, limits=limits, pool_settings=settings, seed=seed) as stack:
        commands = Commands(stack)
        begin = time.monotonic()
        window_start = begin + load.warmup
        window_end = window_start + load.seconds

        async def member(number: int) -> None:
            while time.monotonic() < window_end:
                await commands.random(
                    guild_id=10_000 + number,
                    channel_id=20_000 + number,
                    user_id=30_000 + number,
                    categories=load.category,
                    count=load.count,
                )
                await asyncio.sleep(load.think)

        tasks = [asyncio.create_task(member(n)) for n in range(load.members)]
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        before = stack.server.metrics()
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        after = stack.server.metrics()
        _, pending = await asyncio.wait(tasks, timeout=load.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

        in_window = [
            o
            for o in commands.outcomes
            if o.ready is not None and window_start <= o.ready < window_end
        ]
        issued = [o for o in commands.outcomes if window_start <= o.arrived < window_end]
        summary = summarize(issued, now=time.monotonic())
        images = sum(o.images for o in in_window)
        upstream_images = after.upstream_images - before.upstream_images
        calls = stack.upstream_calls(window_start, window_end)
        seconds = load.seconds
        return {
            "images_per_s": f"{images / seconds:.1f}",
            "ceiling_per_s": f"{BATCH / limits.per_seconds * limits.requests:.1f}",
            "paced_ceiling_per_s": f"{BATCH / limits.spacing:.1f}",
            "upstream_images_per_s": f"{upstream_images / seconds:.1f}",
            "upstream_calls_per_s": f"{calls / seconds:.2f}",
            "images": images,
            "commands_answered": len(in_window),
            "with_images": sum(1 for o in in_window if o.images),
            "acked_within_3s": fmt_pct(summary.acked_within_3s),
            "p50_final": fmt_seconds(summary.p50_final, summary.p50_is_lower_bound),
            "p99_final": fmt_seconds(summary.p99_final, summary.p99_is_lower_bound),
            "429s": stack.count_429,
            "blocked": "yes" if stack.blocked else "no",
            "errors": fmt_errors(summary.errors),
        }


async def run(args: argparse.Namespace) -> None:
    limits = QUICK_LIMITS if args.quick else REAL_LIMITS
    load = (
        Load(seconds=1.5, warmup=0.3, members=20, think=0.2, category="catgirl", count=1, drain=1.0)
        if args.quick
        else Load(
            args.seconds,
            args.warmup,
            args.members,
            args.think,
            args.category,
            args.count,
            args.drain,
        )
    )
    settings = pool_settings_from(args.pool_setting)
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUSTAINED_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {SUSTAINED_VARIANTS}")
    print(
        f"# sustained: {load.members} members in {load.members} guilds, /neko random "
        f"categories={load.category} count={load.count}, {load.think:g}s think time; "
        f"{load.seconds:g}s measured after {load.warmup:g}s warm-up; {limits.describe()}; "
        f"pool settings: {describe_settings(settings)}",
        flush=True,
    )
    for variant in names:
        fields = await run_variant(
            variant,
            load,
            limits,
            settings if variant in (POOLED, NOREUSE) else PoolSettings(),
            args.seed,
        )
        figure("sustained", variant, fields)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sustained benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.sustained", description=__doc__)
    add_common_arguments(parser)
    parser.set_defaults(variants=",".join(SUSTAINED_VARIANTS))
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out first")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--think", type=float, default=0.5, help="seconds between a member's asks")
    parser.add_argument("--category", default="catgirl")
    parser.add_argument("--count", type=int, default=1, help="images per command")
    parser.add_argument(
        "--drain", type=float, default=10.0, help="seconds to let commands in flight finish"
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
