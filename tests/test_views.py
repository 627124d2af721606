"""Persistent buttons: custom_ids fit, round-trip through their templates, and guard the owner."""

from __future__ import annotations

import re
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot.nekos.models import Rating
from bot.views import (
    CUSTOM_ID_LIMIT,
    AnotherButton,
    CategoryPageButton,
    GalleryPageButton,
    another_custom_id,
    dynamic_items,
    pager_items,
)

OWNER = 18446744073709551615  # the largest snowflake: the longest owner id
OTHER = 123456789012345678
ARTIST = "0f8c3a52-6b1e-4c8e-9d7a-2b5e4f6a7c81"


def _interaction(user_id: int, handler: Any = None) -> MagicMock:
    interaction = MagicMock(spec_set=["user", "response", "client"])
    interaction.user.id = user_id
    interaction.response.send_message = AsyncMock()
    interaction.client.button_handler = handler
    return interaction


async def _round_trip(cls: type[discord.ui.DynamicItem[Any]], item: Any) -> Any:
    """Rebuild ``item`` from its custom_id alone, the way discord.py routes a click."""
    custom_id = item.item.custom_id
    assert len(custom_id) <= CUSTOM_ID_LIMIT
    pattern: re.Pattern[str] = cls.__discord_ui_compiled_template__
    match = pattern.fullmatch(custom_id)
    assert match is not None, custom_id
    rebuilt = await cls.from_custom_id(_interaction(OWNER), item.item, match)
    assert rebuilt.item.custom_id == custom_id
    return rebuilt


