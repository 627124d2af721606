"""Posting one claimed schedule into its Discord channel, exactly as ``/neko random`` answers.

The channel is gated at post time, with its current settings and flags: a schedule asking for a
rating the channel (or the operator's ceiling) no longer allows is paused with the reason, not
quietly posted lower. The bot's own permissions are checked before any image is asked for, so a
channel it can't post in costs no API call. Images come through the same pool as members'
commands, at background priority. A 403 or 404 from Discord pauses the schedule at once: those
don't heal by retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import discord

from bot.channels import context_from_channel
from bot.embeds import ALLOWED_MENTIONS
from bot.gating import allowed_max
from bot.nekos.errors import NekosError
from bot.nekos.models import Rating
from bot.replies import Replies, Reply
from bot.serving import ImageRequest
from bot.store import ClaimedPost, ScheduleSpec, StoreError
from bot.text import plain_text
from bot.views import ANYONE

from .poster import PostResult

if TYPE_CHECKING:
    from bot.core import NekosBot

__all__ = [
    "CHANNEL_GONE",
    "ChannelDelivery",
    "PostableChannel",
    "compose_post",
    "missing_permissions",
    "post_request",
    "rating_problem",
]

log = logging.getLogger(__name__)

CHANNEL_GONE: Final = "the channel is gone, or I can't see it any more"
NOT_ALLOWED: Final = (
    "Discord refused my post there (I lost a permission: check **View Channel**, "
    "**Send Messages** and **Embed Links** for me in that channel)"
)

PostableChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel
"""Channels a schedule may post in (threads and forum posts are not: they come and go)."""


def missing_permissions(permissions: discord.Permissions, *, attach: bool) -> list[str]:
    """The permissions a scheduled post needs that ``permissions`` lacks, by their UI names."""
    needed = [
        ("View Channel", permissions.view_channel),
        ("Send Messages", permissions.send_messages),
        ("Embed Links", permissions.embed_links),
    ]
    if attach:
        needed.append(("Attach Files", permissions.attach_files))
    return [name for name, granted in needed if not granted]


def rating_problem(
    wanted: Rating | None, allowed: Rating, ceiling: Rating, mention: str, age_restricted: bool
) -> str | None:
    """Why a schedule's ``rating`` can't be posted in a channel allowing ``allowed``, or None."""
    if wanted is None or wanted <= allowed:
        return None
    if wanted > ceiling:
        return (
            f"it asks for **{wanted.label}** images, but this bot shows only "
            f"**{ceiling.label}** (its operator's setting)"
        )
    why = "" if age_restricted else " (it isn't age-restricted)"
    return (
        f"it asks for **{wanted.label}** images, but {mention} now allows up to "
        f"**{allowed.label}**{why}"
    )


def post_request(
    replies: Replies,
    spec: ScheduleSpec,
    allowed: Rating,
    *,
    mention: str,
    age_restricted: bool,
) -> ImageRequest | str:
    """The image request a schedule makes where ``allowed`` is the channel's maximum now (the
    same checks as ``/neko random``, at background priority), or why it can't post there."""
    problem = rating_problem(spec.rating, allowed, replies.ceiling, mention, age_restricted)
    if problem is not None:
        return problem
    request = replies.random_request(
        user_id=ANYONE,
        guild_id=spec.guild_id,
        channel_id=spec.channel_id,
        channel_max=allowed,
        requested=spec.rating,
        categories=",".join(spec.categories) or None,
        count=spec.count,
        background=True,
    )
    if isinstance(request, Reply):
        # A category the channel can no longer show, or one the catalogue doesn't know.
        return plain_text(request.content or "its categories can't be shown there", 500)
    return request


async def compose_post(
    replies: Replies,
    spec: ScheduleSpec,
    allowed: Rating,
    *,
    mention: str,
    age_restricted: bool,
    upload_limit: int | None = None,
) -> Reply | PostResult:
    """The message a schedule posts where ``allowed`` is the channel's maximum right now, made
    exactly as ``/neko random`` makes its answer, or why there is none (pause or skip)."""
    request = post_request(replies, spec, allowed, mention=mention, age_restricted=age_restricted)
    if isinstance(request, str):
        return PostResult.paused(request)
    try:
        reply = await replies.random(request, requested=spec.rating, upload_limit=upload_limit)
    except NekosError as exc:
        return PostResult.skipped(f"the Nekos API failed ({exc})")
    if reply.ephemeral:
        return PostResult.skipped(reply.content or "nothing to show")
    return reply


class ChannelDelivery:
    """The poster's ``deliver`` for a running :class:`~bot.core.NekosBot`."""

    def __init__(self, bot: NekosBot) -> None:
        self._bot = bot

    async def __call__(
        self, claim: ClaimedPost, still_held: Callable[[], Awaitable[bool]]
    ) -> PostResult:
        bot = self._bot
        spec = claim.schedule.spec
        guild = bot.get_guild(spec.guild_id)
        if guild is None or guild.unavailable:
            return PostResult.skipped("the server isn't available right now")
        channel = guild.get_channel(spec.channel_id)
        if channel is None:
            return PostResult.paused(CHANNEL_GONE)
        if not isinstance(channel, PostableChannel):
            return PostResult.paused("that channel can't take messages")
        attach = bot.settings.image_delivery == "attach"
        if guild.me is not None:
            missing = missing_permissions(channel.permissions_for(guild.me), attach=attach)
            if missing:
                return PostResult.paused(f"I'm missing **{', '.join(missing)}** there")
        try:
            settings = await bot.store.get_guild_settings(guild.id)
        except StoreError:
            # Fail closed would mean posting sfw only, or pausing: neither is what was asked.
            return PostResult.skipped("the server's settings can't be read right now")
        context = context_from_channel(channel)
        allowed = bot.replies.cap(allowed_max(context, settings))
        composed = await compose_post(
            bot.replies,
            spec,
            allowed,
            mention=channel.mention,
            age_restricted=context.is_age_restricted,
            upload_limit=guild.filesize_limit,
        )
        if isinstance(composed, PostResult):
            return composed
        reply = composed
        if not await still_held():
            return PostResult.dropped()
        return await self._send(channel, reply)

    async def _send(self, channel: PostableChannel, reply: Reply) -> PostResult:
        try:
            await channel.send(
                content=reply.content,
                embeds=reply.embeds,
                view=reply.view or discord.utils.MISSING,
                files=reply.discord_files(),
                allowed_mentions=ALLOWED_MENTIONS,
            )
        except discord.Forbidden:
            return PostResult.paused(NOT_ALLOWED)
        except discord.NotFound:
            return PostResult.paused(CHANNEL_GONE)
        except discord.HTTPException as exc:
            # Rate limits are waited out inside discord.py; what reaches here is Discord failing.
            log.warning("Discord refused a scheduled post in %s: %s", channel.id, exc)
            return PostResult.skipped(f"Discord answered {exc.status}")
        return PostResult.posted()
