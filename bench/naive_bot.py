"""A typical Nekos image bot, the baseline for the ``bench.discord_*`` benchmarks.

It does what most image bots do: every ``/neko`` command defers at once (so Discord's 3-second
clock is never missed), makes ONE plain aiohttp GET (no pacing, no pooling, no cache, no retry)
and answers with simple embeds. Whatever the API says otherwise (429, 5xx, ...) is passed on to
the member as a one-line message. Like many such bots it shows what the API returns: the v1 API
has no rating filter, and this bot adds none.

* ``random [categories] [count]``: ``/image/random?limit=count&categories=...``, an embed each;
* ``artist name`` / ``character name``: ``/artist?search=name&limit=1`` (``/character``), a card;
* ``image id``: ``/image/{id}``; ``category [search]``: ``/category?search=%search%&limit=25``,
  a list; ``stats``: ``/stats``, a card.

    python -m bench.naive_bot --env-file <file>

Settings (the file is read with python-dotenv; the process environment wins): ``DISCORD_TOKEN``,
``DISCORD_API_BASE_URL`` (a REST base such as the Discord emulator's; empty for Discord itself)
and ``NEKOS_API_BASE_URL``. It prints ``naive bot ready`` once connected and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from dotenv import load_dotenv

log = logging.getLogger(__name__)

READY_LINE = "naive bot ready"
"""Printed (and flushed) on ``on_ready``: the benchmark waits for it."""
NOTHING_MATCHED = "Nothing matched those categories."
NO_IMAGE = "There's no image with that id."
NO_CATEGORY = "No category matches that."


class NaiveBot(commands.AutoShardedBot):
    """One upstream GET per command, nothing shared between commands but the HTTP session."""

    def __init__(self, api_base: str) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.none(),
            help_command=None,
        )
        self.api_base = api_base.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def setup_hook(self) -> None:
        self.session = aiohttp.ClientSession()
        self.tree.add_command(NekoGroup(self))
        await self.tree.sync()

    async def on_ready(self) -> None:
        print(READY_LINE, flush=True)

    async def close(self) -> None:
        await super().close()
        if self.session is not None:
            await self.session.close()

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any | str:
        """One plain GET: the JSON body's ``data``, or the one-line text to show instead.

        A 404 comes back as the empty string, so each command words its own "not found".
        """
        assert self.session is not None
        try:
            async with self.session.get(f"{self.api_base}{path}", params=params) as resp:
                if resp.status == 404:
                    return ""
                if resp.status != 200:
                    return f"The Nekos API answered {resp.status}; try again later."
                body: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Could not reach the Nekos API ({type(exc).__name__})."
        return body.get("data")

    async def random_images(self, categories: str | None, count: int) -> list[str] | str:
        """The image URLs to show, or the one-line text to show instead."""
        params = {"limit": str(count)}
        if categories:
            # Members type "catgirl, maid"; the API wants the names without the spaces.
            params["categories"] = ",".join(part.strip() for part in categories.split(","))
        data = await self.get("/image/random", params)
        if isinstance(data, str):
            return data or NOTHING_MATCHED
        urls = [str(item["url"]) for item in data or []]
        return urls or NOTHING_MATCHED


class NekoGroup(app_commands.Group):
    """``/neko``: the commands the benchmarks send, each one GET after an immediate deferral."""

    def __init__(self, bot: NaiveBot) -> None:
        super().__init__(name="neko", description="Anime images from the Nekos API")
        self.bot = bot

    @staticmethod
    async def _send(
        interaction: discord.Interaction[Any], answer: str | list[discord.Embed]
    ) -> None:
        if isinstance(answer, str):
            await interaction.followup.send(answer)
        else:
            await interaction.followup.send(embeds=answer[:10])

    @app_commands.command(name="random", description="Random images, filtered by category")
    @app_commands.describe(
        categories="Comma-separated categories, e.g. catgirl, maid", count="How many images"
    )
    async def random(
        self,
        interaction: discord.Interaction[Any],
        categories: str | None = None,
        count: app_commands.Range[int, 1, 10] = 1,
    ) -> None:
        await interaction.response.defer(thinking=True)
        answer = await self.bot.random_images(categories, count)
        if isinstance(answer, str):
            await interaction.followup.send(answer)
            return
        embeds = [discord.Embed(title="Random image").set_image(url=url) for url in answer]
        await interaction.followup.send(embeds=embeds)

    async def _card(self, interaction: discord.Interaction[Any], kind: str, name: str) -> None:
        await interaction.response.defer(thinking=True)
        data = await self.bot.get(f"/{kind}", {"search": name, "limit": "1"})
        if isinstance(data, str) or not data:
            article = "an" if kind == "artist" else "a"
            await self._send(
                interaction, data or f"I couldn't find {article} {kind} called {name}."
            )
            return
        item = data[0]
        card = discord.Embed(title=str(item.get("name") or name)[:256])
        card.description = str(item.get("description") or item.get("url") or "")[:4096] or None
        await self._send(interaction, [card])

    @app_commands.command(name="artist", description="An artist's card")
    @app_commands.describe(name="The artist's name")
    async def artist(self, interaction: discord.Interaction[Any], name: str) -> None:
        await self._card(interaction, "artist", name)

    @app_commands.command(name="character", description="A character's card")
    @app_commands.describe(name="The character's name")
    async def character(self, interaction: discord.Interaction[Any], name: str) -> None:
        await self._card(interaction, "character", name)

    @app_commands.command(name="image", description="One image by its id")
    @app_commands.describe(id="The image's id")
    async def image(self, interaction: discord.Interaction[Any], id: str) -> None:
        await interaction.response.defer(thinking=True)
        data = await self.bot.get(f"/image/{id.strip()}")
        if isinstance(data, str) or not data:
            await self._send(interaction, data or NO_IMAGE)
            return
        await self._send(interaction, [discord.Embed(title="Image").set_image(url=data["url"])])

    @app_commands.command(name="category", description="Browse the categories")
    @app_commands.describe(search="Only categories whose name contains this")
    async def category(
        self, interaction: discord.Interaction[Any], search: app_commands.Range[str, 0, 50] = ""
    ) -> None:
        await interaction.response.defer(thinking=True)
        params = {"limit": "25"}
        if search:
            params["search"] = f"%{search}%"
        data = await self.bot.get("/category", params)
        if isinstance(data, str) or not data:
            await self._send(interaction, data or NO_CATEGORY)
            return
        names = ", ".join(str(item.get("name")) for item in data)
        await self._send(interaction, [discord.Embed(title="Categories", description=names)])

    @app_commands.command(name="stats", description="The Nekos API's statistics")
    async def stats(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(thinking=True)
        data = await self.bot.get("/stats")
        if isinstance(data, str) or not data:
            await self._send(interaction, data or "The Nekos API sent no statistics.")
            return
        lines = [f"{key}: {value}" for key, value in data.items() if isinstance(value, int)]
        card = discord.Embed(title="Nekos API statistics", description="\n".join(lines) or None)
        await self._send(interaction, [card])


async def run(token: str, api_base: str) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    bot = NaiveBot(api_base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(bot.start(token), name="naive-bot")
    waiter = asyncio.create_task(stop.wait(), name="signal")
    done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    await bot.close()
    waiter.cancel()
    error = runner.exception() if runner in done else None
    runner.cancel()
    if error is not None:
        log.error("naive bot stopped: %s", error)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.naive_bot --env-file FILE``."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive_bot", description=__doc__)
    parser.add_argument("--env-file", default=".env")
    args = parser.parse_args(argv)
    load_dotenv(args.env_file)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rest_base = os.environ.get("DISCORD_API_BASE_URL", "").strip()
    if rest_base:
        # discord.py builds every REST URL (and so the gateway lookup) from this attribute.
        discord.http.Route.BASE = rest_base.rstrip("/")
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        print("error: DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    api_base = os.environ.get("NEKOS_API_BASE_URL", "https://v1.nekosapi.com/api")
    return asyncio.run(run(token, api_base))


if __name__ == "__main__":
    sys.exit(main())
