"""The settings store's interface: guild rating settings with an audit trail.

Backends (SQLite, PostgreSQL) implement :class:`SettingsStore`; nothing about a backend shows
through it. Every write is one transaction covering the setting and its audit row, and a write
method returns only after that transaction is committed, so a caller may tell the admin "done" as
soon as it returns. A change committed by any process sharing the database is seen by every
process's :meth:`SettingsStore.get_guild_settings` within about a second.
"""

from __future__ import annotations

import datetime as dt
import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from bot.gating import GuildSettings
from bot.nekos.models import Rating

if TYPE_CHECKING:
    from .schedules import ClaimedPost, Schedule, ScheduleSpec, ShardFilter

__all__ = [
    "Change",
    "ChangeScope",
    "SchemaTooNewError",
    "SettingsStore",
    "StoreClosedError",
    "StoreCounts",
    "StoreError",
    "StoreHealth",
    "StoreNotEmptyError",
    "StoreSnapshot",
    "StoreUnavailable",
]


class StoreError(Exception):
    """The settings store failed or is unusable."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (down, refusing connections, timing out).

    Reads that fail this way must fail closed: the caller treats the guild as having no settings,
    so nothing above ``sfw`` is shown. The store recovers by itself once the database is back.
    """


class StoreNotEmptyError(StoreError):
    """An import was refused because the target store already holds data."""


class StoreClosedError(StoreError):
    """The store was used before :meth:`SettingsStore.open` or after :meth:`SettingsStore.close`."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer version of the bot; refusing to touch it."""


class ChangeScope(enum.Enum):
    """What an audited change touched."""

    DEFAULT = "default"
    CHANNEL = "channel"
    RESET = "reset"
    AUTOPOST_SET = "autopost_set"
    """A channel's scheduled posts were created or replaced (``detail``: what they are)."""
    AUTOPOST_REMOVE = "autopost_remove"
    AUTOPOST_PAUSE = "autopost_pause"
    """Paused by an admin, or by the bot itself (actor 0; ``detail``: why)."""
    AUTOPOST_RESUME = "autopost_resume"

    @property
    def autopost(self) -> bool:
        """Whether this scope is about scheduled posts (``old``/``new`` are then unused)."""
        return self.value.startswith("autopost_")


def _label(rating: Rating | None, unset: str) -> str:
    return rating.label if rating is not None else unset


