"""The batch feed: every batch any process fetched, read from a Redis stream by every process.

A batch this process is waiting for wakes its waiters (:class:`~.source.Waiters`), whose pool
lands it; any other batch is offered to this process's pool (:meth:`ImagePool.offer`), so one
call stocks every process. The stream keeps about a minute of batches (``MINID`` trimming on
each ``XADD``): readers are live, and each process's stock drops an image before its signed
URL expires. While Redis is down the feed probes it every second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.nekos.models import Image

from ..looping import Loop
from .codec import CodecError, images_from_text
from .link import REDIS_ERRORS, ClusterLink
from .source import Landed, Waiters

__all__ = ["BatchFeed"]

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BatchFeed:
    """Reads the stream of batches; hands each to waiters or to ``offer``."""

    def __init__(
        self,
        link: ClusterLink,
        stream_key: str,
        waiters: Waiters,
        offer: Callable[[Sequence[Image]], object],
        *,
        block: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._link = link
        self._stream = stream_key
        self._waiters = waiters
        self._offer = offer
        self._block = block
        self._sleep = sleep
        self._loop = Loop("shared-pool-feed", self._turn)
        self._last: str | None = None
        self.batches_offered = 0

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        self._waiters.listening.clear()
        await self._loop.stop()

    async def _turn(self) -> None:
        try:
            await self.read_once()
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
        except Exception:  # the loop outlives any one batch's failure
            log.exception("shared pool feed failed")
            await self._sleep(1.0)
        if not self._link.up:
            self._last = None
            self._waiters.listening.clear()
            await self._sleep(1.0)
            await self._link.probe()

    async def read_once(self) -> None:
        redis = self._link.redis
        if self._last is None:
            newest = await redis.xrevrange(self._stream, count=1)
            self._last = _text(newest[0][0]) if newest else "0-0"
            self._waiters.listening.set()
        found: Any = await redis.xread({self._stream: self._last}, block=int(self._block * 1000))
        for _stream, entries in found or ():
            for entry_id, fields in entries:
                self._last = _text(entry_id)
                self._land({_text(k): v for k, v in fields.items()})

    def _land(self, fields: dict[str, Any]) -> None:
        try:
            images = images_from_text(fields.get("images", b"[]"))
        except CodecError as exc:
            log.warning("shared pool: a batch did not decode (%s)", exc)
            return
        batch = Landed(images, _text(fields.get("error", b"")))
        if self._waiters.landed(_text(fields.get("dedupe", b"")), batch):
            return
        if images:
            self._offer(images)
            self.batches_offered += 1
