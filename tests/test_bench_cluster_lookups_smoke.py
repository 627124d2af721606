"""Smoke run of ``bench.cluster_lookups --quick``: two worker processes with Redis, two without.

Only the figure lines' shape is checked, plus what holds whatever the machine's load: with
Redis each distinct lookup costs one upstream call whichever process asked first; without, each
process pays for its own; with Redis killed mid-run, every lookup is still answered.
"""

from __future__ import annotations

import re

import pytest

from bench import cluster_lookups

MS = r"\d+\.\d+ms"
US = r"\d+us"


@pytest.mark.timeout(120)
def test_quick_run_shares_lookups_through_redis_and_not_without(
    capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    cluster_lookups.main(["--quick", "--redis", redis_url])
    out = capsys.readouterr().out
    figures = {}
    for variant in ("redis", "local", "restart"):
        found = re.search(
            rf"^cluster_lookups {variant}: processes=2 distinct=(?P<distinct>\d+) asked=\d+ "
            rf"upstream=(?P<upstream>\d+) p50={MS} p99={MS} all_done=\d+\.\d+s from_redis=\d+ "
            rf"waited_for_another=\d+ fallbacks=(?P<fallbacks>\d+) failed=(?P<failed>\d+) "
            rf"cooldown_median={US} cooldown_p99={US}$",
            out,
            re.MULTILINE,
        )
        assert found, out
        figures[variant] = found
    redis, local, restart = figures["redis"], figures["local"], figures["restart"]
    assert int(redis["upstream"]) == int(redis["distinct"]), out
    assert int(redis["fallbacks"]) == 0, out
    assert int(local["upstream"]) == 2 * int(local["distinct"]), out
    # Redis killed mid-run: every lookup still answered, never more calls than without Redis.
    for figure in figures.values():
        assert int(figure["failed"]) == 0, out
    assert int(restart["upstream"]) <= 2 * int(restart["distinct"]), out
