"""Scheduled posts as the store keeps them (``/neko-config autopost``).

One schedule per channel. Admins change them through the store (audited like every setting);
posters claim the due ones with a lease, so each due time is posted by at most one process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from bot.autopost.timing import format_duration
from bot.nekos.models import Rating

from .base import StoreError

__all__ = [
    "BOT_ACTOR",
    "ClaimedPost",
    "Schedule",
    "ScheduleLimitError",
    "ScheduleSpec",
    "ShardFilter",
    "describe_spec",
]

BOT_ACTOR = 0
"""The audit trail's actor for changes the bot made itself (a schedule it paused)."""


class ScheduleLimitError(StoreError):
    """The guild already has as many schedules as allowed (``AUTOPOST_MAX_PER_GUILD``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server already has {limit} scheduled posts")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What an admin asks for: where, how often, and which images."""

    guild_id: int
    channel_id: int
    interval: int
    """Seconds between posts."""
    categories: tuple[str, ...] = ()
    """Lower-case category (v4: tag) names, sorted; empty: any."""
    count: int = 1
    rating: Rating | None = None
    """Exactly this rating; ``None``: anything the channel allows."""

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if not 1 <= self.count <= 10:
            raise ValueError("count must be between 1 and 10")
        names = tuple(sorted({c.strip().lower() for c in self.categories if c.strip()}))
        if any("," in name for name in names):
            raise ValueError("category names must not contain commas")
        object.__setattr__(self, "categories", names)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule: the admin's :class:`ScheduleSpec` and where its posting stands."""

    spec: ScheduleSpec
    created_by: int
    created_at: dt.datetime
    next_due: dt.datetime
    set_at: dt.datetime
    """Wall time at which ``next_due`` was last set (a later one than now: the clock went back)."""
    not_before: dt.datetime | None = None
    """No post before this (half an interval after the last post)."""
    last_post_at: dt.datetime | None = None
    paused_reason: str | None = None
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None

    @property
    def next_post(self) -> dt.datetime:
        """When the next post may come: ``next_due``, or later while held back (half an interval
        after the last post, or a skipped post's retry)."""
        if self.not_before is None:
            return self.next_due
        return max(self.next_due, self.not_before)

    @property
    def guild_id(self) -> int:
        return self.spec.guild_id

    @property
    def channel_id(self) -> int:
        return self.spec.channel_id

    @property
    def paused(self) -> bool:
        return self.paused_reason is not None


@dataclass(frozen=True, slots=True)
class ClaimedPost:
    """A schedule a poster claimed: post it now, then finish, release or suspend it."""

    schedule: Schedule
    """As it was before the claim moved ``next_due`` on."""
    due_at: dt.datetime
    """When the post was due (its lateness is the claim's time minus this)."""
    owner: str


@dataclass(frozen=True, slots=True)
class ShardFilter:
    """The guilds of some shards: ``(guild_id >> 22) % count in ids``."""

    count: int
    ids: frozenset[int]

    @classmethod
    def of(cls, count: int | None, ids: Iterable[int] | None) -> ShardFilter | None:
        """The filter for a process owning ``ids`` of ``count`` shards; ``None``: every guild."""
        if count is None or count <= 1:
            return None
        owned = frozenset(range(count)) if ids is None else frozenset(ids)
        if owned >= frozenset(range(count)):
            return None
        return cls(count, owned)

    def owns(self, guild_id: int) -> bool:
        """Whether Discord sends ``guild_id``'s events to one of these shards."""
        return (guild_id >> 22) % self.count in self.ids


def describe_spec(spec: ScheduleSpec) -> str:
    """``every 2h, 1 image, only sfw, with catgirl, maid`` (for the audit trail and lists)."""
    images = "1 image" if spec.count == 1 else f"{spec.count} images"
    rating = (
        f"only {spec.rating.label}" if spec.rating is not None else "any rating the channel allows"
    )
    text = f"every {format_duration(spec.interval)}, {images}, {rating}"
    return text + (f", with {', '.join(spec.categories)}" if spec.categories else "")
