"""The shared lookup tier: answers kept in Redis for every process, one upstream call per key.

:class:`~bot.serving.lookups.CachedLookups` keeps its in-process cache and coalescer in front;
on a local miss it asks :meth:`SharedLookups.fetch`, which

1. reads the answer from Redis (``<prefix>lookup:<api>:<kind>:<key>``), else
2. takes the key's in-flight marker (``SET NX PX`` inside one script, with a token of its own)
   and calls upstream; the answer (a value, or a 404) is stored with the same lifetime as the
   local cache gives it (an image or page with signed URLs only until their deadline minus the
   margin), then the marker is released; while the call runs the marker is renewed, so it
   outlives a slow upstream but not a dead process (it lapses ``marker_ttl`` after the owner's
   last renewal);
3. or, when another process holds the marker, polls for the answer (a short, growing
   interval, bounded by ``max_wait``) and takes the marker over once it lapses (its owner died
   or gave up) to call upstream itself.

A member's (interactive) lookup never waits behind a background one: it takes the marker over
and calls upstream itself. Whenever Redis is unreachable the caller loads in-process at once
(the link's circuit, :mod:`.link`), and nothing a member asked for fails because of Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.nekos.errors import NotFound

from ..lookups import SharedNotFound
from .codec import CodecError, NotFoundValue, decode, encode
from .link import RedisLink, SharedUnavailable

__all__ = ["SharedLookupCounts", "SharedLookups"]

log = logging.getLogger(__name__)

V = TypeVar("V")

MARKER_TTL = 5.0
"""Seconds an in-flight marker outlives its owner's last renewal."""
MAX_WAIT = 40.0
"""Seconds a process waits for another's call at most (a member's lookup is shed after 30 s)."""
FIRST_POLL = 0.01
MAX_POLL = 0.2

_LOOK = """
-- KEYS: value, marker. ARGV: token, marker ttl (ms), interactive ('1' or '0')
local value = redis.call('GET', KEYS[1])
if value then return {1, value, redis.call('PTTL', KEYS[1])} end
local holder = redis.call('GET', KEYS[2])
if (not holder) or (ARGV[3] == '1' and string.sub(holder, 1, 1) == 'b') then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {2}
end
return {3}
"""
"""The answer (1, text, ms left); or the marker taken (2): free, or a background call that an
interactive caller does not wait behind; or someone else's call under way (3)."""

