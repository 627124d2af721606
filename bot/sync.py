"""Sync the application command tree only when it changed since the last sync.

Discord rate-limits command registration (200 creates a day per guild), so the bot keeps a hash of
what it last registered per scope and skips the call when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

__all__ = ["CommandSyncState", "sync_if_changed", "tree_hash", "tree_payload"]

log = logging.getLogger(__name__)


def tree_payload(tree: app_commands.CommandTree[Any], guild_id: int | None = None) -> list[Any]:
    """The JSON Discord would receive for this scope, in a stable order."""
    guild = discord.Object(id=guild_id) if guild_id is not None else None
    commands = tree.get_commands(guild=guild)
    return sorted((cmd.to_dict(tree) for cmd in commands), key=lambda c: str(c.get("name")))


def tree_hash(payload: list[Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class CommandSyncState:
    """The hash last synced per scope, kept in a small JSON file beside the data."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, scope: str) -> str | None:
        return self._load().get(scope)

    def put(self, scope: str, digest: str) -> None:
        data = self._load()
        data[scope] = digest
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self._path)


async def sync_if_changed(
    tree: app_commands.CommandTree[Any],
    state: CommandSyncState,
    *,
    application_id: int | None,
    guild_id: int | None = None,
    force: bool = False,
) -> bool:
    """Sync ``tree`` for the scope (global or one guild) if its payload changed; True if synced."""
    scope = f"{application_id}:{guild_id if guild_id is not None else 'global'}"
    digest = tree_hash(tree_payload(tree, guild_id))
    if not force and state.get(scope) == digest:
        log.info("Command tree unchanged for %s; not syncing", scope)
        return False
    guild = discord.Object(id=guild_id) if guild_id is not None else None
    synced = await tree.sync(guild=guild)
    state.put(scope, digest)
    log.info("Synced %d commands for %s", len(synced), scope)
    return True
