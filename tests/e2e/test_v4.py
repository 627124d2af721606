"""The bot on the Nekos API as it is served today (v4), through Discord (the emulator).

v4 has tags instead of categories, four ratings from a classifier, no artists, characters or
ages. A fresh install shows only sfw from it; with the operator's opt-in, age-restricted channels
may show more, never with a youth-describing tag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.gating import EXPLICIT_TAGS, SUGGESTIVE_TAGS, YOUTH_TAGS
from bot.nekos.models import Rating
from tests.e2e.conftest import (
    Stack,
    custom_ids,
    is_ephemeral,
    message_of,
    message_text,
)
from tests.fakes.dataset_v4 import V4ImageRow
from tests.fakes.discord_emulator import ChannelRecord, UserRecord
from tests.fakes.nekos_api_v4 import FakeNekosV4API

SAFE_ONLY = {"safe"}
V4_LEVEL = {"safe": 0, "suggestive": 1, "borderline": 2, "explicit": 2}


def shown_rows(stack: Stack, data: dict[str, Any]) -> list[V4ImageRow]:
    """The v4 images a message shows (their integer id ends each image embed's footer)."""
    rows = []
    for embed in data.get("embeds") or []:
        if not (embed.get("image") or {}).get("url"):
            continue
        footer = str((embed.get("footer") or {}).get("text") or "")
        rows.append(stack.api.dataset.by_id[int(footer.rsplit(" · ", 1)[-1])])
    return rows


async def gather(
    stack: Stack, user: UserRecord, channel: ChannelRecord, rounds: int, **options: object
) -> list[V4ImageRow]:
    rows: list[V4ImageRow] = []
    for _ in range(rounds):
        _, answer = await stack.ask(user, channel, "random", count=10, **options)
        assert not is_ephemeral(answer), message_text(answer)
        rows += shown_rows(stack, answer)
    assert rows
    return rows


def effective_level(row: V4ImageRow) -> int:
    """The rating a cautious reader gives: raised by explicit or suggestive tags."""
    tags = set(row.tags)
    if tags & EXPLICIT_TAGS:
        return 2
    if tags & SUGGESTIVE_TAGS:
        return max(1, V4_LEVEL[row.rating])
    return V4_LEVEL[row.rating]


async def test_only_the_commands_v4_can_serve_are_registered(v4stack: Stack) -> None:
    async with v4stack.run():
        neko = v4stack.emu.find_command("neko", v4stack.general)
        options = {o["name"]: o for o in neko["options"]}
        assert set(options) == {"random", "image", "category", "stats", "about"}
        assert [o["name"] for o in options["random"]["options"]] == ["tags", "count", "rating"]
    v4stack.emu.assert_no_violations()


async def test_random_by_tags_shows_safe_images_in_their_own_colour(v4stack: Stack) -> None:
    async with v4stack.run():
        _, answer = await v4stack.ask(
            v4stack.member, v4stack.general, "random", tags="catgirl", count=5
        )
        rows = shown_rows(v4stack, answer)
        assert len(rows) == 5
        for row, embed in zip(rows, answer["embeds"], strict=True):
            assert "catgirl" in row.tags
            assert row.rating == "safe"
            red, green, blue = row.color_dominant
            assert embed["color"] == (red << 16) | (green << 8) | blue
    v4stack.emu.assert_no_violations()


async def test_without_the_opt_in_nothing_above_sfw_is_shown_anywhere(v4stack: Stack) -> None:
    async with v4stack.run():
        await v4stack.configure(v4stack.owner, "channel", channel=v4stack.lounge, level="nsfw")
        _, shown = await v4stack.configure(v4stack.owner, "show")
        assert "shows only **sfw** images everywhere" in message_text(shown)

        rows = await gather(v4stack, v4stack.member, v4stack.lounge, 3)
        assert {r.rating for r in rows} == SAFE_ONLY
        assert not any(set(r.tags) & (EXPLICIT_TAGS | SUGGESTIVE_TAGS) for r in rows)

        _, refused = await v4stack.ask(v4stack.member, v4stack.lounge, "random", rating="nsfw")
        assert is_ephemeral(refused)
        assert not shown_rows(v4stack, refused)
        assert "This bot shows only **sfw** images" in message_text(refused)
    # Not even asked for: every random call the bot made was for safe images.
    ratings = {r.query.get("rating") for r in v4stack.api.api_requests if "random" in r.path}
    assert ratings == {"safe"}
    v4stack.emu.assert_no_violations()


async def test_with_the_opt_in_age_restricted_channels_show_more_but_never_youth_tags(
    v4_opted_in: Stack,
) -> None:
    stack = v4_opted_in
    async with stack.run():
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        lounge = await gather(stack, stack.member, stack.lounge, 4)
        assert max(effective_level(r) for r in lounge) > 0
        assert not any(set(r.tags) & YOUTH_TAGS and effective_level(r) > 0 for r in lounge)

        exact = await gather(stack, stack.member, stack.lounge, 2, rating="nsfw")
        assert {r.rating for r in exact} <= {"borderline", "explicit"}
        assert not any(set(r.tags) & YOUTH_TAGS for r in exact)

        # A channel that is not age-restricted stays sfw, tags that say otherwise included.
        general = await gather(stack, stack.member, stack.general, 3)
        assert {effective_level(r) for r in general} == {0}
    stack.emu.assert_no_violations()


async def test_tags_autocomplete_from_what_the_bot_has_seen(v4_opted_in: Stack) -> None:
    stack = v4_opted_in
    async with stack.run() as bot:
        await asyncio.wait_for(_until(lambda: bot.catalog.visible_tags(Rating.SFW)), 10)
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")

        async def complete(channel: ChannelRecord, typed: str) -> list[str]:
            rec = await stack.emu.autocomplete(
                stack.member,
                channel,
                "neko",
                subcommand="random",
                focused="tags",
                options={"tags": typed},
            )
            response = await rec.wait_response(3.0)
            assert response.accepted
            return [str(c["value"]) for c in rec.choices or []]

        assert "catgirl" in await complete(stack.general, "cat")
        assert "girl, catgirl" in await complete(stack.general, "girl, cat")
        assert "nude" not in await complete(stack.general, "nu")
        assert "nude" in await complete(stack.lounge, "nu")
        for youth in ("lol", "chi", "sho"):
            assert not set(await complete(stack.lounge, youth)) & YOUTH_TAGS
    stack.emu.assert_no_violations()


async def _until(check: Any) -> None:
    while not check():  # noqa: ASYNC110 - the catalogue has no event to wait on
        await asyncio.sleep(0.05)


async def test_category_browses_the_tags_seen(v4stack: Stack) -> None:
    async with v4stack.run() as bot:
        await asyncio.wait_for(_until(lambda: bot.catalog.visible_tags(Rating.SFW)), 10)
        _, answer = await v4stack.ask(v4stack.member, v4stack.general, "category")
        embed = answer["embeds"][0]
        assert embed["title"] == "Tags"
        listed = [line.split("**")[1] for line in embed["description"].splitlines()]
        assert "girl" in listed
        assert not set(listed) & (YOUTH_TAGS | EXPLICIT_TAGS | SUGGESTIVE_TAGS)
    v4stack.emu.assert_no_violations()


async def test_image_by_id_stats_and_about_on_v4(v4stack: Stack) -> None:
    async with v4stack.run():
        _, image = await v4stack.ask(v4stack.member, v4stack.general, "image", id="4399")
        (row,) = shown_rows(v4stack, image)
        assert row.id == 4399
        _, uuid_id = await v4stack.ask(
            v4stack.member, v4stack.general, "image", id="819fa328-c50a-4433-b458-af3e8060e097"
        )
        assert is_ephemeral(uuid_id)
        assert "whole numbers" in message_text(uuid_id)
        _, stats = await v4stack.ask(v4stack.member, v4stack.general, "stats")
        ratings = next(f for f in stats["embeds"][0]["fields"] if f["name"] == "Ratings")
        names = [line.split(":")[0] for line in ratings["value"].splitlines()]
        assert names == ["Safe", "Suggestive", "Borderline", "Explicit"]
    v4stack.emu.assert_no_violations()


async def test_a_v1_gallery_clicked_after_switching_to_v4_says_so(spicy: Stack) -> None:
    data = spicy.dataset()
    artist = max(data.artists, key=lambda a: len(data.images_by_artist(a.id)))
    async with spicy.run():
        rec, _ = await spicy.ask(spicy.member, spicy.general, "artist", name=artist.name)
        message = message_of(rec)
        (next_page,) = [c for c in custom_ids(message, "neko:gal:") if c.endswith(":n")]
    async with (
        FakeNekosV4API() as v4,
        spicy.run(NEKOS_API_BASE_URL=v4.base_url, NEKOS_API_TOKEN=""),
    ):
        rec, _ = await spicy.press(spicy.member, message, next_page)
        await rec.wait_until(lambda r: bool(r.followups), 5.0)
        notice = rec.followups[-1].snapshot()
        assert is_ephemeral(notice)
        assert "can't turn pages any more" in message_text(notice)
        # Its page buttons are disabled; the links still work.
        assert message.find_component(next_page)["disabled"] is True  # type: ignore[index]
    spicy.emu.assert_no_violations()