_LAND = """
-- KEYS: value, marker. ARGV: token, text, lifetime (ms; 0 stores nothing)
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

_RENEW = """
-- KEYS: marker. ARGV: token, marker ttl (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(slots=True)
class SharedLookupCounts:
    """What the shared tier did since start-up."""

    hits: dict[str, int] = field(default_factory=dict)
    """Per kind: local misses answered from Redis (another process's call, or a 404 it got)."""
    waits: int = 0
    """Lookups that waited for the same lookup under way in another process (coalesced)."""
    takeovers: int = 0
    """Waits that ended with this process calling itself (the other's marker lapsed)."""
    stores: int = 0
    """Answers this process stored for the others."""
    fallbacks: int = 0
    """Lookups done in-process alone because Redis was unreachable."""


class SharedLookups:
    """The Redis tier under :class:`~bot.serving.lookups.CachedLookups` (its ``shared=``).

    ``namespace`` keeps apart answers of different APIs sharing one Redis prefix (the budget's
    host and version, e.g. ``api.nekosapi.com/v1``).
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        namespace: str,
        marker_ttl: float = MARKER_TTL,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self._link = link
        self._namespace = namespace
        self._marker_ms = max(1, int(marker_ttl * 1000))
        self._renew_every = marker_ttl / 3
        self._max_wait = max_wait
        self._look = link.client.register_script(_LOOK)
        self._land = link.client.register_script(_LAND)
        self._renew = link.client.register_script(_RENEW)
        self.counts = SharedLookupCounts()

    @property
    def link(self) -> RedisLink:
        return self._link

    @property
    def waits(self) -> int:
        return self.counts.waits

    @property
    def fallbacks(self) -> int:
        return self.counts.fallbacks

    def keys(self, kind: str, key: Hashable) -> tuple[str, str]:
        """The Redis keys of one lookup: its answer and its in-flight marker."""
        name = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
        return (
            self._link.key("lookup", self._namespace, kind, name),
            self._link.key("lookup-flight", self._namespace, kind, name),
        )

    async def fetch(
        self,
        kind: str,
        key: Hashable,
        load: Callable[[], Awaitable[V]],
        *,
        lifetime: Callable[[V], float],
        not_found_ttl: float,
        background: bool,
    ) -> tuple[V, float | None]:
        """The answer for ``key`` and, when it came from Redis, the seconds it has left there.

        ``load`` calls upstream (once per key across processes while Redis answers).
        ``NotFound`` is raised for a 404, shared or fresh.
        """
        keys = self.keys(kind, key)
        token = ("b" if background else "i") + uuid.uuid4().hex
        waited = False
        delay = FIRST_POLL
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while True:
            try:
                reply = await self._link.call(
                    lambda _: self._look(
                        keys=list(keys), args=[token, self._marker_ms, "0" if background else "1"]
                    )
                )
            except SharedUnavailable:
                self.counts.fallbacks += 1
                return await load(), None
            state = int(reply[0])
            if state == 1:
                try:
                    value = decode(reply[1], kind)
                except CodecError as exc:
                    log.debug("Ignoring an undecodable shared %s answer: %s", kind, exc)
                    return await self._own(keys, "", load, lifetime, not_found_ttl, kind)
                self.counts.hits[kind] = self.counts.hits.get(kind, 0) + 1
                if isinstance(value, NotFoundValue):
                    raise SharedNotFound(value.message, status=404, endpoint=value.endpoint)
                return value, max(0.0, int(reply[2]) / 1000)
            if state == 2:
                if waited:
                    self.counts.takeovers += 1
                return await self._own(keys, token, load, lifetime, not_found_ttl, kind)
            if not waited:
                waited = True
                self.counts.waits += 1
            if asyncio.get_running_loop().time() >= deadline:
                # Waited long enough for someone else's call: make our own, unshared.
                return await load(), None
            await asyncio.sleep(delay)
            delay = min(MAX_POLL, delay * 1.5)

    async def _own(
        self,
        keys: tuple[str, str],
        token: str,
        load: Callable[[], Awaitable[V]],
        lifetime: Callable[[V], float],
        not_found_ttl: float,
        kind: str,
    ) -> tuple[V, None]:
        """Call upstream holding the marker (renewed meanwhile), store the answer, release."""
        done = asyncio.Event()
        renewer = asyncio.create_task(self._keep(keys[1], token, done)) if token else None
        text, ttl = "", 0.0
        try:
            try:
                value = await load()
            except NotFound as exc:
                text = encode(NotFoundValue(exc.message, exc.endpoint), kind)
                ttl = not_found_ttl
                raise
            text, ttl = encode(value, kind), lifetime(value)
            return value, None
        finally:
            done.set()
            if renewer is not None:
                renewer.cancel()
            await self._store(keys, token, text, ttl)

    async def _store(self, keys: tuple[str, str], token: str, text: str, ttl: float) -> None:
        ms = int(ttl * 1000) if text else 0
        try:
            await self._link.call(
                lambda _: self._land(keys=list(keys), args=[token or "-", text, max(0, ms)])
            )
        except SharedUnavailable:
            return
        if ms > 0:
            self.counts.stores += 1

    async def _keep(self, marker: str, token: str, done: asyncio.Event) -> None:
        """Renew the marker while this process's call runs. ``done`` as well as the cancel ends
        it: on Python 3.11 a cancel landing as a Redis command finishes may be lost (see
        ``bot.serving.looping``), and a lost one would renew the marker forever."""
        while not done.is_set():
            await asyncio.sleep(self._renew_every)
            if done.is_set():
                return
            try:
                await self._link.call(
                    lambda _: self._renew(keys=[marker], args=[token, self._marker_ms])
                )
            except SharedUnavailable:
                return

    async def close(self) -> None:
        """Nothing of its own to close (the link is closed by its owner)."""
