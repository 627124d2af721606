"""The e2e stack: a loopback Discord emulator, a fake Nekos API and the real NekosBot between.

Every test builds a small world (a guild with an owner, a plain member and a few channels),
starts :class:`bot.core.NekosBot` with settings pointing at both fakes, and drives it only the
way Discord would: slash commands, autocomplete and button clicks through the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, settings_from_mapping
from bot.core import NekosBot
from bot.nekos.models import Rating
from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.dataset_v4 import generate_v4_dataset
from tests.fakes.discord_emulator import (
    ChannelRecord,
    ChannelType,
    DiscordEmulator,
    GuildRecord,
    InteractionRecord,
    MessageRecord,
    UserRecord,
)
from tests.fakes.discord_payloads import DEFAULT_MEMBER_PERMISSIONS, MESSAGE_FLAG_EPHEMERAL
from tests.fakes.nekos_api import FakeNekosAPI
from tests.fakes.nekos_api_v4 import FakeNekosV4API

# Three base64url parts, as bot/config.py's check wants; the emulator accepts exactly this one.
DISCORD_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.GeMuLa.e2e-emulator-token-not-a-secret"
# 20 requests a second and 10 strikes: the bot's pacer adopts it from GET /token.
FAST_SCOPES = ("api:ratelimit:20-1-10",)
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# One page each of /artist and /character keeps the catalogue load at start-up short.
SMALL_CATALOGUE = {"artists": 25, "characters": 25}
RATING_OF_LABEL = {"sfw": Rating.SFW, "questionable": Rating.QUESTIONABLE, "nsfw": Rating.NSFW}


def is_ephemeral(data: Mapping[str, Any]) -> bool:
    """Whether a callback's or message's ``flags`` carry the ephemeral bit (64)."""
    return bool(int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL)


def message_text(data: Mapping[str, Any]) -> str:
    """Everything a member reads in a message: content plus every embed's text."""
    parts = [str(data.get("content") or "")]
    for embed in data.get("embeds") or []:
        parts.append(str(embed.get("title") or ""))
        parts.append(str(embed.get("description") or ""))
        for item in embed.get("fields") or []:
            parts.append(f"{item.get('name')}: {item.get('value')}")
        parts.append(str((embed.get("footer") or {}).get("text") or ""))
    return "\n".join(p for p in parts if p)


def shown_image_ids(data: Mapping[str, Any]) -> list[str]:
    """Ids of the images a message shows: embeds with a picture carry the id in the footer."""
    ids = []
    for embed in data.get("embeds") or []:
        if not (embed.get("image") or {}).get("url"):
            continue
        footer = str((embed.get("footer") or {}).get("text") or "")
        found = UUID_RE.findall(footer)
        assert found, f"an image embed without an id in its footer: {footer!r}"
        ids.append(found[-1])
    return ids


def minor_ids(data: Dataset) -> set[str]:
    """Ids of characters listed with any age under 18."""
    return {c.id for c in data.characters if c.ages and min(c.ages) < 18}


def check_shown(data: Dataset, ids: Iterable[str], allowed: Rating) -> list[Rating]:
    """Assert every shown image is within ``allowed`` and minor-safe; return their ratings."""
    minors = minor_ids(data)
    ratings = []
    for image_id in ids:
        row = data.image_by_id[image_id]
        rating = RATING_OF_LABEL[row.nsfw]
        assert rating <= allowed, f"image {image_id} is {row.nsfw}, above {allowed.label}"
        if rating > Rating.SFW:
            assert not minors & set(row.character_ids), f"image {image_id} shows a minor"
        ratings.append(rating)
    return ratings


def custom_ids(message: MessageRecord, prefix: str) -> list[str]:
    """The custom ids on ``message`` starting with ``prefix``."""
    return [c for c in message.custom_ids if c.startswith(prefix)]


