"""The in-memory copy of guild settings that every gating decision reads.

Several processes may share one database, so an entry can go stale when another process writes.
Each backend tells the cache what changed (a PostgreSQL notification, SQLite's data version);
the cache's job is to never keep a value that was read before such a change became visible.
That is what the generation does: every change bumps it, and a value read from the database is
kept only if no change arrived while it was being read.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.gating import GuildSettings

__all__ = ["CacheUpdate", "SettingsCache"]

CacheUpdate = Callable[[GuildSettings], GuildSettings] | None
"""A committed write's effect on a cached entry (``None``: drop the entry)."""


class SettingsCache:
    """Guild settings by guild id, with a generation counter that guards fills."""

    def __init__(self) -> None:
        self._entries: dict[int, GuildSettings] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        """Read it before loading from the database; pass it to :meth:`fill` afterwards."""
        return self._generation

    def get(self, guild_id: int) -> GuildSettings | None:
        """The cached settings, or ``None``."""
        return self._entries.get(guild_id)

    def fill(self, guild_id: int, settings: GuildSettings, generation: int) -> bool:
        """Keep ``settings`` unless anything changed since ``generation`` was read."""
        if generation != self._generation:
            return False
        self._entries[guild_id] = settings
        return True

    def apply(self, guild_id: int, update: CacheUpdate) -> None:
        """This process committed a write: update the entry (if cached) to match."""
        self._generation += 1
        cached = self._entries.get(guild_id)
        if update is None:
            self._entries.pop(guild_id, None)
        elif cached is not None:
            self._entries[guild_id] = update(cached)

    def invalidate(self, guild_id: int) -> None:
        """Another writer changed this guild (or the outcome of a write is unknown)."""
        self._generation += 1
        self._entries.pop(guild_id, None)

    def clear(self) -> None:
        """Changes may have been missed: forget everything."""
        self._generation += 1
        self._entries.clear()
