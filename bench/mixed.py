"""Mixed: M seconds of a realistic command mix over 100 guilds.

Commands arrive as a Poisson process (``--rate`` per second, default 10) from members of 100
guilds with 1-3 channels each (85% of channels sfw-only, 10% allow questionable, 5% nsfw):
``random`` 70% (no category 45%, one 40%, two 12%, a misspelt one 3%; nsfw channels ask for an
nsfw category a third of the time; count 1 mostly, up to 10), ``artist`` 10% and ``character``
10% (names from the catalogue, popular ones more often), and 10% split between ``image`` (an id a
member saw), ``category`` and ``stats``. After the arrivals stop, commands in flight get
``--drain`` seconds; any still waiting then count as unanswered (their wait is a lower bound).

Figures: commands answered per upstream call (and per member-driven call, i.e. without the
pool's opportunistic prefetch), 429s, acknowledgement share, p50/p99 time to the final message,
and the process's peak RSS (fake included; the start figure is taken before the run).

    .venv/bin/python -m bench.mixed [--seconds 300] [--rate 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bot.nekos.models import Rating
from bot.serving import PoolSettings
from tests.fakes.dataset import Dataset

from .common import (
    POOLED,
    QUICK_LIMITS,
    REAL_LIMITS,
    Commands,
    Limits,
    Outcome,
    RssSampler,
    Stack,
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

KINDS = ("random", "artist", "character", "image", "category", "stats")
KIND_WEIGHTS = (70.0, 10.0, 10.0, 10 / 3, 10 / 3, 10 / 3)
NSFW_CATEGORIES = ("ecchi", "lingerie", "suggestive")
MISSPELT = ("catgrl", "fox girl", "maids", "wolf-girl")
CATEGORY_SEARCHES = ("", "", "girl", "hair", "s", "night")


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    max_rating: Rating


@dataclass(frozen=True, slots=True)
class Guild:
    id: int
    channels: tuple[Channel, ...]
    members: tuple[int, ...]


def _zipf_cum_weights(n: int) -> list[float]:
    """Cumulative weights 1, 1/2, 1/3 ... for ``n`` items: a few popular, a long tail."""
    return list(itertools.accumulate(1.0 / (rank + 1) for rank in range(n)))


@dataclass(frozen=True, slots=True)
class Draw:
    """One drawn command: its kind, where it comes from and its options."""

    kind: str
    guild: Guild
    channel: Channel
    user: int
    categories: str | None = None
    count: int = 1
    name: str = ""
    """``artist`` / ``character``: the name asked for."""
    image_id: str = ""
    search: str = ""
    """``category``: the search text ("" for the whole list)."""


class CommandMix:
    """Draws the mix's commands (everything seeded, so runs are comparable).

    ``categories`` are the sfw category names, ``artists`` and ``characters`` the names in the
    catalogue's order (the order is shuffled here with ``rng``, so popularity is independent of
    it). The guilds are drawn first, then every :meth:`draw` takes the next command.
    """

    def __init__(
        self,
        dataset: Dataset,
        categories: Sequence[str],
        artists: Sequence[str],
        characters: Sequence[str],
        guilds: int,
        rng: random.Random,
        kind_weights: Sequence[float] = KIND_WEIGHTS,
    ) -> None:
        self.rng = rng
        self.kind_weights = list(kind_weights)
        self.guilds = [self._guild(number) for number in range(guilds)]
        counts: Counter[str] = Counter()
        for image in dataset.images:
            for category_id in image.category_ids:
                counts[dataset.category_by_id[category_id].name] += 1
        self.categories = list(categories)
        self.category_weights = [float(counts[name]) for name in self.categories]
        artist_names, character_names = list(artists), list(characters)
        image_ids = [image.id for image in dataset.images]
        for names in (artist_names, character_names, image_ids):
            rng.shuffle(names)  # popularity independent of list order
        self.artists, self.characters, self.image_ids = artist_names, character_names, image_ids
        self._artist_weights = _zipf_cum_weights(len(artist_names))
        self._character_weights = _zipf_cum_weights(len(character_names))
        self._image_weights = _zipf_cum_weights(len(image_ids))

    def _guild(self, number: int) -> Guild:
        rng = self.rng
        channels = []
        for index in range(1 + rng.randrange(3)):
            roll = rng.random()
            rating = (
                Rating.SFW if roll < 0.85 else Rating.QUESTIONABLE if roll < 0.95 else Rating.NSFW
            )
            channels.append(Channel(100_000 * (number + 1) + index, rating))
        members = tuple(10_000_000 * (number + 1) + m for m in range(20))
        return Guild(1_000 + number, tuple(channels), members)

    def _categories(self, channel: Channel) -> str | None:
        rng = self.rng
        if channel.max_rating is Rating.NSFW and rng.random() < 1 / 3:
            return rng.choice(NSFW_CATEGORIES)
        roll = rng.random()
        if roll < 0.45:
            return None
        if roll < 0.85:
            return rng.choices(self.categories, self.category_weights)[0]
        if roll < 0.97:
            first, second = rng.choices(self.categories, self.category_weights, k=2)
            return f"{first}, {second}"
        return rng.choice(MISSPELT)

    def _count(self) -> int:
        roll = self.rng.random()
        if roll < 0.80:
            return 1
        if roll < 0.92:
            return self.rng.randint(2, 4)
        return self.rng.randint(5, 10)

    def draw(self) -> Draw:
        """The next command of the mix."""
        rng = self.rng
        kind = rng.choices(KINDS, self.kind_weights)[0]
        guild = rng.choice(self.guilds)
        channel = rng.choice(guild.channels)
        user = rng.choice(guild.members)
        if kind == "random":
            categories, count = self._categories(channel), self._count()
            return Draw(kind, guild, channel, user, categories=categories, count=count)
        if kind == "artist":
            name = rng.choices(self.artists, cum_weights=self._artist_weights)[0]
            return Draw(kind, guild, channel, user, name=name)
        if kind == "character":
            name = rng.choices(self.characters, cum_weights=self._character_weights)[0]
            return Draw(kind, guild, channel, user, name=name)
        if kind == "image":
            image_id = rng.choices(self.image_ids, cum_weights=self._image_weights)[0]
            return Draw(kind, guild, channel, user, image_id=image_id)
        if kind == "category":
            return Draw(kind, guild, channel, user, search=rng.choice(CATEGORY_SEARCHES))
        return Draw(kind, guild, channel, user)


class Workload(CommandMix):
    """The mix over a :class:`Stack`'s catalogue, as coroutines for its :class:`Commands`."""

    def __init__(
        self,
        stack: Stack,
        guilds: int,
        rng: random.Random,
        kind_weights: Sequence[float] = KIND_WEIGHTS,
    ) -> None:
        lists = stack.lists
        super().__init__(
            stack.fake.dataset,
            [c.name for c in lists.categories if not c.nsfw],
            [a.name for a in lists.artists if a.name],
            [c.name for c in lists.characters],
            guilds,
            rng,
            kind_weights,
        )

    def next_command(
        self, commands: Commands, arrived: float
    ) -> Callable[[], Coroutine[Any, Any, Outcome]]:
        """The next command, as a coroutine function run at its arrival."""
        draw = self.draw()
        channel_max = draw.channel.max_rating
        if draw.kind == "random":
            return lambda: commands.random(
                guild_id=draw.guild.id,
                channel_id=draw.channel.id,
                user_id=draw.user,
                channel_max=channel_max,
                categories=draw.categories,
                count=draw.count,
                arrived=arrived,
            )
        if draw.kind == "artist":
            return lambda: commands.artist(
                user_id=draw.user, channel_max=channel_max, name=draw.name, arrived=arrived
            )
        if draw.kind == "character":
            return lambda: commands.character(name=draw.name, arrived=arrived)
        if draw.kind == "image":
            return lambda: commands.image(
                image_id=draw.image_id, channel_max=channel_max, arrived=arrived
            )
        if draw.kind == "category":
            return lambda: commands.category(
                user_id=draw.user, channel_max=channel_max, search=draw.search, arrived=arrived
            )
        return lambda: commands.stats(arrived=arrived)


