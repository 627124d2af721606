"""Shared fixtures: a started fake Nekos API server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

# A fresh PostgreSQL database per test; tests needing it skip in one line without the server.
from tests.pg_service import pg_database, pytest_runtest_setup  # noqa: F401
from tests.redis_service import private_redis, redis_prefix, redis_url  # noqa: F401 (fixtures)
from tests.store_backends import backend_url  # noqa: F401  (a fixture: each store backend's URL)


@pytest.fixture
async def nekos_fake() -> AsyncIterator[FakeNekosAPI]:
    """A started :class:`FakeNekosAPI` on the default dataset, rate limit disabled.

    Re-enable it in a test with ``nekos_fake.rate_limit = (1, 1.0)``.
    """
    async with FakeNekosAPI(dataset=generate_dataset(), rate_limit=None) as fake:
        yield fake
