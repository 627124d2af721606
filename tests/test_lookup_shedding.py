"""A member's lookup is answered "busy" at once rather than queueing for minutes."""

from __future__ import annotations

from typing import Any

import pytest

from bot.nekos.errors import RateLimited
from bot.nekos.models import Character
from bot.replies import error_reply
from bot.serving import CachedLookups, LookupSettings

INTERACTIVE = "interactive"
BACKGROUND = "background"
CHARACTER_ID = "11111111-1111-1111-1111-111111111111"


class Source:
    """Counts character calls; every other lookup is unused here."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def character(self, id: str, *, priority: Any) -> Character:
        self.calls.append(priority)
        return Character(id=id, name="Mika")


class Estimator:
    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.queue_length = 0

    def estimated_wait(self) -> float:
        return self.wait


def lookups(source: Source, estimator: Estimator, shed_after: float | None = 30.0) -> CachedLookups:
    return CachedLookups(
        source,  # type: ignore[arg-type]
        interactive_priority=INTERACTIVE,
        background_priority=BACKGROUND,
        settings=LookupSettings(shed_after=shed_after),
        estimator=estimator,
    )


async def test_a_lookup_that_would_wait_too_long_is_refused_without_a_call() -> None:
    source, estimator = Source(), Estimator(wait=95.0)
    cache = lookups(source, estimator)
    with pytest.raises(RateLimited) as caught:
        await cache.character(CHARACTER_ID)
    assert caught.value.retry_after == 95.0
    assert source.calls == []
    assert cache.metrics().shed == 1
    reply = error_reply(caught.value)
    assert reply.ephemeral
    assert "try again in about 95 seconds" in (reply.content or "")


async def test_a_short_wait_goes_upstream_and_then_serves_from_cache_even_when_busy() -> None:
    source, estimator = Source(), Estimator(wait=5.0)
    cache = lookups(source, estimator)
    assert (await cache.character(CHARACTER_ID)).name == "Mika"
    estimator.wait = 500.0
    # Cached answers never wait for the API, so they are never shed.
    assert (await cache.character(CHARACTER_ID)).name == "Mika"
    assert source.calls == [INTERACTIVE]
    assert cache.metrics().shed == 0


async def test_background_refreshes_are_never_shed() -> None:
    source, estimator = Source(), Estimator(wait=500.0)
    cache = lookups(source, estimator)
    await cache.character(CHARACTER_ID, background=True)
    assert source.calls == [BACKGROUND]


async def test_shedding_can_be_turned_off() -> None:
    source, estimator = Source(), Estimator(wait=500.0)
    cache = lookups(source, estimator, shed_after=None)
    await cache.character(CHARACTER_ID)
    assert source.calls == [INTERACTIVE]
