"""Sustained through real sockets: :mod:`bench.sustained`'s saturating load, sent to
``python -m bot`` as slash commands through the loopback Discord emulator.

``--members`` members, each in a guild of their own, ask ``/neko random categories:catgirl``
again ``--think`` seconds after their previous final message, far more than the upstream can feed
(25 images per call at one call per second). Figures are taken over ``--seconds`` after a
``--warmup``:

* ``images_per_s``: images shown in final messages that arrived in the window, per second;
* ``fresh_images_per_s``: distinct images first shown (to anyone, in the whole run) within the
  window, per second. The upstream samples with replacement and the category is finite (1139
  sfw catgirl images), so later calls bring repeats: this falls below what the API sent;
* ``upstream_images_per_s``: images the successful ``/image/random`` calls in the window asked
  for (``limit``; the fake fills it whenever that many images match, as they do here), bounded
  by the API's 25 per call at 1 call/s;
* ``upstream_calls_per_s``: requests the fake saw in the window;
* ``p50_final`` / ``p99_final``: emulator seconds to the final message of the commands issued in
  the window (``>=`` when some never got one);
* ``429s``, ``blocked``, plus ``answered`` / ``busy`` / ``errors`` as in :mod:`bench.discord_mixed`,
  and the CPU share of the benchmark process (emulator, fake, members) and of the bot.

The project bot runs with its documented defaults except ``COOLDOWN_USES``, raised so that its
per-member cooldown (5 commands per 10 s) does not turn the load away: like the in-process
benchmark, this one measures what the serving layer can deliver. ``--quick`` runs 10 members for
2 s with the fake's limit scaled to 10 per second (granted to the project bot by its token's
scope): a smoke run, figures not comparable.

    .venv/bin/python -m bench.discord_sustained [--quick] [--seconds 60] [--warmup 5]
        [--members 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.discord_emulator import DiscordEmulator
from tests.fakes.nekos_api import FakeNekosAPI

from .common import QUICK_LIMITS, Outcome, figure, fmt_pct, fmt_seconds, summarize
from .discord_harness import (
    BOTS,
    DISCORD_TOKEN,
    RANDOM_PATH,
    AnswerCheck,
    CpuMeter,
    FinalWatcher,
    Seat,
    build_world,
    classify_answer,
    fake_rate_limit,
    quick_settings,
    rule_problems,
    running_bot,
)

log = logging.getLogger(__name__)

NO_COOLDOWN = {"COOLDOWN_USES": "100000"}
"""The per-member cooldown lifted (see the module docstring)."""
FINAL_TIMEOUT = 60.0
"""A member gives up waiting for a final message after this long (and asks again)."""


@dataclass(frozen=True, slots=True)
class SustainedLoad:
    """The load: members, pause between asks, what they ask, and the measured window."""

    seconds: float
    warmup: float
    members: int
    think: float = 0.5
    category: str = "catgirl"
    drain: float = 10.0
    quick: bool = False


@dataclass(slots=True)
class Shown:
    """One command: when it was asked, when answered (emulator clock), and what it showed."""

    outcome: Outcome
    images: list[str]


async def run_variant(
    label: str, load: SustainedLoad, data: Dataset, seed: int
) -> dict[str, object]:
    """Run the load against a fresh ``label`` bot and return its figure fields."""
    bot = BOTS[label]
    rate_limit = fake_rate_limit(load.quick)
    check = AnswerCheck(data)
    async with (
        DiscordEmulator(token=DISCORD_TOKEN) as emu,
        FakeNekosAPI(data, rate_limit=rate_limit, seed=seed) as api,
    ):
        seats = [row[0] for row in build_world(emu, load.members, 1)]
        extra = {**NO_COOLDOWN, **quick_settings(bot, api, load.quick)}
        quiet = 1.0 if load.quick else 2.0
        async with (
            running_bot(bot, emu, api, extra_settings=extra, quiet=quiet) as running,
            FinalWatcher(emu) as watcher,
        ):
            loop = asyncio.get_running_loop()
            cpu = CpuMeter(running.process.pid)
            cpu.start()
            first_request, first_429 = len(api.requests), api.count_429
            begin = loop.time()
            window_start = begin + load.warmup
            window_end = window_start + load.seconds
            shown: list[Shown] = []

            async def member(seat: Seat) -> None:
                while loop.time() < window_end:
                    rec = await emu.slash(
                        seat.member,
                        seat.channel,
                        "neko",
                        subcommand="random",
                        options={"categories": load.category},
                    )
                    item = Shown(Outcome("random", rec.created_at), [])
                    shown.append(item)
                    try:
                        final = await asyncio.wait_for(watcher.watch(rec), FINAL_TIMEOUT)
                    except TimeoutError:
                        continue
                    if rec.response is not None:
                        item.outcome.acked = rec.created_at + rec.response.elapsed
                    item.outcome.ready = rec.created_at + final.elapsed
                    kind, reason = classify_answer(final.message)
                    if kind != "answered":
                        item.outcome.error = "busy" if kind == "busy" else reason
                    item.images = [row.id for row in check.shown(final.message)]
                    await asyncio.sleep(load.think)

            tasks = [asyncio.create_task(member(seat)) for seat in seats]
            await asyncio.sleep(max(0.0, window_end - loop.time()))
            _, pending = await asyncio.wait(tasks, timeout=load.drain)
            finished = loop.time()
            cpu.stop()
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            requests = [
                r
                for r in api.requests[first_request:]
                if r.path.startswith("/api") and window_start <= r.time < window_end
            ]
            count_429 = api.count_429 - first_429
        problems = rule_problems(emu)
        blocked = bool(api.blocked_ips)

    in_window = [
        s
        for s in shown
        if s.outcome.ready is not None and window_start <= s.outcome.ready < window_end
    ]
    issued = [s.outcome for s in shown if window_start <= s.outcome.arrived < window_end]
    summary = summarize(issued, now=finished)
    first_shown: dict[str, float] = {}
    for item in sorted(shown, key=lambda s: s.outcome.ready or float("inf")):
        for image_id in item.images:
            if item.outcome.ready is not None:
                first_shown.setdefault(image_id, item.outcome.ready)
    fresh = sum(1 for at in first_shown.values() if window_start <= at < window_end)
    images = sum(len(s.images) for s in in_window)
    calls = len(requests)
    upstream_images = sum(
        int(r.query.get("limit", "1"))
        for r in requests
        if r.path == RANDOM_PATH and r.status == 200
    )
    busy = summary.errors.get("busy", 0)
    seconds = load.seconds
    return {
        "images_per_s": f"{images / seconds:.1f}",
        "fresh_images_per_s": f"{fresh / seconds:.1f}",
        "upstream_images_per_s": f"{upstream_images / seconds:.1f}",
        "upstream_calls_per_s": f"{calls / seconds:.2f}",
        "p50_final": fmt_seconds(summary.p50_final, summary.p50_is_lower_bound),
        "p99_final": fmt_seconds(summary.p99_final, summary.p99_is_lower_bound),
        "429s": count_429,
        "blocked": "yes" if blocked else "no",
        "images": images,
        "commands": summary.commands,
        "answered": summary.ok,
        "busy": busy,
        "errors": summary.answered - summary.ok - busy,
        "unanswered": summary.commands - summary.answered,
        "acked_within_3s": fmt_pct(summary.acked_within_3s),
        "violations": len(problems),
        "bench_cpu": f"{100 * cpu.bench_share:.0f}%",
        "bot_cpu": f"{100 * cpu.bot_share:.0f}%",
        "startup_settled": f"{running.startup.settled_s:.1f}s",
        "exit": running.exit_code,
    }


async def run(load: SustainedLoad, seed: int, variants: Sequence[str]) -> None:
    """Run the load against each bot in turn and print their figure lines."""
    data = generate_dataset()
    limit = QUICK_LIMITS.describe() if load.quick else "upstream limit 1 per 1s"
    print(
        f"# discord_sustained: {load.members} members in {load.members} guilds, /neko random "
        f"categories:{load.category}, {load.think:g}s after each final message; "
        f"{load.seconds:g}s measured after {load.warmup:g}s warm-up, through the Discord "
        f"emulator; {limit}, block after 10 strikes",
        flush=True,
    )
    for label in variants:
        figure("discord_sustained", label, await run_variant(label, load, data, seed))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sustained benchmark through the Discord emulator and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.discord_sustained", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out first")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1, help="seeds the fake")
    parser.add_argument(
        "--variants", default=",".join(BOTS), help=f"comma-separated, from {', '.join(BOTS)}"
    )
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in BOTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(BOTS)}")
    load = (
        SustainedLoad(seconds=2.0, warmup=0.5, members=10, think=0.2, drain=3.0, quick=True)
        if args.quick
        else SustainedLoad(args.seconds, args.warmup, args.members)
    )
    if load.seconds <= 0 or load.members < 1 or load.warmup < 0:
        parser.error("--seconds and --members must be positive, --warmup not negative")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(load, args.seed, variants))


if __name__ == "__main__":
    main()
