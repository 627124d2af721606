"""``/neko-config`` end to end: every subcommand, its permissions and its answers."""

from __future__ import annotations

import sys

import pytest

from tests.e2e.conftest import (
    MANAGE_CHANNELS,
    MANAGE_GUILD,
    Stack,
    eventually,
    is_ephemeral,
    message_of,
    message_text,
)
from tests.fakes.discord_payloads import DEFAULT_MEMBER_PERMISSIONS, MessageRecord


def _button(message: MessageRecord, label: str) -> str:
    for component in message.iter_components():
        if component.get("label") == label and "custom_id" in component:
            return str(component["custom_id"])
    raise AssertionError(f"no button {label!r} on the message: {message.components}")


async def test_show_lists_default_overrides_and_recent_changes(stack: Stack) -> None:
    async with stack.run():
        _, empty = await stack.configure(stack.owner, "show")
        assert is_ephemeral(empty)
        text = message_text(empty)
        assert "**Server default:** sfw (not set)" in text
        assert "**Channel overrides:** none" in text
        assert "**Last changes:** none yet" in text

        await stack.configure(stack.owner, "default", level="questionable")
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")

        _, shown = await stack.configure(stack.owner, "show")
        text = message_text(shown)
        assert "**Server default:** questionable" in text
        assert f"<#{stack.lounge.id}>: **nsfw** (age-restricted)" in text
        assert "**Last changes:**" in text
        assert "none yet" not in text
        assert text.count("\n• ") >= 3  # one override and two changes
    stack.emu.assert_no_violations()


async def test_channel_override_on_an_age_restricted_channel_is_saved(stack: Stack) -> None:
    async with stack.run() as bot:
        _, saved = await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        assert is_ephemeral(saved)
        assert f"Saved. <#{stack.lounge.id}> now shows up to **nsfw**." in message_text(saved)
        settings = await bot.store.get_guild_settings(stack.guild.id)
        assert settings.overrides[stack.lounge.id].label == "nsfw"

        _, again = await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        assert "was already set that way" in message_text(again)
    stack.emu.assert_no_violations()


async def test_override_above_sfw_is_refused_on_a_channel_that_is_not_age_restricted(
    stack: Stack,
) -> None:
    async with stack.run() as bot:
        for level in ("questionable", "nsfw"):
            _, refused = await stack.configure(
                stack.owner, "channel", channel=stack.general, level=level
            )
            assert is_ephemeral(refused)
            text = message_text(refused)
            assert f"<#{stack.general.id}> isn't age-restricted" in text
            assert "Age-Restricted Channel" in text
        assert (await bot.store.get_guild_settings(stack.guild.id)).overrides == {}

        _, allowed = await stack.configure(
            stack.owner, "channel", channel=stack.general, level="sfw"
        )
        assert "now shows up to **sfw**" in message_text(allowed)
    stack.emu.assert_no_violations()


async def test_inherit_removes_the_override_and_follows_the_default(stack: Stack) -> None:
    async with stack.run() as bot:
        await stack.configure(stack.owner, "default", level="questionable")
        _, nsfw = await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        assert "up to **nsfw**" in message_text(nsfw)

        _, inherit = await stack.configure(
            stack.owner, "channel", channel=stack.lounge, level="inherit"
        )
        assert f"<#{stack.lounge.id}> now shows up to **questionable**" in message_text(inherit)
        assert stack.lounge.id not in (await bot.store.get_guild_settings(stack.guild.id)).overrides
    stack.emu.assert_no_violations()


async def test_default_sets_the_server_default_and_explains_the_cap(stack: Stack) -> None:
    async with stack.run() as bot:
        _, saved = await stack.configure(stack.owner, "default", level="nsfw")
        assert is_ephemeral(saved)
        text = message_text(saved)
        assert "Saved. The server default is now **nsfw**." in text
        assert "Channels that aren't age-restricted still show only **sfw**" in text
        settings = await bot.store.get_guild_settings(stack.guild.id)
        assert settings.default is not None
        assert settings.default.label == "nsfw"

        _, again = await stack.configure(stack.owner, "default", level="nsfw")
        assert "already **nsfw**" in message_text(again)
    stack.emu.assert_no_violations()


async def test_reset_needs_confirmation_then_clears_everything(stack: Stack) -> None:
    async with stack.run() as bot:
        await stack.configure(stack.owner, "default", level="questionable")
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")

        rec, question = await stack.configure(stack.owner, "reset")
        assert is_ephemeral(question)
        assert "Reset **all** content settings" in message_text(question)
        prompt = message_of(rec)
        _, cancelled = await stack.press(stack.owner, prompt, _button(prompt, "Cancel"))
        assert "Reset cancelled; nothing changed." in message_text(cancelled)
        assert (await bot.store.get_guild_settings(stack.guild.id)).overrides

        rec, _ = await stack.configure(stack.owner, "reset")
        prompt = message_of(rec)
        _, done = await stack.press(stack.owner, prompt, _button(prompt, "Reset everything"))
        text = message_text(done)
        assert "Done. Settings cleared (1 channel override)" in text
        assert "**sfw** only" in text
        assert done["components"] == []
        settings = await bot.store.get_guild_settings(stack.guild.id)
        assert settings.default is None
        assert settings.overrides == {}
    stack.emu.assert_no_violations()


