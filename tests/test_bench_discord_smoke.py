"""Smoke runs of ``bench.discord_mixed --quick`` and ``bench.discord_sustained --quick``.

Both start the real ``python -m bot`` and the naive baseline against the loopback Discord
emulator and fake Nekos API. Only the presence and shape of the figure lines is checked, plus what
must hold whatever the machine's load: the project bot never earns a 429 nor gets blocked.
The mixed run also goes once over three shard processes on three egress IPs sharing Redis
(``--processes 3``, ~25 s): no 429 on any IP, and the per-IP and per-process fields are there.
"""

from __future__ import annotations

import re

import pytest

from bench import discord_mixed, discord_sustained
from bench.discord_harness import classify_answer

SECONDS = r"(>=)?\d+\.\d+s"
MIXED_FIGURES = (
    r"commands_per_upstream_call=(\d+\.\d|inf) commands=\d+ answered=\d+ busy=\d+ errors=\d+ "
    rf"unanswered=\d+ acked_within_3s=\d+\.\d% p50_final={SECONDS} p99_final={SECONDS} "
    r"upstream_calls=\d+ random_calls=\d+ other_calls=\d+ 429s=\d+ blocked=(yes|no) "
    r"violations=\d+ peak_rss_mib=\d+ wrong=\d+$"
)
SUSTAINED_FIGURES = (
    r"images_per_s=\d+\.\d fresh_images_per_s=\d+\.\d upstream_images_per_s=\d+\.\d "
    r"upstream_calls_per_s=\d+\.\d\d "
    rf"p50_final={SECONDS} p99_final={SECONDS} 429s=\d+ blocked=(yes|no) "
)


@pytest.mark.timeout(120)
def test_quick_mixed_run_prints_both_bots_figures_and_the_bot_earns_no_429(
    capsys: pytest.CaptureFixture[str],
) -> None:
    discord_mixed.main(["--quick"])
    out = capsys.readouterr().out

    for label in ("bot", "naive"):
        assert re.search(rf"^discord_mixed {label}: {MIXED_FIGURES}", out, re.MULTILINE), out
        assert re.search(
            rf"^discord_mixed {label} detail: random_p99={SECONDS} .*bench_cpu=\d+% bot_cpu=\d+%",
            out,
            re.MULTILINE,
        ), out
    assert re.search(r"^discord_mixed bot: .* 429s=0 blocked=no ", out, re.MULTILINE), out


@pytest.mark.timeout(120)
def test_quick_sustained_run_prints_both_bots_figures_and_the_bot_earns_no_429(
    capsys: pytest.CaptureFixture[str],
) -> None:
    discord_sustained.main(["--quick"])
    out = capsys.readouterr().out

    for label in ("bot", "naive"):
        assert re.search(rf"^discord_sustained {label}: {SUSTAINED_FIGURES}", out, re.MULTILINE), (
            out
        )
    assert re.search(r"^discord_sustained bot: .* 429s=0 blocked=no ", out, re.MULTILINE), out


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"embeds": [{"image": {"url": "http://x/a.png"}}]}, ("answered", "images")),
        ({"embeds": [{"title": "Some artist"}]}, ("answered", "card")),
        (
            {"content": "Nothing matched right now (catgirl, up to sfw).", "flags": 64},
            ("answered", "notice"),
        ),
        (
            {"content": "I don't know the category `catgrl`. Did you mean `catgirl`?"},
            ("answered", "notice"),
        ),
        (
            {"content": "The Nekos API is busy right now. Please try again in about 3 seconds."},
            ("busy", "busy"),
        ),
        ({"content": "Slow down a little — try again in 4 seconds."}, ("busy", "busy")),
        (
            {"content": "The Nekos API has paused requests from this bot until 18:00."},
            ("error", "blocked"),
        ),
        ({"content": "The Nekos API answered 429; try again later."}, ("error", "http_status")),
        ({"content": "Something new the lists do not know."}, ("error", "unclassified")),
    ],
)
def test_final_messages_read_as_answered_busy_or_error(
    message: dict[str, object], expected: tuple[str, str]
) -> None:
    assert classify_answer(message) == expected


@pytest.mark.timeout(120)
def test_quick_mixed_run_over_three_shard_processes_on_three_ips_earns_no_429(
    capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    discord_mixed.main(
        [
            "--quick",
            "--variants",
            "bot",
            "--processes",
            "3",
            "--addresses",
            "127.0.0.2,127.0.0.3,127.0.0.4",
            "--redis-url",
            redis_url,
        ]
    )
    out = capsys.readouterr().out

    found = re.search(
        r"^discord_mixed bot: .* 429s=0 blocked=no violations=\d+ peak_rss_mib=\d+/\d+/\d+ "
        r"wrong=0 calls_per_ip=(?P<calls>\S+) 429s_per_ip=(?P<r429>\S+)$",
        out,
        re.MULTILINE,
    )
    assert found, out
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert [part.split(":")[0] for part in found["r429"].split(",")] == ips, out
    assert all(part.endswith(":0") for part in found["r429"].split(",")), out
    assert re.search(
        r"^discord_mixed bot detail: .* bot_cpu=\d+%/\d+%/\d+% .* exit=0/0/0$", out, re.M
    )
