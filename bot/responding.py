"""Answering an interaction within Discord's clock.

The first response must reach Discord within 3 seconds; the token then lasts 15 minutes. A reply
that is not ready within :data:`DEFER_AFTER` seconds (or that the pacer says will be late) is
deferred first and delivered as a follow-up.

Every answer sent here is measured once per interaction (:func:`measure_command`): its outcome,
and the seconds from the interaction's creation to the first response and to the last message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import discord

from .embeds import ALLOWED_MENTIONS
from .metrics import NULL_METRICS, Metrics
from .nekos.errors import NekosError
from .replies import Reply, error_reply, notice
from .views import button_name

__all__ = ["DEFER_AFTER", "command_name", "measure_command", "respond", "send_reply"]

log = logging.getLogger(__name__)

DEFER_AFTER = 2.0
TOKEN_LIFETIME = dt.timedelta(minutes=15)
_TOKEN_MARGIN = dt.timedelta(seconds=30)
UNEXPECTED = "Something went wrong on my side. It has been logged; please try again."
# Interaction.extras keys: when the first response (a deferral) went out; measured already.
_ACKED = "nekos.acked_at"
_MEASURED = "nekos.measured"


def token_expired(interaction: discord.Interaction[Any]) -> bool:
    age = discord.utils.utcnow() - interaction.created_at
    return age > TOKEN_LIFETIME - _TOKEN_MARGIN


def _where(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command.qualified_name if interaction.command else "component"
    return f"/{command} guild={interaction.guild_id} channel={interaction.channel_id}"


def command_name(interaction: discord.Interaction[Any]) -> str:
    """The command's name in the metrics: ``random``, ``neko-config show``, ``button:another``."""
    if interaction.command is not None:
        return interaction.command.qualified_name.removeprefix("neko ")
    data = cast(Mapping[str, Any], interaction.data or {})
    return button_name(str(data.get("custom_id", "")))


def _metrics(interaction: discord.Interaction[Any]) -> Metrics:
    metrics = getattr(interaction.client, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else NULL_METRICS


def measure_command(interaction: discord.Interaction[Any], outcome: str) -> None:
    """Count the interaction's answer once, with its timings (the first call wins)."""
    extras = interaction.extras
    if extras.get(_MEASURED):
        return
    extras[_MEASURED] = True
    metrics = _metrics(interaction)
    if not metrics.enabled:
        return
    # Discord's 3 s runs from the interaction's creation: its id holds that time (ms).
    created = ((interaction.id >> 22) + discord.utils.DISCORD_EPOCH) / 1000
    now = time.time()
    acked = extras.get(_ACKED, now)
    metrics.command(
        command_name(interaction), outcome, max(0.0, acked - created), max(0.0, now - created)
    )


async def send_reply(
    interaction: discord.Interaction[Any], reply: Reply, *, edit: bool = False
) -> None:
    """Deliver ``reply``: as the response, or after a deferral as a follow-up (and measure it).

    ``edit`` replaces the message a component sits on (paging) instead of sending a new one.
    """
    try:
        delivered = await _deliver(interaction, reply, edit=edit)
    except BaseException:
        measure_command(interaction, "undelivered")
        raise
    measure_command(interaction, reply.outcome if delivered else "undelivered")


async def _deliver(interaction: discord.Interaction[Any], reply: Reply, *, edit: bool) -> bool:
    """Send ``reply`` the way the interaction's state calls for; False when it was too late."""
    if token_expired(interaction):
        log.warning("Dropped a reply after the 15-minute token window: %s", _where(interaction))
        return False
    if edit and reply.retire and interaction.message is not None:
        await _retire_buttons(interaction, interaction.message)
        await interaction.followup.send(
            content=reply.content or discord.utils.MISSING,
            embeds=reply.embeds,
            ephemeral=True,
            allowed_mentions=ALLOWED_MENTIONS,
        )
        return True
    files = reply.discord_files()
    view = reply.view if reply.view is not None else discord.utils.MISSING
    response = interaction.response
    if not response.is_done():
        if edit and not reply.ephemeral:
            await response.edit_message(
                content=reply.content, embeds=reply.embeds, view=reply.view, attachments=files
            )
            return True
        await response.send_message(
            content=reply.content,
            embeds=reply.embeds,
            view=view,
            files=files,
            ephemeral=reply.ephemeral,
            allowed_mentions=ALLOWED_MENTIONS,
        )
        return True
    if reply.ephemeral and not edit:
        await _whisper_after_public_deferral(interaction, reply)
        return True
    if edit and not reply.ephemeral:
        await interaction.edit_original_response(
            content=reply.content, embeds=reply.embeds, view=reply.view, attachments=files
        )
        return True
    await interaction.followup.send(
        content=reply.content or discord.utils.MISSING,
        embeds=reply.embeds,
        view=view,
        files=files,
        ephemeral=reply.ephemeral,
        allowed_mentions=ALLOWED_MENTIONS,
    )
    return True


async def _retire_buttons(interaction: discord.Interaction[Any], message: discord.Message) -> None:
    """Disable the message's buttons (links stay usable): an expired view, not an error."""
    view = discord.ui.View.from_message(message, timeout=None)
    for item in view.children:
        if isinstance(item, discord.ui.Button) and item.url is None:
            item.disabled = True
    if interaction.response.is_done():
        await interaction.edit_original_response(view=view)
    else:
        await interaction.response.edit_message(view=view)


async def _whisper_after_public_deferral(
    interaction: discord.Interaction[Any], reply: Reply
) -> None:
    """Send an ephemeral ``reply`` when a public "thinking…" placeholder is pending.

    Discord treats the first follow-up after a deferral as an edit of the placeholder and
    ignores its ephemeral flag, so the placeholder is filled first (with the reply's text, in
    case it cannot be removed), then the reply goes out as a real ephemeral follow-up, and the
    placeholder is deleted last.
    """
    await interaction.edit_original_response(
        content=reply.content or "\u2026", embeds=[], view=None, attachments=[]
    )
    await interaction.followup.send(
        content=reply.content or discord.utils.MISSING,
        embeds=reply.embeds,
        view=reply.view if reply.view is not None else discord.utils.MISSING,
        files=reply.discord_files(),
        ephemeral=True,
        allowed_mentions=ALLOWED_MENTIONS,
    )
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("Placeholder already gone: %s", _where(interaction))


async def respond(
    interaction: discord.Interaction[Any],
    work: Callable[[], Awaitable[Reply]],
    *,
    defer_now: bool = False,
    edit: bool = False,
) -> None:
    """Run ``work`` and send its Reply, deferring if it is not ready within the budget."""
    task: asyncio.Future[Reply] = asyncio.ensure_future(work())
    if not defer_now:
        await asyncio.wait({task}, timeout=DEFER_AFTER)
    if not task.done():
        if edit:
            await interaction.response.defer()
        else:
            await interaction.response.defer(thinking=True)
        interaction.extras[_ACKED] = time.time()
    try:
        reply = await task
    except NekosError as exc:
        log.info("Nekos API error for %s: %s", _where(interaction), exc)
        reply = error_reply(exc)
    except Exception:
        log.exception("Unexpected failure in %s", _where(interaction))
        reply = notice(UNEXPECTED, outcome="unexpected")
    await send_reply(interaction, reply, edit=edit)
