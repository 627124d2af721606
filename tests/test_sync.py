"""Command sync: the tree's hash is stable, changes with the commands, and gates the sync call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import discord
import pytest
from discord import app_commands

from bot.config import Settings
from bot.sync import CommandSyncState, sync_if_changed, tree_hash, tree_payload

APP_ID = 111111111111111111
GUILD_ID = 222222222222222222


def _command(
    name: str, description: str = "Does a thing", *, with_option: bool = False
) -> app_commands.Command[Any, ..., None]:
    if with_option:

        @app_commands.describe(count="How many")
        async def callback_with_option(interaction: discord.Interaction, count: int) -> None:
            return None

        return app_commands.Command(
            name=name, description=description, callback=callback_with_option
        )

    async def callback(interaction: discord.Interaction) -> None:
        return None

    return app_commands.Command(name=name, description=description, callback=callback)


def _tree(*commands: app_commands.Command[Any, ..., None]) -> app_commands.CommandTree[Any]:
    """A real CommandTree on a client that never logs in; ``sync`` is replaced by a mock."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(
        discord.Client(intents=discord.Intents.none())
    )
    for command in commands:
        tree.add_command(command)
    tree.sync = AsyncMock(return_value=list(commands))  # type: ignore[method-assign]
    return tree


# ------------------------------------------------------------------------------ hashing


def test_hash_is_stable_and_order_independent() -> None:
    first = _tree(_command("alpha"), _command("beta"))
    second = _tree(_command("beta"), _command("alpha"))
    assert [c["name"] for c in tree_payload(first)] == ["alpha", "beta"]
    assert tree_hash(tree_payload(first)) == tree_hash(tree_payload(second))
    assert tree_hash(tree_payload(first)) == tree_hash(tree_payload(first))
    assert len(tree_hash(tree_payload(first))) == 64


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda: _tree(_command("alpha", "Does another thing")), id="description"),
        pytest.param(lambda: _tree(_command("alpha", with_option=True)), id="option"),
        pytest.param(lambda: _tree(_command("alpha"), _command("gamma")), id="added"),
        pytest.param(lambda: _tree(_command("alpha2")), id="renamed"),
        pytest.param(lambda: _tree(), id="removed"),
    ],
)
def test_hash_changes_when_a_command_changes(changed: Any) -> None:
    base = tree_hash(tree_payload(_tree(_command("alpha"))))
    assert tree_hash(tree_payload(changed())) != base


def test_hash_ignores_dict_key_order() -> None:
    assert tree_hash([{"a": 1, "b": [1, 2]}]) == tree_hash([{"b": [1, 2], "a": 1}])
    assert tree_hash([{"a": 1}]) != tree_hash([{"a": 2}])


def test_guild_scope_payload_holds_only_that_guilds_commands() -> None:
    tree = _tree(_command("global"))
    tree.add_command(_command("local"), guild=discord.Object(id=GUILD_ID))
    assert [c["name"] for c in tree_payload(tree)] == ["global"]
    assert [c["name"] for c in tree_payload(tree, GUILD_ID)] == ["local"]


async def _real_tree_payload(version: str) -> list[Any]:
    from bot.core import NekosBot
    from cogs.config import NekoConfig
    from cogs.neko import Neko

    settings = Settings(health_file=None, nekos_api_version=version)  # type: ignore[arg-type]
    bot = NekosBot(settings, background=False)
    await bot.add_cog(Neko(bot))
    await bot.add_cog(NekoConfig(bot))
    return tree_payload(bot.tree)


@pytest.mark.parametrize("version", ["v1", "v4"])
async def test_the_bots_real_tree_hashes_the_same_on_every_build(version: str) -> None:
    hashes = []
    for _ in range(2):
        payload = await _real_tree_payload(version)
        assert {c["name"] for c in payload} == {"neko", "neko-config"}
        hashes.append(tree_hash(payload))
    assert hashes[0] == hashes[1]


async def test_commands_follow_what_the_api_version_can_do() -> None:
    def subcommands(payload: list[Any]) -> dict[str, Any]:
        neko = next(c for c in payload if c["name"] == "neko")
        return {o["name"]: o for o in neko["options"]}

    v1 = subcommands(await _real_tree_payload("v1"))
    v4 = subcommands(await _real_tree_payload("v4"))
    assert set(v1) == {"random", "artist", "character", "image", "category", "stats", "about"}
    # v4 has no artists or characters: those are not registered rather than always failing.
    assert set(v4) == {"random", "image", "category", "stats", "about"}
    assert [o["name"] for o in v1["random"]["options"]] == ["categories", "count", "rating"]
    assert [o["name"] for o in v4["random"]["options"]] == ["tags", "count", "rating"]
    assert v4["random"]["options"][0]["autocomplete"] is True


