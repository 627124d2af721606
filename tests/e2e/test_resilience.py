"""The bot under stress: restarts, gateway drops and a failing Nekos API.

Members must always get an answer within Discord's rules (a response or deferral within
3 seconds, a friendly ephemeral message when something upstream fails), and the bot must keep
serving once the trouble is over.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.nekos.models import Rating
from tests.e2e.conftest import (
    Stack,
    check_shown,
    custom_ids,
    final_message,
    is_ephemeral,
    message_of,
    message_text,
    shown_image_ids,
)

# ------------------------------------------------------------------------------ restart


async def test_settings_and_buttons_survive_a_restart(spicy: Stack) -> None:
    data = spicy.dataset()
    async with spicy.run():
        await spicy.configure(spicy.owner, "channel", channel=spicy.lounge, level="nsfw")
        rec, _ = await spicy.ask(spicy.member, spicy.lounge, "random", count=5)
        random_message = message_of(rec)
        rec, _ = await spicy.ask(spicy.member, spicy.general, "category")
        category_message = message_of(rec)
        artist = max(spicy.dataset().artists, key=lambda a: len(data.images_by_artist(a.id)))
        rec, _ = await spicy.ask(spicy.member, spicy.lounge, "artist", name=artist.name)
        gallery_message = message_of(rec)
    syncs = len(spicy.emu.command_syncs)
    assert syncs == 1

    async with spicy.run() as second:
        assert len(spicy.emu.command_syncs) == syncs  # unchanged tree: no second sync
        settings = await second.store.get_guild_settings(spicy.guild.id)
        assert settings.overrides == {spicy.lounge.id: Rating.NSFW}
        _, shown = await spicy.configure(spicy.owner, "show")
        assert f"<#{spicy.lounge.id}>: **nsfw**" in message_text(shown)

        # Buttons on messages from the first run are rebuilt from their custom_id alone.
        (again,) = custom_ids(random_message, "neko:again:")
        ids: list[str] = []
        for _ in range(3):
            click, answer = await spicy.press(spicy.member, random_message, again)
            assert not is_ephemeral(answer), message_text(answer)
            assert message_of(click).id != random_message.id
            ids += shown_image_ids(answer)
        assert max(check_shown(data, ids, Rating.NSFW)) > Rating.SFW

        next_page = custom_ids(category_message, "neko:cat:")[1]
        _, page = await spicy.press(spicy.member, category_message, next_page)
        assert page["embeds"][0]["footer"]["text"].startswith("Page 2 of")

        next_image = custom_ids(gallery_message, "neko:gal:")[1]
        _, gallery = await spicy.press(spicy.member, gallery_message, next_image)
        assert "Page 2 of" in gallery["embeds"][-1]["footer"]["text"]
        check_shown(data, shown_image_ids(gallery), Rating.NSFW)
    spicy.emu.assert_no_violations()


# ------------------------------------------------------------------------------ gateway


async def _all_answered(stack: Stack, rounds: int = 4) -> None:
    """Fire commands from several members at once and check every one is answered."""
    emu = stack.emu
    records = await asyncio.gather(
        *(
            emu.slash(user, stack.general, "neko", subcommand="random", options={"count": 2})
            for user in (stack.member, stack.admin, stack.owner)
            for _ in range(rounds // 2)
        ),
        emu.slash(stack.member, stack.general, "neko", subcommand="about"),
        emu.autocomplete(
            stack.member,
            stack.general,
            "neko",
            subcommand="random",
            focused="categories",
            options={"categories": "cat"},
        ),
    )
    for rec in records:
        if rec.type == 4:
            response = await rec.wait_response(3.0)
            assert response.accepted
            assert rec.choices
            continue
        answer = await final_message(rec)
        assert not is_ephemeral(answer), message_text(answer)
        assert answer["embeds"]


@pytest.mark.parametrize("code", [4000, None], ids=["close-4000", "tcp-abort"])
async def test_bot_resumes_after_a_gateway_drop_and_answers_everything(
    stack: Stack, code: int | None
) -> None:
    emu = stack.emu
    async with stack.run() as bot:
        in_flight = await emu.slash(stack.member, stack.general, "neko", subcommand="random")
        assert await emu.drop_connection(code=code) == 1
        # The interaction sent before the drop is still answered (its reply goes over REST).
        assert shown_image_ids(await final_message(in_flight))

        await emu.wait_until(lambda: emu.resumed_count + emu.ready_count >= 2, timeout=15.0)
        await emu.wait_until(lambda: emu.connection_count == 1 and bot.is_ready(), timeout=5.0)
        await _all_answered(stack)
    emu.assert_no_violations()


async def test_bot_identifies_again_after_an_invalid_session(stack: Stack) -> None:
    emu = stack.emu
    async with stack.run() as bot:
        await emu.invalidate_sessions(resumable=False)
        await emu.wait_until(lambda: emu.ready_count >= 2, timeout=15.0)
        await emu.wait_until(lambda: bot.is_ready(), timeout=5.0)
        await _all_answered(stack)
    emu.assert_no_violations()


async def test_heartbeat_disappears_when_discord_becomes_unreachable(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.core

    monkeypatch.setattr(bot.core, "HEARTBEAT_INTERVAL", 0.1)
    monkeypatch.setattr(bot.core, "HEARTBEAT_RETRY", 0.1)
    heartbeat = stack.tmp_path / "hb"
    async with stack.run() as running:
        await stack.emu.wait_until(heartbeat.is_file, timeout=5.0)
        await stack.emu.close()  # Discord is gone: the bot retries, and must not look healthy
        await stack.emu.wait_until(lambda: not heartbeat.exists(), timeout=5.0)
        assert running.is_ready()  # discord.py still says "ready"; the heartbeat knows better
        await asyncio.sleep(0.3)
        assert not heartbeat.exists()


# ------------------------------------------------------------------------------ Nekos API faults


async def test_a_burst_beyond_the_rate_limit_is_queued_not_rejected(stack: Stack) -> None:
    api = stack.api
    slow_token = api.add_token(["api:ratelimit:4-1-10"])  # a request every 250 ms
    categories = ["catgirl", "long hair", "kemonomimi", "foxgirl", "smile", "blush", "sky"]
    users = [stack.member, stack.admin, stack.owner]
    async with stack.run(NEKOS_API_TOKEN=slow_token):
        records = await asyncio.gather(
            *(
                stack.emu.slash(
                    users[i % len(users)],
                    stack.general,
                    "neko",
                    subcommand="random",
                    options={"categories": name},
                )
                for i, name in enumerate(categories)
            )
        )
        answers = [await final_message(rec, timeout=15.0) for rec in records]
    for name, answer in zip(categories, answers, strict=True):
        assert not is_ephemeral(answer), message_text(answer)
        (image_id,) = shown_image_ids(answer)
        wanted = stack.dataset().category_named(name).id
        assert wanted in stack.dataset().image_by_id[image_id].category_ids
    assert any(rec.responses[0].type == 5 for rec in records), "the queue was never long"
    assert api.count_429 == 0
    stack.emu.assert_no_violations()


async def test_server_errors_beyond_the_retry_budget_get_a_friendly_message(stack: Stack) -> None:
    api = stack.api
    async with stack.run():
        api.fail_next(30, status=503)
        for subcommand, options in (("random", {"categories": "maid"}), ("stats", {})):
            _, answer = await stack.ask(stack.member, stack.general, subcommand, **options)
            assert is_ephemeral(answer), f"/{subcommand}: {answer}"
            assert "The Nekos API isn't answering right now" in message_text(answer)
            assert not shown_image_ids(answer)
        assert api.pending_faults > 0  # the retries stopped at the budget

        api.clear_faults()
        _, recovered = await stack.ask(stack.member, stack.general, "random", categories="maid")
        assert len(shown_image_ids(recovered)) == 1
        _, stats = await stack.ask(stack.member, stack.general, "stats")
        assert stats["embeds"][0]["title"] == "Nekos API statistics"
    stack.emu.assert_no_violations()


async def test_an_upstream_slower_than_the_timeout_gets_a_friendly_message(stack: Stack) -> None:
    api = stack.api
    async with stack.run(NEKOS_API_TIMEOUT="1"):
        api.latency = 1.5
        rec, answer = await stack.ask(
            stack.member, stack.general, "random", categories="maid", timeout=15.0
        )
        # It took longer than 3 s, so the bot deferred in time and followed up.
        assert rec.responses[0].type == 5
        assert rec.responses[0].elapsed < 3.0
        assert is_ephemeral(answer)
        assert "The Nekos API isn't answering right now" in message_text(answer)

        api.latency = 0.0
        _, recovered = await stack.ask(stack.member, stack.general, "random", categories="maid")
        assert len(shown_image_ids(recovered)) == 1
    stack.emu.assert_no_violations()


async def test_a_blocked_ip_gets_a_friendly_message_and_service_resumes(stack: Stack) -> None:
    api = stack.api
    async with stack.run():
        api.block_ip(seconds=2.0)
        _, answer = await stack.ask(stack.member, stack.general, "random", categories="maid")
        assert is_ephemeral(answer)
        text = message_text(answer)
        assert "The Nekos API has paused requests from this bot until <t:" in text

        # While blocked, nothing more is sent upstream; what is in memory is still served.
        sent = len(api.api_requests)
        _, again = await stack.ask(stack.member, stack.general, "random", categories="maid")
        assert is_ephemeral(again)
        assert "paused requests" in message_text(again)
        _, categories = await stack.ask(stack.member, stack.general, "category")
        assert categories["embeds"][0]["title"] == "Categories"
        assert len(api.api_requests) == sent

        await asyncio.sleep(2.2)  # the block the server announced runs out
        api.unblock_ip()
        _, recovered = await stack.ask(stack.member, stack.general, "random", categories="maid")
        assert len(shown_image_ids(recovered)) == 1
    stack.emu.assert_no_violations()
