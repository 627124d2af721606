"""Character and artist lookups answered from the full lists the catalogue loads anyway."""

from __future__ import annotations

import asyncio

from bot.nekos.errors import NotFound
from bot.nekos.models import Artist, Character

from .test_serving import BACKGROUND, INTERACTIVE, FakeLookupSource, make_lookups, settle


async def test_a_listed_character_is_answered_without_an_upstream_call() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    listed = await lookups.character_list(background=True)
    source.gate = asyncio.Event()  # any fill waits here, so the member's answer cannot use it

    character = await lookups.character("ch3")
    await settle()

    assert character is listed[3]
    assert [c[0] for c in source.calls if c[0] == "character"] == ["character"]
    assert [c[2] for c in source.calls if c[0] == "character"] == [BACKGROUND]
    assert lookups.metrics().listed == 1
    source.gate.set()
    await lookups.stop()


async def test_the_background_fill_brings_the_full_record_for_next_time() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    await lookups.character_list()
    full = Character(id="ch3", name="c3", image_count=7)

    async def character(id: str, *, priority: object) -> Character:
        source.calls.append(("character", id, priority))
        return full

    source.character = character  # type: ignore[method-assign]
    first = await lookups.character("ch3")
    assert first.image_count is None
    await settle()

    assert await lookups.character("ch3") is full
    assert [c[0] for c in source.calls].count("character") == 1


async def test_one_fill_at_a_time_per_character_and_stop_cancels_them() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    await lookups.character_list()
    source.gate = asyncio.Event()

    for _ in range(3):
        await lookups.character("ch1")
    await settle()

    assert [c[0] for c in source.calls].count("character") == 1
    await lookups.stop()
    # The upstream call was cancelled too: a later lookup starts a fresh fill.
    source.gate.set()
    await lookups.character("ch1")
    await settle()
    assert [c[0] for c in source.calls].count("character") == 2
    await lookups.stop()


async def test_a_failed_fill_is_swallowed_and_the_list_entry_keeps_serving() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    await lookups.character_list()

    async def character(id: str, *, priority: object) -> Character:
        raise NotFound("gone", status=404, endpoint=f"/character/{id}")

    source.character = character  # type: ignore[method-assign]
    assert (await lookups.character("ch2")).name == "c2"
    await settle()
    assert (await lookups.character("ch2")).name == "c2"
    await lookups.stop()


async def test_an_unlisted_character_is_fetched_for_the_member() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    await lookups.character_list()

    character = await lookups.character("not-listed")

    assert character.id == "not-listed"
    assert [c[2] for c in source.calls if c[0] == "character"] == [INTERACTIVE]
    assert lookups.metrics().listed == 0


async def test_primed_lists_serve_artists_and_characters_and_the_lists_themselves() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    artists = (Artist(id="A1", name="Someone", url="https://x.example"), Artist(id="a2"))
    characters = (Character(id="ch9", name="Nine"),)

    lookups.prime(artists=artists, characters=characters)

    assert await lookups.artist("a1") is artists[0]  # ids compare case-insensitively
    assert (await lookups.artist("a2")).name == "someone"  # no name listed: fetched
    assert await lookups.character("ch9") is characters[0]
    assert await lookups.artist_list() == artists
    assert await lookups.character_list() == characters
    assert [c[0] for c in source.calls if c[2] == INTERACTIVE] == ["artist"]
    await lookups.stop()


async def test_clear_forgets_the_listed_profiles() -> None:
    source = FakeLookupSource()
    lookups = make_lookups(source)
    lookups.prime(characters=(Character(id="ch9", name="Nine"),))
    lookups.clear()

    await lookups.character("ch9")

    assert [c[2] for c in source.calls if c[0] == "character"] == [INTERACTIVE]
