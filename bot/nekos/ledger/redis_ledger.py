"""The Redis ledger: processes on many hosts behind one IP share a budget through Redis.

One small Lua script (:data:`SCRIPT`) is a transcription of
:class:`~bot.nekos.ledger.base.KeyState`'s rules, run atomically by the server with the server's
own clock (``TIME``), so the hosts' clocks never meet. A key's state lives under
``<prefix>budget:{<key>}:…`` (one hash tag, so a cluster keeps it in one slot) and expires after
twice the strike window without use.

Redis keeps nothing on disk here, so a restart forgets every key. The script notices (the key's
epoch marker is gone), holds the key for one spacing (the last start before the restart is
unknown) and reports a new epoch, so that :class:`~bot.nekos.ledger.failover.FailoverLedger` can
re-apply the strikes and blocks it mirrored locally.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .base import (
    DEFAULT_STRIKE_WINDOW,
    DEMAND_GRACE,
    PEER_WINDOW,
    BudgetHealth,
    Claim,
    KeyState,
    LedgerUnavailable,
    StrikeResult,
    Verdict,
    VerdictKind,
)

__all__ = ["HOST_WINDOW", "SCRIPT", "RedisLedger", "Reservation"]

HOST_WINDOW = 600.0
"""Hosts that reserved within this many seconds count as sharing the key."""

SCRIPT = """
-- KEYS: state (hash), strikes (zset id -> time), demand (zset owner -> expiry),
--       seen (zset owner -> last reserve), epoch (string), hosts (hash host -> last reserve)
-- ARGV: op, strike window, ttl, then the op's own arguments (see RedisLedger)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op, window, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state, strikes, demand = KEYS[1], KEYS[2], KEYS[3]
local seen, epoch, hosts = KEYS[4], KEYS[5], KEYS[6]
local NONE = -math.huge

local function num(name)
  local v = redis.call('HGET', state, name)
  if v then return tonumber(v) end
  return NONE
end
local function put(name, value)
  redis.call('HSET', state, name, string.format('%.6f', value))
end
local function hold(seconds)
  if now + seconds > num('hold_until') then put('hold_until', now + seconds) end
end

redis.call('ZREMRANGEBYSCORE', strikes, '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', demand, '-inf', now)
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[4]))
local block_until = num('block_until')
local block_reason = redis.call('HGET', state, 'block_reason') or ''
if block_until <= now then
  block_until, block_reason = NONE, ''
  redis.call('HDEL', state, 'block_until', 'block_reason')
end
local function block(seconds, reason)
  if now + seconds > block_until then
    block_until, block_reason = now + seconds, reason
    put('block_until', block_until)
    redis.call('HSET', state, 'block_reason', reason)
  end
end
local function touch()
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
end

if op == 'reserve' then
  -- ARGV[5..]: owner, priority, spacing, more_demand, grace, epoch candidate, host
  local owner, priority, spacing = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
  local more, grace, host = ARGV[8] == '1', tonumber(ARGV[9]), ARGV[11]
  local current = redis.call('GET', epoch)
  if not current then
    -- Nothing known about the last start (new key, or Redis restarted): wait one spacing.
    current = ARGV[10]
    redis.call('SET', epoch, current)
    hold(spacing)
  end
  local host_count = -1
  if host ~= '' then
    redis.call('HSET', hosts, host, string.format('%.6f', now))
    host_count = 0
    local entries = redis.call('HGETALL', hosts)
    for i = 2, #entries, 2 do
      if tonumber(entries[i]) > now - tonumber(ARGV[12]) then host_count = host_count + 1
      else redis.call('HDEL', hosts, entries[i - 1]) end
    end
  end
  local others = redis.call('ZCARD', demand) - (redis.call('ZSCORE', demand, owner) and 1 or 0)
  redis.call('ZADD', seen, now, owner)
  local peers = redis.call('ZCARD', seen) - 1
  local count = redis.call('ZCARD', strikes)
  local function answer(kind, wait, reason)
    touch()
    return {kind, string.format('%.6f', math.max(0, wait)), count, reason, peers, others,
            current, host_count}
  end
  if block_until > now then return answer('blocked', block_until - now, block_reason) end
  local gap = math.max(spacing, tonumber(redis.call('HGET', state, 'last_spacing') or '0'))
  local earliest = math.max(num('hold_until'), math.min(num('last_start'), now) + gap)
  local background = priority >= 2
  if background and others > 0 then
    return answer('wait', math.max(earliest, now) + gap - now, '')
  end
  if earliest > now then
    if not background then redis.call('ZADD', demand, earliest + grace, owner) end
    return answer('wait', earliest - now, '')
  end
  put('last_start', now)
  put('last_spacing', spacing)
  if not background and more then
    redis.call('ZADD', demand, now + gap + grace, owner)
  else
    redis.call('ZREM', demand, owner)
  end
  return answer('go', 0, '')
elseif op == 'hold' then
  hold(tonumber(ARGV[5]))
