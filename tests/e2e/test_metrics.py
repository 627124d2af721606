"""The operators' metrics: ``/metrics`` scraped from the real bot after commands through Discord.

Counts are checked against what the test did and what the fake API saw, never timings.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.conftest import Stack, custom_ids, eventually, message_of, shown_image_ids
from tests.redis_service import free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "nekos-bot.json"
METRIC_NAME_RE = re.compile(r"\b(?:nekos_bot|process)_[a-z0-9_]+")


def listening_ports() -> set[int]:
    """TCP ports this test process listens on (the fakes', and the bot's if it opened one)."""
    return {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


class Scrape:
    """One ``/metrics`` answer, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    @property
    def names(self) -> set[str]:
        """Every metric family's name (counters without ``_total``)."""
        return {f.name for f in self.families}

    def matching(self, name: str, **labels: str) -> Iterator[Sample]:
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                yield sample

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples carrying ``labels`` (0 when there are none)."""
        return sum(s.value for s in self.matching(name, **labels))


async def scrape(port: int) -> Scrape:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        return Scrape(await response.text())


def fake_statuses(stack: Stack) -> collections.Counter[str]:
    """The statuses the fake API answered the bot's requests with (answered ones only)."""
    return collections.Counter(str(r.status) for r in stack.api.api_requests if r.status > 0)


