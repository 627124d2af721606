"""``/neko-config``'s pure checks: permissions, the age-restriction rule and the overview."""

from __future__ import annotations

import datetime as dt

import discord
import pytest

from bot.gating import GuildSettings
from bot.nekos.models import Rating
from bot.store import Change, ChangeScope
from cogs.config import (
    HOW_TO_AGE_RESTRICT,
    channel_permission_problem,
    guild_permission_problem,
    override_problem,
    overview_lines,
    parse_level,
)

MENTION = "<#555>"
GUILD = 1
ADMIN = 77
AT = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------ permissions

PERMISSION_CASES = [
    discord.Permissions.none(),
    discord.Permissions(manage_guild=True),
    discord.Permissions(manage_channels=True),
    discord.Permissions(administrator=True),
    discord.Permissions(manage_guild=True, manage_channels=True),
    discord.Permissions(manage_messages=True, manage_roles=True, kick_members=True),
    discord.Permissions.all(),
]


@pytest.mark.parametrize("permissions", PERMISSION_CASES, ids=lambda p: str(p.value))
def test_guild_settings_need_manage_server(permissions: discord.Permissions) -> None:
    problem = guild_permission_problem(permissions)
    if permissions.manage_guild or permissions.administrator:
        assert problem is None
    else:
        assert problem is not None
        assert "Manage Server" in problem


@pytest.mark.parametrize("permissions", PERMISSION_CASES, ids=lambda p: str(p.value))
def test_channel_override_needs_manage_channels(permissions: discord.Permissions) -> None:
    problem = channel_permission_problem(permissions, MENTION)
    if permissions.manage_channels or permissions.administrator:
        assert problem is None
    else:
        assert problem is not None
        assert "Manage Channels" in problem
        assert MENTION in problem


def test_manage_server_alone_does_not_grant_channel_overrides() -> None:
    assert guild_permission_problem(discord.Permissions(manage_guild=True)) is None
    assert channel_permission_problem(discord.Permissions(manage_guild=True), MENTION)


def test_manage_channels_alone_does_not_grant_guild_settings() -> None:
    assert channel_permission_problem(discord.Permissions(manage_channels=True), MENTION) is None
    assert guild_permission_problem(discord.Permissions(manage_channels=True))


# ------------------------------------------------------------------------------ override rule


@pytest.mark.parametrize("level", [Rating.QUESTIONABLE, Rating.NSFW])
def test_override_above_sfw_is_refused_on_a_channel_that_is_not_age_restricted(
    level: Rating,
) -> None:
    problem = override_problem(level, False, MENTION)
    assert problem is not None
    assert MENTION in problem
    assert "age-restricted" in problem
    assert HOW_TO_AGE_RESTRICT in problem


@pytest.mark.parametrize("level", [Rating.QUESTIONABLE, Rating.NSFW])
def test_override_above_sfw_is_allowed_on_an_age_restricted_channel(level: Rating) -> None:
    assert override_problem(level, True, MENTION) is None


@pytest.mark.parametrize("age_restricted", [True, False])
@pytest.mark.parametrize("level", [None, Rating.SFW])
def test_sfw_and_inherit_are_always_allowed(level: Rating | None, age_restricted: bool) -> None:
    assert override_problem(level, age_restricted, MENTION) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inherit", None),
        ("sfw", Rating.SFW),
        ("questionable", Rating.QUESTIONABLE),
        ("nsfw", Rating.NSFW),
        ("NSFW", Rating.NSFW),
    ],
)
def test_parse_level(value: str, expected: Rating | None) -> None:
    assert parse_level(value) == expected


@pytest.mark.parametrize("value", ["", "explicit", "inherited"])
def test_parse_level_rejects_unknown_values(value: str) -> None:
    with pytest.raises(ValueError, match="unknown rating"):
        parse_level(value)


# ------------------------------------------------------------------------------ overview


def _channel_change(channel_id: int, old: Rating | None, new: Rating | None) -> Change:
    return Change(GUILD, ADMIN, ChangeScope.CHANNEL, channel_id, old, new, AT, id=1)


def test_overview_of_an_unconfigured_server() -> None:
    lines = overview_lines(GuildSettings(), [], [])
    assert lines[0] == "**Server default:** sfw (not set)"
    assert "**Channel overrides:** none" in lines
    assert "**Last changes:** none yet" in lines
    assert not any("⚠️" in line for line in lines)


def test_overview_shows_a_set_default() -> None:
    sfw = overview_lines(GuildSettings(default=Rating.SFW), [], [])
    assert sfw[0] == "**Server default:** sfw"
    assert not any("age-restricted" in line for line in sfw)
    nsfw = overview_lines(GuildSettings(default=Rating.NSFW), [], [])
    assert nsfw[0] == "**Server default:** nsfw"
    # Above sfw, a note says where the default actually applies.
    assert "age-restricted" in nsfw[1]


def test_overview_lists_overrides_with_their_age_restriction_status() -> None:
    settings = GuildSettings(
        default=Rating.QUESTIONABLE,
        overrides={30: Rating.NSFW, 10: Rating.QUESTIONABLE, 20: Rating.SFW, 40: Rating.NSFW},
    )
    channels = [
        (10, "<#10>", True),
        (20, "<#20>", False),
        (30, "<#30>", False),
        (40, "<#40>", None),
    ]
    lines = overview_lines(settings, channels, [])
    assert "**Channel overrides:**" in lines
    overrides = [line for line in lines if line.startswith("• <#")]
    assert overrides == [
        "• <#10>: **questionable** (age-restricted)",
        "• <#20>: **sfw** (not age-restricted)",
        "• <#30>: **nsfw** (not age-restricted) ⚠️ capped at sfw until the channel is "
        "age-restricted",
        "• <#40>: **nsfw** (unknown channel) ⚠️ capped at sfw until the channel is age-restricted",
    ]


def test_overview_of_an_override_whose_channel_was_not_looked_up() -> None:
    settings = GuildSettings(overrides={99: Rating.QUESTIONABLE})
    lines = overview_lines(settings, [], [])
    (line,) = [line for line in lines if line.startswith("• ")]
    assert line.startswith("• <#99>: **questionable** (unknown channel)")
    assert "⚠️ capped at sfw" in line


def test_overview_lists_recent_changes() -> None:
    changes = [
        _channel_change(10, None, Rating.NSFW),
        Change(GUILD, ADMIN, ChangeScope.DEFAULT, None, None, Rating.QUESTIONABLE, AT, id=2),
        Change(GUILD, ADMIN, ChangeScope.RESET, None, Rating.NSFW, None, AT, 3, id=3),
    ]
    lines = overview_lines(GuildSettings(), [], changes)
    assert "**Last changes:**" in lines
    recent = lines[lines.index("**Last changes:**") + 1 :]
    assert len(recent) == 3
    stamp = f"<t:{int(AT.timestamp())}:R>"
    for line, change in zip(recent, changes, strict=True):
        assert line == f"• {stamp} {change.description}"
    assert "<#10>" in recent[0]
    assert "<@77>" in recent[0]


def test_overview_sections_are_separated_by_blank_lines() -> None:
    lines = overview_lines(
        GuildSettings(overrides={10: Rating.SFW}),
        [(10, "<#10>", True)],
        [_channel_change(10, None, Rating.SFW)],
    )
    assert lines.count("") == 3
    assert lines.index("**Channel overrides:**") < lines.index("**Scheduled posts:** none")
    assert lines.index("**Scheduled posts:** none") < lines.index("**Last changes:**")
