"""A loopback Discord (REST v10 + gateway) that the real discord.py client connects to.

Tests build a small world (guilds, channels, members), start a discord.py client against the
emulator, then drive it the way Discord would: slash commands, autocomplete and component
clicks arrive over the gateway as INTERACTION_CREATE, and every reply the bot makes over REST
is recorded, checked against Discord's documented rules and answered like Discord answers it
(including the error codes for late or duplicate responses).  Broken rules are collected in
:attr:`DiscordEmulator.violations`.

Typical use::

    async with DiscordEmulator() as emu:
        guild = emu.add_guild("Cats", owner)
        chan = emu.add_channel(guild, ChannelType.GUILD_TEXT, "general")
        async with emu.run_client(bot):
            await bot.tree.sync()
            rec = await emu.slash(owner, chan, "neko", subcommand="random")
            first = await rec.wait_response()
        emu.assert_no_violations()

discord.py takes REST URLs from ``discord.http.Route.BASE`` and, for a plain (unsharded)
client, the gateway from ``DiscordWebSocket.DEFAULT_GATEWAY`` (it only asks ``GET /gateway/bot``
when auto-sharded), so :meth:`DiscordEmulator.patch_discord` points both at the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, hdrs, web

from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    DM_APP_PERMISSIONS,
    GUILD_CHANNEL_TYPES,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    NSFW_CAPABLE_TYPES,
    SELECT_TYPES,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    THREAD_PARENT_TYPES,
    THREAD_TYPES,
    VIEW_CHANNEL,
    AttachmentOption,
    ChannelRecord,
    ChannelType,
    GuildRecord,
    MemberRecord,
    MessageRecord,
    SnowflakeGenerator,
    UserRecord,
    autocomplete_problems,
    command_list_problems,
    command_problems,
    iso_timestamp,
    message_problems,
)

__all__ = [
    "AttachmentOption",
    "CallbackRecord",
    "ChannelRecord",
    "ChannelType",
    "DiscordEmulator",
    "FileRecord",
    "GuildRecord",
    "IdentifyRecord",
    "InteractionNotDispatched",
    "InteractionRecord",
    "MemberRecord",
    "MessageRecord",
    "RestCall",
    "UserRecord",
]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

API_PREFIX = "/api/v10"

# Gateway opcodes.
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Application flags announcing which privileged intents the app may request.
_INTENT_APP_FLAGS = {
    INTENT_GUILD_PRESENCES: 1 << 13,
    INTENT_GUILD_MEMBERS: 1 << 15,
    INTENT_MESSAGE_CONTENT: 1 << 19,
}
APPLICATION_COMMAND_BADGE = 1 << 23

# Interaction types.
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

# Callback types each interaction type may answer with.
_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    INTERACTION_APPLICATION_COMMAND: frozenset({4, 5, 9}),
    INTERACTION_MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    INTERACTION_AUTOCOMPLETE: frozenset({8}),
    INTERACTION_MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

# Flags a bot may set on a message it creates or edits.
_SETTABLE_MESSAGE_FLAGS = (1 << 2) | (1 << 12) | (1 << 15)

_SESSION_BUFFER = 2000


class InteractionNotDispatched(RuntimeError):
    """Raised when waiting on an interaction Discord would never have sent to the bot."""


@dataclass(frozen=True)
class FileRecord:
    """A file the bot uploaded in a multipart request."""

    filename: str
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


@dataclass
class CallbackRecord:
    """One POST to an interaction's callback endpoint, accepted or not.

    ``elapsed`` is emulator-clock seconds since the interaction was dispatched; ``status`` is
    the HTTP status the emulator answered with (200/204 accepted, 400/404/413 rejected).
    """

    type: int
    data: JSON
    elapsed: float
    status: int
    files: list[FileRecord] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """Whether Discord would have acknowledged the interaction with this callback."""
        return self.status < 300


@dataclass
class RestCall:
    """One REST request the client made (path without the ``/api/v10`` prefix)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    status: int = 0

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


_CALL_KEY = web.RequestKey("emulator_call", RestCall)


@dataclass(frozen=True, slots=True)
class IdentifyRecord:
    """An accepted IDENTIFY: when it arrived and the session it opened."""

    at: float
    """Event-loop seconds (real time: the emulator clock's offsets do not apply)."""
    shard_id: int
    shard_count: int
    session_id: str


class _Reject(Exception):
    """Aborts a REST handler with a ready Discord-shaped error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json_response(data: Any, *, status: int = 200) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json``.

    discord.py only decodes a body whose Content-Type equals that string (no charset suffix).
    """
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str, problems: Sequence[str] = ()) -> web.Response:
    body: JSON = {"message": message, "code": code}
    if problems:
        body["errors"] = {
            "emulator": {"_errors": [{"code": "EMULATOR_RULE", "message": p} for p in problems]}
        }
    return _json_response(body, status=status)


class InteractionRecord:
    """An interaction the emulator sent (or refused to send) and everything the bot did with it.

    The ``wait_*`` helpers take a ``timeout`` in real seconds because tests read better that way
    than wrapped in ``asyncio.timeout`` (hence the ASYNC109 exemptions).
    """

    def __init__(
        self,
        emulator: DiscordEmulator,
        *,
        interaction_id: int,
        token: str,
        kind: int,
        payload: JSON,
        user: UserRecord,
        channel: ChannelRecord,
        command_name: str | None = None,
        custom_id: str | None = None,
        component_message: MessageRecord | None = None,
        focused_option_type: int | None = None,
        refusal: str | None = None,
    ) -> None:
        self._emulator = emulator
        self.id = interaction_id
        self.token = token
        self.type = kind
        self.payload = payload
        self.user = user
        self.channel = channel
        self.command_name = command_name
        self.custom_id = custom_id
        self.component_message = component_message
        self.focused_option_type = focused_option_type
        self.refusal = refusal
        self.created_at = emulator.now()
        self.responses: list[CallbackRecord] = []
        self.followups: list[MessageRecord] = []
        self.original: MessageRecord | None = None
        self.dispatched_to: list[tuple[int, str]] = []
        """``(shard_id, session_id)`` of every gateway session the interaction was sent to."""
        self.expired = False
        self._deferred_fill_pending = False

    def __repr__(self) -> str:
        what = self.describe()
        count = len(self.responses)
        return f"<InteractionRecord id={self.id} type={self.type} {what!r} responses={count}>"

    def describe(self) -> str:
        """``/command sub`` or ``button custom_id``, for messages."""
        if self.command_name is not None:
            return f"/{self.command_name}"
        return f"component {self.custom_id!r}"

    @property
    def dispatched(self) -> bool:
        """False when Discord would not have sent this interaction (see :attr:`refusal`)."""
        return self.refusal is None

    @property
    def response(self) -> CallbackRecord | None:
        """The accepted first response, if any."""
        return next((r for r in self.responses if r.accepted), None)

    @property
    def acknowledged(self) -> bool:
        """Whether a callback was accepted."""
        return self.response is not None

    @property
    def first_response_elapsed(self) -> float | None:
        """Emulator-clock seconds from dispatch to the first callback attempt."""
        return self.responses[0].elapsed if self.responses else None

    @property
    def choices(self) -> list[JSON] | None:
        """The autocomplete choices of an accepted type-8 response."""
        response = self.response
        if response is None or response.type != 8:
            return None
        choices = response.data.get("choices")
        return list(choices) if isinstance(choices, list) else None

    @property
    def message_ids(self) -> set[int]:
        """Ids of the original response and every follow-up."""
        ids = {m.id for m in self.followups}
        if self.original is not None:
            ids.add(self.original.id)
        return ids

    async def wait_until(
        self,
        predicate: Callable[[InteractionRecord], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait (real seconds) until ``predicate(self)`` holds."""
        if not self.dispatched:
            raise InteractionNotDispatched(self.refusal)
        await self._emulator.wait_until(lambda: predicate(self), timeout=timeout)

    async def wait_response(self, timeout: float = 5.0) -> CallbackRecord:  # noqa: ASYNC109
        """The first callback attempt (check ``.accepted``), waiting up to ``timeout`` seconds."""
        await self.wait_until(lambda r: bool(r.responses), timeout)
        return self.responses[0]

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[MessageRecord]:  # noqa: ASYNC109
        """Wait until at least ``count`` follow-ups arrived and return them all."""
        await self.wait_until(lambda r: len(r.followups) >= count, timeout)
        return list(self.followups)


class _Connection:
    """One gateway websocket; frames go out through ``outbox`` in order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.session: _Session | None = None
        self.writer: asyncio.Task[None] | None = None
        # The close code is only the client's word when the client started the close.
        self.closed_by_server = False


@dataclass(eq=False)
class _Session:
    """A gateway session: survives a dropped socket and can be RESUMEd."""

    session_id: str
    shard_id: int
    shard_count: int
    sharded: bool
    intents: int
    seq: int = 0
    alive: bool = True
    connection: _Connection | None = None
    buffer: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=_SESSION_BUFFER))

    def owns_guild(self, guild_id: int | None) -> bool:
        """Whether events of ``guild_id`` (None: DMs, shard 0) belong to this shard."""
        if guild_id is None:
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id


