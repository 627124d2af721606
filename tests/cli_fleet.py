"""Many ``python -m bot`` command-line processes at once against one fake API, and what it saw.

Used by the multi-process tests (tests/e2e/test_shared_budget.py) and ``bench/shared_budget.py``:
:func:`start_cli` starts one process with its own ``.env``; :func:`finish` collects it;
:func:`upstream_report` reads the fake's request log: requests, 429s, blocks, and the gaps
between request arrivals per client IP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bot_process import REPO_ROOT, child_environment
from tests.fakes.nekos_api import FakeNekosAPI, RequestRecord

__all__ = [
    "PREVIEW_RANDOM",
    "CliRun",
    "UpstreamReport",
    "finish",
    "preview_settings",
    "start_cli",
    "upstream_report",
    "write_env",
]

PREVIEW_RANDOM = ("preview", "random", "--count", "3")
"""The command a new user runs: three random images, as Discord JSON."""
FINISH_TIMEOUT = 240.0


@dataclass(frozen=True, slots=True)
class CliRun:
    """One finished command: exit code and output."""

    code: int
    stdout: str
    stderr: str

    @property
    def payload(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def images(self) -> int:
        """Images the printed message shows (0 for an error notice or no output)."""
        payload = self.payload or {}
        return sum(1 for embed in payload.get("embeds") or [] if (embed.get("image") or {}))

    @property
    def served(self) -> bool:
        return self.code == 0 and self.images > 0


def preview_settings(fake: FakeNekosAPI, data_dir: Path, **extra: str) -> dict[str, str]:
    """``.env`` values for a CLI process against ``fake`` sharing ``data_dir``'s budget."""
    return {
        "NEKOS_API_BASE_URL": fake.base_url,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'bot.db'}",
        "HEALTH_FILE": "",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def write_env(path: Path, settings: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), "utf-8")
    return path


async def start_cli(args: Sequence[str], env_file: Path) -> asyncio.subprocess.Process:
    """``python -m bot --env-file <file> <args>`` with its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--env-file",
        str(env_file),
        *args,
        cwd=REPO_ROOT,
        env=child_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> CliRun:
    """Wait for ``process`` (killed if it outlives :data:`FINISH_TIMEOUT`) and collect it."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), FINISH_TIMEOUT)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode())


@dataclass(frozen=True, slots=True)
class UpstreamReport:
    """What the fake API saw: per client IP, the gaps between request arrivals."""

    requests: int
    count_429: int
    blocked: bool
    arrivals: Mapping[str, list[float]]
    """Client IP → request arrival times (the fake's clock), in order."""

    @property
    def gaps(self) -> dict[str, list[float]]:
        """Client IP → the gaps between its consecutive arrivals."""
        return {ip: [b - a for a, b in itertools.pairwise(t)] for ip, t in self.arrivals.items()}

    @property
    def merged_gaps(self) -> list[float]:
        """Gaps between consecutive arrivals whatever their IP."""
        times = sorted(itertools.chain.from_iterable(self.arrivals.values()))
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def all_gaps(self) -> list[float]:
        return sorted(itertools.chain.from_iterable(self.gaps.values()))

    @property
    def min_gap(self) -> float | None:
        gaps = self.all_gaps
        return gaps[0] if gaps else None

    @property
    def median_gap(self) -> float | None:
        gaps = self.all_gaps
        return statistics.median(gaps) if gaps else None


def upstream_report(fake: FakeNekosAPI, since: int = 0) -> UpstreamReport:
    """The fake's API requests from index ``since`` of its log on."""
    records: list[RequestRecord] = [r for r in fake.requests[since:] if r.path.startswith("/api")]
    arrivals: dict[str, list[float]] = defaultdict(list)
    for record in records:
        arrivals[record.ip].append(record.time)
    return UpstreamReport(
        requests=len(records),
        count_429=sum(1 for r in records if r.status == 429),
        blocked=bool(fake.blocked_ips),
        arrivals={ip: sorted(times) for ip, times in arrivals.items()},
    )
