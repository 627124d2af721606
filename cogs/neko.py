"""``/neko``: random images, artists, characters, single images, categories, stats, about.

A command parses its options, asks the bot what the channel allows, and hands the rest to
:mod:`bot.replies`; :mod:`bot.responding` delivers the answer within Discord's clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.nekos.models import Rating
from bot.replies import Outcome, Reply, notice
from bot.responding import respond, send_reply
from bot.serving import ImageRequest

if TYPE_CHECKING:
    from bot.core import NekosBot

log = logging.getLogger(__name__)

RatingOption = Literal["sfw", "questionable", "nsfw"]


def _rating(value: str | None) -> Rating | None:
    return Rating.from_label(value) if value else None


async def _ready(reply: Reply) -> Reply:
    return reply


class Neko(commands.Cog):
    """The member-facing commands.

    ``/neko`` can also be installed to a user account and used in DMs, group chats and servers
    without the bot; there it only ever shows sfw (see :func:`bot.gating.allowed_max`).
    """

    neko = app_commands.Group(
        name="neko",
        description="Anime images from the Nekos API",
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        allowed_contexts=app_commands.AppCommandContext(
            guild=True, dm_channel=True, private_channel=True
        ),
    )

    def __init__(self, bot: NekosBot) -> None:
        self.bot = bot
        # Only what the configured API can do is registered: a missing command beats one that
        # always fails (v4 has tags instead of categories, and no artists or characters).
        caps = bot.capabilities
        if caps.has_tags:
            self.neko.remove_command("random")
            self.neko.add_command(self._random_by_tags_command())
        if not caps.has_artists:
            self.neko.remove_command("artist")
        if not caps.has_characters:
            self.neko.remove_command("character")

    async def cog_load(self) -> None:
        self.bot.button_handler = self
        self.bot.tree.error(self.on_app_command_error)

    async def cog_unload(self) -> None:
        self.bot.button_handler = None

    # ------------------------------------------------------------------ helpers

    async def _cooled_down(self, interaction: discord.Interaction[Any]) -> bool:
        """True (and the member told) when they are over their cooldown; else a use is taken,
        to be given back by :meth:`_charged` unless the command counts."""
        wait = await self.bot.cooldown.take(interaction.user.id)
        if wait is None:
            return False
        await send_reply(
            interaction,
            notice(
                f"Slow down a little — try again in {max(1, math.ceil(wait))} seconds.",
                outcome="cooldown",
            ),
        )
        return True

    def _charged(
        self, interaction: discord.Interaction[Any], work: Callable[[], Awaitable[Reply]]
    ) -> Callable[[], Awaitable[Reply]]:
        """``work``, giving the member's cooldown use back unless the answer counts
        (:attr:`Reply.charge`: served, or honestly "nothing matched")."""
        user_id = interaction.user.id

        async def run() -> Reply:
            try:
                reply = await work()
            except BaseException:
                await self.bot.cooldown.give_back(user_id)
                raise
            if not reply.charge:
                await self.bot.cooldown.give_back(user_id)
            return reply

        return run

    def _upload_limit(self, interaction: discord.Interaction[Any]) -> int | None:
        return getattr(interaction, "filesize_limit", None)

    async def _random(
        self,
        interaction: discord.Interaction[Any],
        categories: str | None,
        count: int,
        requested: Rating | None,
    ) -> None:
        if await self._cooled_down(interaction):
            return
        channel_max = await self.bot.channel_max(interaction)
        request = self.bot.replies.random_request(
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or interaction.user.id,
            channel_max=channel_max,
            requested=requested,
            categories=categories,
            count=count,
            configurable=self.bot.admins_decide(interaction),
        )
        defer_now = isinstance(request, ImageRequest) and self.bot.pool.should_defer(request)
        limit = self._upload_limit(interaction)
        await respond(
            interaction,
            self._charged(
                interaction,
                lambda: self.bot.replies.random(request, requested=requested, upload_limit=limit),
            ),
            defer_now=defer_now,
        )

    def _slow(self) -> bool:
        return self.bot.nekos.pacer.estimated_wait() > 1.5

    # ------------------------------------------------------------------ commands

    @neko.command(name="random", description="Random images, filtered by category")
    @app_commands.describe(
        categories="Comma-separated categories, e.g. catgirl, maid",
        count="How many images (1-10)",
        rating="Only images of this rating (up to what this channel allows)",
    )
    async def random(
        self,
        interaction: discord.Interaction[Any],
        categories: str | None = None,
        count: app_commands.Range[int, 1, 10] = 1,
        rating: RatingOption | None = None,
    ) -> None:
        await self._random(interaction, categories, count, _rating(rating))

    @app_commands.describe(
        tags="Comma-separated tags, e.g. catgirl, sword",
        count="How many images (1-10)",
        rating="Only images of this rating (up to what this channel allows)",
    )
    async def _random_by_tags(
        self,
        interaction: discord.Interaction[Any],
        tags: str | None = None,
        count: app_commands.Range[int, 1, 10] = 1,
        rating: RatingOption | None = None,
    ) -> None:
        await self._random(interaction, tags, count, _rating(rating))

    def _random_by_tags_command(self) -> app_commands.Command[Any, ..., None]:
        """``/neko random`` for an API with tags in place of categories (v4)."""
        command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="random",
            description="Random images, filtered by tags",
            callback=Neko._random_by_tags,
            parent=self.neko,
        )
        command.binding = self
        command.autocomplete("tags")(self._category_choices)
        return command

    async def _category_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Categories (v4: tags seen so far) this channel may show, completing the last typed."""
        channel_max = await self.bot.channel_max(interaction)
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.category_choices(current, channel_max)
        ]

    @random.autocomplete("categories")
    async def _categories_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._category_choices(interaction, current)

    @neko.command(name="artist", description="An artist's card and gallery")
    @app_commands.describe(name="The artist's name")
    async def artist(self, interaction: discord.Interaction[Any], name: str) -> None:
        if await self._cooled_down(interaction):
            return
        channel_max = await self.bot.channel_max(interaction)
        user = interaction.user.id
        await respond(
            interaction,
            self._charged(
                interaction,
                lambda: self.bot.replies.artist(user_id=user, channel_max=channel_max, name=name),
            ),
            defer_now=self._slow(),
        )

    @artist.autocomplete("name")
    async def _artist_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.artist_index.match(current)
        ]

    @neko.command(name="character", description="A character's profile")
    @app_commands.describe(name="The character's name")
    async def character(self, interaction: discord.Interaction[Any], name: str) -> None:
        await respond(
            interaction, lambda: self.bot.replies.character(name=name), defer_now=self._slow()
        )

    @character.autocomplete("name")
    async def _character_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.character_index.match(current)
        ]

    @neko.command(name="image", description="One image by its id")
    @app_commands.describe(id="The image's id (shown in every image's footer)")
    async def image(self, interaction: discord.Interaction[Any], id: str) -> None:
        if await self._cooled_down(interaction):
            return
        channel_max = await self.bot.channel_max(interaction)
        limit = self._upload_limit(interaction)
        await respond(
            interaction,
            self._charged(
                interaction,
                lambda: self.bot.replies.image(
                    image_id=id, channel_max=channel_max, upload_limit=limit
                ),
            ),
            defer_now=self._slow(),
        )

    @neko.command(name="category", description="Browse the categories")
    @app_commands.describe(search="Only categories whose name contains this")
    async def category(
        self, interaction: discord.Interaction[Any], search: app_commands.Range[str, 0, 50] = ""
    ) -> None:
        channel_max = await self.bot.channel_max(interaction)
        user = interaction.user.id
        await respond(
            interaction,
            lambda: self.bot.replies.category(user_id=user, channel_max=channel_max, search=search),
        )

    @neko.command(name="stats", description="The Nekos API's statistics")
    async def stats(self, interaction: discord.Interaction[Any]) -> None:
        await respond(interaction, self.bot.replies.stats, defer_now=self._slow())

    @neko.command(name="about", description="About this bot and its connection to the API")
    async def about(self, interaction: discord.Interaction[Any]) -> None:
        # Server managers also see the API's last error, in an answer only they can see.
        details = interaction.guild_id is not None and interaction.permissions.manage_guild
        await respond(interaction, lambda: self.bot.replies.about(details=details))

    # ------------------------------------------------------------------ buttons

    async def on_another(
        self,
        interaction: discord.Interaction[Any],
        categories: tuple[str, ...],
        count: int,
        rating: Rating | None,
    ) -> None:
        # Re-gated at click time: the channel may allow less than when the button was made.
        await self._random(interaction, ",".join(categories) or None, count, rating)

    async def on_gallery_page(
        self, interaction: discord.Interaction[Any], artist_id: str, page: int
    ) -> None:
        if not self.bot.capabilities.has_artists:
            # A gallery made while the bot used v1, clicked after a switch to v4.
            gone = notice(
                "This gallery can't turn pages any more: the Nekos API this bot now uses has no "
                "artists. Try `/neko random` instead."
            )
            gone.retire = True
            await respond(interaction, lambda: _ready(gone), edit=True)
            return
        channel_max = await self.bot.channel_max(interaction)
        user = interaction.user.id

        async def work() -> Reply:
            return await self.bot.replies.artist_page(
                user_id=user, channel_max=channel_max, artist_id=artist_id, page=page
            )

        await respond(interaction, work, edit=True, defer_now=self._slow())

    async def on_category_page(
        self, interaction: discord.Interaction[Any], page: int, search: str
    ) -> None:
        channel_max = await self.bot.channel_max(interaction)
        user = interaction.user.id
        await respond(
            interaction,
            lambda: self.bot.replies.category(
                user_id=user, channel_max=channel_max, search=search, page=page
            ),
            edit=True,
        )

    # ------------------------------------------------------------------ errors

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """One handler for every command: a friendly ephemeral message, logged once."""
        where = (
            f"/{interaction.command.qualified_name if interaction.command else '?'} "
            f"guild={interaction.guild_id} channel={interaction.channel_id}"
        )
        outcome: Outcome = "input_error"
        if isinstance(error, app_commands.CommandOnCooldown):
            text = f"Slow down a little — try again in {math.ceil(error.retry_after)} seconds."
            outcome = "cooldown"
        elif isinstance(error, app_commands.MissingPermissions):
            text = "You need the " + ", ".join(error.missing_permissions) + " permission for that."
        elif isinstance(error, app_commands.BotMissingPermissions):
            text = "I'm missing the " + ", ".join(error.missing_permissions) + " permission here."
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "That command only works in a server."
        elif isinstance(error, app_commands.TransformerError | app_commands.CheckFailure):
            text = "That option doesn't look right. Check it and try again."
        else:
            log.error("Unexpected error in %s", where, exc_info=error)
            text = "Something went wrong on my side. It has been logged; please try again."
            outcome = "unexpected"
        if not isinstance(error, app_commands.CommandInvokeError):
            log.info("Command refused in %s: %s", where, type(error).__name__)
        try:
            await send_reply(interaction, notice(text, outcome=outcome))
        except discord.HTTPException:
            log.warning("Could not tell the member about an error in %s", where)


async def setup(bot: NekosBot) -> None:
    await bot.add_cog(Neko(bot))
