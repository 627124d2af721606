"""The in-memory catalogue behind autocomplete: categories, artists and characters.

Filled at start-up and refreshed in the background at the pacer's background priority, so a
keystroke never waits for the network (Discord gives autocomplete 3 seconds and no deferral).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .autocomplete import NameIndex, split_categories
from .gating import category_visible
from .nekos.errors import NekosError
from .nekos.models import Artist, Category, Character, Rating
from .text import clean

__all__ = ["Catalog", "CatalogSource", "CategoryCheck"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CategoryCheck:
    """The result of checking a member's comma-separated categories against the catalogue."""

    known: tuple[str, ...]
    unknown: tuple[str, ...]
    suggestions: dict[str, list[str]]
    hidden: tuple[str, ...] = ()
    """Known, but flagged nsfw where the channel allows only sfw."""


class CatalogSource:
    """What the catalogue loads from: three coroutine functions returning full lists."""

    def __init__(
        self,
        categories: Callable[[], Awaitable[Sequence[Category]]],
        artists: Callable[[], Awaitable[Sequence[Artist]]],
        characters: Callable[[], Awaitable[Sequence[Character]]],
    ) -> None:
        self.categories = categories
        self.artists = artists
        self.characters = characters


class Catalog:
    """Name indexes for autocomplete and validation, refreshed every ``refresh_every`` seconds."""

    def __init__(self, source: CatalogSource, *, refresh_every: float = 1800.0) -> None:
        self._source = source
        self._refresh_every = refresh_every
        self._categories: dict[str, Category] = {}
        self._listed: tuple[Category, ...] = ()
        self.category_index: NameIndex[str] = NameIndex()
        self._sfw_category_index: NameIndex[str] = NameIndex()
        self.artist_index: NameIndex[str] = NameIndex()
        self.character_index: NameIndex[str] = NameIndex()
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    # ----------------------------------------------------------------- loading

    def set_categories(self, categories: Sequence[Category]) -> None:
        # Choices carry a category's clean name (what members can see and type), which
        # category() resolves back to the category and its exact API name.
        by_name = {c.name.casefold(): c for c in categories}
        self._listed = tuple(by_name.values())
        shown = {clean(c.name).casefold(): c for c in categories}
        shown.pop("", None)  # a name of nothing but blanks and invisibles can't be asked for
        self._categories = shown | by_name
        self.category_index.replace((c.name, clean(c.name)) for c in categories)
        self._sfw_category_index.replace(
            (c.name, clean(c.name)) for c in categories if category_visible(c, Rating.SFW)
        )

    def set_artists(self, artists: Sequence[Artist]) -> None:
        self.artist_index.replace((a.name, a.id) for a in artists if a.name)

    def set_characters(self, characters: Sequence[Character]) -> None:
        self.character_index.replace((c.name, c.id) for c in characters)

    async def refresh(self) -> None:
        """Reload every list; a list that fails keeps its previous contents."""
        steps: list[tuple[str, Callable[[], Awaitable[Sequence[object]]], Callable[..., None]]] = [
            ("categories", self._source.categories, self.set_categories),
            ("artists", self._source.artists, self.set_artists),
            ("characters", self._source.characters, self.set_characters),
        ]
        for name, load, apply in steps:
            try:
                apply(await load())
            except NekosError as exc:
                log.warning("Could not refresh the %s list: %s", name, exc)
        self.loaded.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="catalog-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("Catalog refresh failed unexpectedly")
            await asyncio.sleep(self._refresh_every)

    # ----------------------------------------------------------------- queries

    def category(self, name: str) -> Category | None:
        """The category called ``name`` as the API spells it or as it is shown (clean)."""
        found = self._categories.get(name.strip().casefold())
        shown = clean(name).casefold()
        return found if found is not None or not shown else self._categories.get(shown)

    def category_choices(self, query: str, max_rating: Rating) -> list[tuple[str, str]]:
        """Choices for a comma-separated categories option: completes the last name typed.

        Name and value are the same clean text (the names typed so far, then the match), so
        what a member picks is what they saw; :meth:`check_categories` resolves it.
        """
        head, _, last = query.rpartition(",")
        index = self.category_index if max_rating > Rating.SFW else self._sfw_category_index
        typed = [t for t in (clean(name) for name in split_categories(head)) if t]
        already = {t.casefold() for t in typed}
        prefix = ", ".join(typed)
        choices = []
        for _, value in index.match(last.strip()):
            if value.casefold() in already:
                continue
            full = f"{prefix}, {value}" if prefix else value
            if len(full) <= 100:
                choices.append((full, full))
        return choices[:25]

    def check_categories(self, text: str | None, max_rating: Rating) -> CategoryCheck:
        """Split the option and sort names into known / unknown (with suggestions) / hidden."""
        names = split_categories(text)
        if not self._categories:
            # Catalogue not loaded yet: let the API judge the names.
            return CategoryCheck(known=tuple(names), unknown=(), suggestions={})
        known, unknown, hidden = [], [], []
        suggestions: dict[str, list[str]] = {}
        index = self.category_index if max_rating > Rating.SFW else self._sfw_category_index
        for name in names:
            category = self.category(name)
            if category is None:
                unknown.append(name)
                suggestions[name] = index.suggest(name)
            elif not category_visible(category, max_rating):
                hidden.append(name)
            else:
                known.append(category.name)
        return CategoryCheck(tuple(known), tuple(unknown), suggestions, tuple(hidden))

    def visible_categories(self, max_rating: Rating) -> list[Category]:
        return sorted(
            (c for c in self._listed if category_visible(c, max_rating)),
            key=lambda c: c.name.casefold(),
        )
