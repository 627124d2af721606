"""Smoke run of ``bench.discord_burst --quick``: the real ``python -m bot`` and the naive baseline.

Only the shape of the figure lines is checked, plus what must hold whatever the machine's load:
the project bot breaks none of Discord's rules, never earns a 429, and both bots stop cleanly.
"""

from __future__ import annotations

import re

import pytest

from bench import discord_burst

FIGURES = (
    r"acked_3s=\d+\.\d% p50_final=(\d+\.\d+s|inf) p99_final=(\d+\.\d+s|inf) "
    r"images=\d+/10 nothing=\d+ errors=\d+ missing=\d+ wrong=\d+ upstream=\d+ 429s=\d+ "
    r"blocked=(yes|no) violations=\d+"
)


@pytest.mark.timeout(120)
def test_quick_run_prints_both_bots_figures_and_the_bot_breaks_no_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = discord_burst.main(["--quick"])
    out = capsys.readouterr().out

    for label in ("bot", "naive"):
        assert re.search(
            rf"^discord-burst run=1 {label} startup: ready=\d+\.\d+s settled=\d+\.\d+s "
            r"upstream=\d+ 429s=\d+$",
            out,
            re.MULTILINE,
        ), out
        assert re.search(rf"^discord-burst run=1 {label}: {FIGURES}$", out, re.MULTILINE), out
        assert re.search(rf"^discord-burst {label}: {FIGURES}", out, re.MULTILINE), out
        (run,) = results[label]
        assert run.exit_code == 0, f"{label} did not stop cleanly on SIGTERM"

    assert re.search(r"^discord-burst run=1 bot: .* 429s=0 .*violations=0$", out, re.MULTILINE)
    (bot_run,) = results["bot"]
    assert bot_run.violations == 0, bot_run.violation_texts
    assert bot_run.count_429 == 0
    assert bot_run.startup.count_429 == 0
    assert not bot_run.blocked
    # Every command got a final message that shows an image fitting what was asked.
    assert bot_run.kinds()["missing"] == 0
    assert bot_run.wrong_images == 0
