"""What the benchmarks that drive a real bot through the loopback Discord emulator share.

The bot under test runs as a subprocess (``python -m <module> --env-file <tmp>/bot.env``) against
the emulator (:mod:`tests.fakes.discord_emulator`) and the fake Nekos API
(:mod:`tests.fakes.nekos_api`), both served by the benchmark's own process. Here:

* the compared bots (:data:`PROJECT_BOT`, :data:`NAIVE_BOT`) and their ``.env`` files;
* :func:`running_bot`: spawn, wait until connected and until the start-up API traffic settled,
  stop (SIGTERM) on exit;
* :func:`build_world`: guilds of one text channel and a few members;
* reading the member's view: :func:`final_message`, :class:`FinalWatcher` (one task that resolves
  every watched interaction's final message), :func:`classify` (the burst's image / nothing /
  error) and :func:`classify_answer` (answered / busy / error, see its docstring);
* :class:`AnswerCheck`: which shown images break the request or the channel's rating;
* :func:`percentile`, :func:`rule_problems` (memory: ``bench.common.RssSampler(pid)``),
  :class:`CpuMeter` (CPU shares of this process and of the bot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped]  # no stubs in the environment

from bot.nekos.models import Rating
from tests.bot_process import spawned
from tests.fakes.dataset import Dataset, ImageRow
from tests.fakes.discord_emulator import (
    ChannelRecord,
    ChannelType,
    DiscordEmulator,
    InteractionRecord,
    UserRecord,
)
from tests.fakes.nekos_api import FakeNekosAPI

from .common import QUICK_LIMITS
from .naive_bot import READY_LINE as NAIVE_READY_LINE

__all__ = [
    "BOTS",
    "CONNECT_TIMEOUT",
    "DISCORD_TOKEN",
    "NAIVE_BOT",
    "PROJECT_BOT",
    "QUICK_SCOPES",
    "QUIET_PERIOD",
    "RANDOM_PATH",
    "SETTLE_LIMIT",
    "AnswerCheck",
    "AnswerKind",
    "BotUnderTest",
    "CpuMeter",
    "Final",
    "FinalWatcher",
    "Kind",
    "RunningBot",
    "Seat",
    "Startup",
    "build_world",
    "classify",
    "classify_answer",
    "fake_rate_limit",
    "final_message",
    "is_ephemeral",
    "message_text",
    "naive_settings",
    "percentile",
    "project_settings",
    "quick_settings",
    "rule_problems",
    "running_bot",
    "tail",
    "wait_connected",
    "wait_settled",
]

log = logging.getLogger(__name__)

# Three base64url parts, as bot/config.py's check wants; the emulator accepts exactly this one.
DISCORD_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAy.QmVuY2g.discord-burst-benchmark-token"
QUIET_PERIOD = 2.0
"""Start-up traffic has settled after this long without a new upstream request."""
SETTLE_LIMIT = 40.0
CONNECT_TIMEOUT = 30.0
RANDOM_PATH = "/api/image/random"
EPHEMERAL = 1 << 6

Kind = Literal["image", "nothing", "error", "missing"]
AnswerKind = Literal["answered", "busy", "error"]


# --------------------------------------------------------------------------- the bots


@dataclass(frozen=True, slots=True)
class BotUnderTest:
    """How to start one of the compared bots and how to tell it is connected."""

    label: str
    module: str
    ready_line: str
    settings: Callable[[DiscordEmulator, FakeNekosAPI, Path], dict[str, str]]


def project_settings(emu: DiscordEmulator, api: FakeNekosAPI, tmp: Path) -> dict[str, str]:
    """The project bot's ``.env``: both fakes, a scratch store and heartbeat, defaults otherwise."""
    return {
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_BASE_URL": emu.api_base,
        "NEKOS_API_BASE_URL": api.base_url,
        "DATABASE_URL": f"sqlite:///{tmp / 'bot.db'}",
        "HEALTH_FILE": str(tmp / "heartbeat"),
        "DATA_DIR": str(tmp),
        "LOG_LEVEL": "INFO",
    }


def naive_settings(emu: DiscordEmulator, api: FakeNekosAPI, tmp: Path) -> dict[str, str]:
    """The naive bot's ``.env``."""
    return {
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_BASE_URL": emu.api_base,
        "NEKOS_API_BASE_URL": api.base_url,
    }


