"""Reading discord.py channels and interactions into the content policy's ChannelContext."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import discord
import pytest

from bot.channels import context_from_channel, context_from_interaction
from bot.gating import ChannelContext, ChannelKind, GuildSettings, allowed_max
from bot.nekos.models import Rating

GUILD = 100
CHANNEL = 200
PARENT = 300
NSFW_EVERYWHERE = GuildSettings(default=Rating.NSFW)


def _guild(guild_id: int = GUILD) -> MagicMock:
    guild = MagicMock(spec=discord.Guild)
    guild.id = guild_id
    return guild


def _guild_channel(cls: type[Any], nsfw: object = False, **attrs: object) -> MagicMock:
    channel = MagicMock(spec=cls)
    channel.id = CHANNEL
    channel.guild = _guild()
    channel.nsfw = nsfw
    for name, value in attrs.items():
        setattr(channel, name, value)
    return channel


def _thread(parent: object, parent_id: int = PARENT) -> MagicMock:
    thread = MagicMock(spec=discord.Thread)
    thread.id = CHANNEL
    thread.guild = _guild()
    thread.parent_id = parent_id
    thread.parent = parent
    thread.type = discord.ChannelType.public_thread
    return thread


def _interaction(
    channel: object,
    guild_id: int | None = GUILD,
    guild_integration: bool = True,
    guild_cached: bool = True,
) -> MagicMock:
    interaction = MagicMock(spec=discord.Interaction)
    interaction.channel = channel
    interaction.guild_id = guild_id
    interaction.channel_id = getattr(channel, "id", None)
    interaction.is_guild_integration.return_value = guild_integration
    interaction.client.get_guild.return_value = _guild(guild_id or 0) if guild_cached else None
    return interaction


@pytest.mark.parametrize(
    ("cls", "channel_type", "kind"),
    [
        (discord.TextChannel, discord.ChannelType.text, ChannelKind.TEXT),
        (discord.TextChannel, discord.ChannelType.news, ChannelKind.NEWS),
        (discord.VoiceChannel, discord.ChannelType.voice, ChannelKind.VOICE),
        (discord.StageChannel, discord.ChannelType.stage_voice, ChannelKind.STAGE),
        (discord.ForumChannel, discord.ChannelType.forum, ChannelKind.FORUM),
        (discord.ForumChannel, discord.ChannelType.media, ChannelKind.MEDIA),
    ],
)
@pytest.mark.parametrize("nsfw", [True, False])
def test_guild_channel_kinds_and_their_own_flag(
    cls: type[Any], channel_type: discord.ChannelType, kind: ChannelKind, nsfw: bool
) -> None:
    channel = _guild_channel(cls, nsfw=nsfw, type=channel_type)

    ctx = context_from_channel(channel)

    assert ctx == ChannelContext(
        guild_id=GUILD, channel_id=CHANNEL, kind=kind, age_restricted=nsfw, bot_in_guild=True
    )
    assert allowed_max(ctx, NSFW_EVERYWHERE) is (Rating.NSFW if nsfw else Rating.SFW)


def test_flag_that_is_not_a_bool_is_unknown_and_sfw() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=MagicMock())

    ctx = context_from_channel(channel)

    assert ctx.age_restricted is None
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


@pytest.mark.parametrize("parent_cls", [discord.TextChannel, discord.ForumChannel])
@pytest.mark.parametrize("nsfw", [True, False])
def test_thread_and_forum_post_take_parent_flag(parent_cls: type[Any], nsfw: bool) -> None:
    parent = _guild_channel(parent_cls, nsfw=nsfw)
    parent.id = PARENT

    ctx = context_from_channel(_thread(parent))

    assert ctx.kind is ChannelKind.THREAD
    assert ctx.parent_id == PARENT
    assert ctx.parent_age_restricted is nsfw
    assert allowed_max(ctx, NSFW_EVERYWHERE) is (Rating.NSFW if nsfw else Rating.SFW)


def test_thread_with_uncached_parent_is_sfw() -> None:
    ctx = context_from_channel(_thread(parent=None))

    assert ctx.kind is ChannelKind.THREAD
    assert ctx.parent_age_restricted is None
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


def test_thread_uses_parent_override() -> None:
    parent = _guild_channel(discord.TextChannel, nsfw=True)
    settings = GuildSettings(default=Rating.SFW, overrides={PARENT: Rating.QUESTIONABLE})

    ctx = context_from_interaction(_interaction(_thread(parent)))

    assert allowed_max(ctx, settings) is Rating.QUESTIONABLE


def test_dm_is_sfw() -> None:
    dm = MagicMock(spec=discord.DMChannel)
    dm.id = CHANNEL

    ctx = context_from_interaction(_interaction(dm, guild_id=None, guild_integration=False))

    assert ctx == ChannelContext(
        guild_id=None,
        channel_id=CHANNEL,
        kind=ChannelKind.DM,
        age_restricted=False,
        bot_in_guild=False,
    )
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


def test_group_dm_is_sfw() -> None:
    group = MagicMock(spec=discord.GroupChannel)
    group.id = CHANNEL

    ctx = context_from_interaction(_interaction(group, guild_id=None, guild_integration=False))

    assert ctx.kind is ChannelKind.GROUP_DM
    assert ctx.guild_id is None
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


@pytest.mark.parametrize(
    "channel",
    [
        None,
        discord.PartialMessageable(state=MagicMock(), id=CHANNEL, guild_id=GUILD),
        MagicMock(spec=discord.CategoryChannel),
        object(),
    ],
    ids=["none", "partial", "category", "other"],
)
def test_unknown_channels_are_unknown_and_sfw(channel: object) -> None:
    ctx = context_from_interaction(_interaction(channel))

    assert ctx.kind is ChannelKind.UNKNOWN
    assert ctx.guild_id == GUILD
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


def test_interaction_in_restricted_text_channel_of_bots_server() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=True, type=discord.ChannelType.text)

    ctx = context_from_interaction(_interaction(channel))

    assert ctx.bot_in_guild
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.NSFW


def test_user_install_in_server_without_the_bot_is_sfw() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=True, type=discord.ChannelType.text)

    ctx = context_from_interaction(
        _interaction(channel, guild_integration=False, guild_cached=False)
    )

    assert ctx.bot_in_guild is False
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


def test_cached_guild_counts_as_bot_in_guild_without_guild_install_owner() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=True, type=discord.ChannelType.text)

    ctx = context_from_interaction(_interaction(channel, guild_integration=False))

    assert ctx.bot_in_guild is True


def test_guild_install_counts_as_bot_in_guild_before_guild_is_cached() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=True, type=discord.ChannelType.text)

    ctx = context_from_interaction(_interaction(channel, guild_cached=False))

    assert ctx.bot_in_guild is True


def test_interaction_guild_id_wins_over_channel_without_guild() -> None:
    channel = _guild_channel(discord.TextChannel, nsfw=True, type=discord.ChannelType.text)
    channel.guild = None

    ctx = context_from_interaction(_interaction(channel))

    assert ctx.guild_id == GUILD
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.NSFW


def test_context_from_channel_passes_bot_in_guild() -> None:
    channel = _guild_channel(discord.VoiceChannel, nsfw=True)

    ctx = context_from_channel(channel, bot_in_guild=False)

    assert ctx.bot_in_guild is False
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


# ------------------------------------------------------------------ real discord.py objects


def _payload(channel_id: int, channel_type: int, **extra: object) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": channel_type,
        "name": f"channel-{channel_id}",
        "position": 0,
        "guild_id": str(GUILD),
        **extra,
    }


def _real_thread(guild: MagicMock) -> discord.Thread:
    data = _payload(
        CHANNEL,
        11,
        parent_id=str(PARENT),
        owner_id="1",
        message_count=0,
        member_count=0,
        rate_limit_per_user=0,
        thread_metadata={
            "archived": False,
            "auto_archive_duration": 60,
            "archive_timestamp": "2024-01-01T00:00:00+00:00",
        },
    )
    return discord.Thread(guild=guild, state=MagicMock(), data=data)  # type: ignore[arg-type]


def test_real_thread_reads_parent_from_guild_cache() -> None:
    guild = _guild()
    parent = discord.TextChannel(
        state=MagicMock(),
        guild=guild,
        data=_payload(PARENT, 0, nsfw=True),  # type: ignore[arg-type]
    )
    guild.get_channel.side_effect = lambda channel_id: parent if channel_id == PARENT else None

    ctx = context_from_channel(_real_thread(guild))

    assert (ctx.kind, ctx.parent_id, ctx.parent_age_restricted) == (
        ChannelKind.THREAD,
        PARENT,
        True,
    )
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.NSFW


def test_real_thread_with_parent_missing_from_cache_is_sfw() -> None:
    guild = _guild()
    guild.get_channel.return_value = None

    ctx = context_from_channel(_real_thread(guild))

    assert ctx.parent_age_restricted is None
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


@pytest.mark.parametrize(
    ("channel_type", "kind"),
    [
        (0, ChannelKind.TEXT),
        (5, ChannelKind.NEWS),
        (15, ChannelKind.FORUM),
        (16, ChannelKind.MEDIA),
    ],
)
def test_real_channels_from_payload(channel_type: int, kind: ChannelKind) -> None:
    cls = discord.ForumChannel if channel_type in (15, 16) else discord.TextChannel
    channel = cls(
        state=MagicMock(), guild=_guild(), data=_payload(CHANNEL, channel_type, nsfw=True)
    )

    ctx = context_from_channel(channel)

    assert (ctx.kind, ctx.age_restricted, ctx.guild_id) == (kind, True, GUILD)


def test_real_dm_channel_is_sfw() -> None:
    dm = discord.DMChannel(
        me=MagicMock(), state=MagicMock(), data={"id": "5", "type": 1, "recipients": []}
    )

    ctx = context_from_channel(dm)

    assert ctx.kind is ChannelKind.DM
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW
