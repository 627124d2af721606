"""The real entry point, ``python -m bot``, as a separate process talking to the loopback fakes.

Nothing in-process is shared with the bot: it reads its own ``.env`` (given with ``--env-file``),
connects to the Discord emulator and the fake Nekos API over loopback, and is stopped with
SIGTERM the way Docker stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DISCORD_TOKEN,
    Stack,
    final_message,
    is_ephemeral,
    message_text,
    shown_image_ids,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = (
    "DISCORD_TOKEN",
    "DISCORD_API_BASE_URL",
    "NEKOS_API_BASE_URL",
    "NEKOS_API_TOKEN",
    "DATABASE_URL",
    "HEALTH_FILE",
    "LOG_LEVEL",
    "IMAGE_DELIVERY",
    "NEKOS_API_TIMEOUT",
    "COOLDOWN_USES",
    "COOLDOWN_SECONDS",
)


@pytest.fixture
async def bot_process(stack: Stack) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot --env-file <tmp>/.env`` started against the stack; killed if left running."""
    env_file = stack.tmp_path / "bot.env"
    settings = {**stack.env, "LOG_LEVEL": "INFO"}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
    # The process environment would win over the file: keep the test runner's out of it.
    environment = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    environment["PYTHONUNBUFFERED"] = "1"
    log_path = stack.tmp_path / "bot.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
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
            process.kill()
            await process.wait()


async def test_python_m_bot_answers_a_command_and_stops_cleanly_on_sigterm(
    stack: Stack, bot_process: asyncio.subprocess.Process
) -> None:
    emu = stack.emu
    heartbeat = stack.tmp_path / "hb"
    log_path = stack.tmp_path / "bot.log"

    def output() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    try:
        await emu.wait_until(lambda: emu.ready_count >= 1, timeout=30.0)
    except TimeoutError:
        pytest.fail(f"the bot never connected; its output:\n{output()}")
    assert emu.identifies
    assert emu.global_commands, "commands are synced before connecting"
    assert (stack.tmp_path / "command-sync.json").is_file()

    rec = await emu.slash(stack.member, stack.general, "neko", subcommand="random")
    answer = await final_message(rec, timeout=10.0)
    assert not is_ephemeral(answer), message_text(answer)
    (image_id,) = shown_image_ids(answer)
    assert image_id in stack.dataset().image_by_id

    await emu.wait_until(heartbeat.is_file, timeout=15.0)
    assert float(heartbeat.read_text(encoding="utf-8")) > 0

    bot_process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(bot_process.wait(), timeout=10.0)
    except TimeoutError:
        pytest.fail(f"the bot did not stop on SIGTERM; its output:\n{output()}")
    assert code == 0, output()
    assert not heartbeat.exists(), "the heartbeat must be removed on shutdown"
    text = output()
    assert "Shutting down" in text
    assert "Traceback" not in text
    # Secrets never reach the logs.
    assert DISCORD_TOKEN not in text
    assert stack.api_token not in text
    emu.assert_no_violations()