@dataclass(frozen=True, slots=True)
class MixPlan:
    seconds: float
    rate: float
    guilds: int
    drain: float
    kind_weights: tuple[float, ...] = KIND_WEIGHTS


def parse_mix(text: str) -> tuple[float, ...]:
    """``kind=weight,...`` (kinds left out weigh 0) as weights in :data:`KINDS` order."""
    weights = dict.fromkeys(KINDS, 0.0)
    for part in text.split(","):
        kind, sep, weight = part.partition("=")
        if not sep or kind.strip() not in weights:
            raise SystemExit(f"--mix wants kind=weight pairs with kinds from {KINDS}: {part!r}")
        weights[kind.strip()] = float(weight)
    if not any(weights.values()):
        raise SystemExit("--mix needs at least one positive weight")
    return tuple(weights[kind] for kind in KINDS)


def describe_mix(weights: Sequence[float]) -> str:
    total = sum(weights)
    return ",".join(
        f"{kind}={100 * weight / total:.0f}%" for kind, weight in zip(KINDS, weights, strict=True)
    )


async def run_load(stack: Stack, plan: MixPlan, seed: int) -> tuple[list[Outcome], float]:
    """The members' mix on ``stack`` for ``plan.seconds``, then the drain; their outcomes and
    when the run finished (commands still waiting then count as unanswered)."""
    commands = Commands(stack)
    rng = random.Random(seed)
    workload = Workload(stack, plan.guilds, rng, plan.kind_weights)
    begin = time.monotonic()
    end = begin + plan.seconds
    tasks: list[asyncio.Task[Outcome]] = []
    arrival = begin + rng.expovariate(plan.rate)
    while arrival < end:
        await asyncio.sleep(max(0.0, arrival - time.monotonic()))
        tasks.append(asyncio.create_task(workload.next_command(commands, arrival)()))
        arrival += rng.expovariate(plan.rate)
    _, pending = await asyncio.wait(tasks, timeout=plan.drain) if tasks else (set(), set())
    finished = time.monotonic()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return commands.outcomes, finished


