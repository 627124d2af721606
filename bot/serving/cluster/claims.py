"""Cluster-wide use counts and per-channel no-repeat windows, claimed atomically in Redis.

One Lua script per request checks and counts every image it is about to show: refused if the
channel showed it within its last ``repeat_window`` images (a sorted set per channel, trimmed to
the window, expiring when the channel is idle for ``channel_ttl``), or if it already served
``max_uses`` requests (a counter per image that expires with its signed URL). A check-then-count
in two round trips would let two processes both take an image's last use; a script is atomic.
While Redis is down every image is granted: the pool's own in-process rules still hold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.nekos.models import Image

from ..pool import ImageRequest
from ..protocols import ClaimVerdict
from .link import REDIS_ERRORS, ClusterLink

__all__ = ["RedisClaims"]

_CLAIM = """
local window = tonumber(ARGV[1])
local max_uses = tonumber(ARGV[2])
local channel_ttl = tonumber(ARGV[3])
local n = #KEYS - 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, n do
  local id = ARGV[3 + i]
  if window > 0 and redis.call('ZSCORE', KEYS[1], id) then
    out[i] = 1
  else
    local uses = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
    if uses >= max_uses then
      out[i] = 2
    else
      redis.call('SET', KEYS[1 + i], uses + 1, 'PX', ARGV[3 + n + i])
      if window > 0 then redis.call('ZADD', KEYS[1], now * 100 + i, id) end
      out[i] = 0
    end
  end
end
if window > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(window + 1))
  redis.call('PEXPIRE', KEYS[1], channel_ttl)
end
return out
"""

_NO_CAP = 2**31

_VERDICTS = (ClaimVerdict.GRANTED, ClaimVerdict.SEEN, ClaimVerdict.USED_UP)


@dataclass(frozen=True, slots=True)
class ClaimRules:
    max_uses: int
    repeat_window: int
    no_expiry_lifetime: float
    """How long an image without ``meta.expires`` counts its uses (the pool's lifetime)."""
    channel_ttl: float = 6 * 3600.0
    """A channel's window is forgotten after this long without a command."""


class RedisClaims:
    """:class:`~bot.serving.protocols.ImageClaims` in Redis."""

    def __init__(self, link: ClusterLink, rules: ClaimRules) -> None:
        self._link = link
        self._rules = rules
        self._script = link.redis.register_script(_CLAIM)

    async def claim(
        self, request: ImageRequest, images: Sequence[Image], *, reuse: bool = False
    ) -> list[ClaimVerdict]:
        granted = [ClaimVerdict.GRANTED] * len(images)
        if not images or not self._link.up:
            return granted
        rules = self._rules
        keys = [self._link.key("seen", str(request.channel_key))]
        keys += [self._link.key("uses", image.id) for image in images]
        # A scheduled post may show an image members used up (the pool keeps those for posts),
        # and so may a member who waited long (``reuse``): only the channel's window counts.
        max_uses = _NO_CAP if request.background or reuse else rules.max_uses
        args: list[str | int] = [rules.repeat_window, max_uses, int(rules.channel_ttl * 1000)]
        args += [image.id for image in images]
        args += [self._ttl_ms(image) for image in images]
        try:
            codes = await self._script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
            return granted
        return [_VERDICTS[int(code)] for code in codes]

    def _ttl_ms(self, image: Image) -> int:
        expires = image.meta.expires
        if expires is None:
            return int(self._rules.no_expiry_lifetime * 1000)
        return max(1000, int((expires.timestamp() - time.time()) * 1000))
