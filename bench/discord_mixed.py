"""Mixed through real sockets: :mod:`bench.mixed`'s command mix, sent to ``python -m bot`` as
slash commands through the loopback Discord emulator.

The workload is :class:`bench.mixed.CommandMix` with the same seed, so the same sequence as the
in-process benchmark: Poisson arrivals (``--rate`` per second) from members of ``--guilds`` guilds
with 1-3 text channels each (85% sfw-only, 10% allowing questionable, 5% nsfw); ``random`` 70%,
``artist`` 10%, ``character`` 10%, and ``image`` / ``category`` / ``stats`` the rest. Before the
clock starts, every channel that allows more than sfw is set up the real way: the emulator channel
is age-restricted, and the guild's owner runs ``/neko-config channel channel:<it> level:<rating>``
through the emulator (the naive bot has no such command, nor any rating filter).

Each arrival is a ``/neko <kind>`` interaction with the options a member would type. After the
arrivals stop, commands in flight get ``--drain`` seconds; any without a final message then count
as unanswered (their wait is a lower bound, marked ``>=``).

Figures per bot (one ``discord_mixed <bot>:`` line, a ``detail`` line):

* ``commands_per_upstream_call``: commands answered (images, a card, or an honest "nothing
  matched" / "unknown" notice, see :func:`bench.discord_harness.classify_answer`) divided by ALL
  upstream requests the fake saw from the clock's start until every command had its final
  message (at most ``--drain`` seconds after the last arrival);
* ``answered`` / ``busy`` / ``errors`` / ``unanswered``: how the final messages read;
* ``acked_within_3s``: first callback accepted by the emulator within 3 s (emulator clock);
* ``p50_final`` / ``p99_final``: emulator seconds to the final message;
* ``upstream_calls`` (``random_calls`` + ``other_calls``), ``429s``, ``blocked``, ``violations``
  (Discord rules the emulator saw broken), ``peak_rss_mib`` (the bot subprocess), ``wrong``
  (images shown above the channel's rating, or showing a known minor above sfw);
* detail: per-kind p99, error reasons, the bench process's and the bot's CPU use over the window,
  and how late arrivals were sent (``send_lag_p99``: the benchmark process keeping up); with
  ``--processes``, random commands over 10 s by what they asked and by minute of arrival, and
  lookups over 15 s by minute (the cold first minute against the rest).

``--quick`` runs 3 s at 5/s over 10 guilds with the fake's limit scaled to 10 per second (the
project bot gets a token whose ``api:ratelimit`` scope grants it, so its pacer follows): a smoke
run, figures not comparable.

``--processes N`` (project bot only) splits the bot over N shard processes, as in
:mod:`bench.cluster`: the emulator runs ``shards=N`` (``max_concurrency`` 1, so IDENTIFYs come
5 s apart), guild ``n`` of the workload lands on shard ``n % N``, process ``k`` runs
``SHARD_COUNT=N SHARD_IDS=k`` with ``NEKOS_API_SOURCE_ADDRESS`` the ``k``-th of ``--addresses``
(one egress IP each to the fake, which counts its limits per IP), a data folder of its own, one
shared settings database, and ``--redis-url`` with a key prefix of the run's own (deleted
afterwards), so they share the budget per IP, the random-image pool, lookups and cooldowns. The
load starts once every process is connected and start-up traffic settled. The figure line then
ends with ``calls_per_ip`` and ``429s_per_ip`` (from the fake's request log), and the per-process
fields (``peak_rss_mib``, ``bot_cpu``, ``rss_at_start_mib``, ``exit``) read ``a/b/c``.

    .venv/bin/python -m bench.discord_mixed [--quick] [--seconds 300] [--rate 10] [--guilds 100]
        [--drain 30] [--seed 1] [--variants bot,naive]
        [--processes 3 --addresses 127.0.0.2,127.0.0.3,127.0.0.4
         --redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nekos.models import Rating
from tests.bot_process import spawned
from tests.cli_fleet import write_env
from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.discord_emulator import (
    ChannelRecord,
    ChannelType,
    DiscordEmulator,
    InteractionRecord,
    UserRecord,
)
from tests.fakes.nekos_api import FakeNekosAPI
from tests.redis_service import answers, delete_prefix

from .common import (
    QUICK_LIMITS,
    Outcome,
    RssSampler,
    figure,
    fmt_errors,
    fmt_pct,
    fmt_seconds,
    summarize,
)
from .discord_harness import (
    BOTS,
    CONNECT_TIMEOUT,
    DISCORD_TOKEN,
    PROJECT_BOT,
    RANDOM_PATH,
    AnswerCheck,
    BotUnderTest,
    CpuMeter,
    Final,
    FinalWatcher,
    RunningBot,
    Startup,
    classify_answer,
    fake_rate_limit,
    message_text,
    percentile,
    quick_settings,
    rule_problems,
    running_bot,
    tail,
    wait_settled,
)
from .mixed import KINDS, MISSPELT, NSFW_CATEGORIES, CommandMix, Draw
from .shared_budget import DEFAULT_REDIS

log = logging.getLogger(__name__)

CONFIG_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class MixLoad:
    """How long, how fast and over how many guilds."""

    seconds: float
    rate: float
    guilds: int
    drain: float
    quick: bool = False


@dataclass(frozen=True, slots=True)
class Cluster:
    """How many shard processes serve the bot, their egress addresses, and the shared Redis."""

    processes: int = 1
    addresses: tuple[str, ...] = ()
    """``NEKOS_API_SOURCE_ADDRESS`` of process ``k`` (none: the default route, 127.0.0.1)."""
    redis_url: str | None = None

    @property
    def sharded(self) -> bool:
        return self.processes > 1


SINGLE = Cluster()


@dataclass(slots=True)
class MixWorld:
    """The emulator's side of :class:`CommandMix`'s guilds."""

    channels: dict[int, ChannelRecord] = field(default_factory=dict)
    members: dict[int, UserRecord] = field(default_factory=dict)
    owners: dict[int, UserRecord] = field(default_factory=dict)
    ratings: dict[int, Rating] = field(default_factory=dict)
    """The workload channel id -> the rating it allows."""


def build_mix_world(emu: DiscordEmulator, mix: CommandMix, *, shards: int = 1) -> MixWorld:
    """One emulator guild per workload guild: its owner, its members, its text channels (the
    ones allowing more than sfw age-restricted). With ``shards``, guild ``n`` lands on shard
    ``n % shards``."""
    world = MixWorld()
    for number, spec in enumerate(mix.guilds):
        owner = emu.add_user(f"owner{number}")
        shard = (number % shards, shards) if shards > 1 else None
        guild = emu.add_guild(f"Guild {number}", owner, shard=shard)
        world.owners[spec.id] = owner
        for index, channel in enumerate(spec.channels):
            world.channels[channel.id] = emu.add_channel(
                guild,
                ChannelType.GUILD_TEXT,
                f"channel-{index}",
                nsfw=channel.max_rating > Rating.SFW,
            )
            world.ratings[channel.id] = channel.max_rating
        for member_id in spec.members:
            member = emu.add_user(f"member{member_id}")
            emu.add_member(guild, member)
            world.members[member_id] = member
    return world


async def configure_channels(
    emu: DiscordEmulator, mix: CommandMix, world: MixWorld, watcher: FinalWatcher
) -> int:
    """Each guild's owner allows its channels' ratings with ``/neko-config channel``; how many.

    Raises when the bot does not confirm a change (the run would measure the wrong channels).
    """
    asks: list[tuple[ChannelRecord, Rating]] = [
        (world.channels[channel.id], channel.max_rating)
        for spec in mix.guilds
        for channel in spec.channels
        if channel.max_rating > Rating.SFW
    ]
    owners = {
        world.channels[channel.id].id: world.owners[spec.id]
        for spec in mix.guilds
        for channel in spec.channels
    }

    async def configure(channel: ChannelRecord, rating: Rating) -> Final:
        rec = await emu.slash(
            owners[channel.id],
            channel,
            "neko-config",
            subcommand="channel",
            options={"channel": channel, "level": rating.label},
        )
        return await asyncio.wait_for(watcher.watch(rec), CONFIG_TIMEOUT)

    finals = await asyncio.gather(*(configure(channel, rating) for channel, rating in asks))
    for (channel, rating), final in zip(asks, finals, strict=True):
        text = message_text(final.message)
        if "saved" not in text and "already" not in text:
            raise RuntimeError(f"/neko-config channel {channel.name} {rating.label}: {text!r}")
    return len(asks)


def slash_options(draw: Draw) -> tuple[str, dict[str, Any]]:
    """The ``/neko`` subcommand and the options a member types for ``draw``."""
    options: dict[str, Any] = {}
    if draw.kind == "random":
        if draw.categories:
            options["categories"] = draw.categories
        if draw.count != 1:
            options["count"] = draw.count
    elif draw.kind in ("artist", "character"):
        options["name"] = draw.name
    elif draw.kind == "image":
        options["id"] = draw.image_id
    elif draw.kind == "category" and draw.search:
        options["search"] = draw.search
    return draw.kind, options


def shard_settings(
    emu: DiscordEmulator, api: FakeNekosAPI, cluster: Cluster, tmp: Path, prefix: str, shard: int
) -> dict[str, str]:
    """Process ``shard``'s ``.env``: its shard, its egress address, a data folder of its own, the
    shared settings database and Redis (with the run's ``prefix``)."""
    settings = {
        **PROJECT_BOT.settings(emu, api, tmp / f"bot{shard}"),
        "DATABASE_URL": f"sqlite:///{tmp / 'settings.db'}",
        "HEALTH_FILE": str(tmp / f"heartbeat-{shard}"),
        "SHARD_COUNT": str(cluster.processes),
        "SHARD_IDS": str(shard),
    }
    if cluster.addresses:
        settings["NEKOS_API_SOURCE_ADDRESS"] = cluster.addresses[shard]
    if cluster.redis_url:
        settings |= {"REDIS_URL": cluster.redis_url, "REDIS_KEY_PREFIX": prefix}
    return settings


@contextlib.asynccontextmanager
async def running_shards(
    emu: DiscordEmulator,
    api: FakeNekosAPI,
    cluster: Cluster,
    *,
    extra_settings: Mapping[str, str] | None = None,
    quiet: float,
) -> AsyncIterator[list[RunningBot]]:
    """One ``python -m bot`` per shard; yield once every one is connected and start-up traffic
    settled (SIGTERM on exit; the run's Redis keys are deleted afterwards)."""
    prefix = f"bench:mixed:{uuid.uuid4().hex[:8]}:"
    try:
        with tempfile.TemporaryDirectory(prefix="discord-bench-shards-") as scratch:
            tmp = Path(scratch)
            async with contextlib.AsyncExitStack() as stack:
                started = time.monotonic()
                launched: list[tuple[asyncio.subprocess.Process, Path]] = []
                for shard in range(cluster.processes):
                    settings = shard_settings(emu, api, cluster, tmp, prefix, shard)
                    env_file = write_env(
                        tmp / f"bot{shard}.env", settings | dict(extra_settings or {})
                    )
                    log_path = tmp / f"bot{shard}.log"
                    process = await stack.enter_async_context(spawned("bot", env_file, log_path))
                    launched.append((process, log_path))
                deadline = started + CONNECT_TIMEOUT + 10 * cluster.processes

                def ready() -> bool:
                    return all(
                        PROJECT_BOT.ready_line in path.read_text("utf-8", "replace")
                        for _, path in launched
                    )

                while not await asyncio.to_thread(ready):
                    if time.monotonic() > deadline or any(
                        p.returncode is not None for p, _ in launched
                    ):
                        logs = "\n---\n".join(tail(path) for _, path in launched)
                        raise RuntimeError(f"a shard process never connected:\n{logs}")
                    await asyncio.sleep(0.1)
                ready_s = time.monotonic() - started
                last_request = await wait_settled(api, quiet)
                startup = Startup(
                    ready_s=ready_s,
                    settled_s=ready_s if last_request is None else last_request - started,
                    upstream=len(api.api_requests),
                    count_429=api.count_429,
                )
                bots = [RunningBot(PROJECT_BOT, p, path, startup) for p, path in launched]
                try:
                    yield bots
                finally:
                    await stack.aclose()
                    for bot in bots:
                        bot.exit_code = bot.process.returncode
                        if bot.exit_code != 0:
                            log.warning(
                                "shard exited with %s:\n%s", bot.exit_code, tail(bot.log_path)
                            )
    finally:
        if cluster.redis_url:
            await delete_prefix(cluster.redis_url, prefix)


@contextlib.asynccontextmanager
async def running_bots(
    bot: BotUnderTest,
    emu: DiscordEmulator,
    api: FakeNekosAPI,
    cluster: Cluster,
    *,
    extra_settings: Mapping[str, str] | None,
    quiet: float,
) -> AsyncIterator[list[RunningBot]]:
    """``bot`` as one process (:func:`running_bot`), or split over ``cluster``'s processes."""
    if cluster.sharded:
        async with running_shards(
            emu, api, cluster, extra_settings=extra_settings, quiet=quiet
        ) as bots:
            yield bots
    else:
        async with running_bot(
            bot, emu, api, extra_settings=extra_settings, quiet=quiet
        ) as running:
            yield [running]


def per_ip(counts: Mapping[str, int], ips: Sequence[str]) -> str:
    """``ip:count,...`` over ``ips`` (zeros included), or ``none``."""
    return ",".join(f"{ip}:{counts.get(ip, 0)}" for ip in ips) or "none"


def ask_kind(draw: Draw) -> str:
    """What a random command asked for: ``any``, ``one`` or ``pair`` of sfw categories, an
    ``nsfw`` category or a ``misspelt`` one (where its slow answers come from)."""
    names = [n.strip() for n in (draw.categories or "").split(",") if n.strip()]
    if not names:
        return "any"
    if names[0] in NSFW_CATEGORIES:
        return "nsfw"
    if names[0] in MISSPELT:
        return "misspelt"
    return "pair" if len(names) > 1 else "one"


def spread(outcomes: Sequence[Outcome], now: float) -> dict[str, object]:
    """How the random commands' waits spread (p90, p95, share with a final message within 10 s),
    the lookups' (artist, character, image) p99 together, and the unanswered by kind."""
    randoms = [o for o in outcomes if o.kind == "random"]
    waits = [(o.ready if o.ready is not None else now) - o.arrived for o in randoms]
    lookups = [o for o in outcomes if o.kind in ("artist", "character", "image")]
    figures: dict[str, object] = {}
    if waits:
        figures["random_p90"] = f"{percentile(waits, 0.90):.2f}s"
        figures["random_p95"] = f"{percentile(waits, 0.95):.2f}s"
        within = sum(1 for o in randoms if o.ready is not None and o.ready - o.arrived <= 10.0)
        figures["random_within_10s"] = fmt_pct(within / len(randoms))
    if lookups:
        part = summarize(lookups, now=now)
        figures["lookups_p99"] = fmt_seconds(part.p99_final, part.p99_is_lower_bound)
    missing = Counter(o.kind for o in outcomes if o.ready is None)
    figures["unanswered_by_kind"] = fmt_errors(missing)
    return figures


@dataclass(slots=True)
class Sent:
    """One command as sent and as the member lived it."""

    draw: Draw
    lag: float
    """Seconds between its scheduled arrival and its dispatch (the benchmark keeping up)."""
    rec: InteractionRecord
    final: asyncio.Future[Final]


async def run_variant(
    label: str, load: MixLoad, data: Dataset, seed: int, cluster: Cluster = SINGLE
) -> tuple[dict[str, object], dict[str, object]]:
    """Run the mix against a fresh ``label`` bot (split over ``cluster``'s processes); its
    figure fields and its detail fields."""
    bot = BOTS[label]
    rng = random.Random(seed)
    mix = CommandMix(
        data,
        [c.name for c in data.categories if not c.nsfw],
        [a.name for a in data.artists if a.name],
        [c.name for c in data.characters],
        load.guilds,
        rng,
    )
    rate_limit = fake_rate_limit(load.quick)
    shards = cluster.processes
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=shards, max_concurrency=1) as emu,
        FakeNekosAPI(data, rate_limit=rate_limit, seed=seed) as api,
    ):
        world = build_mix_world(emu, mix, shards=shards)
        extra = quick_settings(bot, api, load.quick)
        quiet = 1.0 if load.quick else 2.0
        async with (
            running_bots(bot, emu, api, cluster, extra_settings=extra, quiet=quiet) as runnings,
            FinalWatcher(emu) as watcher,
        ):
            running = runnings[0]
            configured = 0
            if bot is PROJECT_BOT:
                configured = await configure_channels(emu, mix, world, watcher)
            check = AnswerCheck(data)
            sent: list[Sent] = []
            senders: list[asyncio.Task[None]] = []
            cpus = [CpuMeter(r.process.pid) for r in runnings]
            loop = asyncio.get_running_loop()
            async with contextlib.AsyncExitStack() as samplers:
                rsses = [
                    await samplers.enter_async_context(RssSampler(r.process.pid)) for r in runnings
                ]
                rss_starts = [rss.peak_mib for rss in rsses]

                async def send(draw: Draw, scheduled: float) -> None:
                    subcommand, options = slash_options(draw)
                    lag = loop.time() - scheduled
                    rec = await emu.slash(
                        world.members[draw.user],
                        world.channels[draw.channel.id],
                        "neko",
                        subcommand=subcommand,
                        options=options,
                    )
                    sent.append(Sent(draw, lag, rec, watcher.watch(rec)))

                for cpu in cpus:
                    cpu.start()
                first_request, first_429 = len(api.requests), api.count_429
                begin = loop.time()
                end = begin + load.seconds
                arrival = begin + rng.expovariate(load.rate)
                while arrival < end:
                    await asyncio.sleep(max(0.0, arrival - loop.time()))
                    senders.append(asyncio.create_task(send(mix.draw(), arrival)))
                    arrival += rng.expovariate(load.rate)
                await asyncio.gather(*senders)
                futures = [s.final for s in sent]
                if futures:
                    await asyncio.wait(futures, timeout=load.drain)
                finished = loop.time()
                for cpu in cpus:
                    cpu.stop()
            requests = [r for r in api.requests[first_request:] if begin <= r.time <= finished]
            count_429 = api.count_429 - first_429

        problems = rule_problems(emu)
        blocked = bool(api.blocked_ips)

    outcomes: list[Outcome] = []
    answers: Counter[str] = Counter()
    slow_randoms: Counter[str] = Counter()
    slow_by_minute: Counter[str] = Counter()
    slow_lookups_by_minute: Counter[str] = Counter()
    start = min((item.rec.created_at for item in sent), default=0.0)
    wrong = 0
    for item in sent:
        rec = item.rec
        outcome = Outcome(item.draw.kind, rec.created_at)
        response = rec.response
        if response is not None:
            outcome.acked = rec.created_at + response.elapsed
        if item.final.done() and not item.final.cancelled():
            final = item.final.result()
            outcome.ready = rec.created_at + final.elapsed
            kind, reason = classify_answer(final.message)
            if kind == "busy":
                outcome.error = "busy"
            elif kind == "error":
                outcome.error = reason
            answers[reason if kind == "answered" else kind] += 1
            wrong += check.beyond(final.message, item.draw.channel.max_rating)
        outcomes.append(outcome)
        if item.draw.kind == "random" and (
            outcome.ready is None or outcome.ready - outcome.arrived > 10.0
        ):
            slow_randoms[ask_kind(item.draw)] += 1
            slow_by_minute[f"m{int((outcome.arrived - start) // 60)}"] += 1
        if item.draw.kind in ("artist", "character", "image") and (
            outcome.ready is None or outcome.ready - outcome.arrived > 15.0
        ):
            slow_lookups_by_minute[f"m{int((outcome.arrived - start) // 60)}"] += 1

    summary = summarize(outcomes, now=finished)
    calls = sum(1 for r in requests if r.path.startswith("/api"))
    random_calls = sum(1 for r in requests if r.path == RANDOM_PATH)
    busy = summary.errors.get("busy", 0)
    fields: dict[str, object] = {
        # Two decimals over several processes: 9.96 must not read as the target's 10.0.
        "commands_per_upstream_call": f"{summary.ok / calls:.{2 if cluster.sharded else 1}f}"
        if calls
        else "inf",
        "commands": summary.commands,
        "answered": summary.ok,
        "busy": busy,
        "errors": summary.answered - summary.ok - busy,
        "unanswered": summary.commands - summary.answered,
        "acked_within_3s": fmt_pct(summary.acked_within_3s),
        "p50_final": fmt_seconds(summary.p50_final, summary.p50_is_lower_bound),
        "p99_final": fmt_seconds(summary.p99_final, summary.p99_is_lower_bound),
        "upstream_calls": calls,
        "random_calls": random_calls,
        "other_calls": calls - random_calls,
        "429s": count_429,
        "blocked": "yes" if blocked else "no",
        "violations": len(problems),
        "peak_rss_mib": "/".join(f"{rss.peak_mib:.0f}" for rss in rsses),
        "wrong": wrong,
    }
    if cluster.sharded:
        ips = sorted({r.ip for r in requests} | set(cluster.addresses))
        api_requests = [r for r in requests if r.path.startswith("/api")]
        fields["calls_per_ip"] = per_ip(Counter(r.ip for r in api_requests), ips)
        fields["429s_per_ip"] = per_ip(Counter(r.ip for r in requests if r.status == 429), ips)
    detail: dict[str, object] = {}
    for command in KINDS:
        group = [o for o in outcomes if o.kind == command]
        if group:
            part = summarize(group, now=finished)
            detail[f"{command}_p99"] = fmt_seconds(part.p99_final, part.p99_is_lower_bound)
    if cluster.sharded:
        detail |= spread(outcomes, finished)
    if cluster.sharded:
        detail["random_over_10s_by_ask"] = fmt_errors(slow_randoms)
        detail["random_over_10s_by_minute"] = fmt_errors(slow_by_minute)
        detail["lookups_over_15s_by_minute"] = fmt_errors(slow_lookups_by_minute)
    detail["answers"] = fmt_errors(answers)
    detail["error_reasons"] = fmt_errors({k: v for k, v in summary.errors.items() if k != "busy"})
    detail["configured_channels"] = configured
    detail["rss_at_start_mib"] = "/".join(f"{mib:.0f}" for mib in rss_starts)
    detail["bench_cpu"] = f"{100 * cpus[0].bench_share:.0f}%"
    detail["bot_cpu"] = "/".join(f"{100 * cpu.bot_share:.0f}%" for cpu in cpus)
    detail["send_lag_p99"] = f"{percentile([s.lag for s in sent], 0.99):.3f}s" if sent else "n/a"
    detail["startup_settled"] = f"{running.startup.settled_s:.1f}s"
    detail["startup_upstream"] = running.startup.upstream
    detail["exit"] = "/".join(str(r.exit_code) for r in runnings)
    for problem in problems[:5]:
        print(f"  violation: {problem}", flush=True)
    return fields, detail


