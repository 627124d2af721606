"""In-memory name matching for slash-command autocomplete and "did you mean" hints.

Autocomplete must answer within 3 seconds and cannot be deferred, so it is served from an index
held in memory and refreshed in the background (:meth:`NameIndex.replace`). Nothing here does I/O.

Discord limits honoured here: at most 25 choices, choice names 1-100 characters (longer names are
trimmed with ``…``). Names come from the API, so they pass the text rule for surfaces without
markdown (:func:`bot.text.plain_text`: no invisible or bidirectional characters). Choice *values*
are whatever the caller stores; for Discord they must be strings of at most 100 characters (UUIDs
and category names are); string values longer than that, or not already clean text
(:func:`bot.text.clean`), are skipped when the index is built.
"""

from __future__ import annotations

import difflib
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .text import clean, plain_text

__all__ = [
    "CHOICE_LIMIT",
    "CHOICE_NAME_LIMIT",
    "CHOICE_VALUE_LIMIT",
    "NameIndex",
    "split_categories",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

CHOICE_LIMIT = 25
CHOICE_NAME_LIMIT = 100
CHOICE_VALUE_LIMIT = 100


def _fold(text: str) -> str:
    """Key for case-insensitive comparison; NFKC first so full-width and composed forms match."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    key: str
    name: str
    value: T


class NameIndex(Generic[T]):
    """Names (with a value each) matched case-insensitively: prefix matches, then substrings.

    Build it from ``(name, value)`` pairs; :meth:`replace` swaps the whole contents in one
    assignment, so a background refresh never shows a reader a half-built index.
    """

    def __init__(self, pairs: Iterable[tuple[str, T]] = ()) -> None:
        self._entries: tuple[_Entry[T], ...] = self._build(pairs)

    @staticmethod
    def _build(pairs: Iterable[tuple[str, T]]) -> tuple[_Entry[T], ...]:
        entries: list[_Entry[T]] = []
        for name, value in pairs:
            display = plain_text(name, CHOICE_NAME_LIMIT)
            if not display:
                continue
            if isinstance(value, str) and not 0 < len(value) <= CHOICE_VALUE_LIMIT:
                log.warning(
                    "skipping autocomplete entry %r: value is not 1-100 characters", display
                )
                continue
            if isinstance(value, str) and clean(value) != value:
                log.warning("skipping autocomplete entry %r: its value is not clean text", display)
                continue
            entries.append(_Entry(_fold(name), display, value))
        entries.sort(key=lambda e: (e.key, e.name))
        return tuple(entries)

    def replace(self, pairs: Iterable[tuple[str, T]]) -> None:
        """Swap in new contents atomically (built first, then assigned in one step)."""
        self._entries = self._build(pairs)

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, query: str) -> tuple[str, T, bool] | None:
        """The entry a member most likely means by ``query``: ``(name, value, exact)``.

        An exact (case- and width-insensitive) name first; else what autocomplete would offer
        first (a name starting with, then containing, the query); else the closest spelling.
        """
        key = _fold(query)
        if not key:
            return None
        for entry in self._entries:
            if entry.key == key:
                return entry.name, entry.value, True
        offered = self.match(query, limit=1)
        if offered:
            return offered[0][0], offered[0][1], False
        for close in difflib.get_close_matches(key, [e.key for e in self._entries], n=1):
            entry = next(e for e in self._entries if e.key == close)
            return entry.name, entry.value, False
        return None

    def match(self, query: str, limit: int = CHOICE_LIMIT) -> list[tuple[str, T]]:
        """Up to ``limit`` (at most 25) ``(name, value)`` pairs for ``query``.

        Names starting with the query come first, then names containing it, each alphabetical;
        an empty query gives the first names alphabetically. Names are at most 100 characters.
        """
        limit = max(0, min(limit, CHOICE_LIMIT))
        if limit == 0:
            return []
        entries = self._entries  # one read: a concurrent replace() cannot mix two indexes
        key = _fold(query)
        if not key:
            return [(e.name, e.value) for e in entries[:limit]]
        prefix: list[tuple[str, T]] = []
        inner: list[tuple[str, T]] = []
        for entry in entries:
            if entry.key.startswith(key):
                prefix.append((entry.name, entry.value))
                if len(prefix) >= limit:
                    break
            elif len(inner) < limit and key in entry.key:
                inner.append((entry.name, entry.value))
        return (prefix + inner)[:limit]

    def suggest(self, query: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names close to ``query`` (typos first, then names containing it)."""
        key = _fold(query)
        if not key or n <= 0:
            return []
        entries = self._entries
        names_by_key: dict[str, str] = {}
        for entry in entries:
            names_by_key.setdefault(entry.key, entry.name)
        found: list[str] = []
        for close in difflib.get_close_matches(key, list(names_by_key), n=n, cutoff=0.6):
            found.append(names_by_key[close])
        for entry_key, name in names_by_key.items():
            if len(found) >= n:
                break
            contained = key in entry_key or (len(entry_key) >= 3 and entry_key in key)
            if contained and name not in found:
                found.append(name)
        return found[:n]


def split_categories(text: str | None) -> list[str]:
    """Parse a comma-separated option: trimmed, empties dropped, duplicates (any case) removed.

    The first spelling of each name is kept, in the order given.
    """
    if not text:
        return []
    seen: set[str] = set()
    result: list[str] = []
    for part in text.split(","):
        name = part.strip()
        key = _fold(name)
        if not key or key in seen:
            continue
        seen.add(key)
        result.append(name)
    return result
