"""What members and admins see: exact ratings, artists by name, user installs, honest errors,
cooldowns that only count real answers, and artist lookup by name."""

from __future__ import annotations

from bot.nekos.models import Rating
from tests.e2e.conftest import (
    Stack,
    check_shown,
    is_ephemeral,
    message_text,
    shown_image_ids,
)
from tests.fakes.discord_emulator import ChannelType


async def test_rating_option_shows_exactly_that_rating(spicy: Stack) -> None:
    data = spicy.dataset()
    async with spicy.run():
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        for rating in (Rating.NSFW, Rating.QUESTIONABLE, Rating.SFW):
            ids: list[str] = []
            for _ in range(2):
                _, answer = await spicy.ask(
                    spicy.member, spicy.lounge, "random", count=10, rating=rating.label
                )
                assert not is_ephemeral(answer), message_text(answer)
                ids += shown_image_ids(answer)
            assert ids
            assert set(check_shown(data, ids, Rating.NSFW)) == {rating}

        # Above what the channel allows: a refusal in words and no image.
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="questionable")
        _, refused = await spicy.ask(spicy.member, spicy.lounge, "random", rating="nsfw")
        assert is_ephemeral(refused)
        assert not shown_image_ids(refused)
        text = message_text(refused)
        assert "This channel shows images up to **questionable**" in text
        assert "`/neko-config channel`" in text
    spicy.emu.assert_no_violations()


async def test_every_artist_is_named_on_random_images(stack: Stack) -> None:
    data = stack.dataset()
    shown: list[tuple[str, dict[str, object]]] = []
    async with stack.run():
        while len(shown) < 30:
            _, answer = await stack.ask(stack.member, stack.general, "random", count=10)
            embeds = answer["embeds"]
            assert isinstance(embeds, list)
            for image_id, embed in zip(shown_image_ids(answer), embeds, strict=True):
                shown.append((image_id, embed))
    by_id_only = 0
    for image_id, embed in shown[:30]:
        row = data.image_by_id[image_id]
        author = embed.get("author")
        if row.artist_id is None:
            assert author is None
            continue
        artist = data.artist_by_id[row.artist_id]
        by_id_only += stack.api.artist_is_bare_id(row)
        assert isinstance(author, dict)
        assert author["name"] == f"Artist: {artist.name}"
        if artist.url:
            assert author.get("url") == artist.url
    assert "Unknown artist" not in str(shown)
    assert by_id_only > 0  # the reference shape (artist as a bare id) was among them
    stack.emu.assert_no_violations()


async def test_neko_works_as_a_user_install_and_shows_only_sfw(spicy: Stack) -> None:
    data = spicy.dataset()
    emu = spicy.emu
    elsewhere = emu.add_guild("No bot here", spicy.owner, bot_in_guild=False)
    emu.add_member(elsewhere, spicy.member)
    foreign = emu.add_channel(elsewhere, ChannelType.GUILD_TEXT, "spicy", nsfw=True)
    friend = emu.add_user("friend")
    group = emu.private_channel([spicy.member, friend, spicy.owner])
    dm = emu.dm_channel(spicy.member)
    async with spicy.run():
        neko = emu.find_command("neko", spicy.general)
        config = emu.find_command("neko-config", spicy.general)
        assert sorted(neko["integration_types"]) == [0, 1]
        assert sorted(neko["contexts"]) == [0, 1, 2]
        assert config["integration_types"] == [0]
        assert config["contexts"] == [0]
        for place in (foreign, group, dm):
            ids: list[str] = []
            for _ in range(2):
                _, answer = await spicy.ask(spicy.member, place, "random", count=10)
                assert not is_ephemeral(answer), message_text(answer)
                ids += shown_image_ids(answer)
            assert set(check_shown(data, ids, Rating.SFW)) == {Rating.SFW}
            rec = await emu.slash(spicy.member, place, "neko-config", subcommand="show")
            assert not rec.dispatched, f"/neko-config reached the bot in {place.name!r}"
    spicy.emu.assert_no_violations()


async def test_about_shows_error_details_only_to_server_managers(stack: Stack) -> None:
    async with stack.run():
        stack.api.fail_next(3, status=500, message="**boom** [x](https://evil.example)")
        _, failed = await stack.ask(stack.member, stack.general, "stats")
        assert is_ephemeral(failed)
        assert "boom" not in message_text(failed)

        _, public = await stack.ask(stack.member, stack.general, "about")
        assert not is_ephemeral(public)
        text = message_text(public)
        assert "having trouble" in text
        assert "boom" not in text
        assert "evil" not in text

        _, private = await stack.ask(stack.admin, stack.general, "about")
        assert is_ephemeral(private)
        details = message_text(private)
        assert "Last API error (only you can see this)" in details
        assert "\\*\\*boom\\*\\*" in details  # shown escaped, never as markdown
    stack.emu.assert_no_violations()


async def test_input_errors_do_not_use_up_the_cooldown(stack: Stack) -> None:
    async with stack.run(COOLDOWN_USES="2", COOLDOWN_SECONDS="60"):
        for typo in ("catgrl", "maidd", "foxgrl"):
            _, answer = await stack.ask(stack.member, stack.general, "random", categories=typo)
            assert "I don't know the category" in message_text(answer)
        _, bad_id = await stack.ask(stack.member, stack.general, "image", id="not-an-id")
        assert "isn't an image id" in message_text(bad_id)
        for _ in range(2):
            _, served = await stack.ask(stack.member, stack.general, "random")
            assert len(shown_image_ids(served)) == 1, message_text(served)
        _, slowed = await stack.ask(stack.member, stack.general, "random")
        assert "Slow down" in message_text(slowed)
    stack.emu.assert_no_violations()


async def test_artist_found_by_exact_name_with_special_characters(stack: Stack) -> None:
    data = stack.dataset()
    special = [a for a in data.artists if any(ch in a.name for ch in "%_|*+[(\\")]
    assert special
    async with stack.run():
        for artist in special:
            _, card = await stack.ask(stack.member, stack.general, "artist", name=artist.name)
            assert not is_ephemeral(card), (artist.name, message_text(card))
            assert f"Artist {artist.id}" in str(card["embeds"][0]["footer"]["text"])
            assert not card.get("content")  # exact: no "closest name" note
    stack.emu.assert_no_violations()


async def test_artist_by_a_near_name_says_which_artist_is_shown(stack: Stack) -> None:
    data = stack.dataset()
    artist = next(a for a in data.artists if len(a.name) > 6 and a.name.isalpha())
    typed = artist.name[:-1]
    assert all(a.name.casefold() != typed.casefold() for a in data.artists)
    async with stack.run():
        _, card = await stack.ask(stack.member, stack.general, "artist", name=typed)
        assert not is_ephemeral(card)
        shown_id = str(card["embeds"][0]["footer"]["text"]).split()[1]
        shown = data.artist_by_id[shown_id]
        assert f"No artist is called `{typed}`; showing **{shown.name}**" in str(card["content"])
    stack.emu.assert_no_violations()
