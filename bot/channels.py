"""Read discord.py channel objects into :class:`~bot.gating.ChannelContext`.

The one place that knows discord.py's channel classes. Whatever cannot be read with certainty
(a flag that is not a real ``bool``, an uncached thread parent, an unknown channel type) is left
unknown, which :func:`bot.gating.allowed_max` reads as "not age-restricted".
"""

from __future__ import annotations

import dataclasses
import logging

import discord

from bot.gating import ChannelContext, ChannelKind

__all__ = ["context_from_channel", "context_from_interaction"]

log = logging.getLogger(__name__)


def _flag(channel: object) -> bool | None:
    """The channel's ``nsfw`` (age-restricted) flag, or ``None`` unless it is a real bool."""
    value = getattr(channel, "nsfw", None)
    return value if isinstance(value, bool) else None


def _guild_id(channel: object) -> int | None:
    guild = getattr(channel, "guild", None)
    guild_id = getattr(guild, "id", None)
    return guild_id if isinstance(guild_id, int) else None


def _channel_id(channel: object) -> int | None:
    channel_id = getattr(channel, "id", None)
    return channel_id if isinstance(channel_id, int) else None


def _guild_channel_kind(channel: object) -> ChannelKind | None:
    """The kind of a non-thread guild channel, or ``None`` when it is not one."""
    if isinstance(channel, discord.TextChannel):
        return ChannelKind.NEWS if channel.type is discord.ChannelType.news else ChannelKind.TEXT
    if isinstance(channel, discord.StageChannel):
        return ChannelKind.STAGE
    if isinstance(channel, discord.VoiceChannel):
        return ChannelKind.VOICE
    if isinstance(channel, discord.ForumChannel):
        return ChannelKind.MEDIA if channel.type is discord.ChannelType.media else ChannelKind.FORUM
    return None


def context_from_channel(channel: object, bot_in_guild: bool = True) -> ChannelContext:
    """Describe ``channel`` for the content policy.

    ``bot_in_guild`` is ``False`` when the bot is not a member of the channel's server (a
    user-installed command); the policy then allows only ``sfw`` there.
    Text, news, voice, stage, forum and media channels carry their own flag; a thread (or forum
    post) takes its parent's, read from ``thread.parent``, which is ``None`` when the parent is not
    cached. DMs and group DMs have no guild. Anything else (``PartialMessageable``, a category,
    ``None``) is :attr:`ChannelKind.UNKNOWN`.
    """
    if isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return ChannelContext(
            guild_id=None,
            channel_id=_channel_id(channel),
            kind=ChannelKind.DM if isinstance(channel, discord.DMChannel) else ChannelKind.GROUP_DM,
            age_restricted=False,
            bot_in_guild=False,
        )

    if isinstance(channel, discord.Thread):
        parent = channel.parent
        parent_flag = (
            _flag(parent)
            if isinstance(parent, discord.TextChannel | discord.ForumChannel)
            else None
        )
        raw_parent_id = getattr(channel, "parent_id", None)
        return ChannelContext(
            guild_id=_guild_id(channel),
            channel_id=_channel_id(channel),
            kind=ChannelKind.THREAD,
            age_restricted=parent_flag,
            parent_id=raw_parent_id if isinstance(raw_parent_id, int) else None,
            parent_age_restricted=parent_flag,
            bot_in_guild=bot_in_guild,
        )

    kind = _guild_channel_kind(channel)
    if kind is None:
        log.debug("unknown channel type %s: treated as not age-restricted", type(channel).__name__)
        raw_guild_id = getattr(channel, "guild_id", None)  # PartialMessageable has only guild_id
        return ChannelContext(
            guild_id=raw_guild_id if isinstance(raw_guild_id, int) else _guild_id(channel),
            channel_id=_channel_id(channel),
            kind=ChannelKind.UNKNOWN,
            bot_in_guild=bot_in_guild,
        )
    return ChannelContext(
        guild_id=_guild_id(channel),
        channel_id=_channel_id(channel),
        kind=kind,
        age_restricted=_flag(channel),
        bot_in_guild=bot_in_guild,
    )


def _bot_in_guild(interaction: discord.Interaction[discord.Client], guild_id: int) -> bool:
    """Whether the bot is a member of the interaction's server.

    True when the command was authorised by the server's install, or when the server is in the
    client's cache (the gateway only sends servers the bot is in). A user-installed command used
    elsewhere gets neither.
    """
    if interaction.is_guild_integration() is True:
        return True
    return isinstance(interaction.client.get_guild(guild_id), discord.Guild)


def context_from_interaction(interaction: discord.Interaction[discord.Client]) -> ChannelContext:
    """Describe the channel an interaction came from, for the content policy."""
    channel = interaction.channel
    raw_guild_id = interaction.guild_id
    guild_id = raw_guild_id if isinstance(raw_guild_id, int) else None
    bot_in_guild = guild_id is not None and _bot_in_guild(interaction, guild_id)
    ctx = context_from_channel(channel, bot_in_guild=bot_in_guild)
    if ctx.kind in (ChannelKind.DM, ChannelKind.GROUP_DM) or ctx.guild_id == guild_id:
        return ctx
    # The interaction's guild_id is authoritative; a partial channel may not know its guild.
    return dataclasses.replace(ctx, guild_id=guild_id)
