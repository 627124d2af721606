"""End-to-end tests of the Discord emulator with the real discord.py client over loopback sockets.

A small bot defined here (not the project's bot) logs in, syncs its command tree and answers
interactions the emulator drives; the tests pin what the emulator records and which of
Discord's rules it enforces.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.sharding import shard_of
from tests.fakes.discord_emulator import (
    ChannelRecord,
    ChannelType,
    DiscordEmulator,
    GuildRecord,
    InteractionNotDispatched,
    UserRecord,
)
from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    DEFAULT_MEMBER_PERMISSIONS,
    EMBED_LINKS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    autocomplete_problems,
    command_problems,
    message_problems,
)

TAGS = [f"tag-{i:02d}" for i in range(40)]
MANAGE_GUILD = 1 << 5

Script = Callable[[discord.Interaction], Awaitable[None]]


@dataclass
class Probe:
    """What the test bot saw and did, plus hooks the tests steer it with."""

    script: Script | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[discord.Interaction] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    autocomplete_size: int = 25
    clicks: list[str] = field(default_factory=list)


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"page:(?P<page>\d+)"
):
    """A button rebuilt from its custom_id alone (survives a restart)."""

    def __init__(self, page: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Page {page}", custom_id=f"page:{page}", style=discord.ButtonStyle.primary
            )
        )
        self.page = page

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> PageButton:
        return cls(int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(PageButton(self.page + 1))
        await interaction.response.edit_message(content=f"page {self.page + 1}", view=view)


class RefreshView(discord.ui.View):
    """A persistent view: a fixed custom_id, registered with add_view at start-up."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.add_item(discord.ui.Button(label="Source", url="https://example.test/source"))

    @discord.ui.button(
        label="Refresh", custom_id="neko:refresh", style=discord.ButtonStyle.secondary
    )
    async def refresh(
        self, interaction: discord.Interaction, button: discord.ui.Button[RefreshView]
    ) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="refreshed")


class RatingSelect(discord.ui.View):
    """A select menu whose pick is echoed back by editing the message."""

    def __init__(self) -> None:
        # discord.py gives a view on an ephemeral message a 15-minute timeout regardless.
        super().__init__(timeout=None)

    @discord.ui.select(
        custom_id="rating:pick",
        options=[discord.SelectOption(label=r, value=r) for r in ("safe", "suggestive")],
    )
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[RatingSelect]
    ) -> None:
        await interaction.response.edit_message(content=f"picked {select.values[0]}", view=None)
        # Stopping ends the view's timeout task, which would outlive the client.
        self.stop()


def image_view() -> discord.ui.View:
    view = RefreshView()
    view.add_item(PageButton(1))
    return view


def register_commands(bot: commands.Bot | commands.AutoShardedBot, probe: Probe) -> None:
    neko = app_commands.Group(name="neko", description="Neko images")

    @neko.command(name="random", description="A random image")
    @app_commands.describe(rating="Content rating")
    @app_commands.choices(
        rating=[
            app_commands.Choice(name="safe", value="safe"),
            app_commands.Choice(name="suggestive", value="suggestive"),
        ]
    )
    async def random_image(interaction: discord.Interaction, rating: str = "safe") -> None:
        probe.seen.append(interaction)
        embed = discord.Embed(title=f"Random {rating} image", url="https://example.test/1")
        await interaction.response.send_message(embed=embed, view=image_view())

    @neko.command(name="search", description="Search by tag")
    async def search(interaction: discord.Interaction, tag: str) -> None:
        probe.seen.append(interaction)
        await interaction.response.send_message(f"tag {tag}")

    @search.autocomplete("tag")
    async def search_tag(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        pool = [t for t in TAGS if current in t] * 2
        return [app_commands.Choice(name=t, value=t) for t in pool[: probe.autocomplete_size]]

    @neko.command(name="run", description="Runs the test's script")
    async def run(interaction: discord.Interaction) -> None:
        probe.seen.append(interaction)
        assert probe.script is not None
        await probe.script(interaction)

    admin = app_commands.Group(
        name="neko-admin",
        description="Admin tools",
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @admin.command(name="purge", description="Purge the cache")
    async def purge(interaction: discord.Interaction) -> None:
        probe.seen.append(interaction)
        await interaction.response.send_message("purged", ephemeral=True)

    @app_commands.command(name="lewd", description="Age-restricted", nsfw=True)
    async def lewd(interaction: discord.Interaction) -> None:
        probe.seen.append(interaction)
        await interaction.response.send_message("ok")

    @app_commands.command(name="whoami", description="Works wherever the app is installed")
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def whoami(interaction: discord.Interaction) -> None:
        probe.seen.append(interaction)
        await interaction.response.send_message(f"you are {interaction.user.name}", ephemeral=True)

    bot.tree.add_command(neko)
    bot.tree.add_command(admin)
    bot.tree.add_command(lewd)
    bot.tree.add_command(whoami)

    @bot.tree.error  # type: ignore[untyped-decorator]  # discord.py leaves it untyped
    async def on_tree_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        probe.errors.append(
            error.original if isinstance(error, app_commands.CommandInvokeError) else error
        )


class ProbeBot(commands.Bot):
    """A minimal bot: default intents (no privileged ones), app commands only."""

    def __init__(self, probe: Probe) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )
        self.probe = probe
        register_commands(self, probe)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Skip discord.py's 5-second pause before a re-IDENTIFY (keeps tests fast)."""

    async def setup_hook(self) -> None:
        self.add_dynamic_items(PageButton)
        self.add_view(RefreshView())


class ShardedProbeBot(commands.AutoShardedBot):
    """The same bot, auto-sharded: it asks GET /gateway/bot for the URL and shard count."""

    def __init__(self, probe: Probe) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )
        register_commands(self, probe)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Skip discord.py's 5-second pause before a re-IDENTIFY (keeps tests fast)."""


