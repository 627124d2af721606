"""Forgetting what the bot was removed from, even when the settings store was down at the time.

Privacy: a guild that removed the bot keeps nothing here, and a deleted channel's setting goes
with it. The deletions happen on Discord's events; when the store cannot be written then, they
are retried until it can (while the process runs), and at every READY a sweep forgets the stored
guilds the bot is no longer in (for a removal missed while the bot was stopped or the store down).

With several processes, a process only ever sweeps guilds of its own shards, once they are ready:
a guild of another process's shard is not in this process's cache, and is not gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .store import SettingsStore, StoreError

__all__ = ["RETRY_INTERVAL", "Departures"]

log = logging.getLogger(__name__)

RETRY_INTERVAL = 60.0
"""Seconds between attempts while the store cannot be written."""


class Departures:
    """Deletes the settings of guilds the bot left and of deleted channels; retries on failure.

    ``is_member(guild_id)`` says whether the bot is in a guild *now* (its guild cache): a guild
    the bot rejoined before a retry is not forgotten.
    """

    def __init__(
        self,
        store: SettingsStore,
        *,
        is_member: Callable[[int], bool],
        retry_interval: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._is_member = is_member
        self._retry_interval = RETRY_INTERVAL if retry_interval is None else retry_interval
        self._sleep = sleep
        self._guilds: set[int] = set()
        self._channels: set[tuple[int, int]] = set()
        self._sweep: Callable[[int], bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def pending(self) -> int:
        """Deletions (and a sweep) still waiting for the store."""
        return len(self._guilds) + len(self._channels) + (self._sweep is not None)

    def guild_removed(self, guild_id: int) -> None:
        """The bot left ``guild_id``: delete its settings and audit trail (now, or later)."""
        self._guilds.add(guild_id)
        self._start()

    def channel_deleted(self, guild_id: int, channel_id: int) -> None:
        """``channel_id`` was deleted: drop its setting (now, or later)."""
        self._channels.add((guild_id, channel_id))
        self._start()

    def sweep(self, owns: Callable[[int], bool]) -> None:
        """Forget the stored guilds that ``owns`` and the bot is not in (now, or later)."""
        self._sweep = owns
        self._start()

    async def wait(self) -> None:
        """Until nothing is pending (the store must answer for this to return)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop retrying (a missed guild removal is swept at the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ------------------------------------------------------------------ the work

    def _start(self) -> None:
        # One task does every deletion, in order: events never race each other or a sweep.
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work(), name="forget-departed")

    async def _work(self) -> None:
        while self.pending:
            if not await self._run_once():
                await self._sleep(self._retry_interval)

    async def _run_once(self) -> bool:
        """Do what is pending; False if the store failed (the rest stays pending)."""
        try:
            for guild_id in sorted(self._guilds):
                if not self._is_member(guild_id):
                    await self._store.forget_guild(guild_id)
                    log.info("Left guild %s; its settings were deleted", guild_id)
                self._guilds.discard(guild_id)
            for guild_id, channel_id in sorted(self._channels):
                await self._store.forget_channel(guild_id, channel_id)
                self._channels.discard((guild_id, channel_id))
            sweep = self._sweep
            if sweep is not None:
                await self._swept(sweep)
                if self._sweep is sweep:  # not asked again meanwhile
                    self._sweep = None
        except StoreError as exc:
            self._failed(str(exc), None)
            return False
        except Exception as exc:  # unexpected: logged in full once, then retried the same way
            self._failed(type(exc).__name__, exc)
            return False
        if self._failing:
            self._failing = False
            log.warning("Settings store writable again: the pending deletions are done")
        return True

    def _failed(self, reason: str, error: BaseException | None) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "Could not delete the settings of a server the bot left or of a deleted "
                "channel (%s); retrying every %.0f s",
                reason,
                self._retry_interval,
                exc_info=error,
            )

    async def _swept(self, owns: Callable[[int], bool]) -> None:
        stored = await self._store.stored_guild_ids()
        gone = sorted(g for g in stored if owns(g) and not self._is_member(g))
        for guild_id in gone:
            await self._store.forget_guild(guild_id)
        if gone:
            log.info(
                "Deleted the settings of %d server(s) the bot left while it could not record "
                "it: %s",
                len(gone),
                ", ".join(map(str, gone)),
            )
