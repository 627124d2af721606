"""The Bot: opens the shared HTTP session, the store and the API client, then loads the cogs."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from . import __version__
from .autopost.delivery import ChannelDelivery
from .autopost.poster import Poster
from .budget import RequestBudget, describe_budget, open_budget
from .catalog import Catalog, CatalogSource
from .channels import context_from_interaction
from .config import ConfigError, Settings, shard_label
from .departures import Departures
from .embeds import ALLOWED_MENTIONS, AboutInfo
from .gating import GuildSettings, RefusalCounter, allowed_max
from .health import HEARTBEAT_INTERVAL, write_heartbeat
from .metrics import NULL_METRICS, Metrics, open_metrics
from .nekos import NekosApi, NekosError, Unauthorized
from .nekos.capabilities import CAPABILITIES
from .nekos.models import Rating
from .replies import Replies
from .responding import measure_command
from .serving import CachedLookups, Cooldown, ImagePool, PoolSettings
from .serving.assembly import content_policy, make_api, make_lookups, make_pool
from .serving.cooldown import MemberCooldown
from .serving.shared import SharedServing, open_shared
from .sharding import IdentifyGate, identify_ledgers, owned_by
from .store import SettingsStore, ShardFilter, StoreError, open_store
from .sync import CommandSyncState, sync_if_changed
from .views import ButtonHandler, dynamic_items

__all__ = ["EXTENSIONS", "NekosBot"]

if TYPE_CHECKING:  # imported only with REDIS_URL
    from .serving.cluster import SharedPool

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.neko", "cogs.config")
HEARTBEAT_RETRY = 5.0
"""Seconds between connection checks while not connected (the heartbeat file is absent)."""
GUILD_TOTAL_TTL = 600.0
"""Seconds ``/neko about`` reuses the bot's total server count (read from Discord)."""


def point_at_discord(base_url: str | None) -> None:
    """Send every Discord REST call (and so the gateway lookup) to ``base_url``."""
    if base_url:
        # discord.py builds every REST and webhook URL from this class attribute.
        discord.http.Route.BASE = base_url.rstrip("/")


