"""The metrics' parts that need no Discord: labels, names, outcomes, the endpoint's own failures.

The bot's metrics as a whole are scraped from the real bot in tests/e2e/test_metrics.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import ConfigError, settings_from_mapping
from bot.core import NekosBot
from bot.metrics import NULL_METRICS, open_metrics, shard_text
from bot.metrics.prometheus import PrometheusMetrics
from bot.nekos.errors import (
    BadRequest,
    Blocked,
    NotFound,
    RateLimited,
    ResponseParseError,
    ServerError,
    Unavailable,
)
from bot.replies import error_reply
from bot.views import AnotherButton, CategoryPageButton, GalleryPageButton, button_name
from tests.redis_service import free_port


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        (None, "all"),
        ([0], "0"),
        ([3, 1, 2, 0], "0-3"),
        ([0, 1, 2, 3, 8, 10, 11], "0-3,8,10-11"),
        ([5, 5, 6], "5-6"),
        ([], "none"),
    ],
)
def test_shards_are_labelled_as_an_operator_writes_them(ids: list[int] | None, text: str) -> None:
    assert shard_text(ids) == text


def test_buttons_are_named_by_what_they_do() -> None:
    another = AnotherButton(1, 2, None, ("maid",)).item.custom_id
    gallery = GalleryPageButton(1, "0" * 8 + "-0000-0000-0000-" + "0" * 12, 2, "n").item.custom_id
    category = CategoryPageButton(1, 2, "p", "girl").item.custom_id
    assert [button_name(c or "") for c in (another, gallery, category)] == [
        "button:another",
        "button:gallery_page",
        "button:category_page",
    ]
    assert button_name("neko-config:reset:confirm") == "button:other"
    assert button_name("") == "button:other"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RateLimited("slow down", retry_after=3), "busy"),
        (
            Blocked("blocked", until=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), retry_after=60),
            "api_error",
        ),
        (Unavailable("timed out"), "api_error"),
        (ServerError("oops", status=503), "api_error"),
        (ResponseParseError("not JSON"), "api_error"),
        (NotFound("no such image", status=404), "input_error"),
        (BadRequest("bad option", status=400), "input_error"),
    ],
)
def test_api_failures_are_counted_by_what_the_member_was_told(
    error: Exception, outcome: str
) -> None:
    assert error_reply(error).outcome == outcome


def test_without_metrics_port_nothing_is_measured() -> None:
    metrics = open_metrics(settings_from_mapping({}))
    assert metrics is NULL_METRICS
    assert metrics.request_observer is None
    assert not metrics.enabled


def metrics_on(port: int) -> PrometheusMetrics:
    settings = settings_from_mapping({"METRICS_PORT": str(port)})
    metrics = open_metrics(settings, shard_ids=[0, 1])
    assert isinstance(metrics, PrometheusMetrics)
    return metrics


def half_started_bot() -> NekosBot:
    """A bot whose pool cannot be read (as if start-up failed half-way); the rest is empty."""

    def broken() -> Any:
        raise RuntimeError("pool not ready")

    lookups = SimpleNamespace(
        metrics=lambda: SimpleNamespace(
            kinds=(), listed=0, coalesced=0, shed=0, shared_waits=0, shared_fallbacks=0
        )
    )
    return cast(
        NekosBot,
        SimpleNamespace(
            pool=SimpleNamespace(metrics=broken),
            lookups=lookups,
            latencies=[],
            shards={},
            guilds=[],
            budget=None,
            shared=None,
            store=None,
            settings=settings_from_mapping({}),
            nekos=SimpleNamespace(pacer=SimpleNamespace(state=broken)),
        ),
    )


async def test_a_reading_that_fails_leaves_the_rest_of_the_scrape_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    metrics = metrics_on(port)
    await metrics.start(half_started_bot())
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    text = await response.text()
    finally:
        await metrics.close()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"nekos_bot_info", "nekos_bot_lookup_busy", "nekos_bot_guilds"} <= names
    assert "nekos_bot_pool_images" not in names
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == [
        "Could not read the bot's pool metrics",
        "Could not read the bot's budget metrics",
    ]
    assert 'shards="0-1"' in text


async def test_a_taken_port_is_a_clear_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = metrics_on(port)
        with pytest.raises(ConfigError, match=f"METRICS_PORT {port} cannot be opened"):
            await metrics.start(half_started_bot())
    await metrics.close()
