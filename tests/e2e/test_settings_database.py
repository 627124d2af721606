"""The bot on PostgreSQL: another process's change applies here, and an outage fails closed.

The bot runs against the machine's real PostgreSQL (a database of this test's own). "Another
process" is a second store on the same database, as a second bot process would have; the
outage is a loopback proxy between the bot and the server being stopped and started again.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.nekos.models import Rating
from bot.store import open_store
from bot.store.postgres import PostgresSettingsStore
from tests.bot_process import spawned
from tests.e2e.conftest import (
    Stack,
    check_shown,
    is_ephemeral,
    message_text,
    shown_image_ids,
)
from tests.pg_service import PgDatabase, tcp_proxy, wait_until


async def _highest_shown(stack: Stack, allowed: Rating) -> Rating:
    """Ask for five random images in the lounge; assert none exceeds ``allowed``."""
    _, answer = await stack.ask(stack.member, stack.lounge, "random", count=5)
    assert not is_ephemeral(answer), message_text(answer)
    return max(check_shown(stack.dataset(), shown_image_ids(answer), allowed))


async def test_a_change_made_through_another_process_applies_here(
    spicy: Stack, pg_database: PgDatabase
) -> None:
    async with spicy.run(DATABASE_URL=pg_database.url):
        assert await _highest_shown(spicy, Rating.SFW) == Rating.SFW  # nothing set yet

        async with open_store(pg_database.url) as other_process:
            await other_process.set_channel_override(
                spicy.guild.id, spicy.lounge.id, Rating.NSFW, spicy.owner.id
            )

        async def shows_above_sfw() -> bool:
            return await _highest_shown(spicy, Rating.NSFW) > Rating.SFW

        await wait_until(shows_above_sfw, timeout=20.0)
        _, shown = await spicy.configure(spicy.owner, "show")
        assert f"<#{spicy.lounge.id}>: **nsfw**" in message_text(shown)
    spicy.emu.assert_no_violations()


async def test_a_database_outage_fails_closed_and_heals_by_itself(
    spicy: Stack, pg_database: PgDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with tcp_proxy() as proxy, spicy.run(DATABASE_URL=pg_database.url_via(proxy.port)) as bot:
        store = bot.store
        assert isinstance(store, PostgresSettingsStore)
        _, saved = await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        assert "Saved." in message_text(saved)

        await proxy.stop()
        await wait_until(lambda: not store.listening)

        # Members still get images, never above sfw, and the outage is logged once.
        for _ in range(3):
            assert await _highest_shown(spicy, Rating.SFW) == Rating.SFW
        assert caplog.text.count("Settings store failing") == 1

        _, refused = await spicy.configure(
            spicy.owner, "channel", channel=spicy.lounge, level="questionable"
        )
        assert is_ephemeral(refused)
        assert "couldn't reach the settings database, so nothing changed" in message_text(refused)
        _, shown = await spicy.configure(spicy.owner, "show")
        assert is_ephemeral(shown)
        assert "every channel shows **sfw** only" in message_text(shown)

        await proxy.start()

        async def shows_above_sfw() -> bool:
            return await _highest_shown(spicy, Rating.NSFW) > Rating.SFW

        await wait_until(shows_above_sfw, timeout=20.0)
        assert "Settings store answering again" in caplog.text
        # The acknowledged nsfw stayed; the refused change left nothing behind.
        changes = await store.recent_changes(spicy.guild.id)
        assert [(c.channel_id, c.new) for c in changes] == [(spicy.lounge.id, Rating.NSFW)]
    spicy.emu.assert_no_violations()


async def test_the_bot_refuses_to_start_on_an_unreachable_database_in_one_line(
    stack: Stack, pg_database: PgDatabase
) -> None:
    async with tcp_proxy() as closed:
        port = closed.port  # nothing listens there any more
    env_file = stack.tmp_path / "bot.env"
    url = pg_database.url_via(port, password="hunter2pw")
    settings = {**stack.env, "DATABASE_URL": url, "LOG_LEVEL": "INFO"}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
    log_path = stack.tmp_path / "bot.log"

    async with spawned("bot", env_file, log_path) as process:
        code = await asyncio.wait_for(process.wait(), 60)

    output = log_path.read_text(encoding="utf-8")
    assert code == 1, output
    assert "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(
            "error: settings store: cannot connect to PostgreSQL at "
            f"postgresql://postgres:********@127.0.0.1:{port}/{pg_database.name}: "
        )
    )
    assert "hunter2pw" not in output