@dataclass
class Stack:
    """The two fakes, a small Discord world and the settings that point the bot at them."""

    emu: DiscordEmulator
    api: FakeNekosAPI | FakeNekosV4API
    tmp_path: Path
    api_token: str
    owner: UserRecord
    member: UserRecord
    admin: UserRecord
    guild: GuildRecord
    general: ChannelRecord
    lounge: ChannelRecord
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, **extra: str) -> Settings:
        """Settings for an in-process bot; ``extra`` adds or replaces variables."""
        return settings_from_mapping({**self.env, **extra})

    @contextlib.asynccontextmanager
    async def run(self, **extra: str) -> AsyncIterator[NekosBot]:
        """Start a NekosBot on these settings, yield it once ready and its catalogue loaded."""
        bot = NekosBot(self.settings(**extra))
        # discord.py waits this long after the last GUILD_CREATE before READY (default 2 s);
        # the loopback emulator sends every guild at once, so a short wait loses nothing.
        bot._connection.guild_ready_timeout = 0.2
        async with self.emu.run_client(bot, ready_timeout=15.0):
            await asyncio.wait_for(bot.catalog.loaded.wait(), 10.0)
            yield bot

    def dataset(self) -> Dataset:
        """The fake v1 API's data (the tests that read it run on v1)."""
        data = self.api.dataset
        if not isinstance(data, Dataset):
            raise TypeError("this stack serves the v4 API: its data is not a v1 Dataset")
        return data

    async def ask(
        self,
        user: UserRecord,
        channel: ChannelRecord,
        subcommand: str,
        /,
        *,
        command: str = "neko",
        timeout: float = 8.0,  # noqa: ASYNC109
        **options: Any,
    ) -> tuple[InteractionRecord, dict[str, Any]]:
        """Run ``/command subcommand`` and return it with the message the member finally sees.

        A direct response is that message; after a deferral it is the follow-up that fills
        (or, for an ephemeral answer, replaces) the "thinking…" placeholder.
        """
        rec = await self.emu.slash(user, channel, command, subcommand=subcommand, options=options)
        return rec, await final_message(rec, timeout)

    async def configure(
        self, user: UserRecord, subcommand: str, /, **options: Any
    ) -> tuple[InteractionRecord, dict[str, Any]]:
        """Run ``/neko-config subcommand`` (in #general) as ``user``."""
        return await self.ask(user, self.general, subcommand, command="neko-config", **options)

    async def press(
        self,
        user: UserRecord,
        message: MessageRecord,
        custom_id: str,
        *,
        timeout: float = 8.0,  # noqa: ASYNC109
    ) -> tuple[InteractionRecord, dict[str, Any]]:
        """Click a button and return the interaction with what the member then sees."""
        edits_before = len(message.history)
        rec = await self.emu.click(user, message, custom_id)
        return rec, await final_message(rec, timeout, edits_before=edits_before)


async def final_message(
    rec: InteractionRecord,
    timeout: float = 8.0,  # noqa: ASYNC109
    *,
    edits_before: int | None = None,
) -> dict[str, Any]:
    """What the member sees in the end: the response's message, or the deferred follow-up.

    ``edits_before`` is the clicked message's edit count before the click: a deferred update
    (type 6) is settled once the message was edited again.
    """
    first = await rec.wait_response(timeout)
    assert first.accepted, f"{rec.describe()} was answered with a rejected callback: {first}"
    if first.type == 4:
        return dict(first.data)
    if first.type == 7:
        assert rec.original is not None
        return snapshot(rec.original)

    def settled(r: InteractionRecord) -> bool:
        if first.type == 5:
            # A deferred message always ends in a follow-up (which may fill the placeholder).
            return bool(r.followups)
        original = r.original
        return (
            original is not None
            and edits_before is not None
            and len(original.history) > edits_before
        ) or bool(r.followups)

    await rec.wait_until(settled, timeout)
    message = rec.followups[-1] if rec.followups else rec.original
    assert message is not None
    if first.type == 5 and message.ephemeral and rec.original is not message:
        # An ephemeral answer after a public placeholder: the placeholder must go away.
        await rec.wait_until(lambda r: r.original is not None and r.original.deleted, timeout)
    return snapshot(message)


def snapshot(message: MessageRecord) -> dict[str, Any]:
    """A message as the member sees it now, shaped like a callback's data."""
    return {**message.snapshot(), "id": message.id}


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 5.0,  # noqa: ASYNC109
) -> None:
    """Wait until the async ``check`` holds (for state the bot changes on a gateway event)."""
    async with asyncio.timeout(timeout):
        for delay in itertools.repeat(0.05):
            if await check():
                return
            await asyncio.sleep(delay)