elseif op == 'strike' then
  -- ARGV[5..]: strike id, hold seconds, max strikes
  redis.call('ZADD', strikes, now, ARGV[5])
  hold(tonumber(ARGV[6]))
  local count = redis.call('ZCARD', strikes)
  if count >= tonumber(ARGV[7]) then
    local oldest = tonumber(redis.call('ZRANGE', strikes, 0, 0, 'WITHSCORES')[2])
    block(oldest + window - now, 'strikes')
    touch()
    return {count, string.format('%.6f', block_until - now)}
  end
  touch()
  return {count, ''}
elseif op == 'block' then
  block(tonumber(ARGV[5]), ARGV[6])
elseif op == 'merge' then
  -- ARGV[5..]: hold seconds, block seconds, block reason, then (strike id, age) pairs
  hold(tonumber(ARGV[5]))
  if tonumber(ARGV[6]) > 0 then block(tonumber(ARGV[6]), ARGV[7]) end
  for i = 8, #ARGV, 2 do redis.call('ZADD', strikes, 'NX', now - tonumber(ARGV[i + 1]), ARGV[i]) end
end
touch()
return 0
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reserve answer with what only Redis reports: its epoch and the hosts sharing the key."""

    verdict: Verdict
    epoch: str
    hosts: int | None
    """Hosts that reserved on this key within :data:`HOST_WINDOW` (``None`` if not asked)."""


class RedisLedger:
    """A :class:`~bot.nekos.ledger.base.BudgetLedger` in Redis (asyncio redis-py, one script).

    Every Redis error surfaces as :class:`LedgerUnavailable`; the caller decides how to fail safe
    (:class:`~bot.nekos.ledger.failover.FailoverLedger`). ``prefix`` namespaces the keys (a test
    or benchmark uses its own).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "nekos:",
        strike_window: float = DEFAULT_STRIKE_WINDOW,
        description: str = "shared via Redis",
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._window = strike_window
        self._ttl = int(2 * strike_window)
        self._script = client.register_script(SCRIPT)
        self._description = description

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.5, **options: Any) -> RedisLedger:
        """A ledger on a new client for ``url`` that fails fast: short timeouts, one retry.

        The one retry (at once, on a fresh connection) covers the pooled connection a Redis
        restart broke; a server that is really gone fails within two timeouts.
        """
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, **options)

    def keys(self, key: str) -> list[str]:
        """The Redis keys that hold ``key``'s state, in the script's order."""
        base = f"{self._prefix}budget:{{{key}}}:"
        return [base + part for part in ("state", "strikes", "demand", "seen", "epoch", "hosts")]

    async def _call(self, key: str, op: str, *args: object) -> Any:
        head = (op, repr(self._window), str(self._ttl), repr(PEER_WINDOW))
        try:
            return await self._script(keys=self.keys(key), args=[*head, *map(_arg, args)])
        except (RedisError, OSError) as exc:
            raise LedgerUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ the ledger

    async def reserve_with_epoch(self, key: str, claim: Claim, host: str = "") -> Reservation:
        """:meth:`reserve`, also returning the key's epoch and (with ``host``) the host count."""
        reply = await self._call(
            key,
            "reserve",
            claim.owner,
            claim.priority,
            claim.spacing,
            "1" if claim.more_demand else "0",
            DEMAND_GRACE,
            uuid.uuid4().hex,
            host,
            HOST_WINDOW,
        )
        kind, wait, strikes, reason, peers, demand, epoch, hosts = reply
        verdict = Verdict(
            VerdictKind(_text(kind)),
            float(_text(wait)),
            int(strikes),
            _text(reason),
            int(peers),
            int(demand),
        )
        return Reservation(verdict, _text(epoch), int(hosts) if int(hosts) >= 0 else None)

    async def reserve(self, key: str, claim: Claim) -> Verdict:
        return (await self.reserve_with_epoch(key, claim)).verdict

    async def hold(self, key: str, seconds: float) -> None:
        await self._call(key, "hold", seconds)

    async def strike(
        self, key: str, strike_id: str, *, hold: float, max_strikes: int
    ) -> StrikeResult:
        count, blocked = await self._call(key, "strike", strike_id, hold, max_strikes)
        text = _text(blocked)
        return StrikeResult(int(count), float(text) if text else None)

    async def block(self, key: str, seconds: float, reason: str) -> None:
        await self._call(key, "block", seconds, reason)

    async def merge(self, key: str, state: KeyState, now: float) -> None:
        """Re-apply a local copy's holds, block and strikes (times relative to its ``now``)."""
        ages = [item for sid, at in state.strikes.items() for item in (sid, max(0.0, now - at))]
        block = state.block_until - now if state.block_until > now else 0.0
        await self._call(
            key,
            "merge",
            max(0.0, state.hold_until - now),
            block,
            state.block_reason or "strikes",
            *ages,
        )

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise LedgerUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc

    def health(self) -> BudgetHealth:
        return BudgetHealth("redis", self._description)

    async def close(self) -> None:
        await self._client.aclose()


def _arg(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
