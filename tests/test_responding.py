"""Delivering replies within Discord's clock: answer, defer, whisper, retire stale buttons."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot import responding
from bot.config import settings_from_mapping
from bot.metrics import open_metrics
from bot.metrics.prometheus import PrometheusMetrics
from bot.nekos.errors import Unavailable
from bot.replies import Reply, notice


class FakeResponse:
    """Just enough of discord.InteractionResponse to record what was sent, in order."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self._calls = calls
        self._done = False

    def is_done(self) -> bool:
        return self._done

    async def send_message(self, **kwargs: Any) -> None:
        self._done = True
        self._calls.append(("send_message", kwargs))

    async def edit_message(self, **kwargs: Any) -> None:
        self._done = True
        self._calls.append(("edit_message", kwargs))

    async def defer(self, **kwargs: Any) -> None:
        self._done = True
        self._calls.append(("defer", kwargs))


def make_interaction(*, age: float = 0.0, message: Any = None) -> tuple[Any, list[Any]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    interaction = MagicMock()
    interaction.created_at = discord.utils.utcnow() - dt.timedelta(seconds=age)
    interaction.response = FakeResponse(calls)
    interaction.message = message
    interaction.command = None

    def recorder(name: str) -> AsyncMock:
        async def record(*args: Any, **kwargs: Any) -> None:
            calls.append((name, kwargs))

        return AsyncMock(side_effect=record)

    interaction.followup.send = recorder("followup")
    interaction.edit_original_response = recorder("edit_original")
    interaction.delete_original_response = recorder("delete_original")
    return interaction, calls


async def test_a_quick_reply_is_the_first_response() -> None:
    interaction, calls = make_interaction()

    async def work() -> Reply:
        return Reply(content="hi")

    await responding.respond(interaction, work)
    assert [name for name, _ in calls] == ["send_message"]
    assert calls[0][1]["content"] == "hi"


async def test_a_slow_reply_is_deferred_then_followed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responding, "DEFER_AFTER", 0.01)
    interaction, calls = make_interaction()

    async def work() -> Reply:
        await asyncio.sleep(0.05)
        return Reply(content="late but here")

    await responding.respond(interaction, work)
    assert [name for name, _ in calls] == ["defer", "followup"]
    assert calls[0][1] == {"thinking": True}


async def test_defer_now_defers_before_any_work_finishes() -> None:
    interaction, calls = make_interaction()

    async def work() -> Reply:
        return Reply(content="x")

    await responding.respond(interaction, work, defer_now=True)
    assert [name for name, _ in calls] == ["defer", "followup"]


async def test_an_error_after_a_public_deferral_reaches_the_member_privately(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(responding, "DEFER_AFTER", 0.01)
    interaction, calls = make_interaction()

    async def work() -> Reply:
        await asyncio.sleep(0.05)
        raise Unavailable("down", endpoint="GET /image/random")

    await responding.respond(interaction, work)
    names = [name for name, _ in calls]
    assert names == ["defer", "edit_original", "followup", "delete_original"]
    followup = calls[2][1]
    assert followup["ephemeral"] is True
    assert "isn't answering" in followup["content"]


async def test_an_unexpected_failure_is_a_friendly_private_message() -> None:
    interaction, calls = make_interaction()

    async def work() -> Reply:
        raise RuntimeError("boom")

    await responding.respond(interaction, work)
    name, kwargs = calls[0]
    assert name == "send_message"
    assert kwargs["ephemeral"] is True
    assert "boom" not in kwargs["content"]


async def test_nothing_is_sent_after_the_15_minute_token_window() -> None:
    interaction, calls = make_interaction(age=15 * 60)
    await responding.send_reply(interaction, Reply(content="too late"))
    assert calls == []


async def test_a_retired_view_disables_its_buttons_but_keeps_links() -> None:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Next", custom_id="neko:gal:1:x:2:n"))
    view.add_item(discord.ui.Button(label="Artist page", url="https://example.com/a"))
    message = MagicMock()
    message.components = [
        discord.ActionRow(row)  # type: ignore[arg-type]
        for row in view.to_components()
    ]
    interaction, calls = make_interaction(message=message)
    gone = notice("That artist isn't in the Nekos API any more.")
    gone.retire = True

    await responding.send_reply(interaction, gone, edit=True)

    assert [name for name, _ in calls] == ["edit_message", "followup"]
    new_view = calls[0][1]["view"]
    buttons = {b.label: b for b in new_view.children}
    assert buttons["Next"].disabled is True
    assert buttons["Artist page"].disabled is False
    assert calls[1][1]["ephemeral"] is True


# ---------------------------------------------------------------------------- measured


def measured(interaction: Any, *, age: float = 0.0) -> tuple[Any, PrometheusMetrics]:
    """``interaction`` with what measuring reads: its id (creation time), extras, the bot."""
    metrics = open_metrics(settings_from_mapping({"METRICS_PORT": "9100"}))
    assert isinstance(metrics, PrometheusMetrics)
    interaction.id = discord.utils.time_snowflake(
        discord.utils.utcnow() - dt.timedelta(seconds=age)
    )
    interaction.extras = {}
    interaction.client.metrics = metrics
    interaction.command = SimpleNamespace(qualified_name="neko image")
    return interaction, metrics


def count(metrics: PrometheusMetrics, outcome: str) -> float:
    labels = {"command": "image", "outcome": outcome}
    return sum(
        s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "nekos_bot_commands_total"
        and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_each_answer_is_counted_once_with_its_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(responding, "DEFER_AFTER", 0.01)
    interaction, metrics = measured(make_interaction()[0])

    async def work() -> Reply:
        await asyncio.sleep(0.05)
        raise Unavailable("timed out")

    await responding.respond(interaction, work)
    # A second answer to the same interaction (e.g. the error handler's) is not counted again.
    await responding.send_reply(interaction, notice("again"))
    assert count(metrics, "api_error") == 1
    assert count(metrics, "input_error") == 0
    histogram = {
        s.name: s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("nekos_bot_command_ack_seconds_count")
    }
    assert histogram == {"nekos_bot_command_ack_seconds_count": 1}


async def test_an_answer_discord_refused_is_counted_undelivered() -> None:
    interaction, metrics = measured(make_interaction()[0])
    response = MagicMock()
    response.is_done.return_value = False
    response.send_message = AsyncMock(
        side_effect=discord.NotFound(MagicMock(status=404), "Unknown interaction")
    )
    interaction.response = response
    with pytest.raises(discord.NotFound):
        await responding.send_reply(interaction, Reply(content="late"))
    assert count(metrics, "undelivered") == 1
    assert count(metrics, "served") == 0


async def test_a_reply_after_the_token_window_is_counted_undelivered() -> None:
    interaction, metrics = measured(make_interaction(age=16 * 60)[0], age=16 * 60)
    await responding.send_reply(interaction, Reply(content="too late"))
    assert count(metrics, "undelivered") == 1
