"""Burst through real sockets: ``python -m bot`` against the loopback Discord emulator.

Unlike the in-process benchmarks, the bot under test is the real entry point, run as a subprocess
(``python -m bot --env-file <tmp>/.env``, so it has a core of its own) and driven only the way
Discord drives it: slash commands arrive over the emulator's gateway and every answer goes back
over REST. Discord's 3-second acknowledgement is therefore measured by the emulator's clock on
real sockets. This process runs the emulator and the fake Nekos API (the live limit: 1 request
per second per IP, a one-hour block after ten 429s; no API token, so no custom limit).

Per run and per bot, on a fresh emulator world (10 guilds, one text channel and one member each)
and a fresh fake (its own IP state):

1. Start the bot; wait until it is connected and its start-up API traffic (the catalogue:
   categories, artists, characters) has settled, i.e. no new upstream request for 2 s.
2. Burst: ``--commands`` ``/neko random categories:<c>`` within one second, round-robin over the
   10 channels and over the 5 categories with the most images.
3. Wait for every final message (the response, or the follow-up after a deferral).

Two bots, one after the other: ``bot`` (this project) and ``naive`` (:mod:`bench.naive_bot`, one
unpaced GET per command after an immediate deferral). Figures per bot:

* ``acked_3s``: share of interactions whose first callback the emulator accepted within 3 s;
* ``p50_final``/``p99_final``: emulator-clock seconds to the final message (``inf`` if missing);
* ``images``/``nothing``/``errors``/``missing``: what the final messages were; ``wrong``: images
  shown that lack the asked category or are rated above sfw (the channels are not age-restricted);
* ``upstream``: ``/image/random`` calls from the burst's start until the last final message;
* ``429s``, ``blocked``: 429s the fake sent from the burst's start until the measurement ended,
  and whether it ever blocked the IP;
* ``violations``: Discord rules the emulator saw broken (incl. interactions never answered).

    .venv/bin/python -m bench.discord_burst [--quick] [--commands 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.discord_emulator import DiscordEmulator, InteractionRecord
from tests.fakes.nekos_api import FakeNekosAPI

from .discord_harness import (
    DISCORD_TOKEN,
    NAIVE_BOT,
    PROJECT_BOT,
    RANDOM_PATH,
    AnswerCheck,
    BotUnderTest,
    Kind,
    Seat,
    Startup,
    build_world,
    classify,
    final_message,
    percentile,
    rule_problems,
    running_bot,
)

log = logging.getLogger(__name__)

GUILDS = 10
CATEGORY_COUNT = 5
BURST_SPREAD = 1.0
"""Seconds over which the burst's commands arrive (evenly spaced)."""
MEMBER_COMMANDS = 5
"""Commands per member in one burst: the bot's default cooldown (5 uses per 10 s) allows this."""


@dataclass(slots=True)
class Outcome:
    """One interaction as the member lived it."""

    acked_3s: bool = False
    final_s: float | None = None
    kind: Kind = "missing"
    wrong: int = 0
    """Images shown that lack the asked category or are not sfw (the channels are not 18+)."""