async def run_variant(
    variant: str, plan: MixPlan, limits: Limits, settings: PoolSettings, seed: int
) -> tuple[dict[str, object], dict[str, object]]:
    """Run the mix against a fresh ``variant``; its figures and its per-command p99s."""
    async with (
        open_stack(variant, limits=limits, pool_settings=settings, seed=seed) as stack,
        RssSampler() as rss,
    ):
        outcomes, finished = await run_load(stack, plan, seed)
        summary = summarize(outcomes, now=finished)
        calls = stack.upstream_calls()
        pool_metrics = stack.server.metrics()
        random_calls = stack.upstream_calls(path="/api/image/random")
        prefetch = pool_metrics.prefetch_calls
        member_driven = calls - prefetch
        fields: dict[str, object] = {
            "commands_per_upstream_call": f"{summary.ok / calls:.1f}" if calls else "inf",
            "per_member_driven_call": f"{summary.ok / member_driven:.1f}"
            if member_driven
            else "inf",
            "429s": stack.count_429,
            "blocked": "yes" if stack.blocked else "no",
            "p99_final": fmt_seconds(summary.p99_final, summary.p99_is_lower_bound),
            "p50_final": fmt_seconds(summary.p50_final, summary.p50_is_lower_bound),
            "acked_within_3s": fmt_pct(summary.acked_within_3s),
            "peak_rss_mib": f"{rss.peak_mib:.0f}",
            "rss_at_start_mib": f"{rss.start_mib:.0f}",
            "commands": summary.commands,
            "answered_ok": summary.ok,
            "unanswered": summary.commands - summary.answered,
            "upstream_calls": calls,
            "random_calls": random_calls,
            "of_which_prefetch": prefetch,
            "lookup_calls": calls - random_calls,
            "ready_within_3s": fmt_pct(summary.ready_within_3s),
            "errors": fmt_errors(summary.errors),
        }
        by_kind: dict[str, object] = {}
        for kind in KINDS:
            group = [o for o in outcomes if o.kind == kind]
            if group:
                part = summarize(group, now=finished)
                by_kind[f"{kind}_p99"] = fmt_seconds(part.p99_final, part.p99_is_lower_bound)
        if stack.pool is not None:
            by_kind["pool_hits"] = pool_metrics.pool_hits
            by_kind["pool_misses"] = pool_metrics.pool_misses
            by_kind["nothing_matched"] = pool_metrics.nothing_matched
            by_kind["partial"] = pool_metrics.partial
        return fields, by_kind


async def run(args: argparse.Namespace) -> None:
    limits = QUICK_LIMITS if args.quick else REAL_LIMITS
    plan = (
        MixPlan(seconds=1.5, rate=10.0, guilds=20, drain=0.5)
        if args.quick
        else MixPlan(args.seconds, args.rate, args.guilds, args.drain, parse_mix(args.mix))
    )
    settings = pool_settings_from(args.pool_setting)
    print(
        f"# mixed: {plan.seconds:g}s of Poisson arrivals at {plan.rate:g}/s over {plan.guilds} "
        f"guilds ({describe_mix(plan.kind_weights)}), then {plan.drain:g}s drain; "
        f"{limits.describe()}; "
        f"pool settings: {describe_settings(settings)}",
        flush=True,
    )
    for variant in selected_variants(args.variants):
        fields, by_kind = await run_variant(
            variant, plan, limits, settings if variant == POOLED else PoolSettings(), args.seed
        )
        figure("mixed", variant, fields)
        figure("mixed", f"{variant} detail", by_kind)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the mixed benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of arrivals")
    parser.add_argument("--rate", type=float, default=10.0, help="commands per second")
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument(
        "--drain", type=float, default=30.0, help="seconds commands in flight get at the end"
    )
    parser.add_argument(
        "--mix",
        default=",".join(f"{k}={w:g}" for k, w in zip(KINDS, KIND_WEIGHTS, strict=True)),
        help="command weights, e.g. random=1 for a random-only diagnostic",
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
