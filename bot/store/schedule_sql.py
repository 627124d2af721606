"""The scheduled-post queries, shared by both SQL backends (a part of ``SqlSettingsStore``).

Admins' changes go through the settings write path (one transaction with the audit row, the
guild's lock, the change notification). Posters' claims go through a plain transaction of their
own (no notification: nothing cached depends on them): PostgreSQL locks the due rows with
``FOR UPDATE SKIP LOCKED``, so processes claiming at once take different schedules; SQLite's
``BEGIN IMMEDIATE`` lets one process claim at a time.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from bot.autopost.timing import CLOCK_TOLERANCE, first_due, not_before, plan_claim

from .base import Change, ChangeScope, SettingsStore
from .cache import CacheUpdate
from .rows import Row, Tx, rating_from_db
from .schedules import (
    BOT_ACTOR,
    ClaimedPost,
    Schedule,
    ScheduleLimitError,
    ScheduleSpec,
    ShardFilter,
    describe_spec,
)

__all__ = ["SCHEDULE_COLUMNS", "SqlSchedules"]

T = TypeVar("T")

SCHEDULE_COLUMNS: Final = (
    "guild_id, channel_id, interval_seconds, categories, image_count, rating, created_by,"
    " created_at, next_due, set_at, not_before, last_post_at, paused_reason, lease_owner,"
    " lease_until"
)
_SELECT: Final = f"SELECT {SCHEDULE_COLUMNS} FROM schedules"
_HELD: Final = "channel_id = $1 AND lease_owner = $2"


class SqlSchedules(SettingsStore):
    """Scheduled posts on top of the SQL backends' hooks (mixed into ``SqlSettingsStore``)."""

    _clock: Callable[[], dt.datetime]

    # Hooks SqlSettingsStore and the backends supply.
    @abstractmethod
    async def _read(self, body: Callable[[Tx], Awaitable[T]], *, snapshot: bool = False) -> T: ...

    @abstractmethod
    async def _write(
        self, guild_id: int | None, body: Callable[[Tx], Awaitable[tuple[T, CacheUpdate]]]
    ) -> T: ...

    @abstractmethod
    async def _claim_tx(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body`` in a transaction that touches only ``schedules`` (no notification)."""

    @property
    @abstractmethod
    def _lock_due_rows(self) -> str:
        """The clause that locks the rows a claim selects (PostgreSQL: FOR UPDATE SKIP LOCKED)."""

    @abstractmethod
    def _time_to_db(self, at: dt.datetime) -> object: ...

    @abstractmethod
    def _time_from_db(self, value: Any) -> dt.datetime: ...

    @abstractmethod
    async def _audit(self, tx: Tx, change: Change) -> Change: ...

    # ------------------------------------------------------------------ rows

    def _opt_time(self, value: Any) -> dt.datetime | None:
        return None if value is None else self._time_from_db(value)

    def _opt_to_db(self, at: dt.datetime | None) -> object:
        return None if at is None else self._time_to_db(at)

    def _schedule_from_row(self, row: Row) -> Schedule:
        (guild_id, channel_id, interval, categories, count, rating, created_by) = row[:7]
        (created_at, next_due, set_at, not_before_at, last_post, reason, owner, until) = row[7:]
        spec = ScheduleSpec(
            guild_id=int(guild_id),
            channel_id=int(channel_id),
            interval=int(interval),
            categories=tuple(c for c in str(categories).split(",") if c),
            count=min(max(int(count), 1), 10),
            rating=rating_from_db(rating),
        )
        return Schedule(
            spec=spec,
            created_by=int(created_by),
            created_at=self._time_from_db(created_at),
            next_due=self._time_from_db(next_due),
            set_at=self._time_from_db(set_at),
            not_before=self._opt_time(not_before_at),
            last_post_at=self._opt_time(last_post),
            paused_reason=None if reason is None else str(reason),
            lease_owner=None if owner is None else str(owner),
            lease_until=self._opt_time(until),
        )

    def _schedule_row(self, s: Schedule) -> tuple[object, ...]:
        """The values of :data:`SCHEDULE_COLUMNS` for ``s``."""
        return (
            s.guild_id,
            s.channel_id,
            s.spec.interval,
            ",".join(s.spec.categories),
            s.spec.count,
            s.spec.rating.label if s.spec.rating is not None else None,
            s.created_by,
            self._time_to_db(s.created_at),
            self._time_to_db(s.next_due),
            self._time_to_db(s.set_at),
            self._opt_to_db(s.not_before),
            self._opt_to_db(s.last_post_at),
            s.paused_reason,
            s.lease_owner,
            self._opt_to_db(s.lease_until),
        )

    async def _schedule_of(self, tx: Tx, guild_id: int, channel_id: int) -> Schedule | None:
        rows = await tx.fetch(
            f"{_SELECT} WHERE guild_id = $1 AND channel_id = $2", guild_id, channel_id
        )
        return self._schedule_from_row(rows[0]) if rows else None

    def _schedule_change(
        self, scope: ChangeScope, guild_id: int, channel_id: int, actor: int, detail: str | None
    ) -> Change:
        return Change(
            guild_id=guild_id,
            actor_id=actor,
            scope=scope,
            channel_id=channel_id,
            old=None,
            new=None,
            at=self._clock(),
            detail=detail,
        )

    async def _replace_row(self, tx: Tx, schedule: Schedule) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, 16))
        await tx.execute("DELETE FROM schedules WHERE channel_id = $1", schedule.channel_id)
        await tx.execute(
            f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ({placeholders})",
            *self._schedule_row(schedule),
        )

    # ------------------------------------------------------------------ admins

    async def set_schedule(
        self, spec: ScheduleSpec, actor_id: int, *, max_per_guild: int
    ) -> tuple[Schedule, Schedule | None]:
        async def body(tx: Tx) -> tuple[tuple[Schedule, Schedule | None], CacheUpdate]:
            old = await self._schedule_of(tx, spec.guild_id, spec.channel_id)
            if old is None:
                [(others,)] = await tx.fetch(
                    "SELECT COUNT(*) FROM schedules WHERE guild_id = $1", spec.guild_id
                )
                if int(others) >= max_per_guild:
                    raise ScheduleLimitError(max_per_guild)
            now = self._clock()
            last = old.last_post_at if old is not None else None
            schedule = Schedule(
                spec=spec,
                created_by=actor_id,
                created_at=now,
                next_due=first_due(now, spec.interval, last),
                set_at=now,
                not_before=old.not_before if old is not None else None,
                last_post_at=last,
            )
            await self._replace_row(tx, schedule)
            detail = describe_spec(spec) + (" (replaced the previous schedule)" if old else "")
            change = self._schedule_change(
                ChangeScope.AUTOPOST_SET, spec.guild_id, spec.channel_id, actor_id, detail
            )
            await self._audit(tx, change)
            return (schedule, old), lambda settings: settings

        return await self._write(spec.guild_id, body)

    async def remove_schedule(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        return await self._remove(guild_id, channel_id, actor_id, None)

    async def _remove(self, guild_id: int, channel_id: int, actor_id: int, why: str | None) -> bool:
        async def body(tx: Tx) -> tuple[bool, CacheUpdate]:
            removed = await tx.execute(
                "DELETE FROM schedules WHERE guild_id = $1 AND channel_id = $2",
                guild_id,
                channel_id,
            )
            if removed > 0:
                change = self._schedule_change(
                    ChangeScope.AUTOPOST_REMOVE, guild_id, channel_id, actor_id, why
                )
                await self._audit(tx, change)
            return removed > 0, lambda settings: settings

        return await self._write(guild_id, body)

    async def pause_schedule(
        self, guild_id: int, channel_id: int, actor_id: int, reason: str
    ) -> Schedule | None:
        async def body(tx: Tx) -> tuple[Schedule | None, CacheUpdate]:
            await tx.execute(
                "UPDATE schedules SET paused_reason = $3, lease_owner = NULL, lease_until = NULL"
                " WHERE guild_id = $1 AND channel_id = $2",
                guild_id,
                channel_id,
                reason,
            )
            schedule = await self._schedule_of(tx, guild_id, channel_id)
            if schedule is not None:
                change = self._schedule_change(
                    ChangeScope.AUTOPOST_PAUSE, guild_id, channel_id, actor_id, None
                )
                await self._audit(tx, change)
            return schedule, lambda settings: settings

        return await self._write(guild_id, body)

    async def resume_schedule(
        self, guild_id: int, channel_id: int, actor_id: int
    ) -> Schedule | None:
        async def body(tx: Tx) -> tuple[Schedule | None, CacheUpdate]:
            old = await self._schedule_of(tx, guild_id, channel_id)
            if old is None:
                return None, lambda settings: settings
            now = self._clock()
            await tx.execute(
                "UPDATE schedules SET paused_reason = NULL, next_due = $3, set_at = $4,"
                " lease_owner = NULL, lease_until = NULL WHERE channel_id = $1 AND guild_id = $2",
                channel_id,
                guild_id,
                self._time_to_db(first_due(now, old.spec.interval, old.last_post_at)),
                self._time_to_db(now),
            )
            change = self._schedule_change(
                ChangeScope.AUTOPOST_RESUME, guild_id, channel_id, actor_id, None
            )
            await self._audit(tx, change)
            return await self._schedule_of(tx, guild_id, channel_id), lambda settings: settings

        return await self._write(guild_id, body)

    async def list_schedules(self, guild_id: int) -> list[Schedule]:
        async def query(tx: Tx) -> list[Schedule]:
            rows = await tx.fetch(f"{_SELECT} WHERE guild_id = $1 ORDER BY channel_id", guild_id)
            return [self._schedule_from_row(row) for row in rows]

        return await self._read(query)

    async def _all_schedules(self, tx: Tx) -> tuple[Schedule, ...]:
        rows = await tx.fetch(f"{_SELECT} ORDER BY channel_id")
        return tuple(self._schedule_from_row(row) for row in rows)

    async def _insert_schedules(self, tx: Tx, schedules: Sequence[Schedule]) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, 16))
        await tx.executemany(
            f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ({placeholders})",
            [self._schedule_row(s) for s in schedules],
        )

    async def _forget_schedule(self, tx: Tx, guild_id: int, channel_id: int) -> bool:
        """Delete a deleted channel's schedule, recorded as the bot's change."""
        removed = await tx.execute(
            "DELETE FROM schedules WHERE guild_id = $1 AND channel_id = $2", guild_id, channel_id
        )
        if removed > 0:
            change = self._schedule_change(
                ChangeScope.AUTOPOST_REMOVE, guild_id, channel_id, BOT_ACTOR, "channel deleted"
            )
            await self._audit(tx, change)
        return removed > 0

    # ------------------------------------------------------------------ posters

    async def claim_schedules(
        self,
        now: dt.datetime,
        owner: str,
        *,
        lease: dt.timedelta,
        limit: int,
        shards: ShardFilter | None = None,
    ) -> list[ClaimedPost]:
        if limit <= 0:
            return []
        args: list[object] = [
            self._time_to_db(now),
            self._time_to_db(now + CLOCK_TOLERANCE),
            limit,
            # A lease ending later than any lease taken now could: taken before a clock step.
            self._time_to_db(now + lease + CLOCK_TOLERANCE),
        ]
        where = ""
        if shards is not None:
            args.append(shards.count)
            ids = sorted(shards.ids)
            marks = ", ".join(f"${len(args) + 1 + i}" for i in range(len(ids)))
            args.extend(ids)
            where = f" AND (guild_id >> 22) % $5 IN ({marks})"
        sql = (
            f"{_SELECT} WHERE paused_reason IS NULL"
            " AND (lease_until IS NULL OR lease_until < $1 OR lease_until > $4)"
            " AND ((next_due <= $1 AND (not_before IS NULL OR not_before <= $1))"
            f" OR set_at > $2){where} ORDER BY next_due LIMIT $3{self._lock_due_rows}"
        )
        until = self._time_to_db(now + lease)

        async def body(tx: Tx) -> list[ClaimedPost]:
            claimed: list[ClaimedPost] = []
            for row in await tx.fetch(sql, *args):
                schedule = self._schedule_from_row(row)
                plan = plan_claim(
                    next_due=schedule.next_due,
                    set_at=schedule.set_at,
                    interval=schedule.spec.interval,
                    now=now,
                )
                # Re-anchored after a clock step: not_before was on the old clock too.
                await tx.execute(
                    "UPDATE schedules SET next_due = $2, set_at = $3, lease_owner = $4,"
                    " lease_until = $5, not_before = CASE WHEN $6 THEN not_before END"
                    " WHERE channel_id = $1",
                    schedule.channel_id,
                    self._time_to_db(plan.next_due),
                    self._time_to_db(now),
                    owner if plan.post else None,
                    until if plan.post else None,
                    plan.post,
                )
                if plan.post:
                    claimed.append(ClaimedPost(schedule, schedule.next_due, owner))
            return claimed

        return await self._claim_tx(body)

    async def schedule_held(self, channel_id: int, owner: str) -> bool:
        async def query(tx: Tx) -> bool:
            rows = await tx.fetch(
                f"SELECT 1 FROM schedules WHERE {_HELD} AND paused_reason IS NULL",
                channel_id,
                owner,
            )
            return bool(rows)

        return await self._read(query)

    async def finish_schedule(self, claim: ClaimedPost, posted_at: dt.datetime) -> None:
        interval = claim.schedule.spec.interval

        async def body(tx: Tx) -> None:
            await tx.execute(
                "UPDATE schedules SET last_post_at = $3, not_before = $4, lease_owner = NULL,"
                f" lease_until = NULL WHERE {_HELD}",
                claim.schedule.channel_id,
                claim.owner,
                self._time_to_db(posted_at),
                self._time_to_db(not_before(posted_at, interval)),
            )

        await self._claim_tx(body)

    async def release_schedule(
        self, claim: ClaimedPost, retry_at: dt.datetime | None = None
    ) -> None:
        # With a retry: due again at the same grid time, held back until the retry.
        retry = retry_at is not None

        async def body(tx: Tx) -> None:
            await tx.execute(
                "UPDATE schedules SET lease_owner = NULL, lease_until = NULL,"
                " next_due = CASE WHEN $3 THEN $4 ELSE next_due END,"
                f" not_before = CASE WHEN $3 THEN $5 ELSE not_before END WHERE {_HELD}",
                claim.schedule.channel_id,
                claim.owner,
                retry,
                self._time_to_db(claim.due_at),
                self._opt_to_db(retry_at),
            )

        await self._claim_tx(body)

    async def suspend_schedule(self, claim: ClaimedPost, reason: str) -> bool:
        guild_id, channel_id = claim.schedule.guild_id, claim.schedule.channel_id

        async def body(tx: Tx) -> tuple[bool, CacheUpdate]:
            paused = await tx.execute(
                "UPDATE schedules SET paused_reason = $3, lease_owner = NULL, lease_until = NULL"
                f" WHERE {_HELD}",
                channel_id,
                claim.owner,
                reason,
            )
            if paused > 0:
                change = self._schedule_change(
                    ChangeScope.AUTOPOST_PAUSE, guild_id, channel_id, BOT_ACTOR, reason
                )
                await self._audit(tx, change)
            return paused > 0, lambda settings: settings

        return await self._write(guild_id, body)