class NekosBot(commands.AutoShardedBot):
    """The Nekos API bot. ``background=False`` (for ``sync``) starts no background tasks."""

    store: SettingsStore
    nekos: NekosApi
    pool: ImagePool
    lookups: CachedLookups
    catalog: Catalog
    replies: Replies
    cooldown: MemberCooldown
    button_handler: ButtonHandler | None
    departures: Departures

    def __init__(self, settings: Settings, *, background: bool = True) -> None:
        # The bot never joins voice: discord.py's start-up warnings about voice libraries are
        # noise to an operator (these class flags are discord.py's own switch for them).
        for flag in ("warn_nacl", "warn_dave"):
            if hasattr(discord.VoiceClient, flag):
                setattr(discord.VoiceClient, flag, False)
        intents = discord.Intents.none()
        intents.guilds = True  # channels, threads and their age-restricted flags; not privileged
        # Unset: Discord recommends the count and this process runs every shard.
        shards: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            shards["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=ALLOWED_MENTIONS,
            max_messages=None,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            **shards,
        )
        point_at_discord(settings.discord_api_base_url)
        self.settings = settings
        self.capabilities = CAPABILITIES[settings.nekos_api_version]
        """What the configured API version can do (which commands exist)."""
        self.background = background
        self.started_at = time.monotonic()
        self.refusals = RefusalCounter()
        self.button_handler = None
        self.api_version: str | None = None
        self._store_failing = False
        self._http_session: aiohttp.ClientSession | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._warm: asyncio.Task[None] | None = None
        self._data_dir = settings.data_dir
        self.budget: RequestBudget | None = None
        """The request budget shared with the other processes (set in ``setup_hook``)."""
        self.metrics: Metrics = NULL_METRICS
        """The operators' metrics (``METRICS_PORT``); measures nothing until ``setup_hook``."""
        self._identify_gate: IdentifyGate | None = None
        self._guild_total: tuple[float, int] | None = None
        self.poster: Poster | None = None
        """Scheduled posts of this process's shards (started in ``setup_hook``)."""
        self.shared: SharedServing | None = None
        """Lookups and cooldowns shared with the other processes (``REDIS_URL``)."""
        self.cluster: SharedPool | None = None
        """With ``REDIS_URL``: the random-image pool's shared part (batches, queue, claims)."""

    # ------------------------------------------------------------------ start-up

    async def setup_hook(self) -> None:
        settings = self.settings
        self.metrics = open_metrics(settings, shard_ids=self.shard_ids)
        # One request budget shared with every other process of the project on this address.
        self.budget = open_budget(settings)
        self._http_session = self.budget.session()
        self.nekos = make_api(
            settings,
            session=self._http_session,
            budget=self.budget,
            observer=self.metrics.request_observer,
        )
        try:
            await self.nekos.start()
        except Unauthorized as exc:
            raise ConfigError(
                "NEKOS_API_TOKEN was rejected by the Nekos API; fix or remove it"
            ) from exc
        except NekosError as exc:
            log.warning("Nekos API not reachable at start-up (%s); continuing", exc)

        self.store = open_store(settings.database_url)
        await self.store.open()
        self.departures = Departures(self.store, is_member=lambda g: self.get_guild(g) is not None)

        self.policy = content_policy(settings)
        # With REDIS_URL, lookups and cooldowns are shared by every process (else in-process).
        self.shared = open_shared(settings)
        shared = self.shared
        self.lookups = make_lookups(self.nekos, shared=shared.lookups if shared else None)
        lookups = self.lookups
        self.catalog = Catalog(
            CatalogSource(
                categories=lambda: lookups.category_list(background=True),
                artists=lambda: lookups.artist_list(background=True),
                characters=lambda: lookups.character_list(background=True),
            ),
            uses_tags=self.nekos.capabilities.has_tags,
            policy=self.policy,
        )
        max_expiry = self.nekos.token_details.max_expiry if self.nekos.token_details else None
        if settings.redis_url is not None:
            # Imported only when configured: a bot without Redis never loads the client.
            from .serving.cluster import open_shared_pool

            self.cluster = open_shared_pool(
                settings.redis_url.reveal(),
                prefix=settings.redis_key_prefix,
                owner=self.budget.owner,
            )
        self.pool = make_pool(
            self.nekos,
            PoolSettings(
                expiry_margin=settings.pool_expiry_margin,
                repeat_window=settings.no_repeat_window,
                max_attempts=settings.rare_request_attempts,
                reuse_after=settings.reuse_after,
                upstream_expiry=max_expiry if settings.image_delivery == "link" else None,
            ),
            policy=self.policy,
            observe=self.catalog.note_images,
            cluster=self.cluster,
        )
        if self.cluster is not None:
            self.cluster.start()  # the pool's calls wait on the feed: started even for `sync`
        cooldown = Cooldown(settings.cooldown_uses, settings.cooldown_seconds)
        self.cooldown = shared.cooldown(cooldown) if shared else cooldown
        self.replies = Replies(
            pool=self.pool,
            lookups=self.lookups,
            catalog=self.catalog,
            api=self.nekos,
            refusals=self.refusals,
            delivery=settings.image_delivery,
            about=self.about_info,
            api_version=self.fetch_api_version,
            policy=self.policy,
        )
        if settings.discord_api_base_url:
            await self._follow_gateway()
        self.add_dynamic_items(*dynamic_items())
        for extension in EXTENSIONS:
            await self.load_extension(extension)

        if self.background:
            await self.metrics.start(self)
            if settings.shard_ids is None or 0 in settings.shard_ids:
                await self.sync_commands()
            else:  # one process syncs, so processes starting together never race to
                log.info("Command sync is left to the process running shard 0")
            self.catalog.start()
            self.pool.start()
            if self.catalog.uses_tags:
                # Tags are learned from images: one batch now stocks the pool and the tag list.
                self._warm = asyncio.create_task(self._warm_pool(), name="warm-pool")
            self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
            # Scheduled posts of this process's guilds; every process may run one (a store lease
            # makes each due time posted once). Shards are known only after login: read late.
            self.poster = Poster(
                self.store,
                ChannelDelivery(self),
                shards=lambda: ShardFilter.of(self.shard_count, self.shard_ids),
            )
            self.poster.start(self.wait_until_ready)

    async def _warm_pool(self) -> None:
        try:
            await self.pool.warm()
        except Exception:  # the bot runs without it; the pool fetches on demand
            log.exception("Could not stock the image pool at start-up")

    async def _follow_gateway(self) -> None:
        # After an invalid session discord.py reconnects to its built-in gateway address, not
        # the one the REST base gave: with a REST override, make that address follow it too.
        _shards, url, _limits = await self.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def sync_commands(
        self, *, guild_id: int | None = None, force: bool = False, clear: bool = False
    ) -> bool:
        """Register the slash commands with Discord if they changed since the last sync.

        With ``guild_id``, the global commands are copied to that server (they appear there at
        once, beside the global ones), or with ``clear`` the server's copies are removed.
        """
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            if clear:
                self.tree.clear_commands(guild=guild)
            else:
                self.tree.copy_global_to(guild=guild)
        state = CommandSyncState(self._data_dir / "command-sync.json")
        return await sync_if_changed(
            self.tree, state, application_id=self.application_id, guild_id=guild_id, force=force
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Space IDENTIFYs across every process of the bot (see :mod:`bot.sharding`)."""
        if self.settings.shard_count is None:  # one process: discord.py's own spacing
            await super().before_identify_hook(shard_id, initial=initial)
            return
        if self._identify_gate is None:
            owner = self.budget.owner if self.budget is not None else f"pid {os.getpid()}"

            async def concurrency() -> int:
                return (await self.fetch_session_start_limits()).max_concurrency

            self._identify_gate = IdentifyGate(
                identify_ledgers(self.settings),
                owner=owner,
                application_id=self.application_id,
                max_concurrency=concurrency,
            )
        if not await self._identify_gate.wait(shard_id or 0):
            await super().before_identify_hook(shard_id, initial=initial)

    async def _beat(self) -> None:
        path = self.settings.health_file
        while path is not None:
            connected = self.is_connected()
            await asyncio.to_thread(write_heartbeat, path, connected=connected)
            await asyncio.sleep(HEARTBEAT_INTERVAL if connected else HEARTBEAT_RETRY)

    def is_connected(self) -> bool:
        """Whether every shard's gateway connection is open right now.

        ``is_ready()`` stays true through a lost connection and its reconnect attempts, so the
        shards' sockets are checked too: a bot cut off from Discord must fail its health check.
        """
        if not self.is_ready() or self.is_closed():
            return False
        return not any(shard.is_closed() for shard in self.shards.values())

    # ------------------------------------------------------------------ helpers for cogs

    @staticmethod
    def admins_decide(interaction: discord.Interaction) -> bool:
        """Whether this server's admins decide what the channel shows (a server the bot is in);
        elsewhere (DMs, group chats, servers reached by a user install) it is always sfw."""
        ctx = context_from_interaction(interaction)
        return ctx.guild_id is not None and ctx.bot_in_guild

    async def channel_max(self, interaction: discord.Interaction) -> Rating:
        """The highest rating this interaction's channel allows right now."""
        ctx = context_from_interaction(interaction)
        settings = (
            await self._guild_settings(ctx.guild_id)
            if ctx.guild_id is not None and ctx.bot_in_guild
            else GuildSettings()
        )
        return self.replies.cap(allowed_max(ctx, settings))

    @property
    def content_caveat(self) -> str | None:
        """What admins must know about the API's limits on content, or ``None``."""
        if self.capabilities.has_characters:
            return None
        if self.replies.ceiling is Rating.SFW:
            return (
                "This bot uses the Nekos API v4, which has no characters' ages, so it can't rule "
                "out minors: it shows only **sfw** images everywhere, whatever these settings "
                "say, until its operator opts in (`NEKOS_V4_ALLOW_ABOVE_SFW`)."
            )
        return (
            "This bot uses the Nekos API v4, which has no characters' ages: above sfw, its "
            "operator chose to show images anyway, except any tagged with a youth-describing "
            "tag (a heuristic, not a guarantee)."
        )

    async def _guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings; none (so sfw everywhere) while the store cannot be read.

        The one place gating fails closed: a member's command still works, showing sfw only.
        Logged once when the store fails and once when it answers again, not per command.
        """
        try:
            settings = await self.store.get_guild_settings(guild_id)
        except StoreError as exc:
            if not self._store_failing:
                self._store_failing = True
                log.error(
                    "Settings store failing (%s); every channel is sfw-only until it is back", exc
                )
            return GuildSettings()
        if self._store_failing:
            self._store_failing = False
            log.warning("Settings store answering again; channel settings apply again")
        return settings

    async def fetch_api_version(self) -> str | None:
        if self.api_version is None:
            try:
                self.api_version = (await self.nekos.api_info()).version
            except NekosError as exc:
                log.info("Could not read the API version: %s", exc)
        return self.api_version

    async def guild_total(self) -> int | None:
        """Servers the whole bot is in, every process together (Discord's approximate count)."""
        now = time.monotonic()
        if self._guild_total is None or now - self._guild_total[0] > GUILD_TOTAL_TTL:
            try:
                info = await asyncio.wait_for(self.application_info(), 1.5)
            except (TimeoutError, discord.HTTPException) as exc:
                log.info("Could not read the total server count: %s", exc)
            else:
                self._guild_total = (now, info.approximate_guild_count)
        return self._guild_total[1] if self._guild_total is not None else None

    async def about_info(self) -> AboutInfo:
        health = self.nekos.health
        pool = self.pool.metrics()
        shards = self.settings.shard_ids
        partial = shards is not None and not self.settings.runs_every_shard
        return AboutInfo(
            bot_version=__version__,
            api_version=await self.fetch_api_version(),
            uptime_seconds=time.monotonic() - self.started_at,
            guild_count=len(self.guilds),
            guild_total=await self.guild_total() if partial else None,
            shards=f"{shard_label(shards)} of {self.shard_count}" if partial and shards else None,
            queue_length=health.queue_length,
            estimated_wait=health.estimated_wait,
            last_error=health.last_error,
            last_error_at=health.last_error_at,
            blocked_until=health.blocked_until,
            requests_sent=health.requests_sent,
            minor_safety_refusals=self.refusals.minor_safety,
            pooled_images=pool.pool_size,
            random_requests=pool.requests,
            served_from_stock=pool.pool_hits,
            busy_answers=self.lookups.metrics().shed,
            request_budget=describe_budget(self.nekos.pacer.state()),
            sharing=self._sharing(),
        )

    def _sharing(self) -> str | None:
        """Whether the image pool, lookups and cooldowns are shared right now (``REDIS_URL``)."""
        links = [part.link for part in (self.shared, self.cluster) if part is not None]
        if not links:
            return None
        if all(link.up for link in links):
            return "image pool, lookups and cooldowns shared with the other processes (Redis)"
        return "on this process's own until Redis answers again"

    # ------------------------------------------------------------------ events

    async def on_ready(self) -> None:
        log.info("Connected as %s to %d servers", self.user, len(self.guilds))
        # Every shard of this process is ready: its guilds are all cached, the others not ours.
        count = self.shard_count or 1
        self.departures.sweep(owned_by(self.shard_ids or range(count), count))

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: object
    ) -> None:
        # /neko commands were measured as they answered; this counts the ones that answer
        # by themselves (/neko-config).
        measure_command(interaction, "served")

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # Privacy: a server that removed the bot keeps nothing here (retried if the store fails).
        self.departures.guild_removed(guild.id)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        self.departures.channel_deleted(channel.guild.id, channel.id)

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        if self.poster is not None:
            await self.poster.stop()  # before disconnecting: posts under way may still go out
        await self.metrics.close()
        if self._warm is not None:
            self._warm.cancel()
            await asyncio.gather(self._warm, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            if self.settings.health_file is not None:
                write_heartbeat(self.settings.health_file, connected=False)
        for name in ("catalog", "pool", "lookups"):
            if hasattr(self, name):
                await getattr(self, name).stop()
        if self.cluster is not None:
            await self.cluster.close()
        await super().close()
        if hasattr(self, "nekos"):
            await self.nekos.close()
        if self._http_session is not None:
            await self._http_session.close()
        if self.budget is not None:
            await self.budget.close()
        if self.shared is not None:
            await self.shared.close()
        if self._identify_gate is not None:
            await self._identify_gate.close()
        if hasattr(self, "departures"):
            await self.departures.close()
        if hasattr(self, "store"):
            await self.store.close()