class DiscordEmulator:
    """A stateful loopback Discord: REST v10 under :attr:`api_base`, gateway at :attr:`gateway_url`.

    Time for the 3-second and 15-minute rules is the emulator clock: ``clock()`` (default: the
    event loop's monotonic time) plus whatever :meth:`advance_clock` added.
    """

    def __init__(
        self,
        *,
        token: str = "emulator-bot-token",
        bot_name: str = "NekoBot",
        heartbeat_interval_ms: int = 1000,
        response_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        shards: int = 1,
        max_concurrency: int = 1,
        allowed_privileged_intents: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.response_deadline = response_deadline
        self.token_lifetime = token_lifetime
        self.shards = shards
        self.max_concurrency = max_concurrency
        """``session_start_limit.max_concurrency``: IDENTIFY buckets (shard_id % this)."""
        self.allowed_privileged_intents = allowed_privileged_intents
        self._clock = clock
        self._clock_offset = 0.0
        self._ids = SnowflakeGenerator()
        self.bot_user = UserRecord(id=self._ids.next(), username=bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.app_owner = UserRecord(id=self._ids.next(), username="app-owner")

        self.users: dict[int, UserRecord] = {
            self.bot_user.id: self.bot_user,
            self.app_owner.id: self.app_owner,
        }
        self.guilds: dict[int, GuildRecord] = {}
        self.channels: dict[int, ChannelRecord] = {}
        self.messages: dict[int, MessageRecord] = {}
        self.files: dict[int, FileRecord] = {}
        self._bot_dms: dict[int, ChannelRecord] = {}

        self.global_commands: dict[int, JSON] = {}
        self.guild_commands: dict[int, dict[int, JSON]] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self.command_syncs: list[int | None] = []

        self.interactions: list[InteractionRecord] = []
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}

        self.violations: list[str] = []
        self.requests: list[RestCall] = []
        self.unknown_routes: list[str] = []
        self.identifies: list[JSON] = []
        self.identify_log: list[IdentifyRecord] = []
        self.resumes: list[JSON] = []
        self.gateway_log: list[str] = []
        self.events_sent: list[str] = []
        self.presence_updates: list[JSON] = []
        self.heartbeats = 0

        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        log.debug("discord emulator listening on %s", self.base_url)

    async def close(self) -> None:
        """Close every gateway socket and stop the server."""
        for conn in list(self._connections):
            conn.closed_by_server = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001), timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be: ``http://127.0.0.1:PORT/api/v10``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The gateway URL ``GET /gateway/bot`` returns."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` READY announces (a distinct path, to see it is used)."""
        return f"ws://127.0.0.1:{self.port}/resume-gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at the emulator, restoring after."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    @contextlib.asynccontextmanager
    async def run_client(
        self, client: discord.Client, *, ready_timeout: float = 10.0
    ) -> AsyncIterator[discord.Client]:
        """Start ``client`` against the emulator, yield once it is ready, then close it cleanly."""
        with self.patch_discord():
            task = asyncio.create_task(client.start(self.token), name="emulated-discord-client")
            try:
                async with asyncio.timeout(ready_timeout):
                    while not client.is_ready():
                        if task.done():
                            task.result()
                            raise RuntimeError("the client stopped before it became ready")
                        # discord.py offers no awaitable readiness before login creates it.
                        await asyncio.sleep(0.01)
                yield client
            finally:
                await client.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10.0)

    # ------------------------------------------------------------------ clock and waiting

    def now(self) -> float:
        """Emulator time in seconds (monotonic)."""
        base = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        return base + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator clock forward (to test the 3-second and 15-minute rules fast)."""
        self._clock_offset += seconds

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait (real seconds) until ``predicate()`` holds; re-checked on every emulator event.

        Conditions that only the client changes are also re-checked every 50 ms.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
                # as the wait ends, and a waiter that loops on this (the benches' final-message
                # watcher) then never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._changed.wait()

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every queued gateway frame has been handed to its socket."""
        joins = [conn.outbox.join() for conn in list(self._connections)]
        if joins:
            await asyncio.wait_for(asyncio.gather(*joins), timeout=timeout)

    # ------------------------------------------------------------------ rules

    def _violate(self, rule: str, detail: str) -> None:
        message = f"{rule}: {detail}"
        log.warning("discord rule broken: %s", message)
        self.violations.append(message)
        self._notify()

    def unanswered(self) -> list[InteractionRecord]:
        """Dispatched interactions past the deadline that got no callback at all."""
        now = self.now()
        return [
            rec
            for rec in self.interactions
            if rec.dispatched
            and not rec.responses
            and now - rec.created_at > self.response_deadline
        ]

    def assert_no_violations(self) -> None:
        """Fail with every recorded violation, plus interactions never answered in time."""
        problems = list(self.violations)
        problems += [
            f"no-response: interaction {rec.id} ({rec.describe()}) never answered"
            for rec in self.unanswered()
        ]
        if problems:
            raise AssertionError("Discord rules broken:\n  " + "\n  ".join(problems))

    # ------------------------------------------------------------------ world

    def add_user(
        self,
        username: str,
        *,
        bot: bool = False,
        global_name: str | None = None,
        locale: str = "en-US",
    ) -> UserRecord:
        """A new user."""
        user = UserRecord(
            id=self._ids.next(), username=username, bot=bot, global_name=global_name, locale=locale
        )
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        owner_id: int | UserRecord | None = None,
        *,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        bot_in_guild: bool = True,
        upload_limit: int = 10 * 1024 * 1024,
        locale: str = "en-US",
        shard: tuple[int, int] | None = None,
    ) -> GuildRecord:
        """A new guild; the owner (a new user when omitted) and the bot become members.

        ``bot_in_guild=False`` makes a guild the app reaches only through a user install: it
        is not sent to the client and only user-installable commands work in it.
        ``shard=(shard_id, shard_count)`` picks an id whose events go to that shard.
        """
        if owner_id is None:
            owner = self.add_user(f"{name}-owner")
        elif isinstance(owner_id, UserRecord):
            owner = owner_id
        else:
            owner = self.users.get(owner_id) or UserRecord(id=owner_id, username=f"user-{owner_id}")
            self.users.setdefault(owner.id, owner)
        guild = GuildRecord(
            id=self._ids.next() if shard is None else self._ids.next_on_shard(*shard),
            name=name,
            owner_id=owner.id,
            bot_in_guild=bot_in_guild,
            upload_limit=upload_limit,
            locale=locale,
        )
        self.guilds[guild.id] = guild
        self._put_member(guild, owner, ALL_PERMISSIONS)
        if bot_in_guild:
            self._put_member(guild, self.bot_user, bot_permissions)
            for session in self._live_sessions():
                if session.owns_guild(guild.id):
                    self._emit(session, "GUILD_CREATE", self._guild_create_payload(guild, session))
        return guild

    def remove_guild(self, guild: GuildRecord) -> None:
        """The bot leaves (is removed from) ``guild``: GUILD_DELETE; the guild stays reachable
        only through user installs."""
        was_in = guild.bot_in_guild
        guild.bot_in_guild = False
        guild.members.pop(self.bot_user.id, None)
        if was_in:
            self._dispatch(
                "GUILD_DELETE", {"id": str(guild.id)}, guild_id=guild.id, membership=False
            )

    def add_member(
        self,
        guild: GuildRecord,
        user: UserRecord,
        permissions: int = DEFAULT_MEMBER_PERMISSIONS,
        *,
        nick: str | None = None,
    ) -> MemberRecord:
        """Make ``user`` a member with guild-wide ``permissions`` (an int bitfield)."""
        member = self._put_member(guild, user, permissions, nick=nick)
        self._dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": member.role_payload()},
            guild_id=guild.id,
            intent=INTENT_GUILDS,
        )
        self._dispatch(
            "GUILD_MEMBER_ADD",
            {**member.payload(), "guild_id": str(guild.id)},
            guild_id=guild.id,
            intent=INTENT_GUILD_MEMBERS,
        )
        return member

    def set_member_permissions(
        self, guild: GuildRecord, user: UserRecord, permissions: int
    ) -> None:
        """Change a member's guild-wide permissions (GUILD_ROLE_UPDATE of its role)."""
        member = self._member(guild, user)
        member.permissions = permissions
        self._dispatch(
            "GUILD_ROLE_UPDATE",
            {"guild_id": str(guild.id), "role": member.role_payload()},
            guild_id=guild.id,
            intent=INTENT_GUILDS,
        )

    def _put_member(
        self, guild: GuildRecord, user: UserRecord, permissions: int, *, nick: str | None = None
    ) -> MemberRecord:
        self.users.setdefault(user.id, user)
        existing = guild.members.get(user.id)
        if existing is not None:
            existing.permissions = permissions
            return existing
        member = MemberRecord(
            user=user,
            guild_id=guild.id,
            permissions=permissions,
            role_id=self._ids.next(),
            nick=nick,
        )
        guild.members[user.id] = member
        return member

    def _member(self, guild: GuildRecord, user: UserRecord) -> MemberRecord:
        try:
            return guild.members[user.id]
        except KeyError:
            raise ValueError(f"{user.username} is not a member of guild {guild.name!r}") from None

    def add_channel(
        self,
        guild: GuildRecord,
        kind: int,
        name: str,
        nsfw: bool = False,
        parent: ChannelRecord | None = None,
        *,
        topic: str | None = None,
        owner: UserRecord | None = None,
    ) -> ChannelRecord:
        """A guild channel or thread (a forum/media post is a public thread in a forum/media
        channel; threads carry no nsfw flag of their own: they inherit their parent's)."""
        kind = int(kind)
        if kind in THREAD_TYPES:
            if parent is None or parent.type not in THREAD_PARENT_TYPES:
                raise ValueError("a thread needs a text, news, forum or media parent")
            allowed = {5: {10}, 0: {11, 12}, 15: {11}, 16: {11}}[parent.type]
            if kind not in allowed:
                raise ValueError(
                    f"a thread of type {kind} cannot live in a type {parent.type} channel"
                )
            if nsfw:
                raise ValueError("threads have no nsfw flag; set it on the parent channel")
        elif kind in GUILD_CHANNEL_TYPES:
            if parent is not None and parent.type != ChannelType.GUILD_CATEGORY:
                raise ValueError("a guild channel's parent must be a category")
            if nsfw and kind not in NSFW_CAPABLE_TYPES:
                raise ValueError(f"channel type {kind} carries no nsfw flag")
        else:
            raise ValueError(f"use dm_channel()/private_channel() for channel type {kind}")
        if parent is not None and parent.guild_id != guild.id:
            raise ValueError("parent belongs to another guild")
        channel = ChannelRecord(
            id=self._ids.next(),
            type=kind,
            name=name,
            guild_id=guild.id,
            nsfw=nsfw,
            parent_id=parent.id if parent else None,
            position=len(guild.channels),
            topic=topic,
            owner_id=(owner or self.bot_user).id if kind in THREAD_TYPES else None,
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        if kind in THREAD_TYPES:
            data = {**self._channel_payload(channel), "newly_created": True}
            self._dispatch("THREAD_CREATE", data, guild_id=guild.id, intent=INTENT_GUILDS)
        else:
            self._dispatch(
                "CHANNEL_CREATE",
                self._channel_payload(channel),
                guild_id=guild.id,
                intent=INTENT_GUILDS,
            )
        return channel

    def dm_channel(self, user: UserRecord) -> ChannelRecord:
        """The DM channel between ``user`` and the bot (interactions there have context 1)."""
        existing = self._bot_dms.get(user.id)
        if existing is not None:
            return existing
        channel = ChannelRecord(
            id=self._ids.next(), type=ChannelType.DM, name="", guild_id=None, recipients=[user]
        )
        self._bot_dms[user.id] = channel
        self.channels[channel.id] = channel
        return channel

    def private_channel(self, users: Sequence[UserRecord], *, name: str = "group") -> ChannelRecord:
        """A DM (two users) or group DM between users, without the bot (context 2)."""
        kind = ChannelType.DM if len(users) == 2 else ChannelType.GROUP_DM
        channel = ChannelRecord(
            id=self._ids.next(), type=kind, name=name, guild_id=None, recipients=list(users)
        )
        self.channels[channel.id] = channel
        return channel

    def set_channel_nsfw(self, channel: ChannelRecord, flag: bool) -> None:
        """Toggle a channel's age-restricted flag (CHANNEL_UPDATE)."""
        if channel.type not in NSFW_CAPABLE_TYPES:
            raise ValueError(f"channel type {channel.type} carries no nsfw flag")
        channel.nsfw = flag
        self._dispatch_channel_update(channel)

    def set_channel_permissions(
        self, channel: ChannelRecord, user: UserRecord, permissions: int | None
    ) -> None:
        """Set ``user``'s effective permissions in ``channel`` (None removes the overwrite)."""
        if channel.guild_id is None or channel.is_thread:
            raise ValueError("overwrites live on guild channels (threads use their parent's)")
        if permissions is None:
            channel.permission_overrides.pop(user.id, None)
        else:
            channel.permission_overrides[user.id] = permissions
        self._dispatch_channel_update(channel)

    def delete_channel(self, channel: ChannelRecord) -> None:
        """Delete a channel (and its threads): CHANNEL_DELETE / THREAD_DELETE."""
        if channel.guild_id is None:
            raise ValueError("only guild channels can be deleted")
        guild = self.guilds[channel.guild_id]
        doomed = [channel] + [
            c for c in guild.channels.values() if c.parent_id == channel.id and c.is_thread
        ]
        for victim in doomed:
            guild.channels.pop(victim.id, None)
            self.channels.pop(victim.id, None)
        if channel.is_thread:
            data = {
                "id": str(channel.id),
                "guild_id": str(guild.id),
                "parent_id": str(channel.parent_id),
                "type": channel.type,
            }
            self._dispatch("THREAD_DELETE", data, guild_id=guild.id, intent=INTENT_GUILDS)
        else:
            self._dispatch(
                "CHANNEL_DELETE",
                self._channel_payload(channel),
                guild_id=guild.id,
                intent=INTENT_GUILDS,
            )

    def _dispatch_channel_update(self, channel: ChannelRecord) -> None:
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        self._dispatch(
            event, self._channel_payload(channel), guild_id=channel.guild_id, intent=INTENT_GUILDS
        )

    def is_age_restricted(self, channel: ChannelRecord) -> bool:
        """Discord's reading: a thread is age-restricted exactly when its parent is; DMs never."""
        if channel.is_thread:
            parent = self.channels.get(channel.parent_id or 0)
            return bool(parent and parent.nsfw)
        return channel.nsfw if channel.type in NSFW_CAPABLE_TYPES else False

    def permissions_in(self, channel: ChannelRecord, user: UserRecord) -> int:
        """``user``'s effective permissions in a guild ``channel`` (owner/admin: everything)."""
        if channel.guild_id is None:
            return DM_APP_PERMISSIONS
        guild = self.guilds[channel.guild_id]
        if user.id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user.id)
        if member is None:
            return 0
        if member.permissions & ADMINISTRATOR:
            return ALL_PERMISSIONS
        target = self.channels.get(channel.parent_id or 0) if channel.is_thread else channel
        if target is None:
            return member.permissions
        return target.permission_overrides.get(user.id, member.permissions)

    # ------------------------------------------------------------------ payload builders

    def _overwrites(self, channel: ChannelRecord) -> list[JSON]:
        guild = self.guilds.get(channel.guild_id or 0)
        overwrites = []
        for user_id, wanted in channel.permission_overrides.items():
            member = guild.members.get(user_id) if guild else None
            base = member.permissions if member else 0
            # allow/deny chosen so that (base & ~deny) | allow == wanted.
            overwrites.append(
                {
                    "id": str(user_id),
                    "type": 1,
                    "allow": str(wanted & ~base),
                    "deny": str(base & ~wanted),
                }
            )
        return overwrites

    def _channel_payload(self, channel: ChannelRecord, *, permissions: int | None = None) -> JSON:
        return channel.payload(overwrites=self._overwrites(channel), permissions=permissions)

    def _guild_payload(self, guild: GuildRecord) -> JSON:
        roles = [guild.everyone_role_payload()] + [m.role_payload() for m in guild.members.values()]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": guild.locale,
            "nsfw_level": 0,
            "max_members": 500000,
            "premium_progress_bar_enabled": False,
        }

    def _guild_create_payload(self, guild: GuildRecord, session: _Session) -> JSON:
        members = [
            m.payload()
            for m in guild.members.values()
            if session.intents & INTENT_GUILD_MEMBERS or m.user.id == self.bot_user.id
        ]
        channels = [self._channel_payload(c) for c in guild.channels.values() if not c.is_thread]
        threads = [self._channel_payload(c) for c in guild.channels.values() if c.is_thread]
        return {
            **self._guild_payload(guild),
            "joined_at": iso_timestamp(),
            "large": False,
            "unavailable": False,
            "member_count": len(guild.members),
            "voice_states": [],
            "members": members,
            "channels": channels,
            "threads": threads,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _application_flags(self) -> int:
        flags = APPLICATION_COMMAND_BADGE
        for intent, flag in _INTENT_APP_FLAGS.items():
            if self.allowed_privileged_intents & intent:
                flags |= flag
        return flags

    def _application_payload(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self._application_flags(),
            "owner": self.app_owner.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": sum(1 for g in self.guilds.values() if g.bot_in_guild),
            "integration_types_config": {"0": {}, "1": {}},
        }

    def _bot_user_payload(self) -> JSON:
        return {
            **self.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
        }

    # ------------------------------------------------------------------ gateway: dispatching

    def _live_sessions(self) -> list[_Session]:
        return [s for s in self._sessions.values() if s.alive]

    def _emit(self, session: _Session, event: str, data: JSON) -> None:
        session.seq += 1
        text = json.dumps({"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data})
        session.buffer.append((session.seq, text))
        self.events_sent.append(event)
        if session.connection is not None:
            session.connection.outbox.put_nowait(text)
        self._notify()

    def _dispatch(
        self,
        event: str,
        data: JSON,
        *,
        guild_id: int | None,
        intent: int | None = None,
        membership: bool = True,
    ) -> list[_Session]:
        """Queue ``event`` to every live session owning the guild's shard; returns them.

        ``membership`` limits guild events to guilds the bot is in (not so for interactions).
        """
        if membership and guild_id is not None:
            guild = self.guilds.get(guild_id)
            if guild is None or not guild.bot_in_guild:
                return []
        sent = []
        for session in self._live_sessions():
            if not session.owns_guild(guild_id):
                continue
            if intent is not None and not session.intents & intent:
                continue
            self._emit(session, event, data)
            sent.append(session)
        return sent

    def _send_raw(self, conn: _Connection, frame: JSON) -> None:
        conn.outbox.put_nowait(json.dumps(frame))

    async def _writer(self, conn: _Connection) -> None:
        while True:
            text = await conn.outbox.get()
            try:
                if text is None:
                    return
                if not conn.ws.closed:
                    await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                # The socket is going away; the session buffer keeps dispatches for RESUME.
                log.debug("gateway frame not delivered: %s", exc)
            finally:
                conn.outbox.task_done()

    # ------------------------------------------------------------------ gateway: controls

    @property
    def connection_count(self) -> int:
        """Open gateway websockets."""
        return len(self._connections)

    @property
    def ready_count(self) -> int:
        """READY events sent (one per IDENTIFY accepted)."""
        return self.events_sent.count("READY")

    @property
    def resumed_count(self) -> int:
        """RESUMED events sent (successful RESUMEs)."""
        return self.events_sent.count("RESUMED")

    def identify_gaps(self) -> dict[int, list[float]]:
        """Per ``max_concurrency`` bucket, seconds between its consecutive IDENTIFYs."""
        times: dict[int, list[float]] = {}
        for record in self.identify_log:
            times.setdefault(record.shard_id % self.max_concurrency, []).append(record.at)
        return {bucket: [b - a for a, b in itertools.pairwise(t)] for bucket, t in times.items()}

    async def drop_connection(self, *, code: int | None = 4000) -> int:
        """Close every gateway socket (``code=None``: abort TCP with no close frame).

        Sessions stay resumable; returns how many sockets were closed.
        """
        conns = list(self._connections)
        for conn in conns:
            self.gateway_log.append(f"server drop code={code}")
            conn.closed_by_server = True
            if code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=code), timeout=5.0)
        return len(conns)

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT on every socket (the client should RESUME)."""
        for conn in list(self._connections):
            self._send_raw(conn, {"op": OP_RECONNECT, "d": None})
        await self.flush()

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION on every socket; unresumable sessions die."""
        for conn in list(self._connections):
            if not resumable and conn.session is not None:
                conn.session.alive = False
            self._send_raw(conn, {"op": OP_INVALID_SESSION, "d": resumable})
        await self.flush()

    # ------------------------------------------------------------------ gateway: socket

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        conn = _Connection(ws, request)
        self._connections.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn), name="emulator-gateway-writer")
        self.gateway_log.append(f"connect {request.path}?{request.query_string}")
        self._notify()
        try:
            if request.query.get("v") != "10":
                await self._close_conn(conn, 4012, "Invalid API version")
                return ws
            if request.query.get("encoding", "json") != "json":
                await self._close_conn(conn, 4002, "Only encoding=json is emulated")
                return ws
            compress = request.query.get("compress")
            if compress not in (None, "zlib-stream", "zstd-stream"):
                await self._close_conn(conn, 4002, "Unknown compression")
                return ws
            # Frames go out as plain text: discord.py only decompresses binary frames.
            self._send_raw(
                conn, {"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._close_conn(conn, 4002, "Binary frames are not accepted")
        finally:
            await self._forget_connection(conn)
        return ws

    async def _forget_connection(self, conn: _Connection) -> None:
        close_code = conn.ws.close_code
        self.gateway_log.append(f"disconnect code={close_code}")
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None
            # A client closing with 1000/1001 ends its session, as on Discord.
            if close_code in (1000, 1001) and not conn.closed_by_server:
                session.alive = False
        self._connections.discard(conn)
        conn.outbox.put_nowait(None)
        if conn.writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer, timeout=5.0)
        self._connections.discard(conn)
        self._notify()

    async def _close_conn(self, conn: _Connection, code: int, reason: str) -> None:
        self.gateway_log.append(f"server close {code} {reason}")
        conn.closed_by_server = True
        await self._flush_connection(conn)
        await conn.ws.close(code=code, message=reason.encode())

    @staticmethod
    async def _flush_connection(conn: _Connection) -> None:
        """Wait (up to 5 s) until ``conn``'s queued frames were written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.outbox.join(), timeout=5.0)

    async def _on_frame(self, conn: _Connection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            await self._close_conn(conn, 4002, "Decode error")
            return
        if not isinstance(frame, dict):
            await self._close_conn(conn, 4002, "Decode error")
            return
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            self._send_raw(conn, {"op": OP_HEARTBEAT_ACK})
        elif op == OP_IDENTIFY:
            await self._identify(conn, data)
        elif op == OP_RESUME:
            await self._resume(conn, data)
        elif conn.session is None:
            await self._close_conn(conn, 4003, "Not authenticated")
        elif op == OP_PRESENCE_UPDATE:
            self.presence_updates.append(data if isinstance(data, dict) else {})
        elif op == OP_REQUEST_GUILD_MEMBERS:
            self._request_guild_members(conn.session, data)
        elif op == OP_VOICE_STATE_UPDATE:
            self.gateway_log.append("voice state update ignored (voice is not emulated)")
        else:
            await self._close_conn(conn, 4001, "Unknown opcode")

    async def _identify(self, conn: _Connection, data: Any) -> None:
        if conn.session is not None:
            await self._close_conn(conn, 4005, "Already authenticated")
            return
        if not isinstance(data, dict) or data.get("token") != self.token:
            await self._close_conn(conn, 4004, "Authentication failed")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await self._close_conn(conn, 4013, "Invalid intent(s)")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await self._close_conn(conn, 4014, "Disallowed intent(s)")
            return
        shard = data.get("shard")
        sharded = shard is not None
        shard_id, shard_count = (0, 1)
        if sharded:
            if (
                not isinstance(shard, list)
                or len(shard) != 2
                or not all(isinstance(x, int) for x in shard)
                or not 0 <= shard[0] < shard[1]
            ):
                await self._close_conn(conn, 4010, "Invalid shard")
                return
            shard_id, shard_count = shard
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        self.gateway_log.append(f"IDENTIFY shard={shard} intents={intents}")
        for old in self._live_sessions():
            if (old.shard_id, old.shard_count) == (shard_id, shard_count):
                old.alive = False
        session = _Session(
            session_id=secrets.token_hex(16),
            shard_id=shard_id,
            shard_count=shard_count,
            sharded=sharded,
            intents=intents,
            connection=conn,
        )
        self._sessions[session.session_id] = session
        conn.session = session
        self.identify_log.append(
            IdentifyRecord(
                asyncio.get_running_loop().time(), shard_id, shard_count, session.session_id
            )
        )
        guilds = [g for g in self.guilds.values() if g.bot_in_guild and session.owns_guild(g.id)]
        ready: JSON = {
            "v": 10,
            "user": self._bot_user_payload(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["discord-emulator"],
        }
        if sharded:
            ready["shard"] = [shard_id, shard_count]
        self._emit(session, "READY", ready)
        for guild in guilds:
            self._emit(session, "GUILD_CREATE", self._guild_create_payload(guild, session))

    async def _resume(self, conn: _Connection, data: Any) -> None:
        if not isinstance(data, dict) or data.get("token") != self.token:
            await self._close_conn(conn, 4004, "Authentication failed")
            return
        session = self._sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        replayable = (
            session is not None
            and session.alive
            and isinstance(seq, int)
            and seq <= session.seq
            and (not session.buffer or seq >= session.buffer[0][0] - 1)
        )
        if session is None or not replayable:
            self.resumes.append({"session_id": data.get("session_id"), "seq": seq, "ok": False})
            self.gateway_log.append("RESUME refused: op 9")
            self._send_raw(conn, {"op": OP_INVALID_SESSION, "d": False})
            return
        assert isinstance(seq, int)
        previous = session.connection
        if previous is not None and previous is not conn:
            previous.session = None
            previous.closed_by_server = True
            closing = asyncio.create_task(
                previous.ws.close(code=4000), name="emulator-close-superseded"
            )
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)
        session.connection = conn
        conn.session = session
        replay = [text for number, text in session.buffer if number > seq]
        for text in replay:
            conn.outbox.put_nowait(text)
        self.resumes.append(
            {"session_id": session.session_id, "seq": seq, "ok": True, "replayed": len(replay)}
        )
        self.gateway_log.append(f"RESUME seq={seq} replayed={len(replay)}")
        self._emit(session, "RESUMED", {"_trace": ["discord-emulator"]})

    def _request_guild_members(self, session: _Session, data: Any) -> None:
        if not isinstance(data, dict):
            return
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if guild is None or not guild.bot_in_guild:
            return
        members = list(guild.members.values())
        user_ids = data.get("user_ids")
        if user_ids:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.user.id in wanted]
        elif data.get("query"):
            prefix = str(data["query"]).lower()
            members = [m for m in members if m.user.username.lower().startswith(prefix)]
        limit = data.get("limit") or 0
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ REST plumbing

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        for path in ("/gateway", "/gateway/", "/resume-gateway", "/"):
            router.add_get(path, self._gateway_handler)
        a = API_PREFIX
        router.add_get(f"{a}/users/@me", self._h_me)
        router.add_post(f"{a}/users/@me/channels", self._h_create_dm)
        router.add_get(f"{a}/users/{{user_id}}", self._h_user)
        router.add_get(f"{a}/gateway", self._h_gateway)
        router.add_get(f"{a}/gateway/bot", self._h_gateway_bot)
        router.add_get(f"{a}/oauth2/applications/@me", self._h_application)
        router.add_get(f"{a}/applications/@me", self._h_application)
        for prefix in (
            f"{a}/applications/{{app_id}}/commands",
            f"{a}/applications/{{app_id}}/guilds/{{guild_id}}/commands",
        ):
            router.add_get(prefix, self._h_list_commands)
            router.add_put(prefix, self._h_bulk_commands)
            router.add_post(prefix, self._h_create_command)
            router.add_get(prefix + "/{command_id}", self._h_get_command)
            router.add_patch(prefix + "/{command_id}", self._h_edit_command)
            router.add_delete(prefix + "/{command_id}", self._h_delete_command)
        router.add_post(f"{a}/interactions/{{interaction_id}}/{{token}}/callback", self._h_callback)
        router.add_post(f"{a}/webhooks/{{app_id}}/{{token}}", self._h_followup)
        webhook_message = f"{a}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}"
        router.add_get(webhook_message, self._h_webhook_message)
        router.add_patch(webhook_message, self._h_webhook_message)
        router.add_delete(webhook_message, self._h_webhook_message)
        router.add_get(f"{a}/channels/{{channel_id}}", self._h_get_channel)
        router.add_post(f"{a}/channels/{{channel_id}}/messages", self._h_create_message)
        router.add_post(f"{a}/channels/{{channel_id}}/typing", self._h_typing)
        channel_message = f"{a}/channels/{{channel_id}}/messages/{{message_id}}"
        router.add_get(channel_message, self._h_channel_message)
        router.add_patch(channel_message, self._h_channel_message)
        router.add_delete(channel_message, self._h_channel_message)
        router.add_get(f"{a}/guilds/{{guild_id}}", self._h_get_guild)
        router.add_get(f"{a}/guilds/{{guild_id}}/channels", self._h_guild_channels)
        router.add_get(f"{a}/guilds/{{guild_id}}/members/{{user_id}}", self._h_guild_member)
        router.add_get("/attachments/{attachment_id}/{filename}", self._h_attachment)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        is_api = path.startswith(API_PREFIX + "/")
        call = RestCall(
            method=request.method,
            path=path[len(API_PREFIX) :] if is_api else path,
            query=dict(request.query),
        )
        if is_api:
            self.requests.append(call)
            request[_CALL_KEY] = call
        try:
            authorised = request.headers.get(hdrs.AUTHORIZATION) == f"Bot {self.token}"
            if is_api and self._needs_auth(call.path) and not authorised:
                raise _Reject(_error(401, 0, "401: Unauthorized"))
            response: web.StreamResponse = await handler(request)
        except _Reject as reject:
            response = reject.response
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            route = f"{request.method} {path}"
            self.unknown_routes.append(route)
            log.info("discord emulator: unknown route %s", route)
            response = _error(404, 0, "404: Not Found")
        call.status = response.status
        self._notify()
        return response

    @staticmethod
    def _needs_auth(path: str) -> bool:
        return not path.startswith(("/interactions/", "/webhooks/"))

    async def _read_body(self, request: web.Request) -> tuple[Any, dict[int, FileRecord]]:
        files: dict[int, FileRecord] = {}
        body: Any = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                raw = bytes(await part.read(decode=False))
                name = part.name or ""
                if name == "payload_json":
                    body = self._parse_json(raw.decode())
                elif name.startswith("files[") and name.endswith("]") and name[6:-1].isdigit():
                    files[int(name[6:-1])] = FileRecord(
                        part.filename or f"file{name[6:-1]}",
                        part.headers.get(hdrs.CONTENT_TYPE),
                        raw,
                    )
                elif name.startswith("file"):
                    files[len(files)] = FileRecord(
                        part.filename or name, part.headers.get(hdrs.CONTENT_TYPE), raw
                    )
        elif request.can_read_body:
            text = await request.text()
            body = self._parse_json(text) if text else None
        call = request.get(_CALL_KEY)
        if call is not None:
            call.body = body
        return body, files

    @staticmethod
    def _parse_json(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise _Reject(_error(400, 50109, "The request body contains invalid JSON.")) from None

    @staticmethod
    def _snowflake(request: web.Request, key: str) -> int:
        value = request.match_info[key]
        if not value.isdigit():
            raise _Reject(
                _error(400, 50035, "Invalid Form Body", [f"{key} {value!r} is not a snowflake"])
            )
        return int(value)

    def _check_app(self, request: web.Request) -> None:
        if self._snowflake(request, "app_id") != self.application_id:
            raise _Reject(_error(403, 50001, "Missing Access"))

    # ------------------------------------------------------------------ REST: identity, gateway

    async def _h_me(self, request: web.Request) -> web.Response:
        return _json_response(self._bot_user_payload())

    async def _h_user(self, request: web.Request) -> web.Response:
        user = self.users.get(self._snowflake(request, "user_id"))
        if user is None:
            raise _Reject(_error(404, 10013, "Unknown User"))
        return _json_response(user.payload())

    async def _h_gateway(self, request: web.Request) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _h_gateway_bot(self, request: web.Request) -> web.Response:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - len(self.identifies),
                    "reset_after": 86_400_000,
                    "max_concurrency": self.max_concurrency,
                },
            }
        )

    async def _h_application(self, request: web.Request) -> web.Response:
        return _json_response(self._application_payload())

    # ------------------------------------------------------------------ REST: commands

    def _command_scope(self, request: web.Request) -> tuple[int | None, dict[int, JSON]]:
        self._check_app(request)
        if "guild_id" not in request.match_info:
            return None, self.global_commands
        guild_id = self._snowflake(request, "guild_id")
        guild = self.guilds.get(guild_id)
        if guild is None or not guild.bot_in_guild:
            raise _Reject(_error(403, 50001, "Missing Access"))
        return guild_id, self.guild_commands.setdefault(guild_id, {})

    def _stored_command(self, definition: JSON, guild_id: int | None) -> JSON:
        kind = int(definition.get("type", 1))
        name = str(definition["name"])
        command_id = self._command_ids.setdefault((guild_id, kind, name), self._ids.next())
        permissions = definition.get("default_member_permissions")
        stored: JSON = {
            "id": str(command_id),
            "application_id": str(self.application_id),
            "version": str(self._ids.next()),
            "type": kind,
            "name": name,
            "name_localizations": definition.get("name_localizations"),
            "description": definition.get("description") or "",
            "description_localizations": definition.get("description_localizations"),
            "default_member_permissions": None if permissions is None else str(int(permissions)),
            "dm_permission": bool(definition.get("dm_permission", True)),
            "nsfw": bool(definition.get("nsfw", False)),
            "contexts": definition.get("contexts"),
            "integration_types": definition.get("integration_types") or [0],
        }
        if kind == 1:
            stored["options"] = copy.deepcopy(definition.get("options") or [])
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def _reject_definition(self, problems: list[str]) -> _Reject:
        for problem in problems:
            self._violate("command-definition", problem)
        return _Reject(_error(400, 50035, "Invalid Form Body", problems))

    async def _h_list_commands(self, request: web.Request) -> web.Response:
        _, commands = self._command_scope(request)
        return _json_response(list(commands.values()))

    async def _h_bulk_commands(self, request: web.Request) -> web.Response:
        guild_id, commands = self._command_scope(request)
        body, _ = await self._read_body(request)
        problems = command_list_problems(body)
        if problems:
            raise self._reject_definition(problems)
        stored = [self._stored_command(d, guild_id) for d in body]
        commands.clear()
        commands.update({int(c["id"]): c for c in stored})
        self.command_syncs.append(guild_id)
        return _json_response(stored)

    async def _h_create_command(self, request: web.Request) -> web.Response:
        guild_id, commands = self._command_scope(request)
        body, _ = await self._read_body(request)
        problems = (
            command_problems(body) if isinstance(body, dict) else ["body must be a command object"]
        )
        if problems:
            raise self._reject_definition(problems)
        stored = self._stored_command(body, guild_id)
        existed = int(stored["id"]) in commands
        commands[int(stored["id"])] = stored
        return _json_response(stored, status=200 if existed else 201)

    def _command_by_id(self, request: web.Request) -> tuple[int | None, dict[int, JSON], JSON]:
        guild_id, commands = self._command_scope(request)
        command = commands.get(self._snowflake(request, "command_id"))
        if command is None:
            raise _Reject(_error(404, 10063, "Unknown application command"))
        return guild_id, commands, command

    async def _h_get_command(self, request: web.Request) -> web.Response:
        return _json_response(self._command_by_id(request)[2])

    async def _h_edit_command(self, request: web.Request) -> web.Response:
        guild_id, commands, command = self._command_by_id(request)
        body, _ = await self._read_body(request)
        if not isinstance(body, dict):
            raise self._reject_definition(["body must be a command object"])
        merged = {**command, **body}
        problems = command_problems(merged)
        if problems:
            raise self._reject_definition(problems)
        stored = self._stored_command(merged, guild_id)
        commands[int(command["id"])] = {**stored, "id": command["id"]}
        return _json_response(commands[int(command["id"])])

    async def _h_delete_command(self, request: web.Request) -> web.Response:
        _, commands, command = self._command_by_id(request)
        del commands[int(command["id"])]
        return web.Response(status=204)

    def find_command(self, name: str, channel: ChannelRecord, *, kind: int = 1) -> JSON:
        """The registered command ``name`` a user in ``channel`` would see (guild first)."""
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None and guild.bot_in_guild:
            for command in self.guild_commands.get(guild.id, {}).values():
                if command["name"] == name and command["type"] == kind:
                    return command
        for command in self.global_commands.values():
            if command["name"] == name and command["type"] == kind:
                return command
        raise LookupError(
            f"no registered command /{name} (type {kind}) visible in channel {channel.name!r}"
        )

    # ------------------------------------------------------------------ interactions: building

    def _context_for(self, channel: ChannelRecord) -> int:
        if channel.guild_id is not None:
            return 0
        return (
            1
            if self._bot_dms.get(channel.recipients[0].id if channel.recipients else 0) is channel
            else 2
        )

    def _refusal(
        self, command: JSON, user: UserRecord, channel: ChannelRecord, context: int
    ) -> str | None:
        """Why Discord would not dispatch ``command`` here, or None when it would."""
        guild = self.guilds.get(channel.guild_id or 0)
        installs = command.get("integration_types") or [0]
        user_install_only = False
        if "guild_id" not in command:
            contexts = command.get("contexts")
            if contexts is None:
                contexts = [0, 1, 2] if command.get("dm_permission", True) else [0]
            if context not in contexts:
                return f"/{command['name']} is not available in interaction context {context}"
            guild_installed = context == 1 or (
                context == 0 and guild is not None and guild.bot_in_guild
            )
            if not (guild_installed and 0 in installs):
                if 1 not in installs:
                    return (
                        f"/{command['name']} is not user-installable "
                        "and the app is not installed here"
                    )
                user_install_only = True
        if context == 0 and guild is not None:
            needed = command.get("default_member_permissions")
            if needed is not None and not user_install_only:
                have = self.permissions_in(channel, user)
                required = int(needed)
                if not have & ADMINISTRATOR and (required == 0 or have & required != required):
                    return (
                        f"{user.username} lacks default_member_permissions {required} for "
                        f"/{command['name']} (has {have})"
                    )
            if command.get("nsfw") and not self.is_age_restricted(channel):
                return f"age-restricted /{command['name']} in a channel that is not age-restricted"
        return None

    def _option_value(
        self, definition: JSON, value: Any, guild: GuildRecord | None, resolved: JSON
    ) -> Any:
        name = definition["name"]
        kind = definition["type"]
        if kind in (3, 4, 10):
            if kind == 3 and not isinstance(value, str):
                raise ValueError(f"option {name!r} wants a string, got {value!r}")
            if kind == 4 and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"option {name!r} wants an integer, got {value!r}")
            if kind == 10 and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ValueError(f"option {name!r} wants a number, got {value!r}")
            choices = definition.get("choices")
            if choices and value not in [c["value"] for c in choices]:
                raise ValueError(f"option {name!r} value {value!r} is not one of its choices")
            low_key, high_key = (
                ("min_length", "max_length") if kind == 3 else ("min_value", "max_value")
            )
            measured = len(value) if kind == 3 else value
            low, high = definition.get(low_key), definition.get(high_key)
            if (low is not None and measured < low) or (high is not None and measured > high):
                raise ValueError(f"option {name!r} value {value!r} is outside {low}..{high}")
            return value
        if kind == 5:
            if not isinstance(value, bool):
                raise ValueError(f"option {name!r} wants a boolean, got {value!r}")
            return value
        if kind == 7:
            if not isinstance(value, ChannelRecord):
                raise ValueError(f"option {name!r} wants a ChannelRecord")
            allowed = definition.get("channel_types")
            if allowed and value.type not in allowed:
                raise ValueError(f"option {name!r}: channel type {value.type} not in {allowed}")
            data = self._channel_payload(value)
            data["permissions"] = str(self.permissions_in(value, self.bot_user))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if kind == 11:
            if not isinstance(value, AttachmentOption):
                raise ValueError(f"option {name!r} wants an AttachmentOption")
            attachment_id = self._ids.next()
            url = f"{self.base_url}/attachments/{attachment_id}/{value.filename}"
            resolved.setdefault("attachments", {})[str(attachment_id)] = {
                "id": str(attachment_id),
                "filename": value.filename,
                "size": value.size,
                "url": url,
                "proxy_url": url,
                "content_type": value.content_type,
            }
            return str(attachment_id)
        if kind in (6, 8, 9):
            if isinstance(value, UserRecord) and kind in (6, 9):
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
                member = guild.members.get(value.id) if guild else None
                if member is not None:
                    member_data = member.payload()
                    member_data.pop("user")
                    resolved.setdefault("members", {})[str(value.id)] = member_data
                return str(value.id)
            if isinstance(value, int) and kind in (8, 9) and guild is not None:
                role = guild.role_payload(value)
                if role is None:
                    raise ValueError(
                        f"option {name!r}: role {value} is not in guild {guild.name!r}"
                    )
                resolved.setdefault("roles", {})[str(value)] = role
                return str(value)
            raise ValueError(f"option {name!r} (type {kind}) got an unusable value {value!r}")
        raise ValueError(f"option {name!r} has type {kind}, not a value option")

    def _build_options(
        self,
        definitions: list[JSON],
        values: Mapping[str, Any],
        *,
        guild: GuildRecord | None,
        resolved: JSON,
        focused: str | None,
    ) -> list[JSON]:
        by_name = {d["name"]: d for d in definitions}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)}; the command has {sorted(by_name)}"
            )
        if focused is not None and focused not in values:
            raise ValueError(f"focused option {focused!r} needs a (partial) value in options")
        built = []
        for definition in definitions:
            name = definition["name"]
            if name not in values:
                if definition.get("required") and focused is None:
                    raise ValueError(f"required option {name!r} is missing")
                continue
            entry: JSON = {"name": name, "type": definition["type"]}
            if name == focused:
                if not definition.get("autocomplete"):
                    raise ValueError(f"option {name!r} has no autocomplete")
                # Discord sends what the user has typed so far, as text.
                entry["value"] = str(values[name])
                entry["focused"] = True
            else:
                entry["value"] = self._option_value(definition, values[name], guild, resolved)
            built.append(entry)
        return built

    def _command_data(
        self,
        command: JSON,
        *,
        subcommand: str | None,
        group: str | None,
        options: Mapping[str, Any],
        guild: GuildRecord | None,
        focused: str | None,
    ) -> tuple[JSON, str, int | None]:
        """The interaction ``data``, the qualified name and the focused option's type."""
        definitions: list[JSON] = command.get("options") or []
        qualified = command["name"]
        path: list[tuple[str, int]] = []
        if group is not None:
            match = next((d for d in definitions if d["type"] == 2 and d["name"] == group), None)
            if match is None:
                raise ValueError(f"/{qualified} has no subcommand group {group!r}")
            definitions = match.get("options") or []
            qualified += f" {group}"
            path.append((group, 2))
        if subcommand is not None:
            match = next(
                (d for d in definitions if d["type"] == 1 and d["name"] == subcommand), None
            )
            if match is None:
                raise ValueError(f"/{qualified} has no subcommand {subcommand!r}")
            definitions = match.get("options") or []
            qualified += f" {subcommand}"
            path.append((subcommand, 1))
        if any(d["type"] in (1, 2) for d in definitions):
            raise ValueError(f"/{qualified} needs subcommand= (and group= for a group)")
        resolved: JSON = {}
        built = self._build_options(
            definitions, options, guild=guild, resolved=resolved, focused=focused
        )
        for name, kind in reversed(path):
            built = [{"name": name, "type": kind, "options": built}]
        data: JSON = {
            "id": command["id"],
            "name": command["name"],
            "type": command["type"],
            "options": built,
        }
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        focused_type = next((d["type"] for d in definitions if d["name"] == focused), None)
        return data, qualified, focused_type

    def _interaction_payload(
        self,
        *,
        kind: int,
        user: UserRecord,
        channel: ChannelRecord,
        data: JSON,
        context: int,
        locale: str,
        app_permissions: int | None,
        user_install: bool,
        message: MessageRecord | None = None,
    ) -> tuple[int, str, JSON]:
        interaction_id = self._ids.next()
        token = secrets.token_urlsafe(48)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "context": context,
            "channel_id": str(channel.id),
        }
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None:
            member = self._member(guild, user)
            invoker = self.permissions_in(channel, user)
            if app_permissions is None:
                app_permissions = (
                    self.permissions_in(channel, self.bot_user)
                    if guild.bot_in_guild
                    else DM_APP_PERMISSIONS
                )
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
                    "guild_locale": guild.locale,
                    "member": member.payload(permissions=invoker),
                    "channel": self._channel_payload(channel, permissions=invoker),
                    "attachment_size_limit": guild.upload_limit,
                }
            )
            owners = {"1": str(user.id)} if user_install else {"0": str(guild.id)}
        else:
            if app_permissions is None:
                app_permissions = DM_APP_PERMISSIONS
            payload.update(
                {
                    "user": user.payload(),
                    "channel": channel.payload(permissions=DM_APP_PERMISSIONS),
                    "attachment_size_limit": 10 * 1024 * 1024,
                }
            )
            owners = {"1": str(user.id)} if user_install or context == 2 else {"0": "0"}
        payload["app_permissions"] = str(app_permissions)
        payload["authorizing_integration_owners"] = owners
        if message is not None:
            payload["message"] = message.payload()
        return interaction_id, token, payload

    async def _deliver(self, rec: InteractionRecord) -> InteractionRecord:
        self.interactions.append(rec)
        self._interactions_by_id[rec.id] = rec
        self._interactions_by_token[rec.token] = rec
        if not rec.dispatched:
            log.info("discord emulator: not dispatched: %s", rec.refusal)
            self._notify()
            return rec
        rec.created_at = self.now()
        sent = self._dispatch(
            "INTERACTION_CREATE", rec.payload, guild_id=rec.channel.guild_id, membership=False
        )
        if not sent:
            raise RuntimeError(
                "no gateway session would receive the interaction; is the client running?"
            )
        rec.dispatched_to = [(session.shard_id, session.session_id) for session in sent]
        await self.flush()
        return rec

    # ------------------------------------------------------------------ interactions: public

    async def slash(
        self,
        user: UserRecord,
        channel: ChannelRecord,
        name: str,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        locale: str | None = None,
        app_permissions: int | None = None,
        context: int | None = None,
    ) -> InteractionRecord:
        """``user`` runs ``/name [group] [subcommand] options…`` in ``channel``.

        Option values: str/int/float/bool, UserRecord (user/mentionable), ChannelRecord,
        role id int (role/mentionable), AttachmentOption. Raises LookupError for an unknown
        command and ValueError for options a Discord client would not let the user send. When
        Discord would not dispatch the command (permissions, context, age restriction) the
        record comes back with ``dispatched == False`` and ``refusal`` set.
        """
        return await self._command_interaction(
            INTERACTION_APPLICATION_COMMAND,
            user,
            channel,
            name,
            subcommand=subcommand,
            group=group,
            options=options or {},
            focused=None,
            locale=locale,
            app_permissions=app_permissions,
            context=context,
        )

    async def autocomplete(
        self,
        user: UserRecord,
        channel: ChannelRecord,
        name: str,
        *,
        focused: str,
        options: Mapping[str, Any],
        subcommand: str | None = None,
        group: str | None = None,
        locale: str | None = None,
        app_permissions: int | None = None,
        context: int | None = None,
    ) -> InteractionRecord:
        """An autocomplete (type 4) interaction: ``options[focused]`` is the text typed so far."""
        return await self._command_interaction(
            INTERACTION_AUTOCOMPLETE,
            user,
            channel,
            name,
            subcommand=subcommand,
            group=group,
            options=options,
            focused=focused,
            locale=locale,
            app_permissions=app_permissions,
            context=context,
        )

    async def _command_interaction(
        self,
        kind: int,
        user: UserRecord,
        channel: ChannelRecord,
        name: str,
        *,
        subcommand: str | None,
        group: str | None,
        options: Mapping[str, Any],
        focused: str | None,
        locale: str | None,
        app_permissions: int | None,
        context: int | None,
    ) -> InteractionRecord:
        command = self.find_command(name, channel)
        guild = self.guilds.get(channel.guild_id or 0)
        data, qualified, focused_type = self._command_data(
            command,
            subcommand=subcommand,
            group=group,
            options=options,
            guild=guild,
            focused=focused,
        )
        context = self._context_for(channel) if context is None else context
        refusal = self._refusal(command, user, channel, context)
        user_install = self._is_user_install(command, channel, context)
        interaction_id, token, payload = self._interaction_payload(
            kind=kind,
            user=user,
            channel=channel,
            data=data,
            context=context,
            locale=locale or user.locale,
            app_permissions=app_permissions,
            user_install=user_install,
        )
        rec = InteractionRecord(
            self,
            interaction_id=interaction_id,
            token=token,
            kind=kind,
            payload=payload,
            user=user,
            channel=channel,
            command_name=qualified,
            focused_option_type=focused_type,
            refusal=refusal,
        )
        return await self._deliver(rec)

    def _is_user_install(self, command: JSON, channel: ChannelRecord, context: int) -> bool:
        if "guild_id" in command:
            return False
        installs = command.get("integration_types") or [0]
        guild = self.guilds.get(channel.guild_id or 0)
        guild_installed = context == 1 or (
            context == 0 and guild is not None and guild.bot_in_guild
        )
        return not (guild_installed and 0 in installs) and 1 in installs

    async def click(
        self, user: UserRecord, message: MessageRecord, custom_id: str, *, locale: str | None = None
    ) -> InteractionRecord:
        """``user`` clicks the button ``custom_id`` on a message the bot sent."""
        component = self._clickable(user, message, custom_id)
        if component.get("type") != 2:
            raise ValueError(f"component {custom_id!r} is not a button")
        return await self._component_interaction(
            user, message, {"custom_id": custom_id, "component_type": 2}, locale=locale
        )

    async def select(
        self,
        user: UserRecord,
        message: MessageRecord,
        custom_id: str,
        values: Sequence[str],
        *,
        locale: str | None = None,
    ) -> InteractionRecord:
        """``user`` picks ``values`` in the select menu ``custom_id`` on a bot message."""
        component = self._clickable(user, message, custom_id)
        kind = component.get("type")
        if kind not in SELECT_TYPES:
            raise ValueError(f"component {custom_id!r} is not a select menu")
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not low <= len(values) <= high:
            raise ValueError(f"select {custom_id!r} takes {low}..{high} values, got {len(values)}")
        if kind == 3:
            offered = {o["value"] for o in component.get("options") or []}
            if not set(values) <= offered:
                raise ValueError(
                    f"values {sorted(set(values) - offered)} are not options of {custom_id!r}"
                )
        data = {"custom_id": custom_id, "component_type": kind, "values": list(values)}
        return await self._component_interaction(user, message, data, locale=locale)

    def _clickable(self, user: UserRecord, message: MessageRecord, custom_id: str) -> JSON:
        if message.deleted:
            raise ValueError("the message was deleted")
        if message.ephemeral and message.interaction_metadata is not None:
            owner = message.interaction_metadata["user"]["id"]
            if owner != str(user.id):
                raise ValueError("only the invoking user sees (and can click) an ephemeral message")
        component = message.find_component(custom_id)
        if component is None:
            raise ValueError(
                f"no component {custom_id!r} on message {message.id}: {message.custom_ids}"
            )
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        return component

    async def _component_interaction(
        self, user: UserRecord, message: MessageRecord, data: JSON, *, locale: str | None
    ) -> InteractionRecord:
        channel = self.channels.get(message.channel_id)
        if channel is None:
            raise ValueError("the message's channel no longer exists")
        context = self._context_for(channel)
        guild = self.guilds.get(channel.guild_id or 0)
        user_install = context == 2 or (guild is not None and not guild.bot_in_guild)
        interaction_id, token, payload = self._interaction_payload(
            kind=INTERACTION_MESSAGE_COMPONENT,
            user=user,
            channel=channel,
            data=data,
            context=context,
            locale=locale or user.locale,
            app_permissions=None,
            user_install=user_install,
            message=message,
        )
        rec = InteractionRecord(
            self,
            interaction_id=interaction_id,
            token=token,
            kind=INTERACTION_MESSAGE_COMPONENT,
            payload=payload,
            user=user,
            channel=channel,
            custom_id=data["custom_id"],
            component_message=message,
        )
        return await self._deliver(rec)

    # ------------------------------------------------------------------ messages

    def _attachments(
        self, body: Mapping[str, Any], files: Mapping[int, FileRecord], keep: Sequence[JSON] = ()
    ) -> list[JSON]:
        """Attachment objects: kept existing ones (edits) plus one per uploaded file."""
        described = {
            int(a["id"]): a
            for a in body.get("attachments") or []
            if isinstance(a, dict) and str(a.get("id", "")).isdigit() and int(a["id"]) in files
        }
        result = list(keep)
        for index, upload in sorted(files.items()):
            attachment_id = self._ids.next()
            self.files[attachment_id] = upload
            meta = described.get(index, {})
            filename = str(meta.get("filename") or upload.filename)
            url = f"{self.base_url}/attachments/{attachment_id}/{filename}"
            attachment: JSON = {
                "id": str(attachment_id),
                "filename": filename,
                "size": upload.size,
                "url": url,
                "proxy_url": url,
                "content_type": upload.content_type,
            }
            if meta.get("description"):
                attachment["description"] = meta["description"]
            result.append(attachment)
        return result

    def _check_message(
        self,
        rule_context: str,
        body: Any,
        files: Mapping[int, FileRecord],
        *,
        creating: bool,
        limit: int,
    ) -> JSON:
        """Validate a message body; on a broken rule record it and reject like Discord."""
        if not isinstance(body, dict):
            self._violate("message-limits", f"{rule_context}: body is not a JSON object")
            raise _Reject(_error(400, 50035, "Invalid Form Body", ["body must be an object"]))
        problems = message_problems(body, creating=creating, file_count=len(files))
        if problems:
            empty = problems == ["cannot send an empty message"]
            for problem in problems:
                self._violate("message-limits", f"{rule_context}: {problem}")
            if empty:
                raise _Reject(_error(400, 50006, "Cannot send an empty message"))
            raise _Reject(_error(400, 50035, "Invalid Form Body", problems))
        too_big = [f for f in files.values() if f.size > limit]
        if too_big:
            detail = ", ".join(f"{f.filename} ({f.size} bytes)" for f in too_big)
            self._violate("attachment-too-large", f"{rule_context}: {detail} > {limit} bytes")
            raise _Reject(_error(413, 40005, "Request entity too large"))
        return body

    def _new_message(
        self,
        channel_id: int,
        guild_id: int | None,
        body: JSON,
        files: Mapping[int, FileRecord],
        *,
        rec: InteractionRecord | None = None,
        flags: int = 0,
    ) -> MessageRecord:
        message = MessageRecord(
            id=self._ids.next(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=self.bot_user,
            content=str(body.get("content") or ""),
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=self._attachments(body, files),
            flags=flags,
            created_at=self.now(),
        )
        if rec is not None:
            message.webhook_id = self.application_id
            message.application_id = self.application_id
            message.interaction_metadata = {
                "id": str(rec.id),
                "type": rec.type,
                "user": rec.user.payload(),
                "authorizing_integration_owners": rec.payload["authorizing_integration_owners"],
            }
            if rec.component_message is not None:
                message.interaction_metadata["interacted_message_id"] = str(
                    rec.component_message.id
                )
        self.messages[message.id] = message
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel.messages[message.id] = message
        if not message.ephemeral:
            self._dispatch_message("MESSAGE_CREATE", message)
        return message

    def _dispatch_message(self, event: str, message: MessageRecord) -> None:
        intent = INTENT_GUILD_MESSAGES if message.guild_id is not None else INTENT_DIRECT_MESSAGES
        if event == "MESSAGE_DELETE":
            data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                data["guild_id"] = str(message.guild_id)
        else:
            data = message.payload()
        self._dispatch(event, data, guild_id=message.guild_id, intent=intent)

    def _edit_message(
        self, message: MessageRecord, body: JSON, files: Mapping[int, FileRecord]
    ) -> None:
        message.history.append(message.snapshot())
        was_loading = message.loading
        if "content" in body:
            message.content = str(body["content"] or "")
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "attachments" in body or files:
            message.attachments = self._attachments(
                body, files, self._kept_attachments(message, body)
            )
        if isinstance(body.get("flags"), int):
            settable = _SETTABLE_MESSAGE_FLAGS & ~(1 << 15)
            message.flags = (message.flags & ~settable) | (body["flags"] & settable)
        message.flags &= ~MESSAGE_FLAG_LOADING
        message.edited_at = self.now()
        if not was_loading:
            message.edited_timestamp = iso_timestamp()
        if not message.ephemeral:
            self._dispatch_message("MESSAGE_UPDATE", message)
        self._notify()

    @staticmethod
    def _kept_attachments(message: MessageRecord, body: Mapping[str, Any]) -> list[JSON]:
        """Existing attachments an edit keeps: those listed by id (all when not listed)."""
        if "attachments" not in body:
            return list(message.attachments)
        listed = {str(a.get("id")) for a in body.get("attachments") or [] if isinstance(a, dict)}
        return [a for a in message.attachments if a["id"] in listed]

    def _check_edit(
        self,
        rule_context: str,
        message: MessageRecord,
        body: Any,
        files: Mapping[int, FileRecord],
        limit: int,
    ) -> JSON:
        checked = self._check_message(rule_context, body, files, creating=False, limit=limit)
        merged = {**message.snapshot(), **checked}
        merged["attachments"] = self._kept_attachments(message, checked)
        problems = message_problems(merged, creating=True, file_count=len(files))
        if problems:
            for problem in problems:
                self._violate("message-limits", f"{rule_context} (after edit): {problem}")
            if problems == ["cannot send an empty message"]:
                raise _Reject(_error(400, 50006, "Cannot send an empty message"))
            raise _Reject(_error(400, 50035, "Invalid Form Body", problems))
        return checked

    # ------------------------------------------------------------------ REST: interaction callback

    async def _h_callback(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        rec = self._interactions_by_id.get(self._snowflake(request, "interaction_id"))
        if rec is None or not secrets.compare_digest(rec.token, request.match_info["token"]):
            raise _Reject(_error(404, 10062, "Unknown interaction"))
        elapsed = self.now() - rec.created_at
        kind = body.get("type") if isinstance(body, dict) else None
        data = body.get("data") if isinstance(body, dict) else None
        data = data if isinstance(data, dict) else {}
        callback = CallbackRecord(
            type=kind if isinstance(kind, int) else -1,
            data=data,
            elapsed=elapsed,
            status=0,
            files=[files[k] for k in sorted(files)],
        )
        what = f"interaction {rec.id} ({rec.describe()})"
        try:
            response = self._answer_callback(rec, callback, files, what, request)
        except _Reject as reject:
            callback.status = reject.response.status
            rec.responses.append(callback)
            self._notify()
            raise
        callback.status = response.status
        rec.responses.append(callback)
        self._notify()
        return response

    def _answer_callback(
        self,
        rec: InteractionRecord,
        callback: CallbackRecord,
        files: Mapping[int, FileRecord],
        what: str,
        request: web.Request,
    ) -> web.Response:
        if rec.acknowledged:
            self._violate(
                "already-acknowledged", f"second callback (type {callback.type}) for {what}"
            )
            raise _Reject(_error(400, 40060, "Interaction has already been acknowledged."))
        if rec.expired or callback.elapsed > self.response_deadline:
            rec.expired = True
            self._violate(
                "late-response",
                f"first response to {what} after {callback.elapsed:.2f}s"
                f" > {self.response_deadline:.2f}s",
            )
            raise _Reject(_error(404, 10062, "Unknown interaction"))
        allowed = _ALLOWED_CALLBACKS.get(rec.type, frozenset())
        if callback.type not in allowed:
            hint = (
                " (autocomplete cannot be deferred)" if rec.type == INTERACTION_AUTOCOMPLETE else ""
            )
            self._violate(
                "invalid-callback",
                f"callback type {callback.type} for interaction type {rec.type} on {what}{hint}",
            )
            raise _Reject(
                _error(400, 50035, "Invalid Form Body", [f"invalid callback type {callback.type}"])
            )
        limit = int(rec.payload.get("attachment_size_limit", 10 * 1024 * 1024))
        data = callback.data
        ephemeral = bool((data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL)
        if callback.type == 4:
            self._check_message(f"response to {what}", data, files, creating=True, limit=limit)
            flags = (data.get("flags") or 0) & (_SETTABLE_MESSAGE_FLAGS | MESSAGE_FLAG_EPHEMERAL)
            rec.original = self._new_message(
                rec.channel.id, rec.channel.guild_id, data, files, rec=rec, flags=flags
            )
        elif callback.type == 5:
            flags = MESSAGE_FLAG_LOADING | (MESSAGE_FLAG_EPHEMERAL if ephemeral else 0)
            rec.original = self._new_message(
                rec.channel.id, rec.channel.guild_id, {}, {}, rec=rec, flags=flags
            )
            rec._deferred_fill_pending = True
        elif callback.type == 6:
            rec.original = rec.component_message
        elif callback.type == 7:
            target = rec.component_message
            assert target is not None
            checked = self._check_edit(
                f"update of message {target.id} by {what}", target, data, files, limit
            )
            self._edit_message(target, checked, files)
            rec.original = target
        elif callback.type == 8:
            problems = autocomplete_problems(data, option_type=rec.focused_option_type)
            if problems:
                for problem in problems:
                    self._violate("autocomplete-limits", f"{what}: {problem}")
                raise _Reject(_error(400, 50035, "Invalid Form Body", problems))
        elif callback.type == 9:
            problems = self._modal_problems(data)
            if problems:
                for problem in problems:
                    self._violate("modal-limits", f"{what}: {problem}")
                raise _Reject(_error(400, 50035, "Invalid Form Body", problems))
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        result: JSON = {
            "interaction": {
                "id": str(rec.id),
                "type": rec.type,
                "response_message_loading": callback.type == 5,
                "response_message_ephemeral": bool(rec.original and rec.original.ephemeral),
            },
            "resource": {"type": callback.type},
        }
        if rec.original is not None and callback.type in (4, 5, 7):
            result["interaction"]["response_message_id"] = str(rec.original.id)
            result["resource"]["message"] = rec.original.payload()
        return _json_response(result)

    @staticmethod
    def _modal_problems(data: JSON) -> list[str]:
        problems: list[str] = []
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
            problems.append("modal custom_id must be 1-100 chars")
        title = data.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= 45:
            problems.append("modal title must be 1-45 chars")
        components = data.get("components")
        if not isinstance(components, list) or not 1 <= len(components) <= 5:
            problems.append("a modal needs 1-5 components")
        return problems

    # ------------------------------------------------------------------ REST: webhooks (follow-ups)

    def _interaction_for_webhook(self, request: web.Request, action: str) -> InteractionRecord:
        self._check_app(request)
        rec = self._interactions_by_token.get(request.match_info["token"])
        if rec is None:
            raise _Reject(_error(404, 10015, "Unknown Webhook"))
        age = self.now() - rec.created_at
        if age > self.token_lifetime:
            self._violate(
                "token-expired",
                f"{action} for interaction {rec.id} ({rec.describe()}) "
                f"{age:.0f}s after it was created (token valid {self.token_lifetime:.0f}s)",
            )
            raise _Reject(_error(401, 50027, "Invalid Webhook Token"))
        if not rec.acknowledged:
            self._violate(
                "not-acknowledged",
                f"{action} for interaction {rec.id} ({rec.describe()}) "
                "before any accepted response",
            )
            raise _Reject(_error(404, 10015, "Unknown Webhook"))
        return rec

    async def _h_followup(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        rec = self._interaction_for_webhook(request, "follow-up")
        what = f"follow-up to interaction {rec.id} ({rec.describe()})"
        limit = int(rec.payload.get("attachment_size_limit", 10 * 1024 * 1024))
        checked = self._check_message(what, body, files, creating=True, limit=limit)
        requested = checked.get("flags") or 0
        original = rec.original
        if rec._deferred_fill_pending and original is not None and original.loading:
            # Discord turns the first follow-up after a deferral into the deferred message.
            rec._deferred_fill_pending = False
            self._edit_message(original, checked, files)
            message = original
        else:
            flags = requested & (_SETTABLE_MESSAGE_FLAGS | MESSAGE_FLAG_EPHEMERAL)
            message = self._new_message(
                rec.channel.id, rec.channel.guild_id, checked, files, rec=rec, flags=flags
            )
        rec.followups.append(message)
        self._notify()
        if request.query.get("wait", "").lower() in ("1", "true"):
            return _json_response(message.payload())
        return web.Response(status=204)

    async def _h_webhook_message(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        action = {"GET": "fetch", "PATCH": "edit", "DELETE": "delete"}[request.method]
        rec = self._interaction_for_webhook(request, f"{action} of a response")
        key = request.match_info["message_id"]
        if key == "@original":
            message = rec.original
        elif key.isdigit() and int(key) in rec.message_ids:
            message = self.messages.get(int(key))
        else:
            message = None
        if message is None or message.deleted:
            raise _Reject(_error(404, 10008, "Unknown Message"))
        if request.method == "GET":
            return _json_response(message.payload())
        if request.method == "DELETE":
            message.deleted = True
            if not message.ephemeral:
                self._dispatch_message("MESSAGE_DELETE", message)
            self._notify()
            return web.Response(status=204)
        limit = int(rec.payload.get("attachment_size_limit", 10 * 1024 * 1024))
        what = f"edit of message {message.id} of interaction {rec.id} ({rec.describe()})"
        checked = self._check_edit(what, message, body, files, limit)
        if message is rec.original:
            rec._deferred_fill_pending = False
        self._edit_message(message, checked, files)
        return _json_response(message.payload())

    # ------------------------------------------------------------------ REST: channels, guilds

    def _visible_channel(self, request: web.Request) -> ChannelRecord:
        channel = self.channels.get(self._snowflake(request, "channel_id"))
        if channel is None:
            raise _Reject(_error(404, 10003, "Unknown Channel"))
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            if (
                not guild.bot_in_guild
                or not self.permissions_in(channel, self.bot_user) & VIEW_CHANNEL
            ):
                raise _Reject(_error(403, 50001, "Missing Access"))
        elif (
            self._bot_dms.get(channel.recipients[0].id if channel.recipients else 0) is not channel
        ):
            raise _Reject(_error(403, 50001, "Missing Access"))
        return channel

    async def _h_get_channel(self, request: web.Request) -> web.Response:
        return _json_response(self._channel_payload(self._visible_channel(request)))

    async def _h_typing(self, request: web.Request) -> web.Response:
        self._visible_channel(request)
        return web.Response(status=204)

    async def _h_create_message(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        channel = self._visible_channel(request)
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None:
            send = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
            if not self.permissions_in(channel, self.bot_user) & send:
                raise _Reject(_error(403, 50013, "Missing Permissions"))
        limit = guild.upload_limit if guild else 10 * 1024 * 1024
        checked = self._check_message(
            f"message in channel {channel.name!r}", body, files, creating=True, limit=limit
        )
        flags = (checked.get("flags") or 0) & _SETTABLE_MESSAGE_FLAGS
        message = self._new_message(channel.id, channel.guild_id, checked, files, flags=flags)
        self._notify()
        return _json_response(message.payload())

    async def _h_channel_message(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        channel = self._visible_channel(request)
        message = channel.messages.get(self._snowflake(request, "message_id"))
        if message is None or message.deleted or message.ephemeral:
            raise _Reject(_error(404, 10008, "Unknown Message"))
        if request.method == "GET":
            return _json_response(message.payload())
        if request.method == "DELETE":
            message.deleted = True
            self._dispatch_message("MESSAGE_DELETE", message)
            self._notify()
            return web.Response(status=204)
        guild = self.guilds.get(channel.guild_id or 0)
        limit = guild.upload_limit if guild else 10 * 1024 * 1024
        checked = self._check_edit(f"edit of message {message.id}", message, body, files, limit)
        self._edit_message(message, checked, files)
        return _json_response(message.payload())

    async def _h_create_dm(self, request: web.Request) -> web.Response:
        body, _ = await self._read_body(request)
        recipient = str(body.get("recipient_id")) if isinstance(body, dict) else ""
        user = self.users.get(int(recipient)) if recipient.isdigit() else None
        if user is None:
            raise _Reject(_error(404, 10013, "Unknown User"))
        return _json_response(self.dm_channel(user).payload())

    def _joined_guild(self, request: web.Request) -> GuildRecord:
        guild = self.guilds.get(self._snowflake(request, "guild_id"))
        if guild is None or not guild.bot_in_guild:
            raise _Reject(_error(404, 10004, "Unknown Guild"))
        return guild

    async def _h_get_guild(self, request: web.Request) -> web.Response:
        return _json_response(self._guild_payload(self._joined_guild(request)))

    async def _h_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._joined_guild(request)
        return _json_response(
            [self._channel_payload(c) for c in guild.channels.values() if not c.is_thread]
        )

    async def _h_guild_member(self, request: web.Request) -> web.Response:
        guild = self._joined_guild(request)
        member = guild.members.get(self._snowflake(request, "user_id"))
        if member is None:
            raise _Reject(_error(404, 10007, "Unknown Member"))
        return _json_response(member.payload())

    async def _h_attachment(self, request: web.Request) -> web.Response:
        upload = self.files.get(self._snowflake(request, "attachment_id"))
        if upload is None:
            raise _Reject(_error(404, 0, "404: Not Found"))
        return web.Response(
            body=upload.data, content_type=upload.content_type or "application/octet-stream"
        )
