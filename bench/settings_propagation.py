"""Settings change → enforced by other processes: how long it takes, for SQLite and PostgreSQL.

A writer subprocess (a real second process, with its own store) changes a guild's default; it
notes the moment its write method returned (the moment the admin is told "Saved"). Reader stores
in this process, each standing for another bot process with its own connection and cache, poll
``get_guild_settings`` every millisecond; a change counts as enforced once every reader returns
it. Between changes the bench waits a random 0-0.6 s, so changes land at any point of SQLite's
0.5 s check interval. Prints the median and the maximum per backend (the minimum can be slightly
negative: a reader may see the commit before the writer process gets back from it).

    .venv/bin/python -m bench.settings_propagation [--changes 20] [--readers 3]
        [--backends sqlite,postgresql] [--postgres-admin-url URL] [--quick]

PostgreSQL: a database ``nekos_bench_<random>`` is created through ``--postgres-admin-url``
(default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg

from bot.nekos.models import Rating
from bot.store import SettingsStore, open_store

GUILD = 424_242
ACTOR = 7
RATINGS = (Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW)
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO_ROOT = Path(__file__).resolve().parents[1]
POLL = 0.001


def rating_for(change: int) -> Rating:
    """The default change ``change`` sets (consecutive changes always differ)."""
    return RATINGS[change % 3]


async def writer(url: str) -> None:
    """The writer process: for each number on stdin, write it; print when the write returned."""
    loop = asyncio.get_running_loop()
    async with open_store(url) as store:
        print("READY", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            change = int(line)
            await store.set_guild_default(GUILD, rating_for(change), ACTOR)
            print(f"SAVED {change} {time.monotonic():.6f}", flush=True)


async def _all_see(readers: Sequence[SettingsStore], expected: Rating) -> float:
    """Poll until every reader returns ``expected``; the monotonic time the last one did."""
    pending = list(readers)
    while pending:
        pending = [r for r in pending if (await r.get_guild_settings(GUILD)).default != expected]
        if pending:
            await asyncio.sleep(POLL)
    return time.monotonic()


async def measure(url: str, changes: int, reader_count: int, rng: random.Random) -> list[float]:
    """Seconds from "Saved" in the writer process to every reader enforcing it, per change."""
    async with contextlib.AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(open_store(url)) for _ in range(reader_count)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.settings_propagation",
            "--writer",
            url,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            assert (await process.stdout.readline()).strip() == b"READY"
            delays = []
            for change in range(1, changes + 1):
                for reader in readers:  # every reader has the guild cached
                    await reader.get_guild_settings(GUILD)
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                process.stdin.write(f"{change}\n".encode())
                await process.stdin.drain()
                seen = await asyncio.wait_for(_all_see(readers, rating_for(change)), 30)
                saved_line = (await process.stdout.readline()).decode().split()
                assert saved_line[:2] == ["SAVED", str(change)], saved_line
                delays.append(seen - float(saved_line[2]))
        finally:
            process.stdin.close()
            await process.wait()
    return delays


@contextlib.asynccontextmanager
async def backend_url(backend: str, admin_url: str) -> AsyncIterator[str]:
    """A fresh database of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"nekos_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = admin_url.rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def describe(backend: str, delays: Sequence[float], readers: int) -> str:
    ms = [d * 1000 for d in delays]
    return (
        f"{backend}: {len(ms)} changes, {readers} reader processes' stores: "
        f"median={statistics.median(ms):.1f}ms max={max(ms):.1f}ms min={min(ms):.1f}ms"
    )


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    for backend in args.backends.split(","):
        async with backend_url(backend, args.postgres_admin_url) as url:
            delays = await measure(url, args.changes, args.readers, rng)
        print(describe(backend, delays, args.readers), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.settings_propagation", description=__doc__
    )
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-admin-url", default=ADMIN_URL)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 changes, 1 reader")
    parser.add_argument("--writer", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        asyncio.run(writer(args.writer))
        return
    if args.quick:
        args.changes, args.readers = 3, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
