"""A typical Nekos image bot, the baseline for :mod:`bench.discord_burst`.

It does what most image bots do: ``/neko random [categories] [count]`` defers at once (so Discord's
3-second clock is never missed), makes ONE plain aiohttp GET to ``/image/random`` (no pacing, no
pooling, no retry) and answers with one simple embed per image. Whatever the API says otherwise
(429, 404, 5xx) is passed on to the member as a one-line message.

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

    async def random_images(self, categories: str | None, count: int) -> list[str] | str:
        """The image URLs to show, or the one-line text to show instead."""
        assert self.session is not None
        params = {"limit": str(count)}
        if categories:
            params["categories"] = categories
        try:
            async with self.session.get(f"{self.api_base}/image/random", params=params) as resp:
                if resp.status == 404:
                    return NOTHING_MATCHED
                if resp.status != 200:
                    return f"The Nekos API answered {resp.status}; try again later."
                body: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Could not reach the Nekos API ({type(exc).__name__})."
        urls = [str(item["url"]) for item in body.get("data") or []]
        return urls or NOTHING_MATCHED


class NekoGroup(app_commands.Group):
    """``/neko``: only ``random`` here."""

    def __init__(self, bot: NaiveBot) -> None:
        super().__init__(name="neko", description="Anime images from the Nekos API")
        self.bot = bot

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
