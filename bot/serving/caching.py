"""Two small in-process building blocks: a TTL + LRU cache and an in-flight call coalescer."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar, overload

__all__ = ["Clock", "Coalescer", "TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

Clock = Callable[[], float]
"""A clock in seconds: monotonic for caches, epoch seconds where deadlines come from the API."""


class TTLCache(Generic[K, V]):
    """A bounded mapping whose entries expire a fixed time after they were stored.

    When full, expired entries go first, then the least recently used. ``ttl`` is the default
    lifetime; :meth:`set` can shorten or lengthen it per entry (e.g. to a signed URL's expiry).
    """

    # Hand-written: small, injectable clock, per-entry TTL; cachetools is not a dependency.

    def __init__(self, maxsize: int, ttl: float, *, clock: Clock = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        self.purge()
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        item = self._data.get(key)  # type: ignore[arg-type]
        return item is not None and item[0] > self._clock()

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The live value for ``key`` (marking it recently used), else ``default``."""
        item = self._data.get(key)
        if item is None:
            return default
        if item[0] <= self._clock():
            del self._data[key]
            return default
        self._data.move_to_end(key)
        return item[1]

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default :attr:`ttl`); ``ttl <= 0`` stores none."""
        lifetime = self.ttl if ttl is None else ttl
        if lifetime <= 0:
            self._data.pop(key, None)
            return
        self._data[key] = (self._clock() + lifetime, value)
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self.purge()
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; return its value if it was still live."""
        item = self._data.pop(key, None)
        if item is None or item[0] <= self._clock():
            return None
        return item[1]

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()

    def purge(self) -> int:
        """Drop expired entries; return how many were dropped."""
        now = self._clock()
        dead = [key for key, (deadline, _) in self._data.items() if deadline <= now]
        for key in dead:
            del self._data[key]
        return len(dead)


class Coalescer(Generic[K, V]):
    """At most one call per key at a time: callers arriving meanwhile share its outcome.

    The shared call is shielded, so one caller giving up (cancelled) does not cancel it for the
    others; it still runs to completion (and whatever it caches on the way is kept).
    """

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[V]] = {}
        self.calls = 0
        """Calls started."""
        self.joins = 0
        """Callers that shared a call already in flight instead of starting one."""

    def __len__(self) -> int:
        return len(self._flights)

    def in_flight(self, key: K) -> bool:
        """Whether a call for ``key`` is running now."""
        return key in self._flights

    def cancel(self, key: K) -> None:
        """Cancel the call in flight for ``key``, if any (its callers get ``CancelledError``)."""
        task = self._flights.get(key)
        if task is not None:
            task.cancel()

    async def run(self, key: K, factory: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """Await the call in flight for ``key``, or start ``factory()`` as that call."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.create_task(factory())
            self._flights[key] = task
            task.add_done_callback(functools.partial(self._landed, key))
            self.calls += 1
        else:
            self.joins += 1
        return await asyncio.shield(task)

    def _landed(self, key: K, task: asyncio.Task[V]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the outcome retrieved: when every caller gave up, nobody else will read it.
            task.exception()
