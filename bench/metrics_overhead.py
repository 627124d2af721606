"""CPU: what the operators' metrics cost per command, and what one scrape costs.

Per command: ``responding.measure_command`` as ``send_reply`` calls it once per interaction
(name the command, read the clocks, one counter increment and two histogram observations),
with metrics off (the null object) and on (Prometheus). Per API request: the transport's two
observer calls (pacer wait, status). Per scrape: rendering the registry after a busy day's worth
of label sets (every command × outcome, every endpoint × status); the bot's own readings (pool,
caches, gateway, budget) add one ``metrics()`` call each, in-memory counters only.

Compare the per-command figure with ``bench.cpu`` (~0.9 ms per pooled ``/neko random``).

    .venv/bin/python -m bench.metrics_overhead [--iterations 200000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

import discord
from prometheus_client import generate_latest

from bot.config import settings_from_mapping
from bot.metrics import NULL_METRICS, OUTCOMES, Metrics, open_metrics
from bot.metrics.prometheus import PrometheusMetrics
from bot.nekos.pacing import Priority
from bot.responding import measure_command

from .common import figure

COMMANDS = ("random", "artist", "character", "image", "category", "stats", "about")
ENDPOINTS = (
    "GET /image/random",
    "GET /image/{id}",
    "GET /artist/{id}",
    "GET /artist/{id}/images",
    "GET /character/{id}",
    "GET /category",
    "GET /stats",
)
STATUSES = ("200", "404", "429", "500", "timeout", "connection")


def interactions(metrics: Metrics, count: int) -> list[Any]:
    """Interaction stand-ins with what ``measure_command`` reads: id, extras, client, command."""
    client = SimpleNamespace(metrics=metrics)
    command = SimpleNamespace(qualified_name="neko random")
    snowflake = discord.utils.time_snowflake(discord.utils.utcnow())
    return [
        SimpleNamespace(id=snowflake, extras={}, client=client, command=command, data=None)
        for _ in range(count)
    ]


def per_call(run: Callable[[], object], iterations: int, repeats: int = 5) -> float:
    """Median nanoseconds per call of ``run`` (which makes ``iterations`` calls)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / iterations)
    return statistics.median(samples)


def command_cost(metrics: Metrics, iterations: int) -> float:
    def run() -> None:
        for interaction in interactions(metrics, iterations):
            measure_command(cast(Any, interaction), "served")

    # Building the stand-ins is timed apart and taken off.
    build = per_call(lambda: interactions(metrics, iterations), iterations)
    return per_call(run, iterations) - build


def request_cost(metrics: Metrics, iterations: int) -> float:
    def run() -> None:
        observer = metrics.request_observer
        for _ in range(iterations):
            if observer is not None:
                observer.pacer_wait(Priority.SHARED, 0.4)
                observer.upstream_call("GET /image/random", "200", 0.12)

    return per_call(run, iterations)


def scrape_cost(metrics: PrometheusMetrics) -> tuple[float, int]:
    for command in COMMANDS:
        for outcome in OUTCOMES:
            metrics.command(command, outcome, 0.3, 1.2)
    for endpoint in ENDPOINTS:
        for status in STATUSES:
            metrics.upstream_call(endpoint, status, 0.2)
    size = len(generate_latest(metrics.registry))
    return per_call(lambda: [generate_latest(metrics.registry) for _ in range(100)], 100), size


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics_overhead", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="a few thousand iterations")
    args = parser.parse_args(argv)
    # Never served here: the port only switches the Prometheus metrics on.
    on = open_metrics(settings_from_mapping({"METRICS_PORT": "9100"}), shard_ids=[0])
    assert isinstance(on, PrometheusMetrics)
    n = 5_000 if args.quick else args.iterations
    figure(
        "metrics",
        "per command",
        {
            "off_ns": round(command_cost(NULL_METRICS, n)),
            "on_ns": round(command_cost(on, n)),
        },
    )
    figure(
        "metrics",
        "per API request",
        {"off_ns": round(request_cost(NULL_METRICS, n)), "on_ns": round(request_cost(on, n))},
    )
    seconds, size = scrape_cost(on)
    figure("metrics", "per scrape", {"us": round(seconds / 1000), "bytes": size})


if __name__ == "__main__":
    main()
