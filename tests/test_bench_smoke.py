"""Smoke runs of the benchmarks (``--quick``), so the scripts cannot rot unnoticed.

Each runs in-process against its own loopback fake; only the presence and shape of the figure
lines is checked, never the figures themselves (the machine is noisy and quick runs are tiny).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence

import pytest

from bench import all as run_all
from bench import cpu, metrics_overhead

VARIANT_FIGURES = {
    "burst": (
        r"acked_within_3s=\d+\.\d% p50_final=\S+s p99_final=\S+s upstream_calls=\d+ "
        r"429s=\d+ blocked=(yes|no)"
    ),
    "sustained": r"images_per_s=\d+\.\d ceiling_per_s=\S+ .*429s=\d+ blocked=(yes|no)",
    "mixed": (
        r"commands_per_upstream_call=\S+ .*429s=\d+ blocked=(yes|no) p99_final=\S+s "
        r".*acked_within_3s=\d+\.\d% peak_rss_mib=\d+"
    ),
}


def _lines(main: Callable[[Sequence[str]], None], capsys: pytest.CaptureFixture[str]) -> str:
    main(["--quick"])
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("bench_name", "variants"),
    [
        ("burst", ("pooled", "naive-paced", "naive-unpaced")),
        ("sustained", ("pooled", "pooled-noreuse", "naive-paced", "naive-unpaced")),
        ("mixed", ("pooled", "naive-paced", "naive-unpaced")),
    ],
)
def test_quick_run_prints_a_figure_line_per_variant(
    bench_name: str, variants: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.{bench_name}")
    out = _lines(module.main, capsys)
    for variant in variants:
        pattern = rf"^{bench_name} {re.escape(variant)}: {VARIANT_FIGURES[bench_name]}"
        assert re.search(pattern, out, re.MULTILINE), f"no {variant} line in:\n{out}"
    # The paced pool must never earn a 429, whatever the load.
    assert re.search(rf"^{bench_name} pooled: .*429s=0 blocked=no", out, re.MULTILINE), out


def test_quick_cpu_run_prints_timings_and_profile(capsys: pytest.CaptureFixture[str]) -> None:
    out = _lines(cpu.main, capsys)
    assert re.search(r"^cpu pooled: median_us=\d+ .*upstream_calls=0$", out, re.MULTILINE), out
    assert re.search(r"^cpu naive: median_us=\d+ ", out, re.MULTILINE), out
    assert re.search(r"^cpu parts: random_request_us=\d+ .*rest_us=\d+$", out, re.MULTILINE)
    assert re.search(r"^cpu where: .*render=\d+%", out, re.MULTILINE), out
    assert len(re.findall(r"^cpu profile: ", out, re.MULTILINE)) >= 5, out


def test_quick_metrics_overhead_run_prints_its_three_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _lines(metrics_overhead.main, capsys)
    assert re.search(r"^metrics per command: off_ns=-?\d+ on_ns=\d+$", out, re.MULTILINE), out
    assert re.search(r"^metrics per API request: off_ns=\d+ on_ns=\d+$", out, re.MULTILINE)
    assert re.search(r"^metrics per scrape: us=\d+ bytes=\d+$", out, re.MULTILINE), out


def test_run_all_plans_every_benchmark_with_existing_entry_points() -> None:
    modules = [module for module, _ in run_all.plan(quick=False)]
    assert modules == [
        "bench.burst",
        "bench.sustained",
        "bench.mixed",
        "bench.cpu",
        "bench.metrics_overhead",
        "bench.discord_burst",
        "bench.discord_sustained",
        "bench.discord_mixed",
        "bench.shared_budget",
        "bench.multiprocess",
    ]
    for module_name, argv in run_all.plan(quick=True):
        assert argv == ["--quick"]
        assert callable(importlib.import_module(module_name).main)
