"""Content gating end to end, on a dataset where most images are questionable or nsfw.

Every image a member is shown is looked up in the fake's dataset and checked against what the
channel allows, and against the minor-safety rule (nothing above sfw featuring a character
listed younger than 18), wherever it appears.
"""

from __future__ import annotations

from bot.nekos.models import Rating
from tests.e2e.conftest import (
    Stack,
    check_shown,
    custom_ids,
    is_ephemeral,
    message_of,
    message_text,
    minor_ids,
    shown_image_ids,
)
from tests.fakes.discord_emulator import ChannelRecord, ChannelType, UserRecord


async def gather_images(
    stack: Stack, user: UserRecord, channel: ChannelRecord, rounds: int, **options: object
) -> list[str]:
    """Run ``/neko random count:10`` ``rounds`` times and collect every image id shown."""
    ids: list[str] = []
    for _ in range(rounds):
        _, answer = await stack.ask(user, channel, "random", count=10, **options)
        assert not is_ephemeral(answer), message_text(answer)
        ids += shown_image_ids(answer)
    assert ids
    return ids


async def test_channel_that_is_not_age_restricted_shows_only_sfw_despite_an_nsfw_default(
    spicy: Stack,
) -> None:
    data = spicy.dataset()
    async with spicy.run():
        await spicy.configure(spicy.owner, "default", level="nsfw")
        ids = await gather_images(spicy, spicy.member, spicy.general, 3)
        assert set(check_shown(data, ids, Rating.SFW)) == {Rating.SFW}
        _, refused = await spicy.ask(spicy.member, spicy.general, "random", rating="nsfw")
        assert is_ephemeral(refused)
        assert not shown_image_ids(refused)
        assert "This channel shows images up to **sfw**" in message_text(refused)

        explicit = next(i for i in data.images if i.nsfw == "nsfw")
        _, refused = await spicy.ask(spicy.member, spicy.general, "image", id=explicit.id)
        assert is_ephemeral(refused)
        assert "can't be shown in this channel" in message_text(refused)
        assert not shown_image_ids(refused)
    spicy.emu.assert_no_violations()


async def test_age_restricted_channel_with_nsfw_override_shows_more_but_never_minors(
    spicy: Stack,
) -> None:
    data = spicy.dataset()
    minors = minor_ids(data)
    async with spicy.run() as bot:
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        ids = await gather_images(spicy, spicy.member, spicy.lounge, 4)
        ratings = check_shown(data, ids, Rating.NSFW)
        assert Rating.NSFW in ratings
        assert Rating.QUESTIONABLE in ratings

        # nsfw categories are offered and listed there, and only there.
        offered = await spicy.emu.autocomplete(
            spicy.member,
            spicy.lounge,
            "neko",
            subcommand="random",
            focused="categories",
            options={"categories": "ecc"},
        )
        await offered.wait_response(3.0)
        assert {"name": "ecchi", "value": "ecchi"} in (offered.choices or [])
        _, listed = await spicy.ask(spicy.member, spicy.lounge, "category", search="ecchi")
        assert "ecchi" in message_text(listed)
        _, hidden = await spicy.ask(spicy.member, spicy.general, "category", search="ecchi")
        assert is_ephemeral(hidden)

        # A member may narrow what they see, never widen it.
        narrowed = await gather_images(spicy, spicy.member, spicy.lounge, 2, rating="questionable")
        assert max(check_shown(data, narrowed, Rating.QUESTIONABLE)) == Rating.QUESTIONABLE

        # Asked for by id, an explicit image of a minor is refused even here.
        unsafe = next(i for i in data.images if i.nsfw == "nsfw" and minors & set(i.character_ids))
        _, refused = await spicy.ask(spicy.member, spicy.lounge, "image", id=unsafe.id)
        assert is_ephemeral(refused)
        assert not shown_image_ids(refused)
        assert bot.refusals.minor_safety >= 1
        safe = next(
            i for i in data.images if i.nsfw == "nsfw" and not minors & set(i.character_ids)
        )
        _, shown = await spicy.ask(spicy.member, spicy.lounge, "image", id=safe.id)
        assert shown_image_ids(shown) == [safe.id]
    spicy.emu.assert_no_violations()


