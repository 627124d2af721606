"""Smoke run of ``bench.cluster --quick``: one bot process on one IP, then two shard processes on
two IPs sharing the pool through Redis, each through the short phases.

Only the figure lines' shape is checked, plus what must hold whatever the machine's load: no 429
on any IP, and the shared burst costs no more random-image calls than one process's + 1.
"""

from __future__ import annotations

import re

import pytest

from bench import cluster

FIELDS = (
    r"processes=(?P<processes>\d) ips=\d burst_calls=(?P<burst>\d+) "
    r"rare_served_30s=\d+/\d+ rare_other=\S+ "
    r"fresh_per_s=\d+\.\d random_calls_per_ip=\S+ 429s_per_ip=(?P<r429>\S+) "
    r"peak_rss_mib=[\d/]+ redis_mem=\S+$"
)


@pytest.mark.timeout(180)
def test_quick_run_prints_both_variants_without_429s(
    capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    cluster.main(["--quick", "--redis-url", redis_url])
    out = capsys.readouterr().out
    one = re.search(rf"^cluster 1x1: {FIELDS}", out, re.MULTILINE)
    many = re.search(rf"^cluster 2x2: {FIELDS}", out, re.MULTILINE)
    assert one, out
    assert many, out
    for found in (one, many):
        assert all(part.endswith(":0") for part in found["r429"].split(",")), out
    assert int(many["burst"]) <= int(one["burst"]) + 1, out
    assert re.search(r"^cluster ratio: rare_served=\S+ fresh_per_s=\S+ burst_calls=", out, re.M)
