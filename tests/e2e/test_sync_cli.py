"""``python -m bot sync --guild ID [--clear]`` as an operator runs it, checked by what Discord
(the emulator) ends up holding for that server."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.test_cli import Cli


def _cli(stack: Stack) -> tuple[Cli, dict[str, str]]:
    env = {k: v for k, v in stack.env.items() if k != "LOG_LEVEL"}
    return Cli(stack.tmp_path, stack.tmp_path / "none.env"), env


async def test_sync_guild_copies_the_global_commands_to_that_server(stack: Stack) -> None:
    cli, env = _cli(stack)
    guild = stack.guild.id

    result = await cli("sync", "--guild", str(guild), env=env)

    assert result.code == 0, result.output
    assert f"synced the commands to server {guild}" in result.stdout
    held = {c["name"]: c for c in stack.emu.guild_commands.get(guild, {}).values()}
    assert set(held) == {"neko", "neko-config"}
    assert sorted(held["neko"]["integration_types"]) == [0, 1]
    assert sorted(held["neko"]["contexts"]) == [0, 1, 2]
    assert held["neko-config"]["integration_types"] == [0]
    assert held["neko-config"]["contexts"] == [0]
    subcommands = {o["name"] for o in held["neko"]["options"]}
    assert {"random", "artist", "character", "image", "category", "stats", "about"} <= subcommands
    stack.emu.assert_no_violations()

    # Run again: nothing changed, so nothing is sent (Discord limits command creates a day).
    syncs = len(stack.emu.command_syncs)
    again = await cli("sync", "--guild", str(guild), env=env)
    assert again.code == 0, again.output
    assert "already up to date" in again.stdout
    assert len(stack.emu.command_syncs) == syncs


async def test_sync_guild_clear_removes_that_servers_copies(stack: Stack) -> None:
    cli, env = _cli(stack)
    guild = str(stack.guild.id)
    assert (await cli("sync", "--guild", guild, env=env)).code == 0
    assert stack.emu.guild_commands[stack.guild.id]

    result = await cli("sync", "--guild", guild, "--clear", env=env)

    assert result.code == 0, result.output
    assert f"removed the command copies from server {guild}" in result.stdout
    assert stack.emu.guild_commands[stack.guild.id] == {}
    stack.emu.assert_no_violations()


async def test_sync_clear_without_a_guild_is_refused(stack: Stack) -> None:
    cli, env = _cli(stack)
    result = await cli("sync", "--clear", env=env)
    assert result.code == 2
    assert "--clear needs --guild" in result.stderr
    assert stack.emu.command_syncs == []
