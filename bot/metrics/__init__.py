"""Operators' metrics: the hooks the bot calls, and whether they measure anything.

:class:`Metrics` is the interface every part of the bot is handed (``NekosBot.metrics``, the API
client's request observer). This base class does nothing: it is the null object used while
``METRICS_PORT`` is unset, so the hot path pays one no-op call. :func:`open_metrics` returns
the Prometheus implementation (:mod:`bot.metrics.prometheus`, imported only then) when a port
is configured; it serves ``/metrics`` from the bot's own event loop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from bot.config import Settings
from bot.nekos.pacing import Priority

if TYPE_CHECKING:
    from bot.core import NekosBot
    from bot.nekos.transport import RequestObserver

__all__ = ["NULL_METRICS", "OUTCOMES", "Metrics", "open_metrics", "process_labels", "shard_text"]

OUTCOMES = (
    "served",
    "nothing_matched",
    "input_error",
    "busy",
    "api_error",
    "cooldown",
    "unexpected",
    "undelivered",
)
"""Every command outcome: a :data:`bot.replies.Outcome`, or "undelivered" (Discord refused the
answer, or it was too late to send)."""


class Metrics:
    """What the bot reports as it works. This base measures nothing (metrics are off)."""

    enabled: ClassVar[bool] = False

    @property
    def request_observer(self) -> RequestObserver | None:
        """What the API client tells of each request (``None``: nothing to tell)."""
        return None

    def command(self, command: str, outcome: str, ack_seconds: float, final_seconds: float) -> None:
        """A command was answered: ``outcome`` (see :data:`OUTCOMES`); seconds from the
        interaction's creation to its first response (answer or deferral) and to its last
        message."""

    def pacer_wait(self, priority: Priority, seconds: float) -> None:
        """An API request waited ``seconds`` for its turn at the pacer."""

    def upstream_call(self, endpoint: str, status: str, seconds: float) -> None:
        """An API request was answered with ``status`` (or "timeout" / "connection")."""

    async def start(self, bot: NekosBot) -> None:
        """Read the bot's own state at each scrape and start serving ``/metrics``."""

    async def close(self) -> None:
        """Stop serving."""


NULL_METRICS = Metrics()
"""The metrics of a bot without ``METRICS_PORT``: nothing measured, no port opened."""


def shard_text(shard_ids: Iterable[int] | None) -> str:
    """Shard ids as an operator writes them: ``0-3,8``; ``all`` when the process runs them all."""
    if shard_ids is None:
        return "all"
    ids = sorted(set(shard_ids))
    if not ids:
        return "none"
    ranges: list[str] = []
    start = previous = ids[0]
    for shard in [*ids[1:], None]:
        if shard is not None and shard == previous + 1:
            previous = shard
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if shard is not None:
            start = previous = shard
    return ",".join(ranges)


def process_labels(shard_ids: Iterable[int] | None) -> dict[str, str]:
    """The labels every metric of this process carries: ``process`` (host:pid, unique among
    running processes) and ``shards`` (the shard ids it runs)."""
    return {"process": f"{socket.gethostname()}:{os.getpid()}", "shards": shard_text(shard_ids)}


def open_metrics(settings: Settings, *, shard_ids: Iterable[int] | None = None) -> Metrics:
    """The Prometheus metrics when ``METRICS_PORT`` is set, else :data:`NULL_METRICS`."""
    if settings.metrics_port is None:
        return NULL_METRICS
    # Imported only when metrics are on: a bot without them never loads prometheus_client.
    from .prometheus import PrometheusMetrics

    return PrometheusMetrics(
        host=settings.metrics_host,
        port=settings.metrics_port,
        egress=settings.source_address or "default",
        api_version=settings.nekos_api_version,
        labels=process_labels(shard_ids),
    )
