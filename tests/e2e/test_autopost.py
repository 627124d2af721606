"""Scheduled posts end to end: the real bot posts into emulated channels on its own.

``AUTOPOST_MIN_INTERVAL=5`` lets schedules run every few seconds. The counts and spacings checked
here are properties of the schedule (a cadence, never two posts within half an interval), with
margins wide enough that a slow machine can't break them.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from bot.nekos.models import Rating
from tests.e2e.conftest import (
    Stack,
    check_shown,
    eventually,
    final_message,
    is_ephemeral,
    message_text,
    shown_image_ids,
)
from tests.fakes.discord_emulator import ChannelRecord, MessageRecord, UserRecord
from tests.fakes.discord_payloads import DEFAULT_BOT_PERMISSIONS, SEND_MESSAGES

FAST = {"AUTOPOST_MIN_INTERVAL": "5"}


async def autopost(
    stack: Stack, user: UserRecord, subcommand: str, /, **options: Any
) -> dict[str, Any]:
    """Run ``/neko-config autopost subcommand`` in #general; the (ephemeral) answer."""
    rec = await stack.emu.slash(
        user, stack.general, "neko-config", group="autopost", subcommand=subcommand,
        options=options,
    )  # fmt: skip
    answer = await final_message(rec)
    assert is_ephemeral(answer)
    return answer


def posts(stack: Stack, channel: ChannelRecord) -> list[MessageRecord]:
    """The bot's messages in ``channel`` that no interaction made: the scheduled posts."""
    return sorted(
        (
            m
            for m in channel.messages.values()
            if m.author.id == stack.emu.bot_user.id and m.interaction_metadata is None
        ),
        key=lambda m: m.created_at,
    )


def refused_posts(stack: Stack, channel: ChannelRecord) -> int:
    path = f"/channels/{channel.id}/messages"
    return sum(
        1 for c in stack.emu.requests if c.method == "POST" and c.path == path and c.status == 403
    )


def spacings(messages: list[MessageRecord]) -> list[float]:
    return [b.created_at - a.created_at for a, b in itertools.pairwise(messages)]


async def test_a_schedule_keeps_its_cadence_and_survives_a_restart(stack: Stack) -> None:
    async with stack.run(**FAST):
        answer = await autopost(stack, stack.owner, "add", channel=stack.general, every="10s")
        text = message_text(answer)
        assert f"Scheduled: <#{stack.general.id}>, every 10s, 1 image" in text
        assert "First post <t:" in text
        await eventually(lambda: _true(len(posts(stack, stack.general)) >= 1), 8.0)
        started = posts(stack, stack.general)[0].created_at
        await asyncio.sleep(30 - (stack.emu.now() - started))
        in_thirty = [m for m in posts(stack, stack.general) if m.created_at - started < 30]
    # The bot stops and starts again on the same database.
    async with stack.run(**FAST):
        before = len(posts(stack, stack.general))
        await eventually(lambda: _true(len(posts(stack, stack.general)) > before), 15.0)

    every = posts(stack, stack.general)
    assert 3 <= len(in_thirty) <= 4, spacings(in_thirty)
    assert min(spacings(every)) >= 5.0, spacings(every)
    # Rendered like /neko random, and anyone may press Another under it.
    assert shown_image_ids(every[0].snapshot())
    assert any(c.startswith("neko:again:0:1:") for c in every[0].custom_ids)
    stack.emu.assert_no_violations()


async def _true(value: bool) -> bool:
    return value


async def test_nsfw_reaches_only_the_age_restricted_channel(spicy: Stack) -> None:
    stack = spicy
    async with stack.run(**FAST):
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        refused = await autopost(
            stack, stack.owner, "add", channel=stack.general, every="5s", rating="nsfw"
        )
        assert "isn't age-restricted" in message_text(refused) or "up to **sfw**" in message_text(
            refused
        )
        await autopost(stack, stack.owner, "add", channel=stack.lounge, every="5s", count=3)
        await autopost(stack, stack.owner, "add", channel=stack.general, every="5s", count=3)
        await eventually(
            lambda: _true(
                len(posts(stack, stack.lounge)) >= 3 and len(posts(stack, stack.general)) >= 3
            ),
            25.0,
        )
    data = stack.dataset()
    lounge = [i for m in posts(stack, stack.lounge) for i in shown_image_ids(m.snapshot())]
    general = [i for m in posts(stack, stack.general) for i in shown_image_ids(m.snapshot())]
    assert max(check_shown(data, lounge, Rating.NSFW)) > Rating.SFW
    assert set(check_shown(data, general, Rating.SFW)) == {Rating.SFW}


async def test_losing_send_messages_pauses_after_at_most_one_refused_attempt(
    stack: Stack,
) -> None:
    async with stack.run(**FAST):
        await autopost(stack, stack.owner, "add", channel=stack.general, every="5s")
        await eventually(lambda: _true(len(posts(stack, stack.general)) >= 1), 8.0)
        stack.emu.set_channel_permissions(
            stack.general, stack.emu.bot_user, DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
        )
        count = len(posts(stack, stack.general))
        await asyncio.sleep(12)
        listed = message_text(await autopost(stack, stack.owner, "list"))

    assert len(posts(stack, stack.general)) <= count + 1  # one may have been under way
    assert refused_posts(stack, stack.general) <= 1
    assert "**Paused**" in listed
    assert "Send Messages" in listed


