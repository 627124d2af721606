"""The real entry point, ``python -m bot``, as a separate process talking to the loopback fakes.

Nothing in-process is shared with the bot: it reads its own ``.env`` (given with ``--env-file``),
connects to the Discord emulator and the fake Nekos API over loopback, and is stopped with
SIGTERM the way Docker stops it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from tests.bot_process import spawned
from tests.e2e.conftest import (
    DISCORD_TOKEN,
    Stack,
    final_message,
    is_ephemeral,
    message_text,
    shown_image_ids,
)


@pytest.fixture
def log_level() -> str:
    return "INFO"


@pytest.fixture
async def bot_process(stack: Stack, log_level: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot --env-file <tmp>/.env`` started against the stack; killed if left running."""
    env_file = stack.tmp_path / "bot.env"
    settings = {**stack.env, "LOG_LEVEL": log_level}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
    async with spawned("bot", env_file, stack.tmp_path / "bot.log") as process:
        yield process


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


@pytest.mark.parametrize("log_level", ["DEBUG"])
async def test_debug_log_holds_no_interaction_token_nor_voice_warnings(
    stack: Stack, bot_process: asyncio.subprocess.Process
) -> None:
    emu = stack.emu
    log_path = stack.tmp_path / "bot.log"
    await emu.wait_until(lambda: emu.ready_count >= 1, timeout=30.0)
    tokens = []
    for subcommand, options in (("random", {}), ("random", {"count": 2}), ("about", {})):
        rec = await emu.slash(
            stack.member, stack.general, "neko", subcommand=subcommand, options=options
        )
        await final_message(rec, timeout=10.0)
        tokens.append(rec.token)
    bot_process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(bot_process.wait(), timeout=10.0)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    # DEBUG really logged the interaction traffic, with the tokens masked.
    assert "/interactions/" in text
    assert "/callback" in text
    for token in tokens:
        assert token not in text
    assert DISCORD_TOKEN not in text
    assert stack.api_token not in text
    assert "voice will NOT be supported" not in text
    emu.assert_no_violations()
