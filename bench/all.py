"""Run every benchmark in turn: full durations by default, or ``--quick`` smoke runs.

Full: burst three times (median lines at the end), sustained 60 s, mixed 300 s, cpu, the
metrics' overhead; then the same through the Discord emulator with the real ``python -m bot``
(discord_burst three times, discord_sustained 60 s, discord_mixed 300 s), eight CLI processes
sharing one request budget (shared_budget), and four bot processes of one shard each beside eight
CLI ones (multiprocess); about 50 minutes of real time, mostly the naive baselines waiting on the
upstream's 1 request per second.

    .venv/bin/python -m bench.all [--quick] [--list]
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Sequence

PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bench.burst", ("--repeat", "3")),
    ("bench.sustained", ("--seconds", "60")),
    ("bench.mixed", ("--seconds", "300")),
    ("bench.cpu", ()),
    ("bench.metrics_overhead", ()),
    ("bench.discord_burst", ("--repeat", "3")),
    ("bench.discord_sustained", ("--seconds", "60")),
    ("bench.discord_mixed", ("--seconds", "300")),
    ("bench.shared_budget", ()),
    ("bench.multiprocess", ()),
)
"""Each benchmark module and its arguments for a full run."""


def plan(quick: bool) -> list[tuple[str, list[str]]]:
    """``(module, argv)`` for each benchmark, in the order they run."""
    return [(module, ["--quick"] if quick else list(argv)) for module, argv in PLAN]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmarks one after another (so they never compete for the CPU)."""
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per benchmark")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    for module_name, module_argv in plan(args.quick):
        command = f"python -m {module_name} {' '.join(module_argv)}".rstrip()
        if args.list:
            print(command)
            continue
        print(f"## {command}", flush=True)
        started = time.monotonic()
        importlib.import_module(module_name).main(module_argv)
        print(f"## {module_name} took {time.monotonic() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