class RecordingHandler:
    """A ButtonHandler that records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def on_another(
        self,
        interaction: Any,
        categories: tuple[str, ...],
        count: int,
        rating: Rating | None,
    ) -> None:
        self.calls.append(("another", categories, count, rating))

    async def on_gallery_page(self, interaction: Any, artist_id: str, page: int) -> None:
        self.calls.append(("gallery", artist_id, page))

    async def on_category_page(self, interaction: Any, page: int, search: str) -> None:
        self.calls.append(("category", page, search))


# ------------------------------------------------------------------------------ Another


@pytest.mark.parametrize("rating", [None, Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW])
@pytest.mark.parametrize(
    "categories", [(), ("catgirl",), ("50% off", "under_score", "猫耳"), ("(paren)", "a:b")]
)
async def test_another_round_trips(rating: Rating | None, categories: tuple[str, ...]) -> None:
    button = AnotherButton(OWNER, 10, rating, categories)
    rebuilt = await _round_trip(AnotherButton, button)
    assert rebuilt.owner == OWNER
    assert rebuilt.count == 10
    assert rebuilt.rating == rating
    assert rebuilt.categories == categories


async def test_another_fits_exactly_at_the_limit() -> None:
    base = another_custom_id(OWNER, 10, Rating.QUESTIONABLE, ("",))
    assert base is not None
    name = "x" * (CUSTOM_ID_LIMIT - len(base))
    custom_id = another_custom_id(OWNER, 10, Rating.QUESTIONABLE, (name,))
    assert custom_id is not None
    assert len(custom_id) == CUSTOM_ID_LIMIT
    await _round_trip(AnotherButton, AnotherButton(OWNER, 10, Rating.QUESTIONABLE, (name,)))


def test_another_custom_id_is_none_when_too_long() -> None:
    categories = tuple(f"category number {i}" for i in range(6))
    assert another_custom_id(OWNER, 10, None, categories) is None
    with pytest.raises(ValueError, match="too long"):
        AnotherButton(OWNER, 10, None, categories)


async def test_another_clamps_a_tampered_count() -> None:
    pattern = AnotherButton.__discord_ui_compiled_template__
    for raw, expected in (("0", 1), ("99", 10), ("5", 5)):
        match = pattern.fullmatch(f"neko:again:{OTHER}:{raw}:s:maid")
        assert match is not None
        rebuilt = await AnotherButton.from_custom_id(_interaction(OTHER), MagicMock(), match)
        assert rebuilt.count == expected
        assert rebuilt.rating is Rating.SFW


def test_another_template_rejects_foreign_ids() -> None:
    pattern = AnotherButton.__discord_ui_compiled_template__
    for custom_id in ("neko:again:abc:1:s:", "neko:again:1:1:x:", "neko:gal:1:2:3:n", "again"):
        assert pattern.fullmatch(custom_id) is None


# ------------------------------------------------------------------------------ Gallery


@pytest.mark.parametrize(("page", "direction"), [(1, "p"), (2, "n"), (50, "n"), (9999, "p")])
async def test_gallery_round_trips(page: int, direction: str) -> None:
    button = GalleryPageButton(OWNER, ARTIST, page, direction, disabled=True)
    assert button.item.disabled
    rebuilt = await _round_trip(GalleryPageButton, button)
    assert (rebuilt.owner, rebuilt.artist_id, rebuilt.page) == (OWNER, ARTIST, page)
    assert rebuilt.item.label == ("◀ Prev" if direction == "p" else "Next ▶")


# ------------------------------------------------------------------------------ Categories


@pytest.mark.parametrize("search", ["", "cat", "50% off: (paren)", "猫" * 50, "x" * 50, "a,b:c"])
async def test_category_page_round_trips(search: str) -> None:
    button = CategoryPageButton(OWNER, 12, "n", search)
    rebuilt = await _round_trip(CategoryPageButton, button)
    assert (rebuilt.owner, rebuilt.page) == (OWNER, 12)
    assert rebuilt.search == search


async def test_category_page_with_an_overlong_search_still_fits_and_routes() -> None:
    button = CategoryPageButton(OWNER, 1, "n", "y" * 200)
    rebuilt = await _round_trip(CategoryPageButton, button)
    assert rebuilt.search == "y" * len(rebuilt.search)
    assert rebuilt.search


# ------------------------------------------------------------------------------ pager


@pytest.mark.parametrize(
    ("page", "pages", "prev", "next_"),
    [(1, 1, (1, True), (1, True)), (1, 3, (1, True), (2, False)), (2, 3, (1, False), (3, False)),
     (3, 3, (2, False), (3, True))],
)  # fmt: skip
def test_pager_targets_and_disabled_states(
    page: int, pages: int, prev: tuple[int, bool], next_: tuple[int, bool]
) -> None:
    made = pager_items(lambda p, d, off: (p, d, off), page, pages)
    assert made == [(prev[0], "p", prev[1]), (next_[0], "n", next_[1])]


def test_dynamic_items_lists_every_persistent_button() -> None:
    assert set(dynamic_items()) == {AnotherButton, GalleryPageButton, CategoryPageButton}


# ------------------------------------------------------------------------------ owner only


@pytest.mark.parametrize(
    ("item", "command"),
    [
        (lambda: AnotherButton(OWNER, 1, None, ("maid",)), "random"),
        (lambda: GalleryPageButton(OWNER, ARTIST, 2, "n"), "artist"),
        (lambda: CategoryPageButton(OWNER, 2, "n", "cat"), "category"),
    ],
)
async def test_only_the_owner_may_press(item: Any, command: str) -> None:
    button = item()
    stranger = _interaction(OTHER)
    assert await button.interaction_check(stranger) is False
    stranger.response.send_message.assert_awaited_once()
    args, kwargs = stranger.response.send_message.await_args
    assert kwargs["ephemeral"] is True
    assert f"/neko {command}" in args[0]

    owner = _interaction(OWNER)
    assert await button.interaction_check(owner) is True
    owner.response.send_message.assert_not_awaited()


async def test_anyone_may_press_another_under_a_scheduled_post() -> None:
    # A scheduled post's buttons belong to nobody in particular (owner 0), and survive restarts.
    button = await _round_trip(AnotherButton, AnotherButton(0, 2, None, ("maid",)))
    for user in (OWNER, OTHER):
        member = _interaction(user)
        assert await button.interaction_check(member) is True
        member.response.send_message.assert_not_awaited()


async def test_clicks_reach_the_bots_button_handler() -> None:
    handler = RecordingHandler()
    await AnotherButton(OWNER, 3, Rating.SFW, ("maid",)).callback(_interaction(OWNER, handler))
    await GalleryPageButton(OWNER, ARTIST, 4, "n").callback(_interaction(OWNER, handler))
    await CategoryPageButton(OWNER, 2, "p", "hair").callback(_interaction(OWNER, handler))
    assert handler.calls == [
        ("another", ("maid",), 3, Rating.SFW),
        ("gallery", ARTIST, 4),
        ("category", 2, "hair"),
    ]


async def test_a_click_without_a_handler_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="button handler"):
        await AnotherButton(OWNER, 1, None, ()).callback(_interaction(OWNER, None))