PROJECT_BOT = BotUnderTest("bot", "bot", "Connected as", project_settings)
NAIVE_BOT = BotUnderTest("naive", "bench.naive_bot", NAIVE_READY_LINE, naive_settings)
BOTS: Mapping[str, BotUnderTest] = {PROJECT_BOT.label: PROJECT_BOT, NAIVE_BOT.label: NAIVE_BOT}
QUICK_SCOPES = f"api:ratelimit:{QUICK_LIMITS.requests}-{QUICK_LIMITS.per_seconds:g}-10"
"""``--quick``: the project bot's token grants the quick limit, so its pacer adopts it."""


def fake_rate_limit(quick: bool) -> tuple[int, float]:
    """The fake API's limit: the live one (1 per second), or the quick runs' faster one."""
    return QUICK_LIMITS.fake_rate_limit if quick else (1, 1.0)


def quick_settings(bot: BotUnderTest, api: FakeNekosAPI, quick: bool) -> dict[str, str]:
    """Settings that let the project bot use the quick runs' limit (none otherwise)."""
    if quick and bot is PROJECT_BOT:
        return {"NEKOS_API_TOKEN": api.add_token([QUICK_SCOPES])}
    return {}


@dataclass(frozen=True, slots=True)
class Startup:
    """From spawn to connected, and to the end of the start-up upstream traffic."""

    ready_s: float
    settled_s: float
    upstream: int
    count_429: int


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class Seat:
    """Where one command comes from: a member in a guild's text channel."""

    member: UserRecord
    channel: ChannelRecord


def build_world(
    emu: DiscordEmulator, guilds: int, members_per_guild: int, *, shards: int = 1
) -> list[list[Seat]]:
    """``guilds`` guilds, one text channel each, ``members_per_guild`` members in each.

    With ``shards``, guild ``n`` lands on shard ``n % shards`` (spread evenly over them).
    """
    seats = []
    for number in range(guilds):
        owner = emu.add_user(f"owner{number}")
        shard = (number % shards, shards) if shards > 1 else None
        guild = emu.add_guild(f"Guild {number}", owner, shard=shard)
        channel = emu.add_channel(guild, ChannelType.GUILD_TEXT, "general")
        row = []
        for index in range(members_per_guild):
            member = emu.add_user(f"member{number}-{index}")
            emu.add_member(guild, member)
            row.append(Seat(member, channel))
        seats.append(row)
    return seats


# --------------------------------------------------------------------------- the subprocess


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    text = _read(path)
    return "\n".join(text.splitlines()[-lines:])


async def wait_connected(
    bot: BotUnderTest, process: asyncio.subprocess.Process, log_path: Path
) -> None:
    """Wait until the bot logged its ready line (it has every guild); fail with its output."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while bot.ready_line not in await asyncio.to_thread(_read, log_path):
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{bot.label} never connected; its output:\n{tail(log_path)}")
        await asyncio.sleep(0.05)


async def wait_settled(api: FakeNekosAPI, quiet: float = QUIET_PERIOD) -> float | None:
    """Wait until no upstream request arrived for ``quiet`` seconds; the last one's arrival."""
    deadline = time.monotonic() + SETTLE_LIMIT
    seen = len(api.requests)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if len(api.requests) != seen:
            seen = len(api.requests)
            quiet_since = time.monotonic()
    return api.requests[-1].time if api.requests else None


@dataclass(slots=True)
class RunningBot:
    """A started bot: its process, log, start-up figures; ``exit_code`` once it stopped."""

    bot: BotUnderTest
    process: asyncio.subprocess.Process
    log_path: Path
    startup: Startup
    exit_code: int | None = None


@contextlib.asynccontextmanager
async def running_bot(
    bot: BotUnderTest,
    emu: DiscordEmulator,
    api: FakeNekosAPI,
    *,
    extra_settings: Mapping[str, str] | None = None,
    quiet: float = QUIET_PERIOD,
) -> AsyncIterator[RunningBot]:
    """Start ``bot`` against ``emu`` and ``api``; yield once connected and start-up settled.

    ``extra_settings`` adds ``.env`` variables (e.g. a Nekos API token or a cooldown). On exit
    the bot is stopped with SIGTERM; a non-zero exit is logged with the end of its output.
    """
    with tempfile.TemporaryDirectory(prefix=f"discord-bench-{bot.label}-") as scratch:
        tmp = Path(scratch)
        env_file = tmp / "bot.env"
        settings = {**bot.settings(emu, api, tmp), **(extra_settings or {})}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), "utf-8")
        log_path = tmp / "bot.log"
        spawned_at = time.monotonic()
        async with spawned(bot.module, env_file, log_path) as process:
            await wait_connected(bot, process, log_path)
            ready_s = time.monotonic() - spawned_at
            last_request = await wait_settled(api, quiet)
            startup = Startup(
                ready_s=ready_s,
                settled_s=ready_s if last_request is None else last_request - spawned_at,
                upstream=len(api.api_requests),
                count_429=api.count_429,
            )
            running = RunningBot(bot, process, log_path, startup)
            yield running
        running.exit_code = process.returncode
        if process.returncode != 0:
            log.warning("%s exited with %s:\n%s", bot.label, process.returncode, tail(log_path))


