"""Start ``python -m <module> --env-file <file>`` as a real subprocess, for the end-to-end tests and
the Discord benchmarks (one copy of how it is started and stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import SETTING_NAMES

__all__ = ["REPO_ROOT", "STOP_TIMEOUT", "child_environment", "spawned"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 10.0
"""Seconds a process gets to exit after SIGTERM before it is killed."""


def child_environment() -> dict[str, str]:
    """This process's environment without the bot's settings (they would win over the file)."""
    environment = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@contextlib.asynccontextmanager
async def spawned(
    module: str, env_file: Path, log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m <module> --env-file <file>``; SIGTERMed (killed if it lingers) on exit.

    The runner's own values of the bot's settings are left out of the child's environment:
    they would win over the file.
    """
    environment = child_environment()
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "--env-file",
            str(env_file),
            cwd=REPO_ROOT,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("%s did not stop on SIGTERM; killing it", module)
                process.kill()
                await process.wait()
