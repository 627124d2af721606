"""Stopping background loops that call Redis when Python may lose the cancel.

On Python 3.11 ``asyncio.wait_for`` swallows a cancel that lands in the same loop step as its
inner work finishing (CPython gh-86296, fixed in 3.12 by rewriting ``wait_for``); redis-py sends
every command through ``wait_for``, so a loop cancelled between two Redis commands may simply
go on, and ``await task`` after ``task.cancel()`` then waits forever (seen as test teardowns
hanging; at shutdown the same). Used by the shared pool's fetcher and feed and by the pool's
prefetch loop (whose calls go through the shared queue with ``REDIS_URL``). A loop run by
:class:`Loop` also checks a stop flag on each turn, so a lost cancel ends it at its next turn
instead; ``asyncio.wait`` waits for it without raising its ``CancelledError`` or absorbing the
caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Loop"]


class Loop:
    """One named background task running ``turn`` until stopped."""

    def __init__(self, name: str, turn: Callable[[], Awaitable[None]]) -> None:
        self._name = name
        self._turn = turn
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while not self._stopping:
            await self._turn()

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the turns log their own failures
