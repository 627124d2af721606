"""A virtual clock for pacing tests: sleeping costs no real time.

``FakeClock()`` is a monotonic clock; ``clock.sleep`` is an awaitable sleep on it; ``clock.wall``
is the matching UTC wall clock. Sleepers wake in deadline order: the earliest one advances
virtual time to its deadline once every other task has had a chance to run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq

WALL_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_YIELDS = 5


class FakeClock:
    """Monotonic virtual time with a sleep that advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.start = start
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> dt.datetime:
        return WALL_EPOCH + dt.timedelta(seconds=self.now - self.start)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        entry = (self.now + max(0.0, delay), self._seq)
        self._seq += 1
        heapq.heappush(self._sleepers, entry)
        try:
            while True:
                # Let every other runnable task reach its own sleep (or finish) first.
                for _ in range(_YIELDS):
                    await asyncio.sleep(0)
                if self._sleepers[0] == entry:
                    heapq.heappop(self._sleepers)
                    self.now = max(self.now, entry[0])
                    return
        except BaseException:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)
            raise
