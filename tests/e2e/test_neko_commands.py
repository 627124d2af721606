"""Every ``/neko`` command, autocomplete and button, as a member sees them through Discord."""

from __future__ import annotations

import re
import uuid

from bot import __version__
from bot.replies import GALLERY_LIMIT
from tests.e2e.conftest import (
    Stack,
    custom_ids,
    is_ephemeral,
    message_of,
    message_text,
    shown_image_ids,
)
from tests.fakes.dataset import ArtistRow, CharacterRow, Dataset
from tests.fakes.discord_emulator import InteractionRecord


def _prolific_artist(data: Dataset) -> ArtistRow:
    """The artist with the most sfw images (their gallery has many pages everywhere)."""
    return max(
        data.artists,
        key=lambda a: sum(1 for i in data.images_by_artist(a.id) if i.nsfw == "sfw"),
    )


def _character_with_two_ages(data: Dataset) -> CharacterRow:
    return next(c for c in data.characters if c.ages and len(c.ages) == 2)


def _footer(data: dict[str, object], embed: int = -1) -> str:
    embeds = data.get("embeds")
    assert isinstance(embeds, list), f"no embeds in {data}"
    assert embeds, f"no embeds in {data}"
    return str((embeds[embed].get("footer") or {}).get("text") or "")


async def test_random_shows_one_then_three_images_of_the_asked_category(stack: Stack) -> None:
    data = stack.dataset()
    catgirl = data.category_named("catgirl").id
    async with stack.run():
        rec, one = await stack.ask(stack.member, stack.general, "random")
        assert not is_ephemeral(one)
        assert len(shown_image_ids(one)) == 1
        assert custom_ids(message_of(rec), "neko:again:")

        rec, three = await stack.ask(
            stack.member, stack.general, "random", count=3, categories="catgirl"
        )
        ids = shown_image_ids(three)
        assert len(ids) == 3 == len(set(ids))
        for image_id in ids:
            image = data.image_by_id[image_id]
            assert catgirl in image.category_ids
            assert image.nsfw == "sfw"
        assert len(custom_ids(message_of(rec), "neko:again:")) == 1
    stack.emu.assert_no_violations()


async def test_random_with_an_unknown_category_suggests_a_known_one(stack: Stack) -> None:
    async with stack.run():
        before = len(stack.api.api_requests)
        _, answer = await stack.ask(stack.member, stack.general, "random", categories="catgrl")
        assert is_ephemeral(answer)
        text = message_text(answer)
        assert "I don't know the category `catgrl`" in text
        assert "Did you mean" in text
        assert "`catgirl`" in text
        assert not shown_image_ids(answer)
        # Rejected before any upstream call: a typo costs no rate-limit slot.
        assert not [r for r in stack.api.api_requests[before:] if "random" in r.path]
    stack.emu.assert_no_violations()


async def test_artist_gallery_pages_forward_and_back(stack: Stack) -> None:
    artist = _prolific_artist(stack.dataset())
    fetched = stack.dataset().images_by_artist(artist.id)[:GALLERY_LIMIT]
    assert len(fetched) > 25
    # Only the first upstream page is fetched until someone pages past it: "of N+".
    pages = f"{sum(1 for image in fetched[:25] if image.nsfw == 'sfw')}+"
    async with stack.run():
        rec, first = await stack.ask(stack.member, stack.general, "artist", name=artist.name)
        assert not is_ephemeral(first)
        assert first["embeds"][0]["title"] == artist.name
        assert _footer(first).startswith(f"Page 1 of {pages}")
        page_one = shown_image_ids(first)
        message = message_of(rec)
        prev_id, next_id = custom_ids(message, "neko:gal:")
        assert message.find_component(prev_id)["disabled"] is True  # type: ignore[index]

        _, second = await stack.press(stack.member, message, next_id)
        assert _footer(second).startswith(f"Page 2 of {pages}")
        assert shown_image_ids(second) != page_one
        assert shown_image_ids(second)[0] in {
            i.id for i in stack.dataset().images_by_artist(artist.id)
        }

        prev_id = custom_ids(message, "neko:gal:")[0]
        _, back = await stack.press(stack.member, message, prev_id)
        assert _footer(back).startswith(f"Page 1 of {pages}")
        assert shown_image_ids(back) == page_one
        # Paging edits the one message in place.
        assert rec.followups == [] or rec.followups[-1] is message
    stack.emu.assert_no_violations()