@dataclass
class World:
    emu: DiscordEmulator
    owner: UserRecord
    member: UserRecord
    guild: GuildRecord
    text: ChannelRecord
    adult: ChannelRecord
    forum: ChannelRecord
    post: ChannelRecord
    probe: Probe


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Each test must close its client cleanly: no stray tasks, no keep-alive threads."""
    before = asyncio.all_tasks()
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("keep-alive-handler"):
            thread.join(timeout=5)
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t not in before and t is not current]
    # discord.py's ready-delay task may still be counting down its guild_ready_timeout.
    if leftover:
        await asyncio.wait(leftover, timeout=2)
    assert [t for t in leftover if not t.done()] == []
    assert not [t for t in threading.enumerate() if t.name.startswith("keep-alive-handler")]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with DiscordEmulator(heartbeat_interval_ms=500) as emu:
        owner = emu.add_user("owner")
        member = emu.add_user("member")
        guild = emu.add_guild("Cats", owner)
        emu.add_member(guild, member, DEFAULT_MEMBER_PERMISSIONS)
        text = emu.add_channel(guild, ChannelType.GUILD_TEXT, "general")
        adult = emu.add_channel(guild, ChannelType.GUILD_TEXT, "after-dark", nsfw=True)
        forum = emu.add_channel(guild, ChannelType.GUILD_FORUM, "gallery", nsfw=True)
        post = emu.add_channel(guild, ChannelType.PUBLIC_THREAD, "a post", parent=forum)
        yield World(emu, owner, member, guild, text, adult, forum, post, Probe())


@pytest.fixture
async def bot(world: World) -> AsyncIterator[commands.Bot]:
    client = ProbeBot(world.probe)
    async with world.emu.run_client(client):
        await client.tree.sync()
        yield client


def script(world: World) -> Callable[[Script], Script]:
    def install(func: Script) -> Script:
        world.probe.script = func
        return func

    return install


# --------------------------------------------------------------------------- login and sync


async def test_client_logs_in_and_caches_guild_channels_and_threads(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    assert guild.name == "Cats"
    assert bot.user is not None
    assert bot.user.id == emu.bot_user.id
    adult = bot.get_channel(world.adult.id)
    assert isinstance(adult, discord.TextChannel)
    assert adult.is_nsfw()
    post = bot.get_channel(world.post.id)
    assert isinstance(post, discord.Thread)
    assert post.parent_id == world.forum.id
    assert guild.me is not None
    assert emu.identifies[0]["intents"] == discord.Intents.default().value
    assert "token" not in emu.identifies[0]
    paths = [f"{c.method} {c.path}" for c in emu.requests]
    assert paths[:2] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    assert emu.unknown_routes == []
    assert emu.gateway_log[0].startswith("connect /gateway?v=10&encoding=json")


async def test_tree_sync_stores_validated_commands_with_stable_ids(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    names = {c["name"]: c for c in emu.global_commands.values()}
    assert set(names) == {"neko", "neko-admin", "lewd", "whoami"}
    assert names["neko-admin"]["default_member_permissions"] == str(MANAGE_GUILD)
    assert names["lewd"]["nsfw"] is True
    assert names["whoami"]["integration_types"] == [0, 1]
    subcommands = {o["name"] for o in names["neko"]["options"]}
    assert subcommands == {"random", "search", "run"}
    synced = await bot.tree.sync()
    assert {c.name: c.id for c in synced} == {n: int(c["id"]) for n, c in names.items()}
    fetched = await bot.tree.fetch_commands()
    assert {c.name for c in fetched} == set(names)
    assert emu.command_syncs == [None, None]
    emu.assert_no_violations()


async def test_invalid_command_definition_is_rejected_and_recorded(
    world: World, bot: commands.Bot
) -> None:
    bad = [{"name": "Bad Name", "description": "x", "type": 1}]
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.bulk_upsert_global_commands(world.emu.application_id, payload=bad)
    assert caught.value.status == 400
    assert caught.value.code == 50035
    assert any(v.startswith("command-definition:") for v in world.emu.violations)


# --------------------------------------------------------------------------- slash responses


async def test_slash_command_plain_response_is_recorded_in_time(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="random", options={"rating": "suggestive"}
    )
    first = await rec.wait_response()
    assert first.accepted
    assert first.type == 4
    assert rec.first_response_elapsed is not None
    assert rec.first_response_elapsed < emu.response_deadline
    assert rec.original is not None
    assert rec.original.embeds[0]["title"] == "Random suggestive image"
    assert set(rec.original.custom_ids) == {"neko:refresh", "page:1"}
    seen = world.probe.seen[-1]
    assert seen.command is not None
    assert seen.command.qualified_name == "neko random"
    emu.assert_no_violations()


async def test_deferred_response_then_followup_fills_the_deferred_message(
    world: World, bot: commands.Bot
) -> None:
    @script(world)
    async def deferred(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("done")
        await interaction.followup.send("and more")

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    assert (await rec.wait_response()).type == 5
    followups = await rec.wait_followups(2)
    assert rec.original is not None
    assert followups[0] is rec.original
    assert rec.original.content == "done"
    assert not rec.original.loading
    assert followups[1].content == "and more"
    assert followups[1].id != rec.original.id
    world.emu.assert_no_violations()


async def test_edit_original_response_updates_the_message_and_keeps_history(
    world: World, bot: commands.Bot
) -> None:
    @script(world)
    async def edited(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("loading…")
        await interaction.edit_original_response(content="loaded", embed=discord.Embed(title="cat"))

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    await rec.wait_until(lambda r: r.original is not None and r.original.content == "loaded")
    assert rec.original is not None
    assert rec.original.history[0]["content"] == "loading…"
    assert [e["title"] for e in rec.original.embeds] == ["cat"]
    assert rec.original.edited_timestamp is not None
    world.emu.assert_no_violations()


async def test_ephemeral_response_carries_flag_64(world: World, bot: commands.Bot) -> None:
    @script(world)
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("psst", ephemeral=True)

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    first = await rec.wait_response()
    assert first.data["flags"] & 64
    assert rec.original is not None
    assert rec.original.ephemeral
    assert "MESSAGE_CREATE" not in world.emu.events_sent
    world.emu.assert_no_violations()


async def test_response_with_file_is_sent_multipart_and_recorded(
    world: World, bot: commands.Bot
) -> None:
    @script(world)
    async def with_file(interaction: discord.Interaction) -> None:
        picture = discord.File(io.BytesIO(b"\x89PNG" + b"0" * 96), filename="neko.png")
        embed = discord.Embed(title="cat").set_image(url="attachment://neko.png")
        await interaction.response.send_message(embed=embed, file=picture)

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    first = await rec.wait_response()
    assert first.accepted
    assert [f.filename for f in first.files] == ["neko.png"]
    assert rec.original is not None
    assert rec.original.attachments[0]["filename"] == "neko.png"
    assert rec.original.attachments[0]["size"] == 100
    world.emu.assert_no_violations()


async def test_upload_over_the_interactions_size_limit_is_rejected(
    world: World, bot: commands.Bot
) -> None:
    world.guild.upload_limit = 1000

    @script(world)
    async def too_big(interaction: discord.Interaction) -> None:
        assert interaction.filesize_limit == 1000
        picture = discord.File(io.BytesIO(b"0" * 2000), filename="huge.png")
        await interaction.response.send_message(file=picture)

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    first = await rec.wait_response()
    assert first.status == 413
    await world.emu.wait_until(lambda: bool(world.probe.errors))
    assert any(v.startswith("attachment-too-large:") for v in world.emu.violations)


# --------------------------------------------------------------------------- interaction payload


async def test_interaction_carries_member_permissions_in_channel_and_channel_partial(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    emu.set_channel_permissions(world.forum, world.member, VIEW_CHANNEL | SEND_MESSAGES)
    captured: dict[str, Any] = {}

    @script(world)
    async def inspect(interaction: discord.Interaction) -> None:
        captured["permissions"] = interaction.permissions.value
        captured["app_permissions"] = interaction.app_permissions.value
        captured["channel"] = interaction.channel
        captured["context"] = interaction.context
        captured["limit"] = interaction.filesize_limit
        await interaction.response.send_message("ok")

    rec = await emu.slash(world.member, world.post, "neko", subcommand="run", locale="de")
    await rec.wait_response()
    assert captured["permissions"] == VIEW_CHANNEL | SEND_MESSAGES
    assert captured["app_permissions"] == emu.permissions_in(world.post, emu.bot_user)
    channel = captured["channel"]
    assert isinstance(channel, discord.Thread)
    assert channel.parent is not None
    assert channel.parent.is_nsfw()
    assert captured["context"].guild
    assert captured["limit"] == world.guild.upload_limit
    payload = rec.payload
    assert payload["channel"]["type"] == 11
    assert payload["channel"]["parent_id"] == str(world.forum.id)
    assert payload["member"]["permissions"] == str(VIEW_CHANNEL | SEND_MESSAGES)
    assert payload["locale"] == "de"
    assert payload["entitlements"] == []
    assert payload["context"] == 0
    emu.assert_no_violations()


async def test_dm_interaction_has_context_1_and_a_user_not_a_member(
    world: World, bot: commands.Bot
) -> None:
    captured: dict[str, Any] = {}

    @script(world)
    async def inspect(interaction: discord.Interaction) -> None:
        captured["guild"] = interaction.guild
        captured["user"] = interaction.user
        captured["context"] = interaction.context
        await interaction.response.send_message("hi")

    rec = await world.emu.slash(
        world.member, world.emu.dm_channel(world.member), "neko", subcommand="run"
    )
    assert (await rec.wait_response()).accepted
    assert captured["guild"] is None
    assert captured["user"].id == world.member.id
    assert captured["context"].dm_channel
    assert rec.payload["context"] == 1
    assert "member" not in rec.payload


# --------------------------------------------------------------------------- dispatch rules


async def test_command_with_default_member_permissions_is_not_dispatched_to_member_without_them(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    refused = await emu.slash(world.member, world.text, "neko-admin", subcommand="purge")
    assert not refused.dispatched
    assert "default_member_permissions" in (refused.refusal or "")
    with pytest.raises(InteractionNotDispatched):
        await refused.wait_response()
    allowed = await emu.slash(world.owner, world.text, "neko-admin", subcommand="purge")
    assert (await allowed.wait_response()).accepted
    assert [i.id for i in world.probe.seen] == [allowed.id]
    emu.set_member_permissions(world.guild, world.member, DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD)
    granted = await emu.slash(world.member, world.text, "neko-admin", subcommand="purge")
    assert (await granted.wait_response()).accepted
    emu.assert_no_violations()


async def test_age_restricted_command_is_dispatched_only_where_age_restricted(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    refused = await emu.slash(world.member, world.text, "lewd")
    assert not refused.dispatched
    in_post = await emu.slash(world.member, world.post, "lewd")
    assert (await in_post.wait_response()).accepted
    emu.set_channel_nsfw(world.forum, False)
    assert not (await emu.slash(world.member, world.post, "lewd")).dispatched


async def test_options_a_discord_client_would_not_send_raise(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    with pytest.raises(ValueError, match="choices"):
        await emu.slash(
            world.member, world.text, "neko", subcommand="random", options={"rating": "x"}
        )
    with pytest.raises(ValueError, match="required"):
        await emu.slash(world.member, world.text, "neko", subcommand="search")
    with pytest.raises(ValueError, match="subcommand"):
        await emu.slash(world.member, world.text, "neko")
    with pytest.raises(LookupError):
        await emu.slash(world.member, world.text, "nope")


# --------------------------------------------------------------------------- autocomplete


async def test_autocomplete_is_answered_with_choices(world: World, bot: commands.Bot) -> None:
    rec = await world.emu.autocomplete(
        world.member,
        world.text,
        "neko",
        subcommand="search",
        focused="tag",
        options={"tag": "tag-1"},
    )
    first = await rec.wait_response()
    assert first.accepted
    assert first.type == 8
    assert rec.choices is not None
    assert 0 < len(rec.choices) <= 25
    assert all("tag-1" in c["value"] for c in rec.choices)
    assert rec.payload["data"]["options"][0]["options"][0] == {
        "name": "tag",
        "type": 3,
        "value": "tag-1",
        "focused": True,
    }
    world.emu.assert_no_violations()


async def test_autocomplete_with_too_many_choices_is_rejected(
    world: World, bot: commands.Bot
) -> None:
    world.probe.autocomplete_size = 30
    rec = await world.emu.autocomplete(
        world.member, world.text, "neko", subcommand="search", focused="tag", options={"tag": ""}
    )
    first = await rec.wait_response()
    assert first.status == 400
    assert any("30 autocomplete choices > 25" in v for v in world.emu.violations)


# --------------------------------------------------------------------------- components


async def test_button_clicks_on_a_bot_message_are_handled_by_dynamic_and_persistent_items(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    rec = await emu.slash(world.member, world.text, "neko", subcommand="random")
    await rec.wait_response()
    message = rec.original
    assert message is not None
    page = await emu.click(world.member, message, "page:1")
    assert (await page.wait_response()).type == 7
    assert message.content == "page 2"
    assert message.custom_ids == ["page:2"]
    refreshed = await emu.click(world.owner, message, "page:2")
    assert (await refreshed.wait_response()).type == 7
    emu.assert_no_violations()


async def test_persistent_buttons_work_after_a_restart(world: World) -> None:
    emu = world.emu
    first_bot = ProbeBot(world.probe)
    async with emu.run_client(first_bot):
        await first_bot.tree.sync()
        rec = await emu.slash(world.member, world.text, "neko", subcommand="random")
        await rec.wait_response()
    message = rec.original
    assert message is not None
    async with emu.run_client(ProbeBot(world.probe)):
        click = await emu.click(world.member, message, "neko:refresh")
        assert (await click.wait_response()).type == 6
        await click.wait_until(lambda r: message.content == "refreshed")
        assert click.original is message
    assert emu.ready_count == 2
    emu.assert_no_violations()


async def test_link_buttons_cannot_be_clicked(world: World, bot: commands.Bot) -> None:
    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="random")
    await rec.wait_response()
    assert rec.original is not None
    with pytest.raises(ValueError, match="no component"):
        await world.emu.click(world.member, rec.original, "https://example.test/source")


# --------------------------------------------------------------------------- response rules


async def test_late_first_response_gets_unknown_interaction_and_is_recorded(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu

    @script(world)
    async def slow(interaction: discord.Interaction) -> None:
        world.probe.entered.set()
        await world.probe.gate.wait()
        await interaction.response.send_message("too late")

    rec = await emu.slash(world.member, world.text, "neko", subcommand="run")
    await asyncio.wait_for(world.probe.entered.wait(), 5)
    emu.advance_clock(3.5)
    world.probe.gate.set()
    first = await rec.wait_response()
    assert first.status == 404
    assert first.elapsed >= 3.5
    await emu.wait_until(lambda: bool(world.probe.errors))
    error = world.probe.errors[0]
    assert isinstance(error, discord.NotFound)
    assert error.code == 10062
    assert [v.split(":")[0] for v in emu.violations] == ["late-response"]
    with pytest.raises(AssertionError, match="late-response"):
        emu.assert_no_violations()


async def test_second_callback_is_rejected_as_already_acknowledged(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "x"}
    )
    await rec.wait_response()
    url = f"{emu.api_base}/interactions/{rec.id}/{rec.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as response,
    ):
        assert response.status == 400
        assert (await response.json())["code"] == 40060
    assert any(v.startswith("already-acknowledged:") for v in emu.violations)


async def test_followup_after_token_expiry_is_rejected(world: World, bot: commands.Bot) -> None:
    emu = world.emu

    @script(world)
    async def long_job(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        world.probe.entered.set()
        await world.probe.gate.wait()
        await interaction.followup.send("an hour later")

    rec = await emu.slash(world.member, world.text, "neko", subcommand="run")
    await asyncio.wait_for(world.probe.entered.wait(), 5)
    emu.advance_clock(emu.token_lifetime + 1)
    world.probe.gate.set()
    await emu.wait_until(lambda: bool(world.probe.errors))
    error = world.probe.errors[0]
    assert isinstance(error, discord.HTTPException)
    assert error.code == 50027
    assert rec.followups == []
    assert any(v.startswith("token-expired:") for v in emu.violations)


async def test_oversized_embed_is_rejected_and_recorded(world: World, bot: commands.Bot) -> None:
    @script(world)
    async def huge(interaction: discord.Interaction) -> None:
        embeds = [discord.Embed(title="t" * 200, description="d" * 1500) for _ in range(4)]
        await interaction.response.send_message(embeds=embeds)

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    first = await rec.wait_response()
    assert first.status == 400
    assert not rec.acknowledged
    await world.emu.wait_until(lambda: bool(world.probe.errors))
    assert isinstance(world.probe.errors[0], discord.HTTPException)
    assert any("embeds total 6800 chars > 6000" in v for v in world.emu.violations)


async def test_unanswered_interaction_counts_as_a_violation_after_the_deadline(
    world: World, bot: commands.Bot
) -> None:
    @script(world)
    async def silent(interaction: discord.Interaction) -> None:
        world.probe.entered.set()

    rec = await world.emu.slash(world.member, world.text, "neko", subcommand="run")
    await asyncio.wait_for(world.probe.entered.wait(), 5)
    world.emu.assert_no_violations()
    world.emu.advance_clock(4)
    assert world.emu.unanswered() == [rec]
    with pytest.raises(AssertionError, match="no-response"):
        world.emu.assert_no_violations()


async def test_channel_messages_are_validated_and_recorded(world: World, bot: commands.Bot) -> None:
    channel = bot.get_channel(world.text.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("hello", view=image_view())
    assert world.text.messages[sent.id].content == "hello"
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 2001)
    assert caught.value.code == 50035
    assert any("content is 2001 chars > 2000" in v for v in world.emu.violations)


async def test_unknown_routes_answer_404_and_are_recorded(world: World, bot: commands.Bot) -> None:
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=1))
    assert world.emu.unknown_routes == ["GET /api/v10/guilds/1/bans"]


# --------------------------------------------------------------------------- gateway events


async def test_channel_and_guild_events_reach_the_client_cache(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    emu.set_channel_nsfw(world.text, True)
    await emu.wait_until(lambda: getattr(bot.get_channel(world.text.id), "nsfw", False))
    added = emu.add_channel(world.guild, ChannelType.GUILD_MEDIA, "media")
    await emu.wait_until(lambda: bot.get_channel(added.id) is not None)
    emu.delete_channel(world.forum)
    await emu.wait_until(lambda: bot.get_channel(world.forum.id) is None)
    assert bot.get_channel(world.post.id) is None
    emu.remove_guild(world.guild)
    await emu.wait_until(lambda: bot.get_guild(world.guild.id) is None)


async def test_dropped_connection_resumes_replays_events_and_later_interactions_work(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    assert await emu.drop_connection() == 1
    emu.set_channel_nsfw(world.text, True)
    await emu.wait_until(lambda: emu.resumed_count == 1)
    assert emu.ready_count == 1
    assert len(emu.identifies) == 1
    assert (
        emu.gateway_log.count("connect /resume-gateway?v=10&encoding=json&compress=zlib-stream")
        == 1
    )
    await emu.wait_until(lambda: getattr(bot.get_channel(world.text.id), "nsfw", False))
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
    )
    assert (await rec.wait_response()).accepted
    emu.assert_no_violations()


async def test_aborted_socket_and_reconnect_request_both_resume(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    await emu.drop_connection(code=None)
    await emu.wait_until(lambda: emu.resumed_count == 1)
    await emu.send_reconnect()
    await emu.wait_until(lambda: emu.resumed_count == 2)
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
    )
    assert (await rec.wait_response()).accepted


async def test_invalidated_session_makes_the_client_identify_again(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    await emu.invalidate_sessions(resumable=False)
    await emu.wait_until(lambda: emu.ready_count == 2)
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
    )
    assert (await rec.wait_response()).accepted


async def test_resume_replays_missed_dispatches_in_order_then_resumed(world: World) -> None:
    emu = world.emu

    async def frames(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
        return [json.loads((await ws.receive(timeout=5)).data) for _ in range(count)]

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
            assert (await frames(ws, 1))[0]["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": emu.token, "intents": 1, "properties": {}}})
            ready, guild_create = await frames(ws, 2)
            assert ready["t"] == "READY"
            assert guild_create["t"] == "GUILD_CREATE"
            session_id, seq = ready["d"]["session_id"], guild_create["s"]
            # Closing with 1000/1001 would end the session; any other code keeps it resumable.
            await ws.close(code=4000)
        await emu.wait_until(lambda: emu.connection_count == 0)
        emu.set_channel_nsfw(world.text, True)
        emu.delete_channel(world.adult)
        async with session.ws_connect(emu.resume_gateway_url + "?v=10&encoding=json") as ws:
            await frames(ws, 1)
            await ws.send_json(
                {"op": 6, "d": {"token": emu.token, "session_id": session_id, "seq": seq}}
            )
            replayed = await frames(ws, 3)
            assert [(f["t"], f["s"]) for f in replayed] == [
                ("CHANNEL_UPDATE", seq + 1),
                ("CHANNEL_DELETE", seq + 2),
                ("RESUMED", seq + 3),
            ]
            await ws.send_json({"op": 1, "d": seq + 3})
            assert (await frames(ws, 1))[0]["op"] == 11
        for stale_id in ("nope", session_id):
            async with session.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
                await frames(ws, 1)
                resume = {"token": emu.token, "session_id": stale_id, "seq": seq}
                await ws.send_json({"op": 6, "d": resume})
                assert (await frames(ws, 1))[0] == {"op": 9, "d": False}


async def test_identify_with_wrong_token_or_privileged_intents_is_closed(world: World) -> None:
    emu = world.emu
    async with aiohttp.ClientSession() as session:
        for payload, code in (
            ({"token": "wrong", "intents": 1}, 4004),
            ({"token": emu.token, "intents": 1 << 15}, 4014),
        ):
            async with session.ws_connect(emu.gateway_url + "?v=10&encoding=json") as ws:
                await ws.receive(timeout=5)
                await ws.send_json({"op": 2, "d": {**payload, "properties": {}}})
                closing = await ws.receive(timeout=5)
                assert closing.type == aiohttp.WSMsgType.CLOSE
                assert closing.data == code


async def test_auto_sharded_bot_gets_gateway_from_gateway_bot_and_identifies_with_shard(
    world: World,
) -> None:
    emu = world.emu
    client = ShardedProbeBot(world.probe)
    async with emu.run_client(client):
        await client.tree.sync()
        assert client.get_guild(world.guild.id) is not None
        rec = await emu.slash(
            world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
        )
        assert (await rec.wait_response()).accepted
    assert emu.identifies[0]["shard"] == [0, 1]
    assert any(c.path == "/gateway/bot" for c in emu.requests)
    (identified,) = emu.identify_log
    assert (identified.shard_id, identified.shard_count) == (0, 1)
    assert rec.dispatched_to == [(0, identified.session_id)]
    emu.assert_no_violations()


async def test_gateway_bot_reports_the_configured_identify_concurrency() -> None:
    async with (
        DiscordEmulator(shards=4, max_concurrency=2) as emu,
        aiohttp.ClientSession() as session,
        session.get(
            emu.api_base + "/gateway/bot", headers={"Authorization": f"Bot {emu.token}"}
        ) as response,
    ):
        body = await response.json()
    assert body["shards"] == 4
    assert body["session_start_limit"]["max_concurrency"] == 2


async def test_select_menu_pick_is_dispatched_and_validated(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu

    @script(world)
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pick one", view=RatingSelect(), ephemeral=True)

    rec = await emu.slash(world.member, world.text, "neko", subcommand="run")
    await rec.wait_response()
    message = rec.original
    assert message is not None
    with pytest.raises(ValueError, match="not options"):
        await emu.select(world.member, message, "rating:pick", ["explicit"])
    with pytest.raises(ValueError, match="ephemeral"):
        await emu.select(world.owner, message, "rating:pick", ["safe"])
    picked = await emu.select(world.member, message, "rating:pick", ["suggestive"])
    assert (await picked.wait_response()).type == 7
    assert message.content == "picked suggestive"
    assert message.components == []
    emu.assert_no_violations()


async def test_user_installed_command_reaches_guilds_and_group_dms_without_the_bot(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    stranger = emu.add_user("stranger")
    foreign = emu.add_guild("Elsewhere", stranger, bot_in_guild=False)
    lounge = emu.add_channel(foreign, ChannelType.GUILD_TEXT, "lounge")
    assert bot.get_guild(foreign.id) is None
    rec = await emu.slash(stranger, lounge, "whoami")
    assert (await rec.wait_response()).accepted
    assert rec.payload["authorizing_integration_owners"] == {"1": str(stranger.id)}
    seen = world.probe.seen[-1]
    assert seen.guild_id == foreign.id
    assert seen.channel is not None
    assert seen.channel.id == lounge.id
    refused = await emu.slash(stranger, lounge, "neko", subcommand="search", options={"tag": "a"})
    assert "not user-installable" in (refused.refusal or "")
    group = emu.private_channel([world.member, stranger, world.owner])
    in_group = await emu.slash(world.member, group, "whoami")
    assert in_group.payload["context"] == 2
    assert (await in_group.wait_response()).accepted
    emu.assert_no_violations()


async def test_guild_commands_take_precedence_and_carry_guild_id(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    target = discord.Object(id=world.guild.id)
    bot.tree.copy_global_to(guild=target)
    await bot.tree.sync(guild=target)
    assert {c["name"] for c in emu.guild_commands[world.guild.id].values()} >= {"neko"}
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
    )
    assert rec.payload["data"]["guild_id"] == str(world.guild.id)
    assert (await rec.wait_response()).accepted
    assert emu.command_syncs[-1] == world.guild.id
    emu.assert_no_violations()


async def test_every_channel_kind_is_parsed_by_the_client(world: World) -> None:
    emu = world.emu
    category = emu.add_channel(world.guild, ChannelType.GUILD_CATEGORY, "stuff")
    kinds = {
        ChannelType.GUILD_VOICE: discord.VoiceChannel,
        ChannelType.GUILD_NEWS: discord.TextChannel,
        ChannelType.GUILD_STAGE_VOICE: discord.StageChannel,
        ChannelType.GUILD_MEDIA: discord.ForumChannel,
    }
    made = {kind: emu.add_channel(world.guild, kind, f"c{kind}", parent=category) for kind in kinds}
    news_thread = emu.add_channel(
        world.guild, ChannelType.NEWS_THREAD, "news", parent=made[ChannelType.GUILD_NEWS]
    )
    with pytest.raises(ValueError, match="nsfw"):
        emu.add_channel(world.guild, ChannelType.PUBLIC_THREAD, "t", nsfw=True, parent=world.text)
    client = ProbeBot(world.probe)
    async with emu.run_client(client):
        assert isinstance(client.get_channel(category.id), discord.CategoryChannel)
        for kind, cls in kinds.items():
            channel = client.get_channel(made[kind].id)
            assert isinstance(channel, cls)
            assert getattr(channel, "category_id", None) == category.id
        assert isinstance(client.get_channel(news_thread.id), discord.Thread)


async def test_bot_permission_overwrites_match_discord_py_permission_maths(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    wanted = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS
    emu.set_channel_permissions(world.text, emu.bot_user, wanted)

    def cached() -> int:
        channel = bot.get_channel(world.text.id)
        assert isinstance(channel, discord.TextChannel)
        return channel.permissions_for(channel.guild.me).value

    await emu.wait_until(lambda: cached() == wanted)
    rec = await emu.slash(
        world.member, world.text, "neko", subcommand="search", options={"tag": "a"}
    )
    assert rec.payload["app_permissions"] == str(wanted)
    await rec.wait_response()


async def test_discord_py_rest_helpers_hit_only_emulated_routes(
    world: World, bot: commands.Bot
) -> None:
    emu = world.emu
    fetched: dict[str, Any] = {}

    @script(world)
    async def busy(interaction: discord.Interaction) -> None:
        picture = discord.File(io.BytesIO(b"cat-bytes"), filename="cat.png")
        await interaction.response.send_message("first", file=picture)
        original = await interaction.original_response()
        fetched["attachment"] = await original.attachments[0].read()
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content="extra, edited")
        await extra.delete()
        await interaction.delete_original_response()

    rec = await emu.slash(world.member, world.text, "neko", subcommand="run")
    await rec.wait_until(lambda r: r.original is not None and r.original.deleted)
    assert fetched["attachment"] == b"cat-bytes"
    assert rec.followups[0].content == "extra, edited"
    assert rec.followups[0].deleted

    channel = await bot.fetch_channel(world.adult.id)
    assert isinstance(channel, discord.TextChannel)
    assert channel.is_nsfw()
    sent = await channel.send("hello")
    assert (await channel.fetch_message(sent.id)).content == "hello"
    await sent.edit(content="bye")
    await sent.delete()
    assert world.adult.messages[sent.id].deleted
    assert (await bot.fetch_user(world.member.id)).name == "member"
    assert (await bot.fetch_guild(world.guild.id)).name == "Cats"
    dm = await (await bot.fetch_user(world.member.id)).create_dm()
    await dm.send("psst")
    assert emu.dm_channel(world.member).messages
    commands_ = await bot.tree.fetch_commands()
    neko = next(c for c in commands_ if c.name == "neko")
    assert (await bot.tree.fetch_command(neko.id)).name == "neko"
    assert emu.unknown_routes == []
    emu.assert_no_violations()


async def test_members_intent_is_refused_unless_allowed_and_chunks_when_allowed() -> None:
    intents = discord.Intents.default()
    intents.members = True

    def members_bot() -> commands.Bot:
        return commands.Bot(
            command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05
        )

    async with DiscordEmulator() as emu:
        guild = emu.add_guild("Cats")
        for name in ("a", "b", "c"):
            emu.add_member(guild, emu.add_user(name))
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with emu.run_client(members_bot()):
                pass
    async with DiscordEmulator(allowed_privileged_intents=1 << 1) as emu:
        guild = emu.add_guild("Cats")
        for name in ("a", "b", "c"):
            emu.add_member(guild, emu.add_user(name))
        client = members_bot()
        async with emu.run_client(client):
            cached = client.get_guild(guild.id)
            assert cached is not None
            assert cached.chunked
            assert {m.name for m in cached.members} >= {"a", "b", "c"}


# --------------------------------------------------------------------------- pure limit checks


def test_command_problems_catch_ordering_choice_and_size_limits() -> None:
    option = {"name": "o", "description": "d", "type": 3}
    assert command_problems({"name": "ok", "description": "fine", "options": [option]}) == []
    misordered = [{**option, "name": "a"}, {**option, "name": "b", "required": True}]
    assert "required option after an optional one" in " ".join(
        command_problems({"name": "x", "description": "d", "options": misordered})
    )
    choices = [{"name": f"c{i}", "value": f"v{i}"} for i in range(26)]
    assert any(
        "26 choices > 25" in p
        for p in command_problems(
            {"name": "x", "description": "d", "options": [{**option, "choices": choices}]}
        )
    )
    wordy = [{**option, "name": f"o{i}", "description": "d" * 100} for i in range(25)]
    subcommands = [
        {"name": f"s{i}", "description": "d", "type": 1, "options": wordy} for i in range(2)
    ]
    big = {"name": "x", "description": "d", "options": subcommands}
    assert command_problems({**big, "options": subcommands[:1]}) == []
    assert any("> 4000" in p for p in command_problems(big))
    assert command_problems({"name": "UPPER", "description": "d"})
    assert command_problems({"name": "x", "description": ""})


def test_message_problems_catch_component_limits() -> None:
    def button(i: int, **extra: Any) -> dict[str, Any]:
        return {"type": 2, "style": 1, "label": f"b{i}", "custom_id": f"c{i}", **extra}

    row = {"type": 1, "components": [button(i) for i in range(6)]}
    assert any("6 buttons > 5" in p for p in message_problems({"components": [row]}, creating=True))
    rows = [{"type": 1, "components": [button(i)]} for i in range(6)]
    assert any(
        "6 action rows > 5" in p for p in message_problems({"components": rows}, creating=True)
    )
    link = {"type": 2, "style": 5, "label": "l", "url": "ftp://x", "custom_id": "c"}
    problems = message_problems({"components": [{"type": 1, "components": [link]}]}, creating=True)
    assert any("link button with a custom_id" in p for p in problems)
    assert any("not a http/https/discord URL" in p for p in problems)
    long_id = button(0, custom_id="c" * 101, label="l" * 81)
    problems = message_problems(
        {"components": [{"type": 1, "components": [long_id]}]}, creating=True
    )
    assert any("custom_id is 101 chars > 100" in p for p in problems)
    assert any("label is 81 chars > 80" in p for p in problems)
    assert message_problems({}, creating=True) == ["cannot send an empty message"]
    embed = {"title": "t", "fields": [{"name": "n", "value": "v"}] * 26, "color": 0x1000000}
    problems = message_problems({"embeds": [embed]}, creating=True)
    assert any("26 fields > 25" in p for p in problems)
    assert any("color" in p for p in problems)


def test_autocomplete_problems_check_choice_names_and_values() -> None:
    ok = {"choices": [{"name": "n", "value": "v"}]}
    assert autocomplete_problems(ok, option_type=3) == []
    bad = {"choices": [{"name": "", "value": "v" * 101}, {"name": "n", "value": 3}]}
    problems = autocomplete_problems(bad, option_type=3)
    assert any("name is 0 chars < 1" in p for p in problems)
    assert any("value is 101 chars > 100" in p for p in problems)
    assert any("must be a string" in p for p in problems)


def test_admin_permission_bit_is_the_discord_value() -> None:
    assert discord.Permissions(administrator=True).value == ADMINISTRATOR
    assert discord.Permissions(manage_guild=True).value == MANAGE_GUILD


async def test_a_guild_can_be_placed_on_a_chosen_shard() -> None:
    async with DiscordEmulator() as emu:
        guilds = [
            (shard, emu.add_guild(f"g{shard}-{n}", shard=(shard, 4)))
            for n in range(3)
            for shard in (3, 0, 2, 1)
        ]
    for shard, guild in guilds:
        assert shard_of(guild.id, 4) == shard
    ids = [guild.id for _, guild in guilds]
    assert ids == sorted(set(ids))  # still unique and increasing, like Discord's snowflakes


async def test_a_wait_cancelled_as_an_event_arrives_ends(world: World) -> None:
    """The benches' final-message watcher loops on ``wait_until`` until cancelled; a cancel
    that lands as an emulator event wakes the wait must still end it (asyncio.wait_for on
    Python 3.11 swallowed it, and a benchmark then hung after its run)."""
    emu = world.emu

    async def watch() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await emu.wait_until(lambda: False, timeout=3600.0)

    for _ in range(50):
        task = asyncio.create_task(watch())
        await asyncio.sleep(0.001)
        emu._notify()  # an emulator event, as the cancel arrives
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert done == {task}
