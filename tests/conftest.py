"""Shared fixtures: a started fake Nekos API server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import settings

from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

# A fresh PostgreSQL database per test; tests needing it skip in one line without the server.
from tests.pg_service import pg_database, pytest_runtest_setup  # noqa: F401
from tests.redis_service import private_redis, redis_prefix, redis_url  # noqa: F401 (fixtures)
from tests.store_backends import backend_url  # noqa: F401  (a fixture: each store backend's URL)

# CI replays the same examples every run (a red CI is then always the code's, never the draw's);
# a developer's runs keep exploring new ones, and the failures they find stay in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


@pytest.fixture
async def nekos_fake() -> AsyncIterator[FakeNekosAPI]:
    """A started :class:`FakeNekosAPI` on the default dataset, rate limit disabled.

    Re-enable it in a test with ``nekos_fake.rate_limit = (1, 1.0)``.
    """
    async with FakeNekosAPI(dataset=generate_dataset(), rate_limit=None) as fake:
        yield fake