async def test_member_without_manage_server_is_never_sent_neko_config(stack: Stack) -> None:
    async with stack.run() as bot:
        for subcommand in ("show", "reset"):
            rec = await stack.emu.slash(
                stack.member, stack.general, "neko-config", subcommand=subcommand
            )
            assert not rec.dispatched
            assert "default_member_permissions" in str(rec.refusal)
        rec = await stack.emu.slash(
            stack.member,
            stack.general,
            "neko-config",
            subcommand="default",
            options={"level": "nsfw"},
        )
        assert not rec.dispatched
        assert (await bot.store.get_guild_settings(stack.guild.id)).default is None

        # A member with Manage Server is let through.
        _, shown = await stack.configure(stack.admin, "show")
        assert "**Server default:**" in message_text(shown)
    stack.emu.assert_no_violations()


async def test_channel_override_needs_manage_channels_on_that_channel(stack: Stack) -> None:
    async with stack.run() as bot:
        _, refused = await stack.configure(
            stack.admin, "channel", channel=stack.lounge, level="nsfw"
        )
        assert is_ephemeral(refused)
        assert "needs the **Manage Channels** permission" in message_text(refused)
        assert (await bot.store.get_guild_settings(stack.guild.id)).overrides == {}

        # Manage Server alone still sets the guild-wide default.
        _, default = await stack.configure(stack.admin, "default", level="questionable")
        assert "Saved." in message_text(default)

        # Granted Manage Channels on #lounge only, the same admin may now set it.
        stack.emu.set_channel_permissions(
            stack.lounge, stack.admin, DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD | MANAGE_CHANNELS
        )
        _, saved = await stack.configure(stack.admin, "channel", channel=stack.lounge, level="nsfw")
        assert f"<#{stack.lounge.id}> now shows up to **nsfw**" in message_text(saved)
    stack.emu.assert_no_violations()


async def test_a_reset_prompt_from_before_a_restart_is_still_answered(stack: Stack) -> None:
    async with stack.run():
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        rec, _ = await stack.configure(stack.owner, "reset")
        prompt = message_of(rec)

    async with stack.run() as second:
        _, done = await stack.press(stack.owner, prompt, _button(prompt, "Reset everything"))
        assert "Done. Settings cleared (1 channel override)" in message_text(done)
        assert (await second.store.get_guild_settings(stack.guild.id)).overrides == {}
    stack.emu.assert_no_violations()


async def test_an_expired_reset_prompt_changes_nothing_and_says_so(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack.run() as bot:
        # discord.py imports an extension afresh when loading it: patch the loaded module.
        monkeypatch.setattr(sys.modules["cogs.config"], "RESET_WINDOW", -1.0)
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        rec, _ = await stack.configure(stack.owner, "reset")
        prompt = message_of(rec)
        _, expired = await stack.press(stack.owner, prompt, _button(prompt, "Reset everything"))
        assert is_ephemeral(expired)
        assert "expired" in message_text(expired)
        assert "nothing changed" in message_text(expired)
        assert (await bot.store.get_guild_settings(stack.guild.id)).overrides
    stack.emu.assert_no_violations()


async def test_only_the_admin_who_asked_may_confirm_a_reset(stack: Stack) -> None:
    async with stack.run() as bot:
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")
        rec, _ = await stack.configure(stack.owner, "reset")
        prompt = message_of(rec)
        # Ephemeral: nobody else sees the prompt, so only its author can click it.
        with pytest.raises(ValueError, match="only the invoking user"):
            await stack.emu.click(stack.admin, prompt, _button(prompt, "Reset everything"))
        assert (await bot.store.get_guild_settings(stack.guild.id)).overrides
    stack.emu.assert_no_violations()


async def test_deleted_channels_and_departed_servers_leave_no_settings(stack: Stack) -> None:
    async with stack.run() as bot:
        store = bot.store
        await stack.configure(stack.owner, "default", level="questionable")
        await stack.configure(stack.owner, "channel", channel=stack.lounge, level="nsfw")

        stack.emu.delete_channel(stack.lounge)

        async def override_gone() -> bool:
            settings = await store.get_guild_settings(stack.guild.id)
            return stack.lounge.id not in settings.overrides

        await eventually(override_gone)
        assert (await store.get_guild_settings(stack.guild.id)).default is not None

        stack.emu.remove_guild(stack.guild)

        async def guild_forgotten() -> bool:
            settings = await store.get_guild_settings(stack.guild.id)
            return settings.default is None and not settings.overrides

        await eventually(guild_forgotten)
        assert await store.recent_changes(stack.guild.id, limit=10) == []
    stack.emu.assert_no_violations()