@dataclass(frozen=True, slots=True)
class Change:
    """One settings change: who, what (scope and channel), old -> new, when.

    ``old``/``new`` ``None`` mean "not set": for a channel, "follows the server default"; for the
    default, "sfw" (nothing set). A :attr:`ChangeScope.RESET` change records the old default in
    ``old`` and how many channel overrides it cleared in ``overrides_cleared``.
    ``id`` is ``None`` for a change that changed nothing (it is not recorded).
    Scheduled-post changes (``scope.autopost``) name their channel and say what changed in
    ``detail``; an ``actor_id`` of 0 is the bot itself.
    """

    guild_id: int
    actor_id: int
    scope: ChangeScope
    channel_id: int | None
    old: Rating | None
    new: Rating | None
    at: dt.datetime
    overrides_cleared: int = 0
    id: int | None = None
    detail: str | None = None

    @property
    def changed(self) -> bool:
        """Whether anything changed (a no-op is returned but not recorded)."""
        if self.scope.autopost:
            return True
        if self.scope is ChangeScope.RESET:
            return self.old is not None or self.overrides_cleared > 0
        return self.old != self.new

    @property
    def description(self) -> str:
        """One line in Discord markdown, e.g. ``<@1> set <#2> to nsfw (was: server default)``."""
        actor = f"<@{self.actor_id}>" if self.actor_id else "The bot"
        if self.scope.autopost:
            return self._autopost_description(actor)
        if self.scope is ChangeScope.RESET:
            if not self.changed:
                return f"{actor} reset the settings (nothing was set)"
            noun = "override" if self.overrides_cleared == 1 else "overrides"
            return (
                f"{actor} reset the settings (default was: {_label(self.old, 'not set')}; "
                f"{self.overrides_cleared} channel {noun} cleared)"
            )
        if self.scope is ChangeScope.DEFAULT:
            old = _label(self.old, "not set")
            if not self.changed:
                return f"{actor} left the server default unchanged ({old})"
            if self.new is None:
                return (
                    f"{actor} cleared the server default (was: {old}); "
                    "channels without an override are now sfw"
                )
            return f"{actor} set the server default to {self.new.label} (was: {old})"
        where = f"<#{self.channel_id}>"
        old = _label(self.old, "server default")
        if not self.changed:
            return f"{actor} left {where} unchanged ({old})"
        if self.new is None:
            return f"{actor} cleared the override of {where} (was: {old}); it follows the default"
        return f"{actor} set {where} to {self.new.label} (was: {old})"

    def _autopost_description(self, actor: str) -> str:
        where = f"<#{self.channel_id}>"
        detail = f": {self.detail}" if self.detail else ""
        verb = {
            ChangeScope.AUTOPOST_SET: f"scheduled posts in {where}",
            ChangeScope.AUTOPOST_REMOVE: f"removed the scheduled posts of {where}",
            ChangeScope.AUTOPOST_PAUSE: f"paused the scheduled posts of {where}",
            ChangeScope.AUTOPOST_RESUME: f"resumed the scheduled posts of {where}",
        }[self.scope]
        return f"{actor} {verb}{detail}"


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The outcome of :meth:`SettingsStore.health_check`; ``detail`` is for operators."""

    ok: bool
    detail: str


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How much a store holds; ``str()`` is e.g. ``3 guild defaults, 12 channel overrides, ...``."""

    defaults: int
    overrides: int
    audit: int
    schedules: int = 0

    def __str__(self) -> str:
        parts = [
            _count(self.defaults, "guild default", "guild defaults"),
            _count(self.overrides, "channel override", "channel overrides"),
            _count(self.audit, "audit entry", "audit entries"),
        ]
        if self.schedules:
            parts.append(_count(self.schedules, "scheduled post", "scheduled posts"))
        return ", ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.defaults or self.overrides or self.audit or self.schedules)


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything a store holds, for copying it to another store (``migrate-store``).

    ``audit`` is oldest first and keeps each change's id, time and actor.
    """

    defaults: Mapping[int, Rating] = field(default_factory=dict)
    overrides: Mapping[tuple[int, int], Rating] = field(default_factory=dict)
    """``(guild_id, channel_id) -> rating``."""
    audit: tuple[Change, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    """Every schedule with its state (due times, last post, pause), by channel id."""

    @property
    def counts(self) -> StoreCounts:
        return StoreCounts(
            len(self.defaults), len(self.overrides), len(self.audit), len(self.schedules)
        )


class SettingsStore(ABC):
    """Guild rating settings, cached in memory and written through to the backend.

    Use ``async with store:`` or call :meth:`open` / :meth:`close`. IDs are Discord snowflakes.
    """

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date; idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend; idempotent. The store can be opened again."""

    @abstractmethod
    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (empty when nothing is set); served from memory after first use.

        Raises :class:`StoreUnavailable` when the database cannot be reached; callers that gate
        content must then fail closed (treat it as no settings, i.e. ``sfw``).
        """

    @abstractmethod
    async def set_channel_override(
        self, guild_id: int, channel_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        """Set (or with ``None`` clear) a channel's maximum rating; returns after commit."""

    @abstractmethod
    async def set_guild_default(
        self, guild_id: int, rating: Rating | None, actor_id: int
    ) -> Change:
        """Set (or with ``None`` clear) the guild's default maximum; returns after commit."""

    @abstractmethod
    async def reset_guild(self, guild_id: int, actor_id: int) -> Change:
        """Clear the default and every channel override (audited); returns after commit."""

    @abstractmethod
    async def recent_changes(self, guild_id: int, limit: int = 10) -> list[Change]:
        """The guild's latest recorded changes, newest first."""

    @abstractmethod
    async def forget_guild(self, guild_id: int) -> None:
        """Delete everything about a guild: settings, schedules, audit trail (the bot left it)."""

    @abstractmethod
    async def stored_guild_ids(self) -> frozenset[int]:
        """Every guild the store holds anything about (settings, overrides or audit rows).

        For the sweep that forgets guilds the bot left while the store could not be written.
        """

    @abstractmethod
    async def forget_channel(self, guild_id: int, channel_id: int) -> bool:
        """Drop a deleted channel's override and schedule; ``True`` if there was either.

        Audit rows are kept; a deleted schedule is recorded (by the bot, actor 0).
        """

    # ------------------------------------------------------------------ scheduled posts

    @abstractmethod
    async def set_schedule(
        self, spec: ScheduleSpec, actor_id: int, *, max_per_guild: int
    ) -> tuple[Schedule, Schedule | None]:
        """Create or replace the channel's schedule (audited); returns it and the one replaced.

        The first post is due at once, or for a replaced schedule one (new) interval after its
        last post. Raises :class:`ScheduleLimitError` when the guild already has
        ``max_per_guild`` schedules in other channels.
        """

    @abstractmethod
    async def remove_schedule(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        """Delete the channel's schedule (audited); ``False`` if it had none."""

    @abstractmethod
    async def pause_schedule(
        self, guild_id: int, channel_id: int, actor_id: int, reason: str
    ) -> Schedule | None:
        """Pause the channel's schedule with ``reason`` (audited); ``None`` if it has none."""

    @abstractmethod
    async def resume_schedule(
        self, guild_id: int, channel_id: int, actor_id: int
    ) -> Schedule | None:
        """Resume a paused schedule (audited); ``None`` if it has none. Due at once, or one
        interval after its last post."""

    @abstractmethod
    async def list_schedules(self, guild_id: int) -> list[Schedule]:
        """The guild's schedules, by channel id."""

    @abstractmethod
    async def claim_schedules(
        self,
        now: dt.datetime,
        owner: str,
        *,
        lease: dt.timedelta,
        limit: int,
        shards: ShardFilter | None = None,
    ) -> list[ClaimedPost]:
        """Claim up to ``limit`` due schedules of ``shards`` for ``owner`` (one transaction).

        Each claimed schedule's ``next_due`` moves on in the same transaction, so no other
        process can claim the same due time; the lease (until ``now + lease``) marks it as being
        posted. Schedules whose clock was stepped back are re-anchored and not returned.
        """

    @abstractmethod
    async def schedule_held(self, channel_id: int, owner: str) -> bool:
        """Whether ``owner`` still holds the lease (the schedule was not removed, paused or
        replaced meanwhile): checked just before sending."""

    @abstractmethod
    async def finish_schedule(self, claim: ClaimedPost, posted_at: dt.datetime) -> None:
        """Record a post made for ``claim`` and release its lease."""

    @abstractmethod
    async def release_schedule(
        self, claim: ClaimedPost, retry_at: dt.datetime | None = None
    ) -> None:
        """Release ``claim`` without a post (nothing to show this time); the schedule goes on,
        from its next due time, or with ``retry_at`` this due time is claimable again from then
        (the grid kept: the retry's claim moves ``next_due`` on from ``claim.due_at``)."""

    @abstractmethod
    async def suspend_schedule(self, claim: ClaimedPost, reason: str) -> bool:
        """Pause ``claim``'s schedule because posting failed for good (audited, actor 0);
        ``False`` if the schedule changed meanwhile (removed, replaced)."""

    @abstractmethod
    async def health_check(self) -> StoreHealth:
        """Whether the backend answers, in one line without credentials; never raises."""

    @abstractmethod
    async def export_snapshot(self) -> StoreSnapshot:
        """Everything the store holds, read in one consistent snapshot."""

    @abstractmethod
    async def import_snapshot(self, snapshot: StoreSnapshot, *, replace: bool = False) -> None:
        """Write ``snapshot`` in one transaction, keeping audit ids, times and actors.

        Raises :class:`StoreNotEmptyError` if the store holds anything, unless ``replace``, which
        deletes what it holds first (in the same transaction).
        """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