class CpuMeter:
    """CPU seconds the benchmark's own process (emulator, fake API, driver) and the bot spent
    between :meth:`start` and :meth:`stop`, as shares of one core over that time."""

    def __init__(self, bot_pid: int) -> None:
        self._bench = psutil.Process()
        self._bot = psutil.Process(bot_pid)
        self._started = 0.0
        self._bench_cpu = self._bot_cpu = 0.0
        self.bench_share = self.bot_share = 0.0

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def start(self) -> None:
        """Take the starting readings."""
        self._started = time.monotonic()
        self._bench_cpu, self._bot_cpu = self._cpu(self._bench), self._cpu(self._bot)

    def stop(self) -> None:
        """Take the closing readings and work out the shares."""
        elapsed = max(1e-9, time.monotonic() - self._started)
        self.bench_share = (self._cpu(self._bench) - self._bench_cpu) / elapsed
        self.bot_share = (self._cpu(self._bot) - self._bot_cpu) / elapsed


# --------------------------------------------------------------------------- the member's view


@dataclass(frozen=True, slots=True)
class Final:
    """The message a member finally sees: emulator seconds after the interaction, and the message
    as it was when first seen (``content``, ``embeds``, ``attachments``, ``flags``)."""

    elapsed: float
    message: dict[str, Any]


def final_message(rec: InteractionRecord) -> tuple[float, dict[str, Any]] | None:
    """Emulator seconds to the message the member finally sees, and that message; None if none yet.

    A message response is final at once; after a deferral the first follow-up is (Discord turns
    it into the placeholder's content, or it is the ephemeral answer after a filled placeholder).
    """
    if not rec.responses or not rec.responses[0].accepted:
        return None
    first = rec.responses[0]
    if first.type == 4:
        return first.elapsed, dict(first.data)
    if first.type == 5 and rec.followups:
        message = rec.followups[0]
        at = message.created_at
        if message is rec.original and message.edited_at is not None:
            at = message.edited_at
        return at - rec.created_at, message.snapshot()
    return None


