"""The per-member cooldown in Redis: a member's uses count in whichever process answers.

Each member's recent uses are a sorted set (``<prefix>cooldown:<user id>``: one member per use,
scored with the Redis server's clock, so the hosts' clocks never meet) changed only by one Lua
script, so two processes checking at once cannot both take the last use. The rules are those of
:class:`~bot.serving.cooldown.Cooldown`: ``rate`` uses per ``per_seconds`` sliding window, a
refused use is not recorded, a refund gives back the latest use. While Redis is unreachable the
in-process :class:`Cooldown` answers (the link's circuit), and when Redis is back it answers again.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from ..cooldown import Cooldown
from .link import RedisLink, SharedUnavailable

__all__ = ["SharedCooldown", "SharedCooldownCounts"]

_SCRIPT = """
-- KEYS: the member's uses (zset). ARGV: op, rate, window (s), use id, key ttl (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
local op = ARGV[1]
if op == 'refund' then
  redis.call('ZPOPMAX', KEYS[1])
  return ''
end
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], count - tonumber(ARGV[2]), count - tonumber(ARGV[2]),
                            'WITHSCORES')
  return string.format('%.6f', math.max(0, tonumber(oldest[2]) + window - now))
end
if op == 'check' then
  redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return ''
"""
"""``check``: '' when a use is taken, else the seconds until the next is allowed; ``peek``: the
same without taking one; ``refund``: the latest use given back."""


@dataclass(slots=True)
class SharedCooldownCounts:
    checks: int = 0
    """Uses checked in Redis."""
    fallbacks: int = 0
    """Checks and refunds answered in-process because Redis was unreachable."""


class SharedCooldown:
    """:class:`Cooldown`'s behaviour across processes, through ``link``; ``local`` answers while
    Redis cannot (and gives the rate and window)."""

    def __init__(self, link: RedisLink, local: Cooldown) -> None:
        self._link = link
        self.local = local
        self.rate = local.rate
        self.per_seconds = local.per_seconds
        self._script = link.client.register_script(_SCRIPT)
        self._ttl_ms = str(max(1, math.ceil(local.per_seconds * 1000)))
        self.counts = SharedCooldownCounts()

    def key(self, user_id: int) -> str:
        return self._link.key("cooldown", str(user_id))

    async def _run(self, op: str, user_id: int) -> float | None:
        args = [op, str(self.rate), repr(float(self.per_seconds)), uuid.uuid4().hex, self._ttl_ms]
        reply = await self._link.call(lambda _: self._script(keys=[self.key(user_id)], args=args))
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        return float(text) if text else None

    async def take(self, user_id: int) -> float | None:
        """Take a use: ``None`` if allowed, else the seconds until the next is allowed."""
        try:
            wait = await self._run("check", user_id)
        except SharedUnavailable:
            self.counts.fallbacks += 1
            return self.local.check(user_id)
        self.counts.checks += 1
        return wait

    async def give_back(self, user_id: int) -> None:
        """Give back the member's latest use (the command did not count)."""
        try:
            await self._run("refund", user_id)
        except SharedUnavailable:
            self.counts.fallbacks += 1
            self.local.refund(user_id)

    async def wait_for(self, user_id: int) -> float | None:
        """The wait before the member's next use, taking nothing (``None``: allowed now)."""
        try:
            return await self._run("peek", user_id)
        except SharedUnavailable:
            self.counts.fallbacks += 1
            return self.local.retry_after(user_id)

    async def close(self) -> None:
        """Nothing of its own to close (the link is closed by its owner)."""
