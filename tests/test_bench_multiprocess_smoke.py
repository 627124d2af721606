"""Smoke run of ``bench.multiprocess --quick``: two bot processes (a shard each) and two previews.

Only the shape of the figure line is checked, plus what must hold whatever the machine's load:
every interaction answered once by its shard's process, no 429, never blocked, arrivals at the
fake at least the live second apart.
"""

from __future__ import annotations

import re

import pytest

from bench import multiprocess

SECONDS = r"\d+\.\d+s"
FIGURES = (
    rf"bots=2 connected={SECONDS} identify_min_gap={SECONDS} served=\d+/8 not_once=0 "
    rf"p50_final=({SECONDS}|inf) p99_final=({SECONDS}|inf) cli_served=2/2 upstream=\d+ "
    rf"429s=0 blocked=no min_gap=(?P<min_gap>{SECONDS}) median_gap={SECONDS}$"
)


@pytest.mark.timeout(240)
def test_quick_run_keeps_two_bots_and_two_previews_to_one_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    multiprocess.main(["--quick"])
    out = capsys.readouterr().out
    found = re.search(rf"^multiprocess folder: {FIGURES}", out, re.MULTILINE)
    assert found, out
    assert float(found["min_gap"].rstrip("s")) >= 1.0, out