async def test_character_profile_shows_the_characters_details(stack: Stack) -> None:
    character = _character_with_two_ages(stack.dataset())
    async with stack.run():
        typed = character.name[:10]
        _, answer = await stack.ask(stack.member, stack.general, "character", name=typed)
        embed = answer["embeds"][0]
        assert embed["title"] == character.name
        assert character.id in _footer(answer)
        fields = {f["name"]: f["value"] for f in embed.get("fields") or []}
        assert fields["Ages"] == ", ".join(map(str, character.ages or ()))
    stack.emu.assert_no_violations()


async def test_image_by_id_good_malformed_and_missing(stack: Stack) -> None:
    image = next(i for i in stack.dataset().images if i.nsfw == "sfw")
    async with stack.run():
        _, good = await stack.ask(stack.member, stack.general, "image", id=image.id.upper())
        assert not is_ephemeral(good)
        assert shown_image_ids(good) == [image.id]

        _, malformed = await stack.ask(stack.member, stack.general, "image", id="not-an-id")
        assert is_ephemeral(malformed)
        assert "That isn't an image id" in message_text(malformed)

        missing = str(uuid.UUID(int=12345))
        _, absent = await stack.ask(stack.member, stack.general, "image", id=missing)
        assert is_ephemeral(absent)
        assert "There's no image with that id" in message_text(absent)
    stack.emu.assert_no_violations()