@dataclass(slots=True)
class BurstFigures:
    """One bot's burst figures."""

    commands: int
    outcomes: list[Outcome]
    upstream: int
    count_429: int
    blocked: bool
    violations: int
    startup: Startup
    exit_code: int | None = None
    violation_texts: list[str] = field(default_factory=list)

    @property
    def wrong_images(self) -> int:
        """Images shown that did not fit the request (category or rating)."""
        return sum(o.wrong for o in self.outcomes)

    def kinds(self) -> Counter[str]:
        """How many final messages were images, "nothing matched", errors or missing."""
        return Counter(o.kind for o in self.outcomes)

    @property
    def acked_share(self) -> float:
        """Share of the commands acknowledged within 3 s, 0-1."""
        return sum(o.acked_3s for o in self.outcomes) / max(1, self.commands)

    def final_percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the time to the final message; missing ones are ``inf``."""
        return percentile(
            [o.final_s if o.final_s is not None else math.inf for o in self.outcomes], fraction
        )


# --------------------------------------------------------------------------- the world


def popular_categories(data: Dataset, count: int) -> list[str]:
    """The ``count`` categories with the most sfw images (the channels are not age-restricted)."""
    tally = Counter(
        cid for image in data.images if image.nsfw == "sfw" for cid in image.category_ids
    )
    names = {category.id: category.name for category in data.categories}
    return [names[cid] for cid, _ in tally.most_common(count)]


def burst_plan(
    commands: int, seats: list[list[Seat]], categories: Sequence[str]
) -> list[tuple[float, Seat, str]]:
    """``(offset, seat, category)`` per command: channels round-robin, categories rotating.

    Command ``i`` goes to guild ``i % G``; over ``G * C`` commands every guild asks for every
    category once. Each member sends at most :data:`MEMBER_COMMANDS` commands.
    """
    plan = []
    guilds = len(seats)
    for i in range(commands):
        guild, turn = i % guilds, i // guilds
        seat = seats[guild][turn // MEMBER_COMMANDS]
        category = categories[(guild + turn) % len(categories)]
        plan.append((i * BURST_SPREAD / commands, seat, category))
    return plan


# --------------------------------------------------------------------------- measuring


async def run_burst(
    emu: DiscordEmulator,
    api: FakeNekosAPI,
    plan: Sequence[tuple[float, Seat, str]],
    check: AnswerCheck,
    final_timeout: float,
) -> tuple[list[Outcome], int, int]:
    """Send the burst, wait for every final message; outcomes, upstream calls and 429s."""
    loop = asyncio.get_running_loop()
    first_request = len(api.requests)
    first_429 = api.count_429
    start = loop.time() + 0.05
    outcomes = [Outcome() for _ in plan]
    records: list[InteractionRecord | None] = [None] * len(plan)

    async def send(index: int, offset: float, seat: Seat, category: str) -> None:
        await asyncio.sleep(max(0.0, start + offset - loop.time()))
        records[index] = await emu.slash(
            seat.member,
            seat.channel,
            "neko",
            subcommand="random",
            options={"categories": category},
        )

    await asyncio.gather(*(send(i, *step) for i, step in enumerate(plan)))

    def settle() -> bool:
        # Stamped on first sight: a later edit must not move a message's final time.
        for outcome, rec, (_, _, category) in zip(outcomes, records, plan, strict=True):
            if rec is None or outcome.final_s is not None:
                continue
            final = final_message(rec)
            if final is not None:
                outcome.final_s, message = final
                outcome.kind = classify(message)
                outcome.wrong = check.wrong(message, category)
        return all(o.final_s is not None for o in outcomes)

    with contextlib.suppress(TimeoutError):
        await emu.wait_until(settle, timeout=final_timeout)
    settle()
    for outcome, rec in zip(outcomes, records, strict=True):
        response = rec.response if rec is not None else None
        outcome.acked_3s = response is not None and response.elapsed <= emu.response_deadline
    # Calls after the last final message (the pool topping up) served nobody in the burst.
    # The emulator's clock and the fake's are both time.monotonic(), so they compare.
    finals = [
        rec.created_at + o.final_s
        for o, rec in zip(outcomes, records, strict=True)
        if rec is not None and o.final_s is not None
    ]
    last_final = max(finals) if len(finals) == len(outcomes) else emu.now()
    upstream = sum(
        1 for r in api.requests[first_request:] if r.path == RANDOM_PATH and r.time <= last_final
    )
    # Every 429 of the whole measurement counts, after the last final message too.
    return outcomes, upstream, api.count_429 - first_429


async def measure(
    bot: BotUnderTest, data: Dataset, commands: int, final_timeout: float
) -> BurstFigures:
    """Start ``bot`` on a fresh world and a fresh fake, run one burst, stop it."""
    members = max(1, math.ceil(commands / (GUILDS * MEMBER_COMMANDS)))
    categories = popular_categories(data, CATEGORY_COUNT)
    async with (
        DiscordEmulator(token=DISCORD_TOKEN) as emu,
        FakeNekosAPI(dataset=data) as api,
    ):
        seats = build_world(emu, GUILDS, members)
        async with running_bot(bot, emu, api) as running:
            plan = burst_plan(commands, seats, categories)
            outcomes, upstream, count_429 = await run_burst(
                emu, api, plan, AnswerCheck(data), final_timeout
            )
        problems = rule_problems(emu)
        return BurstFigures(
            commands=commands,
            outcomes=outcomes,
            upstream=upstream,
            count_429=count_429,
            blocked=bool(api.blocked_ips),
            violations=len(problems),
            startup=running.startup,
            exit_code=running.exit_code,
            violation_texts=problems,
        )


# --------------------------------------------------------------------------- reporting


def _seconds(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}s"


def figure_line(label: str, figures: BurstFigures) -> str:
    """``<label>: acked_3s=… p50_final=… …`` for one bot in one run."""
    kinds = figures.kinds()
    return (
        f"{label}: acked_3s={100 * figures.acked_share:.1f}% "
        f"p50_final={_seconds(figures.final_percentile(0.5))} "
        f"p99_final={_seconds(figures.final_percentile(0.99))} "
        f"images={kinds['image']}/{figures.commands} nothing={kinds['nothing']} "
        f"errors={kinds['error']} missing={kinds['missing']} wrong={figures.wrong_images} "
        f"upstream={figures.upstream} "
        f"429s={figures.count_429} blocked={'yes' if figures.blocked else 'no'} "
        f"violations={figures.violations}"
    )


def startup_line(label: str, startup: Startup) -> str:
    """``<label> startup: ready=… settled=… upstream=… 429s=…``."""
    return (
        f"{label} startup: ready={startup.ready_s:.2f}s settled={startup.settled_s:.2f}s "
        f"upstream={startup.upstream} 429s={startup.count_429}"
    )


def median_line(label: str, runs: Sequence[BurstFigures]) -> str:
    """Medians over the runs; ``blocked`` counts the runs that were blocked, ``violations`` is the
    most any run had."""
    kinds = [r.kinds() for r in runs]

    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    blocked = sum(r.blocked for r in runs)
    return (
        f"{label}: acked_3s={100 * med([r.acked_share for r in runs]):.1f}% "
        f"p50_final={_seconds(med([r.final_percentile(0.5) for r in runs]))} "
        f"p99_final={_seconds(med([r.final_percentile(0.99) for r in runs]))} "
        f"images={med([k['image'] for k in kinds]):g}/{runs[0].commands} "
        f"nothing={med([k['nothing'] for k in kinds]):g} "
        f"errors={med([k['error'] for k in kinds]):g} "
        f"missing={med([k['missing'] for k in kinds]):g} "
        f"wrong={med([r.wrong_images for r in runs]):g} "
        f"upstream={med([r.upstream for r in runs]):g} "
        f"429s={med([r.count_429 for r in runs]):g} "
        f"blocked={'no' if not blocked else f'yes({blocked}/{len(runs)})'} "
        f"violations={max(r.violations for r in runs)} "
        f"startup_settled={_seconds(med([r.startup.settled_s for r in runs]))} "
        f"startup_upstream={med([r.startup.upstream for r in runs]):g}"
    )


async def run(commands: int, repeat: int, final_timeout: float) -> dict[str, list[BurstFigures]]:
    """``repeat`` runs of both bots, printing each run's lines as it ends, then the medians."""
    data = generate_dataset()
    print(
        f"discord-burst: {commands} /neko random in {BURST_SPREAD:g}s over {GUILDS} channels, "
        f"categories {', '.join(popular_categories(data, CATEGORY_COUNT))}; "
        f"fake API 1 req/s, block after 10 strikes; {repeat} run(s)",
        flush=True,
    )
    results: dict[str, list[BurstFigures]] = {PROJECT_BOT.label: [], NAIVE_BOT.label: []}
    for number in range(1, repeat + 1):
        for bot in (PROJECT_BOT, NAIVE_BOT):
            figures = await measure(bot, data, commands, final_timeout)
            results[bot.label].append(figures)
            prefix = f"discord-burst run={number} {bot.label}"
            print(startup_line(prefix, figures.startup), flush=True)
            print(figure_line(prefix, figures), flush=True)
            for problem in figures.violation_texts[:5]:
                print(f"  violation: {problem}", flush=True)
    for label, runs in results.items():
        print(median_line(f"discord-burst {label}", runs), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, list[BurstFigures]]:
    """``python -m bench.discord_burst [--quick] [--commands N] [--repeat N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.discord_burst", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 commands, one run (smoke test)")
    parser.add_argument("--commands", type=int, default=None, help="commands in the burst (50)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are printed too")
    args = parser.parse_args(argv)
    commands = args.commands if args.commands is not None else (10 if args.quick else 50)
    if commands < 1 or args.repeat < 1:
        parser.error("--commands and --repeat must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    final_timeout = 15.0 if args.quick else 60.0
    return asyncio.run(run(commands, args.repeat, final_timeout))


if __name__ == "__main__":
    main()