async def test_metrics_count_what_members_did_and_what_the_api_answered(stack: Stack) -> None:
    data = stack.dataset()
    image_id = next(i.id for i in data.images if i.nsfw == "sfw")
    port = free_port()
    env = {"METRICS_PORT": str(port), "COOLDOWN_USES": "2", "COOLDOWN_SECONDS": "300"}
    async with stack.run(**env) as bot:
        assert port in listening_ports()
        # The member: served twice, then over the cooldown.
        for _ in range(3):
            await stack.ask(stack.member, stack.general, "random")
        # The owner: a malformed id, then one image twice (the second from the cache), with a
        # 429 from the API on the way.
        await stack.ask(stack.owner, stack.general, "image", id="not-an-id")
        stack.api.fail_next(1, status=429)
        for _ in range(2):
            _, shown = await stack.ask(stack.owner, stack.general, "image", id=image_id)
            assert shown_image_ids(shown) == [image_id]
        await stack.ask(stack.owner, stack.general, "category")
        # The admin: random, then its "Another" button.
        rec, _ = await stack.ask(stack.admin, stack.general, "random")
        [again] = custom_ids(message_of(rec), "neko:again:")
        await stack.press(stack.admin, message_of(rec), again)
        # A settings command answers by itself: counted when it completes.
        await stack.configure(stack.admin, "show")

        async def settled() -> bool:
            # Every request the fake answered is counted, and the gateway has a heartbeat.
            got = await scrape(port)
            counted = collections.Counter[str]()
            for sample in got.matching("nekos_bot_upstream_requests_total"):
                counted[sample.labels["status"]] += int(sample.value)
            latency = got.value("nekos_bot_gateway_latency_seconds", shard="0")
            return counted == fake_statuses(stack) and math.isfinite(latency)

        await eventually(settled, timeout=15.0)
        got = await scrape(port)
        pool = bot.pool.metrics()

    commands = {
        (s.labels["command"], s.labels["outcome"]): s.value
        for s in got.matching("nekos_bot_commands_total")
    }
    assert commands == {
        ("random", "served"): 3,
        ("random", "cooldown"): 1,
        ("image", "input_error"): 1,
        ("image", "served"): 2,
        ("category", "served"): 1,
        ("button:another", "served"): 1,
        ("neko-config show", "served"): 1,
    }
    # Every sample of the bot's own carries the process's labels.
    process = f"{socket.gethostname()}:{os.getpid()}"
    own = [s for s in got.samples if s.name.startswith("nekos_bot_")]
    assert own
    assert {(s.labels["process"], s.labels["shards"]) for s in own} == {(process, "all")}

    for name in ("nekos_bot_command_ack_seconds", "nekos_bot_command_final_seconds"):
        for command, count in (("random", 4), ("image", 3), ("category", 1)):
            assert got.value(f"{name}_count", command=command) == count
            buckets = sorted(
                (float(s.labels["le"]), s.value)
                for s in got.matching(f"{name}_bucket", command=command)
            )
            assert 3.0 in [le for le, _ in buckets]  # Discord's deadline is a bucket edge
            assert [v for _, v in buckets] == sorted(v for _, v in buckets)
            assert buckets[-1] == (math.inf, count)

    # Upstream: the one 429, by egress; each request sent waited at the pacer once.
    assert got.value("nekos_bot_upstream_requests_total", status="429", egress="default") == 1
    assert got.value("nekos_bot_upstream_rate_limited_total", egress="default") == 1
    sent = got.value("nekos_bot_upstream_requests_total")
    assert sent == len([r for r in stack.api.api_requests if r.status > 0])
    assert got.value("nekos_bot_pacer_wait_seconds_count") == sent
    assert got.value("nekos_bot_upstream_request_duration_seconds_count") == sent
    image_calls = got.value("nekos_bot_upstream_requests_total", endpoint="GET /image/{id}")
    assert image_calls >= 1

    # The pool: four random requests reached it (the cooled-down one did not).
    assert got.value("nekos_bot_pool_requests_total") == 4 == pool.requests
    assert got.value("nekos_bot_pool_served_from_stock_total") == pool.pool_hits
    assert got.value("nekos_bot_pool_images") == pool.pool_size > 0
    # The image lookup: fetched once, then answered from the cache.
    assert got.value("nekos_bot_lookup_cache_total", kind="image", result="miss") == 1
    assert got.value("nekos_bot_lookup_cache_total", kind="image", result="hit") == 1
    assert got.value("nekos_bot_lookup_busy_total") == 0

    assert 0 <= got.value("nekos_bot_gateway_latency_seconds", shard="0") < 10
    assert got.value("nekos_bot_shards") == got.value("nekos_bot_shards_connected") == 1
    assert got.value("nekos_bot_guilds") == 1
    modes = {s.labels["mode"]: s.value for s in got.matching("nekos_bot_request_budget_mode")}
    assert modes == {"memory": 0, "folder": 1, "redis": 0, "fallback": 0, "paused": 0}
    # SQLite and no Redis: no shared service to report.
    assert not list(got.matching("nekos_bot_shared_service_up"))
    assert got.value("nekos_bot_info", api_version="v1", egress="default") == 1
    stack.emu.assert_no_violations()
    # Stopped with the bot.
    assert port not in listening_ports()


async def test_without_metrics_port_no_port_is_opened(stack: Stack) -> None:
    before = listening_ports()
    async with stack.run():
        _, shown = await stack.ask(stack.member, stack.general, "random")
        assert shown_image_ids(shown)
        assert listening_ports() == before


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def exposed_names(got: Scrape) -> set[str]:
    """Every series name a query may use: counters with ``_total``, histograms' parts."""
    names = set()
    for family in got.families:
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


async def test_every_metric_on_the_dashboard_is_exposed(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [
        target["expr"]
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    expressions += [
        v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    used = {name for expr in expressions for name in METRIC_NAME_RE.findall(expr)}
    port = free_port()
    async with stack.run(METRICS_PORT=str(port)):
        got = await scrape(port)
    missing = sorted(used - exposed_names(got))
    assert not missing, f"the dashboard uses metrics /metrics does not expose: {missing}"
    # Every metric of the bot's own has a panel (counters' and histograms' creation times
    # come as gauges of their own in the text format).
    own = {
        f.name
        for f in got.families
        if f.name.startswith("nekos_bot_") and not f.name.endswith("_created")
    }
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in used}
    assert not own - shown, f"metrics without a panel: {sorted(own - shown)}"