async def test_category_list_pages_with_buttons(stack: Stack) -> None:
    sfw_names = {c.name for c in stack.dataset().categories if not c.nsfw}
    pages = -(-len(sfw_names) // 10)
    async with stack.run():
        rec, first = await stack.ask(stack.member, stack.general, "category")
        assert first["embeds"][0]["title"] == "Categories"
        assert _footer(first) == f"Page 1 of {pages}"
        message = message_of(rec)
        next_id = custom_ids(message, "neko:cat:")[1]

        _, second = await stack.press(stack.member, message, next_id)
        assert _footer(second) == f"Page 2 of {pages}"
        listed = message_text(first) + message_text(second)
        assert "ecchi" not in listed  # nsfw categories stay hidden in a sfw channel
        assert second["embeds"][0]["description"] != first["embeds"][0]["description"]

        _, found = await stack.ask(stack.member, stack.general, "category", search="foxgirl")
        assert "foxgirl" in message_text(found)
        assert _footer(found) == "Page 1 of 1"
    stack.emu.assert_no_violations()


async def test_stats_and_about(stack: Stack) -> None:
    async with stack.run():
        _, stats = await stack.ask(stack.member, stack.general, "stats")
        embed = stats["embeds"][0]
        assert embed["title"] == "Nekos API statistics"
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Images"].replace(",", "") == str(len(stack.dataset().images))
        assert "API version" in _footer(stats)

        _, about = await stack.ask(stack.member, stack.general, "about")
        fields = {f["name"]: f["value"] for f in about["embeds"][0]["fields"]}
        assert fields["Version"] == __version__
        assert fields["Servers"] == "1"
        assert int(fields["API requests sent"].replace(",", "")) > 0
        assert re.fullmatch(r"[\d,]+ images?", fields["Image pool"])  # no /neko random asked yet
        assert fields["Busy answers"] == "0"
        assert fields["Request budget"] == "shared through the data folder"
    stack.emu.assert_no_violations()


async def _complete(
    stack: Stack, subcommand: str, option: str, typed: str
) -> tuple[InteractionRecord, list[dict[str, object]]]:
    rec = await stack.emu.autocomplete(
        stack.member,
        stack.general,
        "neko",
        subcommand=subcommand,
        focused=option,
        options={option: typed},
    )
    response = await rec.wait_response(3.0)
    assert response.accepted
    assert response.type == 8
    assert response.elapsed <= stack.emu.response_deadline
    choices = rec.choices
    assert choices is not None
    assert len(choices) <= 25
    return rec, choices


async def test_autocomplete_offers_at_most_25_matching_choices(stack: Stack) -> None:
    data = stack.dataset()
    async with stack.run():
        _, everything = await _complete(stack, "random", "categories", "")
        assert len(everything) == 25  # 30 sfw categories, capped at Discord's 25

        _, cats = await _complete(stack, "random", "categories", "catgirl, fox")
        assert {"name": "catgirl, foxgirl", "value": "catgirl, foxgirl"} in cats

        _, hidden = await _complete(stack, "random", "categories", "ecc")
        assert all("ecchi" not in str(c["value"]) for c in hidden)

        artist = _prolific_artist(data)
        _, artists = await _complete(stack, "artist", "name", artist.name[:4].lower())
        assert {"name": artist.name, "value": artist.id} in artists

        character = _character_with_two_ages(data)
        _, characters = await _complete(stack, "character", "name", character.name[:5])
        assert {"name": character.name, "value": character.id} in characters

        # What autocomplete gave is what the command takes.
        value = str(artists[0]["value"])
        _, card = await stack.ask(stack.member, stack.general, "artist", name=value)
        assert card["embeds"][0]["title"] == artists[0]["name"]
    stack.emu.assert_no_violations()


async def test_another_button_sends_a_new_message(stack: Stack) -> None:
    async with stack.run():
        rec, first = await stack.ask(stack.member, stack.general, "random", categories="maid")
        message = message_of(rec)
        (again,) = custom_ids(message, "neko:again:")

        click, second = await stack.press(stack.member, message, again)
        assert not is_ephemeral(second)
        new = message_of(click)
        assert new.id != message.id
        assert len(shown_image_ids(second)) == 1
        maid = stack.dataset().category_named("maid").id
        assert maid in stack.dataset().image_by_id[shown_image_ids(second)[0]].category_ids
        # The first message is left as it was.
        assert shown_image_ids({"embeds": message.embeds}) == shown_image_ids(first)
    stack.emu.assert_no_violations()


async def test_someone_elses_buttons_answer_with_an_ephemeral_hint(stack: Stack) -> None:
    async with stack.run():
        rec, _ = await stack.ask(stack.member, stack.general, "random")
        message = message_of(rec)
        (again,) = custom_ids(message, "neko:again:")
        calls_before = len(stack.api.api_requests)

        click, hint = await stack.press(stack.admin, message, again)
        assert is_ephemeral(hint)
        assert "belong to whoever ran the command" in message_text(hint)
        assert "/neko random" in message_text(hint)
        assert len(click.followups) == 0

        rec, _ = await stack.ask(stack.member, stack.general, "category")
        pager = message_of(rec)
        _, hint = await stack.press(stack.owner, pager, custom_ids(pager, "neko:cat:")[1])
        assert is_ephemeral(hint)
        assert "/neko category" in message_text(hint)
        assert len(stack.api.api_requests) == calls_before  # a refused click costs nothing
    stack.emu.assert_no_violations()


async def test_a_member_over_the_cooldown_is_told_to_slow_down(stack: Stack) -> None:
    async with stack.run(COOLDOWN_USES="2", COOLDOWN_SECONDS="60"):
        for _ in range(2):
            _, answer = await stack.ask(stack.member, stack.general, "random")
            assert shown_image_ids(answer)
        _, slow = await stack.ask(stack.member, stack.general, "random")
        assert is_ephemeral(slow)
        assert "Slow down a little" in message_text(slow)
        assert not shown_image_ids(slow)
        # The cooldown is per member: someone else is served.
        _, other = await stack.ask(stack.admin, stack.general, "random")
        assert shown_image_ids(other)
    stack.emu.assert_no_violations()
