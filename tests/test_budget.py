"""``bot.budget``: which budget a process joins, where it is kept, and how it is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.budget import budget_key, describe_budget, open_budget
from bot.config import settings_from_mapping
from bot.nekos.ledger import SqliteLedger
from bot.nekos.ledger.failover import FailoverLedger
from bot.nekos.pacing import PacerState
from tests.fakes.nekos_api import FakeNekosAPI


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({}, "default@api.nekosapi.com/v4"),
        ({"NEKOS_API_BASE_URL": "https://v1.nekosapi.com/api"}, "default@v1.nekosapi.com/v1"),
        ({"NEKOS_API_BASE_URL": "https://api.nekosapi.com/v1"}, "default@api.nekosapi.com/v1"),
        ({"NEKOS_API_BASE_URL": "https://api.nekosapi.com/v4"}, "default@api.nekosapi.com/v4"),
        ({"NEKOS_API_BASE_URL": "http://127.0.0.1:8080/api"}, "default@127.0.0.1:8080/v1"),
        ({"NEKOS_API_SOURCE_ADDRESS": "192.0.2.7"}, "192.0.2.7@api.nekosapi.com/v4"),
    ],
)
def test_the_budget_is_named_by_egress_address_and_api_host(env: dict[str, str], key: str) -> None:
    assert budget_key(settings_from_mapping(env)) == key


async def test_the_default_budget_lives_in_the_data_folder(tmp_path: Path) -> None:
    async with open_budget(settings_from_mapping({"DATA_DIR": str(tmp_path)})) as budget:
        assert isinstance(budget.ledger, SqliteLedger)
        assert budget.location == str(tmp_path / "request-budget.db")


async def test_with_redis_the_budget_fails_over_and_never_shows_its_password(
    tmp_path: Path,
) -> None:
    settings = settings_from_mapping(
        {"DATA_DIR": str(tmp_path), "REDIS_URL": "redis://:s3cret-pass@cache.internal:6380/1"}
    )
    async with open_budget(settings) as budget:
        assert isinstance(budget.ledger, FailoverLedger)
        assert budget.location == (
            f"Redis at cache.internal:6380, else {tmp_path / 'request-budget.db'}"
        )
        assert "s3cret-pass" not in repr(budget)


async def test_connections_leave_from_the_source_address(tmp_path: Path) -> None:
    async with FakeNekosAPI(rate_limit=None) as fake:
        settings = settings_from_mapping(
            {
                "DATA_DIR": str(tmp_path),
                "NEKOS_API_BASE_URL": fake.base_url,
                "NEKOS_API_SOURCE_ADDRESS": "127.0.0.2",
            }
        )
        async with (
            open_budget(settings) as budget,
            budget.session() as session,
            session.get(fake.url("/stats")) as response,
        ):
            assert response.status == 200
        assert [r.ip for r in fake.api_requests] == ["127.0.0.2"]


@pytest.mark.parametrize(
    ("peers", "text"),
    [
        (0, "shared via Redis"),
        (1, "shared via Redis with 1 other process"),
        (2, "shared via Redis with 2 other processes"),
    ],
)
def test_the_budget_line_counts_the_other_processes(peers: int, text: str) -> None:
    state = PacerState(
        queue_length=0,
        estimated_wait=0.0,
        strikes_in_window=0,
        blocked_until=None,
        interval=1.1,
        requests_started=0,
        budget="shared via Redis",
        budget_peers=peers,
    )
    assert describe_budget(state) == text