async def test_no_post_after_remove(stack: Stack) -> None:
    async with stack.run(**FAST) as bot:
        await autopost(stack, stack.owner, "add", channel=stack.general, every="5s")
        await eventually(lambda: _true(len(posts(stack, stack.general)) >= 1), 8.0)
        answer = await autopost(stack, stack.owner, "remove", channel=stack.general)
        assert "Removed." in message_text(answer)
        count = len(posts(stack, stack.general))
        await asyncio.sleep(11)
        assert len(posts(stack, stack.general)) == count
        assert await bot.store.list_schedules(stack.guild.id) == []
        changes = await bot.store.recent_changes(stack.guild.id)
        assert changes[0].description == (
            f"<@{stack.owner.id}> removed the scheduled posts of <#{stack.general.id}>"
        )


async def test_a_schedule_above_tightened_settings_is_paused_with_the_reason(
    spicy: Stack,
) -> None:
    stack = spicy
    async with stack.run(**FAST):
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="questionable")
        answer = await autopost(
            stack, stack.owner, "add", channel=stack.lounge, every="5s", rating="questionable"
        )
        assert "only questionable" in message_text(answer)
        await eventually(lambda: _true(len(posts(stack, stack.lounge)) >= 1), 8.0)
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="sfw")
        count = len(posts(stack, stack.lounge))
        await asyncio.sleep(8)
        listed = message_text(await autopost(stack, stack.owner, "list"))
        resumed = message_text(await autopost(stack, stack.owner, "resume", channel=stack.lounge))

    assert len(posts(stack, stack.lounge)) <= count + 1
    assert "now allows up to **sfw**" in listed
    assert "**Paused**" in listed
    assert "stays paused" in resumed


async def test_a_deleted_channel_or_a_left_server_takes_its_schedules_along(
    stack: Stack,
) -> None:
    async with stack.run(**FAST) as bot:
        await autopost(stack, stack.owner, "add", channel=stack.general, every="1m")
        await autopost(stack, stack.owner, "add", channel=stack.lounge, every="1h")
        shown = message_text((await stack.configure(stack.owner, "show"))[1])
        assert f"<#{stack.lounge.id}> every 1h" in shown

        stack.emu.delete_channel(stack.general)

        async def general_gone() -> bool:
            left = await bot.store.list_schedules(stack.guild.id)
            return [s.channel_id for s in left] == [stack.lounge.id]

        await eventually(general_gone)
        changes = await bot.store.recent_changes(stack.guild.id, limit=1)
        assert changes[0].description == (
            f"The bot removed the scheduled posts of <#{stack.general.id}>: channel deleted"
        )

        stack.emu.remove_guild(stack.guild)

        async def all_gone() -> bool:
            return await bot.store.list_schedules(stack.guild.id) == []

        await eventually(all_gone)


async def test_add_refuses_bad_intervals_and_says_when_it_replaces(stack: Stack) -> None:
    async with stack.run(**FAST, AUTOPOST_MAX_PER_GUILD="1"):
        for every, expected in (
            ("2s", "The shortest interval on this bot is **5s**."),
            ("soon", "I can't read `soon` as a duration"),
            ("90", "`90` needs a unit"),
            ("31d", "The longest interval is **30d**."),
        ):
            answer = await autopost(stack, stack.owner, "add", channel=stack.general, every=every)
            assert expected in message_text(answer)
        await autopost(stack, stack.owner, "add", channel=stack.general, every="1h")
        again = message_text(
            await autopost(stack, stack.owner, "add", channel=stack.general, every="2h", count=2)
        )
        assert "This replaced the previous schedule (every 1h, 1 image" in again
        full = message_text(
            await autopost(stack, stack.owner, "add", channel=stack.lounge, every="1h")
        )
        assert "already has **1** scheduled posts" in full
        denied = message_text(
            await autopost(stack, stack.admin, "add", channel=stack.general, every="1h")
        )
        assert "Manage Channels" in denied


async def test_a_post_discord_refuses_pauses_the_schedule_after_that_one_attempt(
    stack: Stack,
) -> None:
    async with stack.run(**FAST):
        await autopost(stack, stack.owner, "add", channel=stack.general, every="5s")
        await eventually(lambda: _true(len(posts(stack, stack.general)) >= 1), 8.0)
        # Discord refuses the bot's posts without the bot's cache knowing (no gateway event).
        stack.general.permission_overrides[stack.emu.bot_user.id] = (
            DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
        )
        await eventually(lambda: _true(refused_posts(stack, stack.general) >= 1), 10.0)
        await asyncio.sleep(11)
        listed = message_text(await autopost(stack, stack.owner, "list"))

    assert refused_posts(stack, stack.general) == 1
    assert "Discord refused my post" in listed
