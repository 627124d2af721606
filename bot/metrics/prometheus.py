"""The bot's Prometheus metrics: every metric in one place, served at ``/metrics``.

Each :class:`PrometheusMetrics` has a registry of its own (never the library's global one), and
every sample carries the process's ``process`` and ``shards`` labels. Two kinds of metrics:

* counted on the way (commands, API requests, pacer waits): counters and histograms whose
  labelled children are cached here, so a hot-path call is a dict lookup and an increment;
* read at scrape time from what the bot already keeps (pool, lookup caches, gateway, request
  budget, shared services): :class:`_BotCollector`, which costs nothing between scrapes.

The endpoint is an aiohttp site on the bot's own event loop (prometheus-client's handler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from bot import __version__
from bot.config import ConfigError
from bot.nekos.pacing import Priority
from bot.store.postgres import PostgresSettingsStore

from . import Metrics

if TYPE_CHECKING:
    from bot.core import NekosBot
    from bot.nekos.transport import RequestObserver

__all__ = [
    "BUDGET_MODES",
    "COMMAND_BUCKETS",
    "PACER_WAIT_BUCKETS",
    "UPSTREAM_BUCKETS",
    "PrometheusMetrics",
]

log = logging.getLogger(__name__)

COMMAND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds; 2 s is when the bot defers, 3 s is Discord's deadline for the first response."""
PACER_WAIT_BUCKETS = (0.001, 0.05, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BUDGET_MODES = ("memory", "folder", "redis", "fallback", "paused")
"""The request budget's modes (``BudgetHealth.mode``): a gauge per mode, 1 for the current."""
_CONST = ("process", "shards")


class PrometheusMetrics(Metrics):
    """Metrics on a registry of their own, served at ``http://host:port/metrics``."""

    enabled: ClassVar[bool] = True

    def __init__(
        self,
        *,
        host: str,
        port: int,
        egress: str,
        api_version: str,
        labels: Mapping[str, str],
    ) -> None:
        self.host = host
        self.port = port
        self.registry = CollectorRegistry()
        self._const = tuple(labels[name] for name in _CONST)
        self._egress = egress
        self._api_version = api_version
        self._runner: web.AppRunner | None = None
        registry = self.registry
        self._commands = Counter(
            "nekos_bot_commands",
            "Commands and button presses answered, by command and outcome.",
            [*_CONST, "command", "outcome"],
            registry=registry,
        )
        self._ack = Histogram(
            "nekos_bot_command_ack_seconds",
            "Seconds from the interaction's creation (Discord's clock) to the bot's first "
            "response: the answer itself or a deferral. Discord allows 3.",
            [*_CONST, "command"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self._final = Histogram(
            "nekos_bot_command_final_seconds",
            "Seconds from the interaction's creation to the command's last message.",
            [*_CONST, "command"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self._upstream = Counter(
            "nekos_bot_upstream_requests",
            "Nekos API requests sent, by endpoint, HTTP status (or timeout / connection) "
            "and egress address.",
            [*_CONST, "endpoint", "status", "egress"],
            registry=registry,
        )
        self._upstream_seconds = Histogram(
            "nekos_bot_upstream_request_duration_seconds",
            "Seconds from sending a Nekos API request to its answer (or failure).",
            [*_CONST, "endpoint", "egress"],
            buckets=UPSTREAM_BUCKETS,
            registry=registry,
        )
        rate_limited = Counter(
            "nekos_bot_upstream_rate_limited",
            "429 answers from the Nekos API, by egress address.",
            [*_CONST, "egress"],
            registry=registry,
        )
        self._rate_limited = rate_limited.labels(*self._const, egress)
        pacer_wait = Histogram(
            "nekos_bot_pacer_wait_seconds",
            "Seconds an API request waited for its turn at the pacer (the shared request "
            "budget included), by priority.",
            [*_CONST, "priority"],
            buckets=PACER_WAIT_BUCKETS,
            registry=registry,
        )
        self._pacer_wait = {p: pacer_wait.labels(*self._const, p.name.lower()) for p in Priority}
        # The labelled children, made once: a hot-path call is then a dict lookup.
        self._command_counts: dict[tuple[str, str], Counter] = {}
        self._command_times: dict[str, tuple[Histogram, Histogram]] = {}
        self._upstream_counts: dict[tuple[str, str], Counter] = {}
        self._upstream_times: dict[str, Histogram] = {}
        ProcessCollector(registry=registry)

    # ------------------------------------------------------------------ on the way

    @property
    def request_observer(self) -> RequestObserver:
        return self

    def command(self, command: str, outcome: str, ack_seconds: float, final_seconds: float) -> None:
        key = (command, outcome)
        count = self._command_counts.get(key)
        if count is None:
            count = self._command_counts[key] = self._commands.labels(*self._const, *key)
        count.inc()
        times = self._command_times.get(command)
        if times is None:
            times = self._command_times[command] = (
                self._ack.labels(*self._const, command),
                self._final.labels(*self._const, command),
            )
        times[0].observe(ack_seconds)
        times[1].observe(final_seconds)

    def pacer_wait(self, priority: Priority, seconds: float) -> None:
        self._pacer_wait[priority].observe(seconds)

    def upstream_call(self, endpoint: str, status: str, seconds: float) -> None:
        key = (endpoint, status)
        count = self._upstream_counts.get(key)
        if count is None:
            count = self._upstream_counts[key] = self._upstream.labels(
                *self._const, endpoint, status, self._egress
            )
        count.inc()
        timer = self._upstream_times.get(endpoint)
        if timer is None:
            timer = self._upstream_times[endpoint] = self._upstream_seconds.labels(
                *self._const, endpoint, self._egress
            )
        timer.observe(seconds)
        if status == "429":
            self._rate_limited.inc()

    # ------------------------------------------------------------------ serving

    async def start(self, bot: NekosBot) -> None:
        """Read ``bot``'s state at every scrape and serve ``/metrics`` on host:port."""
        self.registry.register(
            _BotCollector(bot, self._const, egress=self._egress, api_version=self._api_version)
        )
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"METRICS_PORT {self.port} cannot be opened on {self.host} "
                f"({exc.strerror or exc}): choose a free port, or leave METRICS_PORT empty"
            ) from None
        self._runner = runner
        log.info("Metrics at http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class _BotCollector:
    """What the bot already keeps, read at each scrape (no I/O, no work between scrapes)."""

    def __init__(
        self, bot: NekosBot, const: tuple[str, ...], *, egress: str, api_version: str
    ) -> None:
        self._bot = bot
        self._const = list(const)
        self._egress = egress
        self._api_version = api_version
        self._failed: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        for name, part in (
            ("info", self._info),
            ("pool", self._pool),
            ("lookups", self._lookups),
            ("gateway", self._gateway),
            ("budget", self._budget),
            ("shared", self._shared),
            ("services", self._services),
        ):
            yield from self._guarded(name, part)

    def _guarded(self, name: str, part: Callable[[], Iterable[Metric]]) -> Iterable[Metric]:
        # A broken reading must not fail the whole scrape; it is logged once.
        try:
            return list(part())
        except Exception:
            if name not in self._failed:
                self._failed.add(name)
                log.exception("Could not read the bot's %s metrics", name)
            return []

    def _gauge(self, name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=[*_CONST, *labels])
        family.add_metric([*self._const, *labels.values()], value)
        return family

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=list(_CONST))
        family.add_metric(self._const, value)
        return family

    def _info(self) -> Iterator[Metric]:
        yield self._gauge(
            "nekos_bot_info",
            "The bot's version, the Nekos API version it uses and its egress address (1).",
            1,
            version=__version__,
            api_version=self._api_version,
            egress=self._egress,
        )

    def _pool(self) -> Iterator[Metric]:
        pool = self._bot.pool.metrics()
        yield self._gauge(
            "nekos_bot_pool_images", "Images in the random-image pool now.", pool.pool_size
        )
        yield self._gauge(
            "nekos_bot_pool_waiting_requests",
            "Random-image requests waiting for the API now.",
            pool.waiting,
        )
        for name, doc, value in (
            ("requests", "Random-image requests the pool served.", pool.requests),
            (
                "served_from_stock",
                "Random-image requests served entirely from the pool's stock.",
                pool.pool_hits,
            ),
            (
                "waited_for_upstream",
                "Random-image requests that waited for an API call.",
                pool.pool_misses,
            ),
            (
                "coalesced_waits",
                "Waiting random-image requests that joined an API call already under way.",
                pool.coalesced_waits,
            ),
            (
                "reused_images",
                "Images members got, after a long wait, from those other servers had used up.",
                pool.reused,
            ),
        ):
            yield self._counter(f"nekos_bot_pool_{name}", doc, value)

    def _lookups(self) -> Iterator[Metric]:
        lookups = self._bot.lookups.metrics()
        cache = CounterMetricFamily(
            "nekos_bot_lookup_cache",
            "Lookups (image, artist, stats, …) answered from a cache (hit; tier local: this "
            "process's, shared: Redis, another process's call) or not (miss).",
            labels=[*_CONST, "kind", "result", "tier"],
        )
        for kind in lookups.kinds:
            cache.add_metric([*self._const, kind.kind, "hit", "local"], kind.hits)
            cache.add_metric([*self._const, kind.kind, "hit", "shared"], kind.shared_hits)
            cache.add_metric([*self._const, kind.kind, "miss", ""], kind.misses - kind.shared_hits)
        yield cache
        for name, doc, value in (
            (
                "listed",
                "Artist and character lookups answered from the full lists, at no API cost.",
                lookups.listed,
            ),
            (
                "coalesced",
                "Lookups that joined the same lookup already in flight.",
                lookups.coalesced,
            ),
            (
                "busy",
                'Member lookups answered "busy, try again" instead of waiting long for the API.',
                lookups.shed,
            ),
            (
                "shared_waits",
                "Lookups that waited for the same lookup under way in another process (Redis).",
                lookups.shared_waits,
            ),
            (
                "shared_fallbacks",
                "Lookups made by this process alone because Redis was unreachable.",
                lookups.shared_fallbacks,
            ),
        ):
            yield self._counter(f"nekos_bot_lookup_{name}", doc, value)

    def _gateway(self) -> Iterator[Metric]:
        bot = self._bot
        latency = GaugeMetricFamily(
            "nekos_bot_gateway_latency_seconds",
            "Discord gateway heartbeat latency per shard (+Inf before the first heartbeat).",
            labels=[*_CONST, "shard"],
        )
        for shard_id, seconds in bot.latencies:
            latency.add_metric([*self._const, str(shard_id)], seconds)
        yield latency
        shards = bot.shards.values()
        yield self._gauge("nekos_bot_shards", "Shards this process runs.", len(shards))
        yield self._gauge(
            "nekos_bot_shards_connected",
            "Shards of this process whose gateway connection is open.",
            sum(not shard.is_closed() for shard in shards),
        )
        yield self._gauge("nekos_bot_guilds", "Servers on this process's shards.", len(bot.guilds))

    def _budget(self) -> Iterator[Metric]:
        state = self._bot.nekos.pacer.state()
        yield self._gauge(
            "nekos_bot_pacer_queue_length",
            "API requests waiting for their turn now.",
            state.queue_length,
        )
        yield self._gauge(
            "nekos_bot_rate_limit_strikes",
            "429s counted against the strike budget within its window (all processes).",
            state.strikes_in_window,
        )
        yield self._gauge(
            "nekos_bot_api_blocked",
            "1 while requests are blocked (by the API, or by the bot before a block).",
            1 if state.blocked_until is not None else 0,
        )
        yield self._gauge(
            "nekos_bot_request_budget_peers",
            "Other processes that used the same request budget within the last minute.",
            state.budget_peers,
        )
        budget = self._bot.budget
        if budget is None:
            return
        mode = budget.ledger.health().mode
        modes = GaugeMetricFamily(
            "nekos_bot_request_budget_mode",
            "Where the request budget is kept: 1 for the current mode (redis: shared via "
            "Redis; folder: the data folder; fallback: the data folder while Redis is "
            "unreachable; paused: requests paused while Redis is unreachable).",
            labels=[*_CONST, "mode"],
        )
        for each in BUDGET_MODES:
            modes.add_metric([*self._const, each], 1 if each == mode else 0)
        yield modes

    def _shared(self) -> Iterator[Metric]:
        shared = self._bot.shared
        yield self._counter(
            "nekos_bot_cooldown_shared_fallbacks",
            "Cooldown checks and refunds answered in-process because Redis was unreachable.",
            shared.cooldown_fallbacks if shared is not None else 0,
        )

    def _services(self) -> Iterator[Metric]:
        bot = self._bot
        services = GaugeMetricFamily(
            "nekos_bot_shared_service_up",
            "Shared services as this process last saw them (1 reachable, 0 not): postgresql "
            "(its change-feed connection, pinged), redis (the request budget's link), "
            "redis_serving (the shared lookups' and cooldowns' link).",
            labels=[*_CONST, "service"],
        )
        if isinstance(bot.store, PostgresSettingsStore):
            services.add_metric([*self._const, "postgresql"], 1 if bot.store.listening else 0)
        if bot.settings.redis_url is not None and bot.budget is not None:
            up = bot.budget.ledger.health().mode == "redis"
            services.add_metric([*self._const, "redis"], 1 if up else 0)
        if bot.shared is not None:
            services.add_metric([*self._const, "redis_serving"], 1 if bot.shared.link.up else 0)
        yield services
