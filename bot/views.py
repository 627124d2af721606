"""Buttons that survive restarts: every handler is rebuilt from the ``custom_id`` alone.

Each dynamic item's state (owner, query, page) is packed into a ``custom_id`` of at most 100
characters. Clicks are routed to the bot's :class:`ButtonHandler`, which re-checks the channel's
rating policy at click time (an admin may have lowered it since the message was sent).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

import discord

from .nekos.models import Rating
from .text import BUTTON_URL_LIMIT, safe_url

__all__ = [
    "ANYONE",
    "AnotherButton",
    "ButtonHandler",
    "CategoryPageButton",
    "GalleryPageButton",
    "another_custom_id",
    "button_name",
    "dynamic_items",
    "link_button",
]

CUSTOM_ID_LIMIT = 100
_RATING_CODE = {Rating.SFW: "s", Rating.QUESTIONABLE: "q", Rating.NSFW: "n"}
_CODE_RATING = {v: k for k, v in _RATING_CODE.items()}
NOT_YOURS = "These buttons belong to whoever ran the command; run `/neko {command}` for your own."
_BUTTON_NAMES = {"again": "another", "gal": "gallery_page", "cat": "category_page"}
ANYONE = 0
"""The owner of buttons anyone in the channel may use (a scheduled post's)."""


@runtime_checkable
class ButtonHandler(Protocol):
    """What the bot does when a persistent button is clicked."""

    async def on_another(
        self,
        interaction: discord.Interaction[Any],
        categories: tuple[str, ...],
        count: int,
        rating: Rating | None,
    ) -> None: ...

    async def on_gallery_page(
        self, interaction: discord.Interaction[Any], artist_id: str, page: int
    ) -> None: ...

    async def on_category_page(
        self, interaction: discord.Interaction[Any], page: int, search: str
    ) -> None: ...


def _handler(interaction: discord.Interaction[Any]) -> ButtonHandler:
    handler = getattr(interaction.client, "button_handler", None)
    if not isinstance(handler, ButtonHandler):
        raise RuntimeError("the bot has no button handler")
    return handler


async def _owner_only(interaction: discord.Interaction[Any], owner: int, command: str) -> bool:
    if owner == ANYONE or interaction.user.id == owner:
        return True
    await interaction.response.send_message(NOT_YOURS.format(command=command), ephemeral=True)
    return False


# ------------------------------------------------------------------------------- Another


def another_custom_id(
    owner: int, count: int, rating: Rating | None, categories: tuple[str, ...]
) -> str | None:
    """The custom_id for "Another", or None when the query does not fit in 100 characters."""
    code = _RATING_CODE[rating] if rating is not None else "-"
    custom_id = f"neko:again:{owner}:{count}:{code}:{','.join(categories)}"
    return custom_id if len(custom_id) <= CUSTOM_ID_LIMIT else None


class AnotherButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"neko:again:(?P<owner>\d+):(?P<count>\d{1,2}):(?P<rating>[sqn-]):(?P<cats>.*)",
):
    """Runs the same ``/neko random`` query again, for the clicker (owner :data:`ANYONE`: any
    member of the channel may click, e.g. under a scheduled post; their cooldown applies)."""

    def __init__(
        self, owner: int, count: int, rating: Rating | None, categories: tuple[str, ...]
    ) -> None:
        custom_id = another_custom_id(owner, count, rating, categories)
        if custom_id is None:
            raise ValueError("query too long for a custom_id")
        super().__init__(
            discord.ui.Button(
                label="Another", style=discord.ButtonStyle.primary, emoji="🔁", custom_id=custom_id
            )
        )
        self.owner, self.count, self.rating, self.categories = owner, count, rating, categories

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> AnotherButton:
        cats = tuple(c for c in match["cats"].split(",") if c)
        rating = _CODE_RATING.get(match["rating"])
        count = min(max(int(match["count"]), 1), 10)
        return cls(int(match["owner"]), count, rating, cats)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await _owner_only(interaction, self.owner, "random")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).on_another(
            interaction, self.categories, self.count, self.rating
        )


# ------------------------------------------------------------------------------- Gallery


def _pager_button(direction: str, custom_id: str, disabled: bool) -> discord.ui.Button[Any]:
    label = "◀ Prev" if direction == "p" else "Next ▶"
    return discord.ui.Button(
        label=label, style=discord.ButtonStyle.secondary, custom_id=custom_id, disabled=disabled
    )


class GalleryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"neko:gal:(?P<owner>\d+):(?P<artist>[0-9a-fA-F-]{36}):(?P<page>\d{1,4}):(?P<dir>[pn])",
):
    """Prev / Next in an artist's gallery; ``page`` is the page the click goes to (1-based)."""

    def __init__(
        self, owner: int, artist_id: str, page: int, direction: str, *, disabled: bool = False
    ) -> None:
        custom_id = f"neko:gal:{owner}:{artist_id}:{page}:{direction}"
        super().__init__(_pager_button(direction, custom_id, disabled))
        self.owner, self.artist_id, self.page = owner, artist_id, page

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> GalleryPageButton:
        return cls(int(match["owner"]), match["artist"], int(match["page"]), match["dir"])

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await _owner_only(interaction, self.owner, "artist")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).on_gallery_page(interaction, self.artist_id, self.page)


# ------------------------------------------------------------------------------ Categories


class CategoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"neko:cat:(?P<owner>\d+):(?P<page>\d{1,4}):(?P<dir>[pn]):(?P<search>.*)",
):
    """Prev / Next in the category list."""

    def __init__(
        self, owner: int, page: int, direction: str, search: str, *, disabled: bool = False
    ) -> None:
        custom_id = f"neko:cat:{owner}:{page}:{direction}:{search}"[:CUSTOM_ID_LIMIT]
        super().__init__(_pager_button(direction, custom_id, disabled))
        self.owner, self.page, self.search = owner, page, search

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> CategoryPageButton:
        return cls(int(match["owner"]), int(match["page"]), match["dir"], match["search"])

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await _owner_only(interaction, self.owner, "category")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).on_category_page(interaction, self.page, self.search)


def pager_items(make: Any, page: int, pages: int) -> list[discord.ui.Item[Any]]:
    """Prev / Next items for ``page`` of ``pages``; ``make(page, direction, disabled)``."""
    return [
        make(max(page - 1, 1), "p", page <= 1),
        make(min(page + 1, pages), "n", page >= pages),
    ]


def link_button(label: str, url: str | None) -> discord.ui.Button[Any] | None:
    """A link button to ``url`` after the URL rule (:func:`bot.text.safe_url`, at most 512
    characters as Discord requires of button links), or ``None`` when it is not safe."""
    safe = safe_url(url, limit=BUTTON_URL_LIMIT)
    return None if safe is None else discord.ui.Button(label=label, url=safe)


def button_name(custom_id: str) -> str:
    """What a press of the button ``custom_id`` is called in the metrics: ``button:another``,
    ``button:gallery_page``, ``button:category_page`` (``button:other`` for anything else)."""
    prefix, _, rest = custom_id.partition(":")
    name = _BUTTON_NAMES.get(rest.partition(":")[0]) if prefix == "neko" else None
    return f"button:{name or 'other'}"


def dynamic_items() -> tuple[type[discord.ui.DynamicItem[Any]], ...]:
    """Every persistent item class, for ``bot.add_dynamic_items``."""
    return (AnotherButton, GalleryPageButton, CategoryPageButton)
