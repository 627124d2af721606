"""``/neko-config``: the server admins' content settings, channel by channel.

Guild-wide changes need Manage Server; a channel override needs Manage Channels on that channel.
Every answer is ephemeral, and an admin is told a change took effect only after the store has
committed it.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.autopost.delivery import PostableChannel, missing_permissions, post_request
from bot.autopost.timing import MAX_INTERVAL, DurationError, format_duration, parse_duration
from bot.channels import context_from_channel
from bot.embeds import ALLOWED_MENTIONS, BRAND_COLOUR
from bot.gating import GuildSettings, allowed_max
from bot.nekos.models import Rating
from bot.store import (
    Change,
    Schedule,
    ScheduleLimitError,
    ScheduleSpec,
    SettingsStore,
    StoreError,
    describe_spec,
)

if TYPE_CHECKING:
    from bot.core import NekosBot

log = logging.getLogger(__name__)

Level = Literal["sfw", "questionable", "nsfw"]
LevelOrInherit = Literal["sfw", "questionable", "nsfw", "inherit"]

HOW_TO_AGE_RESTRICT = (
    "Mark it age-restricted first: **Edit Channel → Overview → Age-Restricted Channel**, "
    "then run this again."
)
STORE_FAILED = (
    "I couldn't reach the settings database, so nothing changed. Please try again in a minute."
)
STORE_UNREADABLE = (
    "I couldn't reach the settings database to read this server's settings. Until it is back, "
    "every channel shows **sfw** only. Please try again in a minute."
)

# The channel types an override can be set on; threads and forum posts follow their parent.
ConfigurableChannel = (
    discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.ForumChannel
)


# ------------------------------------------------------------------ pure checks (tested directly)


def guild_permission_problem(permissions: discord.Permissions) -> str | None:
    """Why a member may not change guild-wide settings, or None if they may."""
    if permissions.manage_guild or permissions.administrator:
        return None
    return "Changing the server's settings needs the **Manage Server** permission."


def channel_permission_problem(permissions: discord.Permissions, mention: str) -> str | None:
    """Why a member may not set an override on a channel, or None if they may."""
    if permissions.manage_channels or permissions.administrator:
        return None
    return f"Changing {mention} needs the **Manage Channels** permission on that channel."


def override_problem(level: Rating | None, age_restricted: bool, mention: str) -> str | None:
    """Refuse an override above sfw on a channel that is not age-restricted."""
    if level is None or level is Rating.SFW or age_restricted:
        return None
    return (
        f"{mention} isn't age-restricted, so it can only show **sfw** images. "
        + HOW_TO_AGE_RESTRICT
    )


def parse_level(value: str) -> Rating | None:
    """``inherit`` → None, else the rating."""
    return None if value == "inherit" else Rating.from_label(value)


def overview_lines(
    settings: GuildSettings,
    channels: Iterable[tuple[int, str, bool | None]],
    changes: Iterable[Change],
    schedules: Iterable[Schedule] = (),
) -> list[str]:
    """The lines of ``/neko-config show``: default, overrides with their status, scheduled
    posts, recent changes.

    ``channels`` gives (channel id, mention, age-restricted or None if unknown) for each override.
    """
    default = settings.default.label if settings.default is not None else "sfw (not set)"
    lines = [f"**Server default:** {default}"]
    if settings.default is not None and settings.default > Rating.SFW:
        lines.append(
            "-# The default applies above sfw only in age-restricted channels; "
            "everywhere else the bot shows sfw."
        )
    known = {cid: (mention, flag) for cid, mention, flag in channels}
    lines.append("")
    lines.append("**Channel overrides:**" if settings.overrides else "**Channel overrides:** none")
    for channel_id, rating in sorted(settings.overrides.items()):
        mention, flag = known.get(channel_id, (f"<#{channel_id}>", None))
        status = {True: "age-restricted", False: "not age-restricted", None: "unknown channel"}
        line = f"• {mention}: **{rating.label}** ({status[flag]})"
        if rating > Rating.SFW and not flag:
            line += " ⚠️ capped at sfw until the channel is age-restricted"
        lines.append(line)
    scheduled = list(schedules)
    lines.append("")
    lines.append("**Scheduled posts:**" if scheduled else "**Scheduled posts:** none")
    for schedule in scheduled:
        state = " (paused)" if schedule.paused else ""
        every = format_duration(schedule.spec.interval)
        lines.append(f"• <#{schedule.channel_id}> every {every}{state}")
    if scheduled:
        lines.append("-# Details: `/neko-config autopost list`")
    recent = list(changes)
    lines.append("")
    lines.append("**Last changes:**" if recent else "**Last changes:** none yet")
    for change in recent:
        lines.append(f"• {discord.utils.format_dt(change.at, 'R')} {change.description}")
    return lines


def schedule_lines(schedules: Iterable[Schedule]) -> list[str]:
    """The lines of ``/neko-config autopost list``: one entry per schedule."""
    lines = []
    for schedule in schedules:
        lines.append(f"• <#{schedule.channel_id}>: {describe_spec(schedule.spec)}")
        last = (
            discord.utils.format_dt(schedule.last_post_at, "R")
            if schedule.last_post_at is not None
            else "none yet"
        )
        if schedule.paused_reason is not None:
            lines.append(f"  ⏸️ **Paused**: {schedule.paused_reason}. Last post: {last}.")
        else:
            due = discord.utils.format_dt(max(schedule.next_post, discord.utils.utcnow()), "R")
            lines.append(f"  Next post {due}; last post: {last}.")
    return lines


# ------------------------------------------------------------------------------ the cog


RESET_WINDOW = 60.0
"""Seconds a reset confirmation stays valid; a later click changes nothing."""


class ResetButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"neko:reset:(?P<owner>\d+):(?P<expires>\d+):(?P<action>confirm|cancel)",
):
    """Confirm / Cancel of ``reset``, rebuilt from its ``custom_id`` (survives restarts).

    The ``custom_id`` carries the admin who asked and when the offer expires (Unix seconds), so
    every click is answered, also after the bot restarted or the offer ran out.
    """

    def __init__(self, owner_id: int, expires: int, action: str) -> None:
        confirm = action == "confirm"
        super().__init__(
            discord.ui.Button(
                label="Reset everything" if confirm else "Cancel",
                style=discord.ButtonStyle.danger if confirm else discord.ButtonStyle.secondary,
                custom_id=f"neko:reset:{owner_id}:{expires}:{action}",
            )
        )
        self.owner_id, self.expires, self.action = owner_id, expires, action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResetButton:
        return cls(int(match["owner"]), int(match["expires"]), match["action"])

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the admin who ran `/neko-config reset` can confirm it.", ephemeral=True
        )
        return False

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        if self.action == "cancel":
            await interaction.response.edit_message(
                content="Reset cancelled; nothing changed.", view=None
            )
            return
        if time.time() > self.expires:
            await interaction.response.edit_message(
                content="This confirmation has expired, so nothing changed. "
                "Run `/neko-config reset` again.",
                view=None,
            )
            return
        guild_id = interaction.guild_id
        member = interaction.user
        permissions = getattr(member, "guild_permissions", None)
        problem = (
            guild_permission_problem(permissions)
            if isinstance(permissions, discord.Permissions)
            else "This command only works in a server."
        )
        if guild_id is None or problem is not None:
            await interaction.response.edit_message(content=problem, view=None)
            return
        store: SettingsStore = interaction.client.store
        try:
            change = await store.reset_guild(guild_id, member.id)
        except StoreError:
            log.exception("Reset failed (guild %s)", guild_id)
            await interaction.response.edit_message(content=STORE_FAILED, view=None)
            return
        cleared = change.overrides_cleared
        await interaction.response.edit_message(
            content=(
                f"Done. Settings cleared ({cleared} channel override"
                f"{'' if cleared == 1 else 's'}); every channel now shows **sfw** only."
            ),
            view=None,
        )


def reset_confirmation(owner_id: int) -> discord.ui.View:
    """The Confirm / Cancel buttons for ``reset``, valid for :data:`RESET_WINDOW` seconds."""
    expires = math.ceil(time.time() + RESET_WINDOW)
    view = discord.ui.View(timeout=None)
    view.add_item(ResetButton(owner_id, expires, "confirm"))
    view.add_item(ResetButton(owner_id, expires, "cancel"))
    return view


@app_commands.guild_only()
@app_commands.allowed_installs(guilds=True, users=False)
@app_commands.default_permissions(manage_guild=True)
class NekoConfig(commands.GroupCog, group_name="neko-config"):
    """Which content ratings each channel of this server may show."""

    def __init__(self, bot: NekosBot) -> None:
        self.bot = bot
        super().__init__()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ResetButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResetButton)

    autopost = app_commands.Group(
        name="autopost", description="Images posted by themselves in a channel, on a schedule"
    )

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        embed = discord.Embed(description=text[:4096], colour=BRAND_COLOUR)
        if interaction.response.is_done():
            await interaction.followup.send(
                embed=embed, ephemeral=True, allowed_mentions=ALLOWED_MENTIONS
            )
        else:
            await interaction.response.send_message(
                embed=embed, ephemeral=True, allowed_mentions=ALLOWED_MENTIONS
            )

    @staticmethod
    def _member(interaction: discord.Interaction) -> discord.Member | None:
        return interaction.user if isinstance(interaction.user, discord.Member) else None

    @app_commands.command(name="show", description="Show this server's content settings")
    async def show(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if guild is None:
            await self._reply(interaction, "This command only works in a server.")
            return
        try:
            settings = await self.bot.store.get_guild_settings(guild.id)
            changes = await self.bot.store.recent_changes(guild.id, limit=10)
            schedules = await self.bot.store.list_schedules(guild.id)
        except StoreError as exc:
            log.warning("Could not read the settings of guild %s: %s", guild.id, exc)
            await self._reply(interaction, STORE_UNREADABLE)
            return
        channels = []
        for channel_id in settings.overrides:
            channel = guild.get_channel(channel_id)
            flag = context_from_channel(channel).is_age_restricted if channel else None
            channels.append((channel_id, f"<#{channel_id}>", flag))
        lines = overview_lines(settings, channels, changes, schedules)
        if (caveat := self.bot.content_caveat) is not None:
            lines = [f"⚠️ {caveat}", "", *lines]
        await self._reply(interaction, "\n".join(lines))

    @app_commands.command(name="channel", description="Set which ratings one channel may show")
    @app_commands.describe(
        channel="The channel (threads and forum posts follow their parent)",
        level="Highest rating allowed there, or inherit to follow the server default",
    )
    async def channel(
        self,
        interaction: discord.Interaction,
        channel: ConfigurableChannel,
        level: LevelOrInherit,
    ) -> None:
        guild, member = interaction.guild, self._member(interaction)
        if guild is None or member is None:
            await self._reply(interaction, "This command only works in a server.")
            return
        problem = channel_permission_problem(channel.permissions_for(member), channel.mention)
        rating = parse_level(level)
        if problem is None:
            problem = override_problem(rating, channel.is_nsfw(), channel.mention)
        if problem is not None:
            await self._reply(interaction, problem)
            return
        try:
            change = await self.bot.store.set_channel_override(
                guild.id, channel.id, rating, member.id
            )
        except StoreError:
            log.exception("Saving an override failed (guild %s, channel %s)", guild.id, channel.id)
            await self._reply(interaction, STORE_FAILED)
            return
        if not change.changed:
            await self._reply(interaction, f"{channel.mention} was already set that way.")
            return
        try:
            settings = await self.bot.store.get_guild_settings(guild.id)
        except StoreError:
            # Saved all the same; only the summary of what the channel now allows is missing.
            await self._reply(interaction, f"Saved. {channel.mention} is set to **{level}**.")
            return
        now = self.bot.replies.cap(allowed_max(context_from_channel(channel), settings))
        text = f"Saved. {channel.mention} now shows up to **{now.label}**."
        if rating is not None and rating > now and (caveat := self.bot.content_caveat):
            text += f"\n{caveat}"
        await self._reply(interaction, text)

    @app_commands.command(name="default", description="Set the server-wide default rating")
    @app_commands.describe(level="Highest rating for channels without their own setting")
    async def default(self, interaction: discord.Interaction, level: Level) -> None:
        guild, member = interaction.guild, self._member(interaction)
        if guild is None or member is None:
            await self._reply(interaction, "This command only works in a server.")
            return
        if (problem := guild_permission_problem(member.guild_permissions)) is not None:
            await self._reply(interaction, problem)
            return
        rating = Rating.from_label(level)
        try:
            change = await self.bot.store.set_guild_default(guild.id, rating, member.id)
        except StoreError:
            log.exception("Saving the default failed (guild %s)", guild.id)
            await self._reply(interaction, STORE_FAILED)
            return
        if not change.changed:
            await self._reply(interaction, f"The server default was already **{level}**.")
            return
        note = ""
        if rating > Rating.SFW:
            note = (
                "\nChannels that aren't age-restricted still show only **sfw**; "
                "age-restricted channels without their own setting now allow up to "
                f"**{level}**."
            )
        if rating > self.bot.replies.ceiling and (caveat := self.bot.content_caveat):
            note += f"\n{caveat}"
        await self._reply(interaction, f"Saved. The server default is now **{level}**.{note}")

    @app_commands.command(name="reset", description="Clear every content setting of this server")
    async def reset(self, interaction: discord.Interaction) -> None:
        guild, member = interaction.guild, self._member(interaction)
        if guild is None or member is None:
            await self._reply(interaction, "This command only works in a server.")
            return
        if (problem := guild_permission_problem(member.guild_permissions)) is not None:
            await self._reply(interaction, problem)
            return
        await interaction.response.send_message(
            "Reset **all** content settings of this server to sfw? This can't be undone.",
            view=reset_confirmation(member.id),
            ephemeral=True,
        )

    # ------------------------------------------------------------------ autopost

    def _autopost_target(
        self, interaction: discord.Interaction, channel: PostableChannel
    ) -> tuple[discord.Guild, discord.Member] | str:
        """The guild and the admin, or why they may not change ``channel``'s schedule."""
        guild, member = interaction.guild, self._member(interaction)
        if guild is None or member is None:
            return "This command only works in a server."
        problem = channel_permission_problem(channel.permissions_for(member), channel.mention)
        return problem if problem is not None else (guild, member)

    async def _postable(
        self,
        guild: discord.Guild,
        channel: PostableChannel,
        spec: ScheduleSpec,
    ) -> ScheduleSpec | str:
        """``spec`` with its categories as the catalogue names them, or why it can't post there
        now (the same checks a post makes, so a schedule isn't accepted only to pause)."""
        if guild.me is not None:
            attach = self.bot.settings.image_delivery == "attach"
            missing = missing_permissions(channel.permissions_for(guild.me), attach=attach)
            if missing:
                return (
                    f"I can't post in {channel.mention}: I'm missing **{', '.join(missing)}** "
                    "there. Give me those in the channel's permissions, then run this again."
                )
        settings = await self.bot.store.get_guild_settings(guild.id)
        context = context_from_channel(channel)
        request = post_request(
            self.bot.replies,
            spec,
            self.bot.replies.cap(allowed_max(context, settings)),
            mention=channel.mention,
            age_restricted=context.is_age_restricted,
        )
        if isinstance(request, str):
            return f"I can't schedule that: {request.rstrip('.')}."
        return ScheduleSpec(
            guild_id=spec.guild_id,
            channel_id=spec.channel_id,
            interval=spec.interval,
            categories=tuple(request.categories),
            count=spec.count,
            rating=spec.rating,
        )

    def _interval(self, every: str) -> int | str:
        """``every`` in seconds within the allowed range, or why not."""
        try:
            seconds = parse_duration(every)
        except DurationError as exc:
            return str(exc)
        shortest = self.bot.settings.autopost_min_interval
        if seconds < shortest:
            return f"The shortest interval on this bot is **{format_duration(shortest)}**."
        if seconds > MAX_INTERVAL:
            return f"The longest interval is **{format_duration(MAX_INTERVAL)}**."
        return seconds

    @autopost.command(name="add", description="Post images in a channel on a schedule")
    @app_commands.describe(
        channel="Where to post",
        every="How often, e.g. 30m, 2h, 1d or 1h30m",
        categories="Comma-separated categories (tags), as in /neko random",
        count="Images per post (1-10)",
        rating="Only images of this rating (up to what the channel allows)",
    )
    async def autopost_add(
        self,
        interaction: discord.Interaction,
        channel: PostableChannel,
        every: str,
        categories: str | None = None,
        count: app_commands.Range[int, 1, 10] = 1,
        rating: Level | None = None,
    ) -> None:
        target = self._autopost_target(interaction, channel)
        if isinstance(target, str):
            await self._reply(interaction, target)
            return
        guild, member = target
        limit = self.bot.settings.autopost_max_per_guild
        if limit == 0:
            await self._reply(interaction, "Scheduled posts are turned off on this bot.")
            return
        interval = self._interval(every)
        if isinstance(interval, str):
            await self._reply(interaction, interval)
            return
        asked = ScheduleSpec(
            guild_id=guild.id,
            channel_id=channel.id,
            interval=interval,
            categories=tuple((categories or "").split(",")),
            count=count,
            rating=Rating.from_label(rating) if rating else None,
        )
        try:
            spec = await self._postable(guild, channel, asked)
            if isinstance(spec, str):
                await self._reply(interaction, spec)
                return
            schedule, replaced = await self.bot.store.set_schedule(
                spec, member.id, max_per_guild=limit
            )
        except ScheduleLimitError:
            await self._reply(
                interaction,
                f"This server already has **{limit}** scheduled posts, the most allowed. "
                "Remove one first with `/neko-config autopost remove`.",
            )
            return
        except StoreError:
            log.exception("Saving a schedule failed (guild %s, channel %s)", guild.id, channel.id)
            await self._reply(interaction, STORE_FAILED)
            return
        first = discord.utils.format_dt(schedule.next_post, "R")
        text = f"Scheduled: {channel.mention}, {describe_spec(spec)}. First post {first}."
        if replaced is not None:
            text += f"\nThis replaced the previous schedule ({describe_spec(replaced.spec)})."
        await self._reply(interaction, text)

    @autopost_add.autocomplete("categories")
    async def _autopost_categories(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.category_choices(
                current, await self._autocomplete_max(interaction)
            )
        ]

    async def _autocomplete_max(self, interaction: discord.Interaction) -> Rating:
        """What the channel picked in the ``channel`` option allows (sfw while unknown)."""
        picked = getattr(interaction.namespace, "channel", None)
        guild = interaction.guild
        channel = guild.get_channel(picked.id) if guild and picked is not None else None
        if guild is None or channel is None:
            return Rating.SFW
        try:
            settings = await self.bot.store.get_guild_settings(guild.id)
        except StoreError:
            return Rating.SFW
        return self.bot.replies.cap(allowed_max(context_from_channel(channel), settings))

    @autopost.command(name="list", description="Every scheduled post of this server")
    async def autopost_list(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if guild is None:
            await self._reply(interaction, "This command only works in a server.")
            return
        try:
            schedules = await self.bot.store.list_schedules(guild.id)
        except StoreError as exc:
            log.warning("Could not read the schedules of guild %s: %s", guild.id, exc)
            await self._reply(interaction, STORE_UNREADABLE)
            return
        if not schedules:
            await self._reply(
                interaction,
                "No scheduled posts yet. Add one with `/neko-config autopost add`.",
            )
            return
        limit = self.bot.settings.autopost_max_per_guild
        head = f"**Scheduled posts** ({len(schedules)} of {limit}):"
        await self._reply(interaction, "\n".join([head, *schedule_lines(schedules)]))

    async def _change_schedule(
        self,
        interaction: discord.Interaction,
        channel: PostableChannel,
        action: str,
        change: Callable[[discord.Guild, discord.Member], Awaitable[str]],
    ) -> None:
        """Check who asks, run ``change`` (its answer is the reply); a store failure is told."""
        target = self._autopost_target(interaction, channel)
        if isinstance(target, str):
            await self._reply(interaction, target)
            return
        guild, member = target
        try:
            answer = await change(guild, member)
        except StoreError:
            log.exception(
                "%s a schedule failed (guild %s, channel %s)", action, guild.id, channel.id
            )
            answer = STORE_FAILED
        await self._reply(interaction, answer)

    @autopost.command(name="remove", description="Stop a channel's scheduled posts")
    @app_commands.describe(channel="The channel whose scheduled posts to remove")
    async def autopost_remove(
        self, interaction: discord.Interaction, channel: PostableChannel
    ) -> None:
        async def remove(guild: discord.Guild, member: discord.Member) -> str:
            if not await self.bot.store.remove_schedule(guild.id, channel.id, member.id):
                return f"{channel.mention} has no scheduled posts."
            return f"Removed. {channel.mention} gets no more scheduled posts."

        await self._change_schedule(interaction, channel, "Removing", remove)

    @autopost.command(name="pause", description="Pause a channel's scheduled posts")
    @app_commands.describe(channel="The channel whose scheduled posts to pause")
    async def autopost_pause(
        self, interaction: discord.Interaction, channel: PostableChannel
    ) -> None:
        async def pause(guild: discord.Guild, member: discord.Member) -> str:
            reason = f"paused by <@{member.id}>"
            if await self.bot.store.pause_schedule(guild.id, channel.id, member.id, reason) is None:
                return f"{channel.mention} has no scheduled posts."
            return (
                f"Paused. {channel.mention} gets no scheduled posts until "
                "`/neko-config autopost resume`."
            )

        await self._change_schedule(interaction, channel, "Pausing", pause)

    @autopost.command(name="resume", description="Resume a channel's paused scheduled posts")
    @app_commands.describe(channel="The channel whose scheduled posts to resume")
    async def autopost_resume(
        self, interaction: discord.Interaction, channel: PostableChannel
    ) -> None:
        async def resume(guild: discord.Guild, member: discord.Member) -> str:
            current = {s.channel_id: s for s in await self.bot.store.list_schedules(guild.id)}
            schedule = current.get(channel.id)
            if schedule is None:
                return f"{channel.mention} has no scheduled posts."
            if not schedule.paused:
                return f"The posts in {channel.mention} aren't paused."
            problem = await self._postable(guild, channel, schedule.spec)
            if isinstance(problem, str):
                return f"{problem}\nThe schedule stays paused."
            resumed = await self.bot.store.resume_schedule(guild.id, channel.id, member.id)
            if resumed is None:
                return f"{channel.mention} has no scheduled posts."
            first = discord.utils.format_dt(resumed.next_post, "R")
            return f"Resumed. Next post in {channel.mention}: {first}."

        await self._change_schedule(interaction, channel, "Resuming", resume)


async def setup(bot: NekosBot) -> None:
    await bot.add_cog(NekoConfig(bot))