async def run(load: MixLoad, seed: int, variants: Sequence[str], cluster: Cluster = SINGLE) -> None:
    """Run the mix against each bot in turn and print their figure lines."""
    data = generate_dataset()
    limit = QUICK_LIMITS.describe() if load.quick else "upstream limit 1 per 1s"
    if cluster.sharded and cluster.redis_url and not await answers(cluster.redis_url):
        raise SystemExit(f"Redis does not answer at {cluster.redis_url}")
    print(
        f"# discord_mixed: {load.seconds:g}s of Poisson arrivals at {load.rate:g}/s over "
        f"{load.guilds} guilds through the Discord emulator, then {load.drain:g}s drain; "
        f"{limit}, block after 10 strikes; seed {seed}",
        flush=True,
    )
    if cluster.sharded:
        print(
            f"# {cluster.processes} shard processes (SHARD_COUNT={cluster.processes}, one shard "
            f"each), egress {','.join(cluster.addresses) or 'default'} (limit per IP), "
            f"Redis {cluster.redis_url or 'none'} with a fresh key prefix",
            flush=True,
        )
    for label in variants:
        fields, detail = await run_variant(label, load, data, seed, cluster)
        figure("discord_mixed", label, fields)
        figure("discord_mixed", f"{label} detail", detail)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the mixed benchmark through the Discord emulator and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.discord_mixed", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of arrivals")
    parser.add_argument("--rate", type=float, default=10.0, help="commands per second")
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument(
        "--drain", type=float, default=30.0, help="seconds commands in flight get at the end"
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the load and the fake")
    parser.add_argument(
        "--variants", default=",".join(BOTS), help=f"comma-separated, from {', '.join(BOTS)}"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="shard processes serving the project bot"
    )
    parser.add_argument(
        "--addresses",
        default="",
        help="comma-separated NEKOS_API_SOURCE_ADDRESS, one per process (with --processes)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS,
        help="shared by the processes (with --processes > 1; '' for none)",
    )
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in BOTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(BOTS)}")
    cluster = SINGLE
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1:
        addresses = tuple(a.strip() for a in args.addresses.split(",") if a.strip())
        if addresses and len(addresses) != args.processes:
            parser.error("--addresses needs one address per process")
        if variants != [PROJECT_BOT.label]:
            parser.error("--processes > 1 runs only the project bot: add --variants bot")
        cluster = Cluster(args.processes, addresses, args.redis_url or None)
    load = (
        MixLoad(seconds=3.0, rate=5.0, guilds=10, drain=5.0, quick=True)
        if args.quick
        else MixLoad(args.seconds, args.rate, args.guilds, args.drain)
    )
    if load.seconds <= 0 or load.rate <= 0 or load.guilds < 1:
        parser.error("--seconds, --rate and --guilds must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(load, args.seed, variants, cluster))


if __name__ == "__main__":
    main()