async def test_thread_in_an_age_restricted_forum_follows_the_forums_override(
    spicy: Stack,
) -> None:
    data = spicy.dataset()
    emu = spicy.emu
    forum = emu.add_channel(spicy.guild, ChannelType.GUILD_FORUM, "art", nsfw=True)
    post = emu.add_channel(
        spicy.guild, ChannelType.PUBLIC_THREAD, "my post", parent=forum, owner=spicy.member
    )
    other_forum = emu.add_channel(spicy.guild, ChannelType.GUILD_FORUM, "quiet", nsfw=True)
    other_post = emu.add_channel(
        spicy.guild, ChannelType.PUBLIC_THREAD, "calm post", parent=other_forum, owner=spicy.member
    )
    async with spicy.run():
        _, saved = await spicy.configure(spicy.owner, "channel", channel=forum, level="nsfw")
        assert "now shows up to **nsfw**" in message_text(saved)

        ratings = check_shown(data, await gather_images(spicy, spicy.member, post, 4), Rating.NSFW)
        assert max(ratings) > Rating.SFW

        # The other forum has no override and the default is sfw: its post shows sfw only.
        ids = await gather_images(spicy, spicy.member, other_post, 2)
        check_shown(data, ids, Rating.SFW)
    spicy.emu.assert_no_violations()


async def test_direct_messages_show_only_sfw(spicy: Stack) -> None:
    data = spicy.dataset()
    dm = spicy.emu.dm_channel(spicy.member)
    async with spicy.run():
        await spicy.configure(spicy.owner, "default", level="nsfw")
        ids = await gather_images(spicy, spicy.member, dm, 3)
        check_shown(data, ids, Rating.SFW)
        _, refused = await spicy.ask(spicy.member, dm, "random", rating="nsfw")
        assert is_ephemeral(refused)
        assert not shown_image_ids(refused)
        assert "Only **sfw** images can be shown here" in message_text(refused)
    spicy.emu.assert_no_violations()


async def test_channel_that_loses_its_age_restriction_drops_to_sfw(spicy: Stack) -> None:
    data = spicy.dataset()
    async with spicy.run():
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        before = check_shown(
            data, await gather_images(spicy, spicy.member, spicy.lounge, 3), Rating.NSFW
        )
        assert max(before) > Rating.SFW

        spicy.emu.set_channel_nsfw(spicy.lounge, False)
        ids = await gather_images(spicy, spicy.member, spicy.lounge, 3)
        check_shown(data, ids, Rating.SFW)

        _, shown = await spicy.configure(spicy.owner, "show")
        assert "capped at sfw until the channel is age-restricted" in message_text(shown)
    spicy.emu.assert_no_violations()


async def test_stale_another_button_respects_a_lowered_level(spicy: Stack) -> None:
    data = spicy.dataset()
    async with spicy.run():
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        rec, first = await spicy.ask(spicy.member, spicy.lounge, "random", count=10)
        check_shown(data, shown_image_ids(first), Rating.NSFW)
        message = message_of(rec)
        (again,) = custom_ids(message, "neko:again:")

        _, lowered = await spicy.configure(
            spicy.owner, "channel", channel=spicy.lounge, level="sfw"
        )
        assert "now shows up to **sfw**" in message_text(lowered)

        ids: list[str] = []
        for _ in range(3):
            _, answer = await spicy.press(spicy.member, message, again)
            ids += shown_image_ids(answer)
        assert len(ids) >= 10
        check_shown(data, ids, Rating.SFW)
    spicy.emu.assert_no_violations()
