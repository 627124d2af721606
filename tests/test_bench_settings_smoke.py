"""A smoke run of ``bench/settings_propagation.py`` (``--quick``), so the script cannot rot.

Only the shape of the figure line is checked, never the figures (timing belongs to the bench).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from bench import settings_propagation
from tests.pg_service import PgDatabase

FIGURES = r": 3 changes, 1 reader processes' stores: median=-?\d+\.\dms max=-?\d+\.\dms"


async def test_sqlite_run_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    await asyncio.to_thread(settings_propagation.main, ["--quick", "--backends", "sqlite"])
    assert re.search("^sqlite" + FIGURES, capsys.readouterr().out, re.MULTILINE)


async def test_postgresql_run_prints_its_figures(
    pg_database: PgDatabase,  # only for its skip / CI=true failure when the server is missing
    capsys: pytest.CaptureFixture[str],
) -> None:
    await asyncio.to_thread(settings_propagation.main, ["--quick", "--backends", "postgresql"])
    assert re.search("^postgresql" + FIGURES, capsys.readouterr().out, re.MULTILINE)