class FinalWatcher:
    """Resolves each watched interaction's final message as soon as the emulator records it.

    One task re-checks the pending interactions on every emulator event (and every 50 ms), so
    many waiting members cost one scan per event rather than one poll loop each. The message is
    kept as first seen: a later edit (a placeholder deleted after a whisper) does not change it.
    """

    def __init__(self, emu: DiscordEmulator) -> None:
        self._emu = emu
        self._pending: dict[int, tuple[InteractionRecord, asyncio.Future[Final]]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, rec: InteractionRecord) -> asyncio.Future[Final]:
        """A future resolved with ``rec``'s :class:`Final` (never, if it never gets one)."""
        future: asyncio.Future[Final] = asyncio.get_running_loop().create_future()
        self._pending[rec.id] = (rec, future)
        self._scan()
        return future

    @property
    def pending(self) -> int:
        """Watched interactions without a final message yet."""
        return len(self._pending)

    def _scan(self) -> bool:
        for key, (rec, future) in list(self._pending.items()):
            if future.done():
                del self._pending[key]
                continue
            found = final_message(rec)
            if found is not None:
                future.set_result(Final(*found))
                del self._pending[key]
        return False

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await self._emu.wait_until(self._scan, timeout=3600.0)

    async def __aenter__(self) -> FinalWatcher:
        self._task = asyncio.create_task(self._run(), name="final-watcher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._scan()
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()


def is_ephemeral(message: Mapping[str, Any]) -> bool:
    """Whether a message's (or a callback's data) ``flags`` carry the ephemeral bit."""
    return bool(int(message.get("flags") or 0) & EPHEMERAL)


def message_text(message: Mapping[str, Any]) -> str:
    """The content and every embed's title and description, lower-cased, one string."""
    embeds = message.get("embeds") or []
    return " ".join(
        [str(message.get("content") or "")]
        + [f"{e.get('title') or ''} {e.get('description') or ''}" for e in embeds]
    ).lower()


def classify(data: dict[str, Any]) -> Kind:
    """An image answer, a "nothing matched" one, or anything else (an error)."""
    embeds = data.get("embeds") or []
    if data.get("attachments") or any((e.get("image") or {}).get("url") for e in embeds):
        return "image"
    return "nothing" if "nothing matched" in message_text(data) else "error"


BUSY_PHRASES = ("is busy right now", "slow down")
"""The bot's "try again in N s" answers: a shed lookup or a 429 (``error_reply``), the cooldown."""
ERROR_PHRASES = (
    ("paused requests", "blocked"),  # Blocked
    ("isn't answering", "unavailable"),  # any other adapter failure
    ("couldn't read", "unreadable"),  # an unreadable API answer
    ("didn't work", "bad_request"),  # InvalidParameter / BadRequest
    ("went wrong", "unexpected"),  # an unexpected failure
    ("couldn't save", "store"),  # a store failure (/neko-config)
    ("the nekos api answered", "http_status"),  # the naive bot passing on a non-200 status
    ("could not reach", "unreachable"),  # the naive bot's connection errors
)
"""Failure notices, each with the reason it is counted under."""
HONEST_PHRASES = (
    "nothing matched",  # random: no image fits (bot and naive bot)
    "shown in this channel recently",  # random: everything found was shown there lately
    "don't know the category",  # random: an unknown (misspelt) category
    "can't be shown",  # a category or an image above what the channel allows
    "couldn't find",  # an unknown artist or character, or an id that is not there
    "no image with",  # /neko image with an id that is not there
    "isn't in the nekos api",  # an artist or character that has gone
    "no category matches",  # /neko category with a search that matches nothing
    "isn't an image id",  # /neko image with something that is not a UUID
)


def classify_answer(message: Mapping[str, Any]) -> tuple[AnswerKind, str]:
    """Answered, busy or error, with a one-word reason: how the mixed benchmarks read a message.

    The rule, in order: a message with an embed or an attachment is a real answer (images, an
    artist/character/stats/category card). A text-only message is one of the notices: "busy"
    when it asks to try again shortly (:data:`BUSY_PHRASES`), an error when it reports a failure
    (:data:`ERROR_PHRASES`), answered when it honestly says nothing fits (:data:`HONEST_PHRASES`).
    A text the lists do not know counts as an error (reason ``unclassified``), so a changed
    wording can only lower the answered figure, never inflate it.
    """
    embeds = message.get("embeds") or []
    if message.get("attachments") or any(
        (e.get("image") or {}).get("url") for e in embeds if isinstance(e, Mapping)
    ):
        return "answered", "images"
    if embeds:
        return "answered", "card"
    text = message_text(message)
    for phrase in BUSY_PHRASES:
        if phrase in text:
            return "busy", "busy"
    for phrase, reason in ERROR_PHRASES:
        if phrase in text:
            return "error", reason
    for phrase in HONEST_PHRASES:
        if phrase in text:
            return "answered", "notice"
    return "error", "unclassified"


class AnswerCheck:
    """Tells which shown images break the request: wrong category, rating, or the minors rule."""

    def __init__(self, data: Dataset) -> None:
        self._by_file = {image.file_name: image for image in data.images}
        self._names = {category.id: category.name for category in data.categories}
        self._minors = {c.id for c in data.characters if c.ages and min(c.ages) < 18}

    def shown(self, message: Mapping[str, Any]) -> list[ImageRow]:
        """The dataset images a message's embeds show (their URLs point at the fake's storage)."""
        rows = []
        for embed in message.get("embeds") or []:
            url = (embed.get("image") or {}).get("url")
            row = self._by_file.get(PurePosixPath(urlsplit(str(url)).path).name) if url else None
            if row is not None:
                rows.append(row)
        return rows

    def wrong(self, message: Mapping[str, Any], category: str) -> int:
        """How many shown images lack ``category`` or are rated above sfw."""
        return sum(
            1
            for row in self.shown(message)
            if row.nsfw != "sfw" or category not in {self._names[c] for c in row.category_ids}
        )

    def beyond(self, message: Mapping[str, Any], allowed: Rating) -> int:
        """How many shown images are rated above ``allowed`` or show a known minor above sfw."""
        count = 0
        for row in self.shown(message):
            rating = Rating.parse(row.nsfw)
            minor = rating > Rating.SFW and bool(self._minors & set(row.character_ids))
            count += rating > allowed or minor
        return count


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0-1) of ``values``; ``nan`` when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rule_problems(emu: DiscordEmulator) -> list[str]:
    """Every Discord rule the emulator saw broken, plus interactions never answered in time."""
    return list(emu.violations) + [
        f"no-response: {rec.describe()} {rec.id}" for rec in emu.unanswered()
    ]