# ------------------------------------------------------------------------------ sync gating


async def test_first_sync_happens_then_an_unchanged_tree_is_skipped(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    tree = _tree(_command("alpha"))
    assert await sync_if_changed(tree, state, application_id=APP_ID) is True
    tree.sync.assert_awaited_once_with(guild=None)  # type: ignore[attr-defined]
    assert await sync_if_changed(tree, state, application_id=APP_ID) is False
    assert tree.sync.await_count == 1  # type: ignore[attr-defined]


async def test_a_changed_tree_is_synced_again(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    assert await sync_if_changed(_tree(_command("alpha")), state, application_id=APP_ID)
    changed = _tree(_command("alpha", "New words"))
    assert await sync_if_changed(changed, state, application_id=APP_ID) is True
    changed.sync.assert_awaited_once()  # type: ignore[attr-defined]


async def test_force_syncs_an_unchanged_tree(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    tree = _tree(_command("alpha"))
    await sync_if_changed(tree, state, application_id=APP_ID)
    assert await sync_if_changed(tree, state, application_id=APP_ID, force=True) is True
    assert tree.sync.await_count == 2  # type: ignore[attr-defined]


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "command-sync.json"
    await sync_if_changed(_tree(_command("alpha")), CommandSyncState(path), application_id=APP_ID)
    fresh = _tree(_command("alpha"))
    assert not await sync_if_changed(fresh, CommandSyncState(path), application_id=APP_ID)
    fresh.sync.assert_not_awaited()  # type: ignore[attr-defined]


async def test_guild_scope_is_tracked_apart_from_global(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    tree = _tree(_command("alpha"))
    tree.add_command(_command("beta"), guild=discord.Object(id=GUILD_ID))
    assert await sync_if_changed(tree, state, application_id=APP_ID)
    assert await sync_if_changed(tree, state, application_id=APP_ID, guild_id=GUILD_ID)
    guild_call = tree.sync.await_args_list[1]  # type: ignore[attr-defined]
    assert guild_call.kwargs["guild"].id == GUILD_ID
    assert not await sync_if_changed(tree, state, application_id=APP_ID, guild_id=GUILD_ID)
    assert state.get(f"{APP_ID}:global") != state.get(f"{APP_ID}:{GUILD_ID}")


async def test_another_application_is_another_scope(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    tree = _tree(_command("alpha"))
    assert await sync_if_changed(tree, state, application_id=APP_ID)
    assert await sync_if_changed(tree, state, application_id=APP_ID + 1)


async def test_a_failed_sync_is_not_recorded(tmp_path: Path) -> None:
    state = CommandSyncState(tmp_path / "command-sync.json")
    tree = _tree(_command("alpha"))
    tree.sync = AsyncMock(side_effect=RuntimeError("discord said no"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await sync_if_changed(tree, state, application_id=APP_ID)
    assert state.get(f"{APP_ID}:global") is None
    tree.sync = AsyncMock(return_value=[])  # type: ignore[method-assign]
    assert await sync_if_changed(tree, state, application_id=APP_ID)


# ------------------------------------------------------------------------------ state file


def test_state_file_keeps_other_scopes(tmp_path: Path) -> None:
    path = tmp_path / "command-sync.json"
    state = CommandSyncState(path)
    state.put("1:global", "aaa")
    state.put("1:5", "bbb")
    state.put("1:global", "ccc")
    assert json.loads(path.read_text(encoding="utf-8")) == {"1:global": "ccc", "1:5": "bbb"}
    assert not path.with_suffix(".tmp").exists()


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '"text"'])
def test_corrupt_state_file_reads_as_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "command-sync.json"
    path.write_text(content, encoding="utf-8")
    state = CommandSyncState(path)
    assert state.get("1:global") is None
    state.put("1:global", "abc")
    assert state.get("1:global") == "abc"


def test_missing_state_file_reads_as_empty(tmp_path: Path) -> None:
    assert CommandSyncState(tmp_path / "nope" / "x.json").get("1:global") is None
