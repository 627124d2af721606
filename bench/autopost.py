"""Autopost: scheduled posts beside the mixed command load, members' latency with and without.

Two runs on fresh stacks, one after the other, with the same seed and the same member load
(bench/mixed.py's Poisson mix): ``without`` (members only) and ``with`` (members plus
``--schedules`` schedules due every ``--interval`` seconds, their first due times spread evenly
over the first interval, so about schedules/interval posts a second). The schedules live in a
real SQLite store and are posted by the real :class:`bot.autopost.poster.Poster`, composed by
:func:`bot.autopost.delivery.compose_post` (the pool at background priority, as the bot does);
only the Discord send is left out.

Figures: members' p50/p99 time to the final message in both runs and the change of the p99;
posts made, skipped (and of those, tried again before their next due time), and their lateness
(post time minus due time) p50/p99; 429s in each run.

Near the upstream's limit the p99 of one run moves by a third between identical runs, so
``--pairs N`` runs N pairs (pair ``i`` with seed ``seed + i``; every other pair runs ``with``
first) and
reports each pair's change, the change of the medians, and the change of the p99 of every
member's wait in all pairs pooled (the steadier figure).

    .venv/bin/python -m bench.autopost [--pairs 3] [--seconds 300] [--schedules 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bot.autopost.delivery import compose_post
from bot.autopost.poster import Poster, PostResult
from bot.nekos.models import Rating
from bot.serving import PoolSettings
from bot.store import ClaimedPost, Schedule, ScheduleSpec, StoreSnapshot
from bot.store.sqlite import SqliteSettingsStore

from .common import (
    POOLED,
    QUICK_LIMITS,
    REAL_LIMITS,
    Limits,
    Stack,
    configure_logging,
    figure,
    fmt_seconds,
    open_stack,
    summarize,
)
from .mixed import MixPlan, run_load

SCHEDULE_GUILD_BASE = 10_000
"""Schedules post in guilds of their own (ids from here), one channel each."""


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_schedules(
    stack: Stack, count: int, interval: int, start: dt.datetime, rng: random.Random
) -> tuple[list[Schedule], dict[int, Rating]]:
    """``count`` schedules, first due spread over one interval from ``start``; each channel's
    maximum (most sfw, some allowing more, as in the mixed load)."""
    names = [c.name for c in stack.lists.categories if not c.nsfw]
    schedules, maxima = [], {}
    for n in range(count):
        guild = SCHEDULE_GUILD_BASE + n
        channel = guild * 10
        maxima[channel] = rng.choices((Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW), (85, 10, 5))[
            0
        ]
        categories = (rng.choice(names),) if rng.random() < 0.4 else ()
        spec = ScheduleSpec(
            guild_id=guild,
            channel_id=channel,
            interval=interval,
            categories=categories,
            count=rng.choice((1, 1, 1, 2, 3)),
        )
        due = start + dt.timedelta(seconds=interval * n / count)
        schedules.append(Schedule(spec, 1, start, due, start))
    return schedules, maxima


def deliverer(
    stack: Stack, maxima: dict[int, Rating]
) -> Callable[[ClaimedPost, Callable[[], Awaitable[bool]]], Awaitable[PostResult]]:
    async def deliver(claim: ClaimedPost, still_held: Callable[[], Awaitable[bool]]) -> PostResult:
        spec = claim.schedule.spec
        composed = await compose_post(
            stack.replies,
            spec,
            maxima[spec.channel_id],
            mention=f"<#{spec.channel_id}>",
            age_restricted=maxima[spec.channel_id] > Rating.SFW,
        )
        if isinstance(composed, PostResult):
            return composed
        if not await still_held():
            return PostResult.dropped()
        return PostResult.posted()

    return deliver


async def run_variant(
    with_schedules: bool, plan: MixPlan, limits: Limits, schedules: int, interval: int, seed: int
) -> dict[str, object]:
    async with open_stack(POOLED, limits=limits, pool_settings=PoolSettings(), seed=seed) as stack:
        fields: dict[str, object] = {}
        poster: Poster | None = None
        with tempfile.TemporaryDirectory(prefix="bench-autopost-") as folder:
            async with SqliteSettingsStore(Path(folder) / "store.db") as store:
                if with_schedules:
                    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
                    made, maxima = make_schedules(
                        stack, schedules, interval, start, random.Random(seed)
                    )
                    await store.import_snapshot(StoreSnapshot(schedules=tuple(made)))
                    poster = Poster(store, deliverer(stack, maxima), keep_lateness=True)
                    poster.start()
                stack.mark()
                outcomes, finished = await run_load(stack, plan, seed)
                if poster is not None:
                    await poster.stop()
        summary = summarize(outcomes, now=finished)
        # Every member's wait (an unanswered one counts until the end), pooled over pairs later.
        fields["members_waits"] = [
            (o.ready if o.ready is not None else finished) - o.arrived for o in outcomes
        ]
        fields["members_p50"] = fmt_seconds(summary.p50_final, summary.p50_is_lower_bound)
        fields["members_p99"] = fmt_seconds(summary.p99_final, summary.p99_is_lower_bound)
        fields["members_p99_s"] = summary.p99_final
        fields["commands"] = summary.commands
        fields["unanswered"] = summary.commands - summary.answered
        fields["429s"] = stack.count_429
        fields["upstream_calls"] = stack.upstream_calls()
        fields["random_calls"] = stack.upstream_calls(path="/api/image/random")
        if poster is not None:
            stats = poster.stats
            fields["posts"] = stats.posted
            fields["skipped"] = stats.skipped
            fields["retried"] = stats.retried
            fields["paused"] = stats.paused
            fields["posts_per_s"] = f"{stats.posted / plan.seconds:.2f}"
            fields["lateness_p50"] = fmt_seconds(_quantile(stats.lateness, 0.5))
            fields["lateness_p99"] = fmt_seconds(_quantile(stats.lateness, 0.99))
        return fields


async def run(args: argparse.Namespace) -> None:
    limits = QUICK_LIMITS if args.quick else REAL_LIMITS
    if args.quick:
        plan = MixPlan(seconds=3.0, rate=10.0, guilds=20, drain=1.0)
        schedules, interval = 30, 3
    else:
        plan = MixPlan(args.seconds, args.rate, args.guilds, args.drain)
        schedules, interval = args.schedules, args.interval
    print(
        f"# autopost: {plan.seconds:g}s of members' mixed load at {plan.rate:g}/s over "
        f"{plan.guilds} guilds, with and without {schedules} schedules due every {interval}s "
        f"({schedules / interval:.1f} posts/s); {limits.describe()}",
        flush=True,
    )
    bases: list[float] = []
    loadeds: list[float] = []
    changes: list[str] = []
    pooled: dict[bool, list[float]] = {False: [], True: []}
    for pair in range(args.pairs):
        seed = args.seed + pair
        # Every other pair runs ``with`` first, so whatever drifts over a run of runs (the
        # machine's other work) does not always land on the same side.
        order = (False, True) if pair % 2 == 0 else (True, False)
        ran = {
            posts: await run_variant(posts, plan, limits, schedules, interval, seed)
            for posts in order
        }
        without, with_ = ran[False], ran[True]
        base, loaded = without.pop("members_p99_s"), with_.pop("members_p99_s")
        for posts, fields in ((False, without), (True, with_)):
            waits = fields.pop("members_waits")
            assert isinstance(waits, list)
            pooled[posts].extend(waits)
        label = "" if args.pairs == 1 else f" (seed {seed})"
        figure("autopost", f"without{label}", without)
        figure("autopost", f"with{label}", with_)
        if isinstance(base, float) and isinstance(loaded, float) and base > 0:
            bases.append(base)
            loadeds.append(loaded)
            changes.append(_change(base, loaded))
    if args.pairs == 1:
        figure("autopost", "members", {"p99_change": changes[0] if changes else "n/a"})
        return
    median_base, median_loaded = statistics.median(bases), statistics.median(loadeds)
    pooled_base, pooled_loaded = _quantile(pooled[False], 0.99), _quantile(pooled[True], 0.99)
    figure(
        "autopost",
        "members",
        {
            "p99_change": _change(median_base, median_loaded),
            "p99_without_median": fmt_seconds(median_base),
            "p99_with_median": fmt_seconds(median_loaded),
            "pair_changes": ",".join(changes),
            "pooled_p99_without": fmt_seconds(pooled_base),
            "pooled_p99_with": fmt_seconds(pooled_loaded),
            "pooled_p99_change": (
                _change(pooled_base, pooled_loaded) if pooled_base and pooled_loaded else "n/a"
            ),
        },
    )


def _change(base: float, loaded: float) -> str:
    return f"{100 * (loaded - base) / base:+.1f}%"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the autopost benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.autopost", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of member load")
    parser.add_argument("--rate", type=float, default=10.0, help="member commands per second")
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--drain", type=float, default=30.0)
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=300, help="seconds between posts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=1, help="pairs of runs (medians reported)")
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