def message_of(rec: InteractionRecord) -> MessageRecord:
    """The message an answered interaction left in the channel (for clicking its buttons)."""
    if rec.followups:
        return rec.followups[-1]
    assert rec.original is not None, f"{rec.describe()} left no message"
    return rec.original


def build_stack(
    emu: DiscordEmulator, api: FakeNekosAPI | FakeNekosV4API, tmp_path: Path, api_token: str
) -> Stack:
    """The standard world: a guild whose owner, an admin and a plain member use two channels."""
    owner = emu.add_user("owner")
    member = emu.add_user("member")
    admin = emu.add_user("admin")
    guild = emu.add_guild("Cat Cafe", owner)
    emu.add_member(guild, member)
    emu.add_member(guild, admin, DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD)
    general = emu.add_channel(guild, ChannelType.GUILD_TEXT, "general")
    lounge = emu.add_channel(guild, ChannelType.GUILD_TEXT, "lounge", nsfw=True)
    env = {
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_BASE_URL": emu.api_base,
        "NEKOS_API_BASE_URL": api.base_url,
        "NEKOS_API_TOKEN": api_token,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "HEALTH_FILE": str(tmp_path / "hb"),
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "DEBUG",
        # Tests fire many commands per member; the per-member cooldown is pinned on its own.
        "COOLDOWN_USES": "1000",
    }
    return Stack(
        emu=emu,
        api=api,
        tmp_path=tmp_path,
        api_token=api_token,
        owner=owner,
        member=member,
        admin=admin,
        guild=guild,
        general=general,
        lounge=lounge,
        env=env,
    )


@contextlib.asynccontextmanager
async def open_stack(
    tmp_path: Path, dataset: Dataset | None = None, **fake_options: Any
) -> AsyncIterator[Stack]:
    """Start both fakes and build the world; the caller starts the bot with ``stack.run()``."""
    data = dataset if dataset is not None else generate_dataset(**SMALL_CATALOGUE)
    async with (
        DiscordEmulator(token=DISCORD_TOKEN) as emu,
        FakeNekosAPI(dataset=data, **fake_options) as api,
    ):
        token = api.add_token(list(FAST_SCOPES))
        # The bot moves discord.py's REST base and gateway; this puts them back after.
        with emu.patch_discord():
            yield build_stack(emu, api, tmp_path, token)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The standard stack on a mostly sfw dataset (like the live API); no bot started yet."""
    async with open_stack(tmp_path) as built:
        yield built


@contextlib.asynccontextmanager
async def open_v4_stack(tmp_path: Path, **env: str) -> AsyncIterator[Stack]:
    """The standard world against the fake Nekos API v4 (``stack.api``), which has no token."""
    async with (
        DiscordEmulator(token=DISCORD_TOKEN) as emu,
        FakeNekosV4API(generate_v4_dataset(seed=5)) as api,
    ):
        with emu.patch_discord():
            built = build_stack(emu, api, tmp_path, "")
            del built.env["NEKOS_API_TOKEN"]
            built.env.update({"NEKOS_API_BASE_URL": api.base_url, "NEKOS_API_RATE": "20", **env})
            yield built


@pytest.fixture
async def v4stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The bot on the Nekos API v4, as a fresh install runs it (no opt-in above sfw)."""
    async with open_v4_stack(tmp_path) as built:
        yield built


@pytest.fixture
async def v4_opted_in(tmp_path: Path) -> AsyncIterator[Stack]:
    """The bot on v4 with the operator's opt-in above sfw (NEKOS_V4_ALLOW_ABOVE_SFW=true)."""
    async with open_v4_stack(tmp_path, NEKOS_V4_ALLOW_ABOVE_SFW="true") as built:
        yield built


@pytest.fixture
async def spicy(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack whose dataset is 30% sfw, 30% questionable, 40% nsfw, so gating shows."""
    data = generate_dataset(seed=3, images=300, ratings=(0.3, 0.3, 0.4), **SMALL_CATALOGUE)
    async with open_stack(tmp_path, dataset=data) as built:
        yield built
