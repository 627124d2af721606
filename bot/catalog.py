"""The in-memory catalogue behind autocomplete: categories, artists and characters, or tags.

Filled at start-up and refreshed in the background at the pacer's background priority, so a
keystroke never waits for the network (Discord gives autocomplete 3 seconds and no deferral).
An API without a category list (v4) has free-form tags instead: the catalogue learns them from
every batch of images the bot fetches (:meth:`Catalog.note_images`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .autocomplete import NameIndex, split_categories
from .gating import DEFAULT_POLICY, ContentPolicy, category_visible, tag_visible
from .nekos.errors import NekosError
from .nekos.models import Artist, Category, Character, Image, Rating
from .text import clean

__all__ = ["MAX_TAGS", "Catalog", "CatalogSource", "CategoryCheck"]

MAX_TAGS = 5000
"""Distinct tags remembered; beyond it the rarest are forgotten."""

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
    """Name indexes for autocomplete and validation, refreshed every ``refresh_every`` seconds.

    ``uses_tags``: the API filters by free-form tags (v4) instead of listed categories; the
    ``categories`` option and ``/neko category`` then work on the tags seen so far.
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        refresh_every: float = 1800.0,
        uses_tags: bool = False,
        policy: ContentPolicy = DEFAULT_POLICY,
    ) -> None:
        self._source = source
        self._refresh_every = refresh_every
        self.uses_tags = uses_tags
        self._policy = policy
        self._tags: Counter[str] = Counter()
        self._tag_indexes: dict[bool, NameIndex[str]] | None = None
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

    def category(self, name: str) -> Category | None:
        """The category called ``name`` as the API spells it or as it is shown (clean)."""
        found = self._categories.get(name.strip().casefold())
        shown = clean(name).casefold()
        return found if found is not None or not shown else self._categories.get(shown)

    # ----------------------------------------------------------------- tags (v4)

    def note_images(self, images: Sequence[Image]) -> None:
        """Learn the tags of a batch of images (called for every batch the pool receives)."""
        if not self.uses_tags:
            return
        for image in images:
            self._tags.update(image.tags)
        if len(self._tags) > MAX_TAGS:
            self._tags = Counter(dict(self._tags.most_common(MAX_TAGS)))
        self._tag_indexes = None

    def visible_tags(self, max_rating: Rating) -> list[tuple[str, int]]:
        """Tags seen so far that may be offered where ``max_rating`` applies, with how many
        images carried them; the most common first."""
        return sorted(
            (
                (tag, n)
                for tag, n in self._tags.items()
                if tag_visible(tag, max_rating, self._policy)
            ),
            key=lambda item: (-item[1], item[0]),
        )

    def _tag_index(self, max_rating: Rating) -> NameIndex[str]:
        if self._tag_indexes is None:
            self._tag_indexes = {
                above: NameIndex(
                    (tag, tag) for tag, _ in self.visible_tags(Rating.NSFW if above else Rating.SFW)
                )
                for above in (False, True)
            }
        return self._tag_indexes[max_rating > Rating.SFW]

    # ----------------------------------------------------------------- queries

    def category_choices(self, query: str, max_rating: Rating) -> list[tuple[str, str]]:
        """Choices for a comma-separated categories (v4: tags) option: completes the last name.

        Name and value are the same clean text (the names typed so far, then the match), so
        what a member picks is what they saw; :meth:`check_categories` resolves it.
        """
        head, _, last = query.rpartition(",")
        if self.uses_tags:
            index = self._tag_index(max_rating)
        else:
            index = self.category_index if max_rating > Rating.SFW else self._sfw_category_index
        typed = [t for t in (clean(name) for name in split_categories(head)) if t]
        already = {t.casefold() for t in typed}
        prefix = ", ".join(typed)
        choices = []
        for _, value in index.match(last.strip()):
            # A name with a comma would come back split in two: it cannot be offered.
            if value.casefold() in already or "," in value:
                continue
            full = f"{prefix}, {value}" if prefix else value
            if len(full) <= 100:
                choices.append((full, full))
        return choices[:25]

    def check_categories(self, text: str | None, max_rating: Rating) -> CategoryCheck:
        """Split the option and sort names into known / unknown (with suggestions) / hidden."""
        names = split_categories(text)
        if self.uses_tags:
            # Tags are free-form: any may exist upstream; only what a channel may not show is
            # refused here.
            refused = tuple(n for n in names if not tag_visible(n, max_rating, self._policy))
            tags = tuple(n.lower() for n in names if n not in refused)
            return CategoryCheck(known=tags, unknown=(), suggestions={}, hidden=refused)
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
