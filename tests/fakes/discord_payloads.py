"""World records, JSON payload builders and Discord limit checks for the Discord emulator.

Everything here is pure: records are plain mutable dataclasses the emulator owns, builders turn
them into the JSON shapes Discord sends (and discord.py parses), and the ``*_problems`` checks
return human-readable rule violations (an empty list means the payload is within Discord's
documented limits).  See /work/shared/discord-rules.md for the rules.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "DM_APP_PERMISSIONS",
    "NSFW_CAPABLE_TYPES",
    "THREAD_TYPES",
    "AttachmentOption",
    "ChannelRecord",
    "ChannelType",
    "GuildRecord",
    "MemberRecord",
    "MessageRecord",
    "SnowflakeGenerator",
    "UserRecord",
    "autocomplete_problems",
    "command_list_problems",
    "command_problems",
    "message_problems",
]

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000


class ChannelType(IntEnum):
    """Discord channel types the emulator models."""

    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GROUP_DM = 3
    GUILD_CATEGORY = 4
    GUILD_NEWS = 5
    NEWS_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_STAGE_VOICE = 13
    GUILD_FORUM = 15
    GUILD_MEDIA = 16


THREAD_TYPES = frozenset({10, 11, 12})
PRIVATE_TYPES = frozenset({1, 3})
# Channel types that carry their own age-restricted ("nsfw") flag.
NSFW_CAPABLE_TYPES = frozenset({0, 2, 5, 13, 15, 16})
GUILD_CHANNEL_TYPES = frozenset({0, 2, 4, 5, 13, 15, 16})
# Parents a thread may hang off: text, news (announcement threads), forum and media.
THREAD_PARENT_TYPES = frozenset({0, 5, 15, 16})

ADMINISTRATOR = 1 << 3
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

DEFAULT_MEMBER_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
)
# What Discord reports as ``app_permissions`` in a DM with the bot.
DM_APP_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
)

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_COMPONENTS_V2 = 1 << 15


def iso_timestamp(moment: dt.datetime | None = None) -> str:
    """Discord's ISO-8601 timestamp for ``moment`` (now when omitted)."""
    return (moment or dt.datetime.now(dt.UTC)).isoformat()


class SnowflakeGenerator:
    """Produces increasing Discord snowflakes whose timestamp part is the current time."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._last = 0

    def next(self) -> int:
        """The next unused snowflake."""
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (millis << 22) | (next(self._counter) & 0xFFF)
        # Keeps ids strictly increasing even when the clock does not move between calls.
        self._last = max(candidate, self._last + 1)
        return self._last

    def next_on_shard(self, shard_id: int, shard_count: int) -> int:
        """The next unused snowflake of a guild that lands on ``shard_id`` of ``shard_count``.

        A guild's shard is its timestamp part modulo the count: the timestamp is moved forward
        by the few milliseconds needed.
        """
        candidate = self.next()
        step = (shard_id - (candidate >> 22)) % shard_count
        self._last = candidate + (step << 22)
        return self._last


@dataclass(eq=False)
class UserRecord:
    """A Discord user (or the bot's own user)."""

    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    locale: str = "en-US"

    def payload(self) -> JSON:
        """The user object Discord sends."""
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass(eq=False)
class MemberRecord:
    """A user's membership of a guild; ``permissions`` is the member's guild-wide bitfield.

    Each member gets one role of its own holding ``permissions``, so discord.py's cached
    permission maths gives the same answer the emulator puts in interactions.
    """

    user: UserRecord
    guild_id: int
    permissions: int
    role_id: int
    joined_at: str = field(default_factory=iso_timestamp)
    nick: str | None = None

    def payload(self, *, permissions: int | None = None) -> JSON:
        """The guild member object; ``permissions`` is added as interactions carry it."""
        data: JSON = {
            "user": self.user.payload(),
            "nick": self.nick,
            "avatar": None,
            "roles": [str(self.role_id)],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data

    def role_payload(self) -> JSON:
        """The member's own role, carrying its permissions."""
        return {
            "id": str(self.role_id),
            "name": f"perms-{self.user.username}",
            "color": 0,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 1,
            "permissions": str(self.permissions),
            "managed": self.user.bot,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class ChannelRecord:
    """A guild channel, thread, DM or group DM.

    ``permission_overrides`` maps a user id to that member's effective permissions in this
    channel (sent as a member permission overwrite). Threads take their parent's overrides.
    """

    id: int
    type: int
    name: str
    guild_id: int | None
    nsfw: bool = False
    parent_id: int | None = None
    position: int = 0
    topic: str | None = None
    owner_id: int | None = None
    recipients: list[UserRecord] = field(default_factory=list)
    permission_overrides: dict[int, int] = field(default_factory=dict)
    messages: dict[int, MessageRecord] = field(default_factory=dict)
    created_at: str = field(default_factory=iso_timestamp)

    @property
    def is_thread(self) -> bool:
        """Whether this channel is a thread (or a forum/media post)."""
        return self.type in THREAD_TYPES

    @property
    def is_private(self) -> bool:
        """Whether this is a DM or group DM."""
        return self.type in PRIVATE_TYPES

    def payload(self, *, overwrites: Sequence[JSON] = (), permissions: int | None = None) -> JSON:
        """The channel object; ``permissions`` is added as interactions carry it."""
        data: JSON = {"id": str(self.id), "type": self.type, "flags": 0, "last_message_id": None}
        if self.is_private:
            data["recipients"] = [user.payload() for user in self.recipients]
            if self.type == ChannelType.GROUP_DM:
                data["name"] = self.name
                data["owner_id"] = str(self.recipients[0].id) if self.recipients else None
                data["icon"] = None
        elif self.is_thread:
            data.update(
                {
                    "guild_id": str(self.guild_id),
                    "parent_id": str(self.parent_id),
                    "owner_id": str(self.owner_id or 0),
                    "name": self.name,
                    "rate_limit_per_user": 0,
                    "message_count": len(self.messages),
                    "member_count": 1,
                    "total_message_sent": len(self.messages),
                    "applied_tags": [],
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": self.created_at,
                        "locked": False,
                        "invitable": True,
                        "create_timestamp": self.created_at,
                    },
                }
            )
        else:
            data.update(
                {
                    "guild_id": str(self.guild_id),
                    "name": self.name,
                    "position": self.position,
                    "parent_id": str(self.parent_id) if self.parent_id else None,
                    "permission_overwrites": list(overwrites),
                }
            )
            if self.type in NSFW_CAPABLE_TYPES:
                data["nsfw"] = self.nsfw
            if self.type in (0, 5, 15, 16):
                data["topic"] = self.topic
                data["rate_limit_per_user"] = 0
            if self.type in (2, 13):
                data.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None})
            if self.type in (15, 16):
                data.update(
                    {
                        "available_tags": [],
                        "default_reaction_emoji": None,
                        "default_sort_order": None,
                        "default_forum_layout": 0,
                        "default_thread_rate_limit_per_user": 0,
                    }
                )
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class GuildRecord:
    """A guild; ``bot_in_guild`` is False for a guild the app reaches only by a user install."""

    id: int
    name: str
    owner_id: int
    bot_in_guild: bool = True
    upload_limit: int = 10 * 1024 * 1024
    locale: str = "en-US"
    channels: dict[int, ChannelRecord] = field(default_factory=dict)
    members: dict[int, MemberRecord] = field(default_factory=dict)

    def everyone_role_payload(self) -> JSON:
        """The @everyone role (id == guild id); it grants nothing, members' own roles do."""
        return {
            "id": str(self.id),
            "name": "@everyone",
            "color": 0,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 0,
            "permissions": "0",
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def role_payload(self, role_id: int) -> JSON | None:
        """The payload of role ``role_id`` in this guild, or None."""
        if role_id == self.id:
            return self.everyone_role_payload()
        for member in self.members.values():
            if member.role_id == role_id:
                return member.role_payload()
        return None


@dataclass(frozen=True)
class AttachmentOption:
    """The value a test passes for an ATTACHMENT (type 11) command option."""

    filename: str
    size: int
    content_type: str = "image/png"


@dataclass(eq=False)
class MessageRecord:
    """A message the bot created (channel message, interaction response or follow-up).

    Edits update the record in place; ``history`` keeps each earlier state.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: UserRecord
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    flags: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: JSON | None = None
    created_at: float = 0.0
    edited_at: float | None = None
    deleted: bool = False
    timestamp: str = field(default_factory=iso_timestamp)
    edited_timestamp: str | None = None
    history: list[JSON] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        """Whether only the invoking user sees this message."""
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Whether this is still a deferred "thinking…" placeholder."""
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    def snapshot(self) -> JSON:
        """The editable fields as they are now."""
        return {
            "content": self.content,
            "embeds": [dict(e) for e in self.embeds],
            "components": [dict(c) for c in self.components],
            "attachments": [dict(a) for a in self.attachments],
            "flags": self.flags,
        }

    def iter_components(self) -> Iterable[JSON]:
        """Every component of the message, depth first."""
        return _walk_components(self.components)

    def find_component(self, custom_id: str) -> JSON | None:
        """The interactive component with ``custom_id``, or None."""
        for component in self.iter_components():
            if component.get("custom_id") == custom_id:
                return component
        return None

    @property
    def custom_ids(self) -> list[str]:
        """The custom ids of every interactive component on the message."""
        return [str(c["custom_id"]) for c in self.iter_components() if "custom_id" in c]

    def payload(self) -> JSON:
        """The message object Discord sends."""
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": 0 if self.interaction_metadata is None else 20,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        return data


def _walk_components(components: Iterable[Any]) -> Iterable[JSON]:
    for component in components:
        if not isinstance(component, dict):
            continue
        yield component
        children = component.get("components")
        if isinstance(children, list):
            yield from _walk_components(children)
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            yield from _walk_components([accessory])


# ---------------------------------------------------------------------------------------------
# Limit checks
# ---------------------------------------------------------------------------------------------

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_ACTION_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
MAX_V2_COMPONENTS = 40
SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
# Embed image-like URLs may point at a file uploaded with the same message.
_EMBED_MEDIA_SCHEMES = ("http://", "https://", "attachment://")
_WEB_SCHEMES = ("http://", "https://")
_LINK_BUTTON_SCHEMES = ("http://", "https://", "discord://")


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _check_len(
    problems: list[str], where: str, value: Any, limit: int, *, minimum: int = 0
) -> None:
    if value is None:
        if minimum:
            problems.append(f"{where} is required")
        return
    if not isinstance(value, str):
        problems.append(f"{where} must be a string, got {type(value).__name__}")
        return
    if len(value) > limit:
        problems.append(f"{where} is {len(value)} chars > {limit}")
    elif len(value) < minimum:
        problems.append(f"{where} is {len(value)} chars < {minimum}")


def _check_url(problems: list[str], where: str, value: Any, schemes: tuple[str, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.lower().startswith(schemes):
        problems.append(f"{where} {value!r} is not a {'/'.join(s[:-3] for s in schemes)} URL")


def embed_problems(embeds: Any) -> list[str]:
    """Violations of Discord's embed limits in one message's ``embeds`` list."""
    problems: list[str] = []
    if embeds is None:
        return problems
    if not isinstance(embeds, list):
        return [f"embeds must be a list, got {type(embeds).__name__}"]
    if len(embeds) > MAX_EMBEDS:
        problems.append(f"{len(embeds)} embeds > {MAX_EMBEDS}")
    total = 0
    for index, embed in enumerate(embeds):
        where = f"embeds[{index}]"
        if not isinstance(embed, dict):
            problems.append(f"{where} must be an object")
            continue
        _check_len(problems, f"{where}.title", embed.get("title"), 256)
        _check_len(problems, f"{where}.description", embed.get("description"), 4096)
        _check_url(problems, f"{where}.url", embed.get("url"), _WEB_SCHEMES)
        total += _text_len(embed.get("title")) + _text_len(embed.get("description"))
        colour = embed.get("color")
        if colour is not None and (
            not isinstance(colour, int) or isinstance(colour, bool) or not 0 <= colour <= 0xFFFFFF
        ):
            problems.append(f"{where}.color {colour!r} is not an integer 0..0xFFFFFF")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append(f"{where} has {len(fields)} fields > 25")
        for f_index, embed_field in enumerate(fields):
            f_where = f"{where}.fields[{f_index}]"
            _check_len(problems, f"{f_where}.name", embed_field.get("name"), 256, minimum=1)
            _check_len(problems, f"{f_where}.value", embed_field.get("value"), 1024, minimum=1)
            total += _text_len(embed_field.get("name")) + _text_len(embed_field.get("value"))
        footer = embed.get("footer")
        if isinstance(footer, dict):
            _check_len(problems, f"{where}.footer.text", footer.get("text"), 2048, minimum=1)
            _check_url(
                problems, f"{where}.footer.icon_url", footer.get("icon_url"), _EMBED_MEDIA_SCHEMES
            )
            total += _text_len(footer.get("text"))
        author = embed.get("author")
        if isinstance(author, dict):
            _check_len(problems, f"{where}.author.name", author.get("name"), 256, minimum=1)
            _check_url(problems, f"{where}.author.url", author.get("url"), _WEB_SCHEMES)
            _check_url(
                problems, f"{where}.author.icon_url", author.get("icon_url"), _EMBED_MEDIA_SCHEMES
            )
            total += _text_len(author.get("name"))
        for media in ("image", "thumbnail"):
            part = embed.get(media)
            if isinstance(part, dict):
                _check_url(problems, f"{where}.{media}.url", part.get("url"), _EMBED_MEDIA_SCHEMES)
    if total > MAX_EMBED_TOTAL:
        problems.append(f"embeds total {total} chars > {MAX_EMBED_TOTAL}")
    return problems


def _button_problems(problems: list[str], where: str, button: JSON, seen: set[str]) -> None:
    style = button.get("style")
    _check_len(problems, f"{where}.label", button.get("label"), MAX_LABEL)
    if style == 5:
        if "custom_id" in button:
            problems.append(f"{where} is a link button with a custom_id")
        if not button.get("url"):
            problems.append(f"{where} is a link button without a url")
        _check_url(problems, f"{where}.url", button.get("url"), _LINK_BUTTON_SCHEMES)
    elif style == 6:
        if not button.get("sku_id"):
            problems.append(f"{where} is a premium button without sku_id")
    elif style in (1, 2, 3, 4):
        if button.get("url") is not None:
            problems.append(f"{where} is a style {style} button with a url")
        _custom_id_problems(problems, where, button, seen)
        if not button.get("label") and not button.get("emoji"):
            problems.append(f"{where} has neither label nor emoji")
    else:
        problems.append(f"{where} has invalid style {style!r}")


def _custom_id_problems(problems: list[str], where: str, component: JSON, seen: set[str]) -> None:
    custom_id = component.get("custom_id")
    _check_len(problems, f"{where}.custom_id", custom_id, MAX_CUSTOM_ID, minimum=1)
    if isinstance(custom_id, str):
        if custom_id in seen:
            problems.append(f"{where}.custom_id {custom_id!r} is not unique in the message")
        seen.add(custom_id)


def _select_problems(problems: list[str], where: str, select: JSON, seen: set[str]) -> None:
    _custom_id_problems(problems, where, select, seen)
    _check_len(problems, f"{where}.placeholder", select.get("placeholder"), 150)
    min_values = select.get("min_values", 1)
    max_values = select.get("max_values", 1)
    if not (isinstance(min_values, int) and 0 <= min_values <= 25):
        problems.append(f"{where}.min_values {min_values!r} not in 0..25")
    if not (isinstance(max_values, int) and 1 <= max_values <= 25):
        problems.append(f"{where}.max_values {max_values!r} not in 1..25")
    if select.get("type") == 3:
        options = select.get("options") or []
        if not 1 <= len(options) <= 25:
            problems.append(f"{where} has {len(options)} options, not 1..25")
        if isinstance(max_values, int) and max_values > len(options):
            problems.append(f"{where}.max_values {max_values} > {len(options)} options")
        for o_index, option in enumerate(options):
            o_where = f"{where}.options[{o_index}]"
            _check_len(problems, f"{o_where}.label", option.get("label"), 100, minimum=1)
            _check_len(problems, f"{o_where}.value", option.get("value"), 100, minimum=1)
            _check_len(problems, f"{o_where}.description", option.get("description"), 100)


def component_problems(components: Any, *, flags: int = 0) -> list[str]:
    """Violations of Discord's message component limits."""
    problems: list[str] = []
    if components is None:
        return problems
    if not isinstance(components, list):
        return [f"components must be a list, got {type(components).__name__}"]
    seen: set[str] = set()
    if flags & MESSAGE_FLAG_COMPONENTS_V2:
        everything = list(_walk_components(components))
        if len(everything) > MAX_V2_COMPONENTS:
            problems.append(f"{len(everything)} components > {MAX_V2_COMPONENTS}")
        for index, component in enumerate(everything):
            where = f"components(v2)[{index}]"
            if component.get("type") == 2:
                _button_problems(problems, where, component, seen)
            elif component.get("type") in SELECT_TYPES:
                _select_problems(problems, where, component, seen)
        return problems
    if len(components) > MAX_ACTION_ROWS:
        problems.append(f"{len(components)} action rows > {MAX_ACTION_ROWS}")
    for index, row in enumerate(components):
        where = f"components[{index}]"
        if not isinstance(row, dict) or row.get("type") != 1:
            problems.append(f"{where} is not an action row (type 1) in a non-v2 message")
            continue
        children = row.get("components") or []
        if not children:
            problems.append(f"{where} is an empty action row")
        kinds = {child.get("type") for child in children}
        if kinds & SELECT_TYPES:
            if len(children) != 1:
                problems.append(f"{where} mixes a select menu with other components")
        elif len(children) > MAX_ROW_BUTTONS:
            problems.append(f"{where} has {len(children)} buttons > {MAX_ROW_BUTTONS}")
        for c_index, child in enumerate(children):
            c_where = f"{where}.components[{c_index}]"
            if child.get("type") == 2:
                _button_problems(problems, c_where, child, seen)
            elif child.get("type") in SELECT_TYPES:
                _select_problems(problems, c_where, child, seen)
            else:
                problems.append(
                    f"{c_where} has type {child.get('type')!r}, not allowed in a message row"
                )
    return problems


def message_problems(body: Mapping[str, Any], *, creating: bool, file_count: int = 0) -> list[str]:
    """Violations of Discord's message limits in a create (or, ``creating=False``, edit) body."""
    problems: list[str] = []
    content = body.get("content")
    if content is not None:
        if not isinstance(content, str):
            problems.append(f"content must be a string, got {type(content).__name__}")
        elif len(content) > MAX_CONTENT:
            problems.append(f"content is {len(content)} chars > {MAX_CONTENT}")
    flags = body.get("flags") or 0
    if not isinstance(flags, int):
        problems.append(f"flags {flags!r} is not an integer")
        flags = 0
    problems.extend(embed_problems(body.get("embeds")))
    problems.extend(component_problems(body.get("components"), flags=flags))
    if flags & MESSAGE_FLAG_COMPONENTS_V2 and (body.get("content") or body.get("embeds")):
        problems.append("a components-v2 message cannot carry content or embeds")
    if creating and not (
        body.get("content")
        or body.get("embeds")
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or file_count
    ):
        problems.append("cannot send an empty message")
    return problems


# ---------------------------------------------------------------------------------------------
# Command definitions and autocomplete
# ---------------------------------------------------------------------------------------------

# Discord also accepts some non-Latin letters; this is the documented ASCII subset.
_CHAT_INPUT_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
_CHOICE_TYPES = frozenset({3, 4, 10})
MAX_COMMAND_CHARS = 4000


def _option_problems(options: Any, where: str, *, level: int) -> tuple[list[str], int]:
    """Problems in an ``options`` list; level 0 = command, 1 = group, 2 = subcommand."""
    problems: list[str] = []
    chars = 0
    if options is None:
        return problems, chars
    if not isinstance(options, list):
        return [f"{where}.options must be a list"], chars
    if len(options) > 25:
        problems.append(f"{where} has {len(options)} options > 25")
    names: set[str] = set()
    seen_optional = False
    kinds = {o.get("type") for o in options if isinstance(o, dict)}
    if kinds & {1, 2} and kinds - {1, 2}:
        problems.append(f"{where} mixes subcommands/groups with plain options")
    for index, option in enumerate(options):
        o_where = f"{where}.options[{index}]"
        if not isinstance(option, dict):
            problems.append(f"{o_where} must be an object")
            continue
        name = option.get("name")
        o_where = f"{where}.{name}" if isinstance(name, str) else o_where
        if not isinstance(name, str) or not _CHAT_INPUT_NAME.match(name):
            problems.append(f"{o_where}: name {name!r} is not 1-32 chars of lowercase [-_a-z0-9]")
        elif name in names:
            problems.append(f"{o_where}: duplicate option name")
        else:
            names.add(name)
        _check_len(problems, f"{o_where}.description", option.get("description"), 100, minimum=1)
        chars += _text_len(name) + _text_len(option.get("description"))
        kind = option.get("type")
        if kind not in range(1, 12):
            problems.append(f"{o_where}: invalid option type {kind!r}")
            continue
        if kind == 2:
            if level != 0:
                problems.append(f"{o_where}: subcommand group nested below the top level")
            children = option.get("options") or []
            if any(isinstance(c, dict) and c.get("type") != 1 for c in children):
                problems.append(f"{o_where}: a subcommand group may contain only subcommands")
            sub_problems, sub_chars = _option_problems(children, o_where, level=1)
            problems.extend(sub_problems)
            chars += sub_chars
            continue
        if kind == 1:
            if level == 2:
                problems.append(f"{o_where}: subcommand nested in a subcommand")
            sub_problems, sub_chars = _option_problems(option.get("options"), o_where, level=2)
            problems.extend(sub_problems)
            chars += sub_chars
            continue
        required = bool(option.get("required", False))
        if required and seen_optional:
            problems.append(f"{o_where}: required option after an optional one")
        seen_optional = seen_optional or not required
        choices = option.get("choices")
        if choices:
            if kind not in _CHOICE_TYPES:
                problems.append(f"{o_where}: choices on an option of type {kind}")
            if option.get("autocomplete"):
                problems.append(f"{o_where}: choices and autocomplete together")
            if len(choices) > 25:
                problems.append(f"{o_where} has {len(choices)} choices > 25")
            for c_index, choice in enumerate(choices):
                c_where = f"{o_where}.choices[{c_index}]"
                _check_len(problems, f"{c_where}.name", choice.get("name"), 100, minimum=1)
                value = choice.get("value")
                chars += _text_len(choice.get("name")) + len(str(value))
                problems.extend(_choice_value_problems(c_where, value, kind))
        if option.get("autocomplete") and kind not in _CHOICE_TYPES:
            problems.append(f"{o_where}: autocomplete on an option of type {kind}")
        if option.get("channel_types") is not None and kind != 7:
            problems.append(f"{o_where}: channel_types on an option of type {kind}")
        for key in ("min_length", "max_length"):
            bound = option.get(key)
            if bound is not None and not (isinstance(bound, int) and 0 <= bound <= 6000):
                problems.append(f"{o_where}.{key} {bound!r} not in 0..6000")
    return problems, chars


def _choice_value_problems(where: str, value: Any, kind: int | None) -> list[str]:
    if kind == 3:
        if not isinstance(value, str):
            return [f"{where}.value {value!r} must be a string for a string option"]
        if len(value) > 100:
            return [f"{where}.value is {len(value)} chars > 100"]
    elif kind == 4:
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}.value {value!r} must be an integer"]
    elif kind == 10 and (not isinstance(value, int | float) or isinstance(value, bool)):
        return [f"{where}.value {value!r} must be a number"]
    return []


def command_problems(command: Mapping[str, Any]) -> list[str]:
    """Violations of Discord's rules in one application command definition."""
    problems: list[str] = []
    kind = command.get("type", 1)
    name = command.get("name")
    where = f"/{name}" if isinstance(name, str) else "command"
    if kind == 1:
        if not isinstance(name, str) or not _CHAT_INPUT_NAME.match(name):
            problems.append(f"{where}: name {name!r} is not 1-32 chars of lowercase [-_a-z0-9]")
        _check_len(problems, f"{where}.description", command.get("description"), 100, minimum=1)
        option_problems, chars = _option_problems(command.get("options"), where, level=0)
        problems.extend(option_problems)
        chars += _text_len(name) + _text_len(command.get("description"))
        if chars > MAX_COMMAND_CHARS:
            problems.append(
                f"{where}: {chars} chars of names/descriptions/choices > {MAX_COMMAND_CHARS}"
            )
    elif kind in (2, 3):
        _check_len(problems, f"{where}.name", name, 32, minimum=1)
        if command.get("description"):
            problems.append(f"{where}: a context menu command cannot have a description")
        if command.get("options"):
            problems.append(f"{where}: a context menu command cannot have options")
    elif kind != 4:
        problems.append(f"{where}: invalid command type {kind!r}")
    permissions = command.get("default_member_permissions")
    if permissions is not None and not (
        (isinstance(permissions, int) and not isinstance(permissions, bool) and permissions >= 0)
        or (isinstance(permissions, str) and permissions.isdigit())
    ):
        problems.append(f"{where}.default_member_permissions {permissions!r} is not a bitfield")
    for key, allowed in (("contexts", {0, 1, 2}), ("integration_types", {0, 1})):
        values = command.get(key)
        if values is not None and (not isinstance(values, list) or not set(values) <= allowed):
            problems.append(f"{where}.{key} {values!r} not a list drawn from {sorted(allowed)}")
    return problems


def command_list_problems(commands: Any) -> list[str]:
    """Violations in a bulk-overwrite command list (each command, duplicates, counts)."""
    if not isinstance(commands, list):
        return ["bulk overwrite body must be a list of commands"]
    problems: list[str] = []
    seen: set[tuple[Any, Any]] = set()
    per_type: dict[Any, int] = {}
    for command in commands:
        if not isinstance(command, dict):
            problems.append("each command must be an object")
            continue
        problems.extend(command_problems(command))
        key = (command.get("type", 1), command.get("name"))
        if key in seen:
            problems.append(f"/{command.get('name')}: duplicate command name")
        seen.add(key)
        per_type[key[0]] = per_type.get(key[0], 0) + 1
    for kind, limit in ((1, 100), (2, 15), (3, 15)):
        if per_type.get(kind, 0) > limit:
            problems.append(f"{per_type[kind]} commands of type {kind} > {limit}")
    return problems


def autocomplete_problems(data: Any, *, option_type: int | None) -> list[str]:
    """Violations of the autocomplete result rules (≤25 choices, name 1–100, value ≤100)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return ["autocomplete result must be {'choices': [...]}"]
    choices = data["choices"]
    problems: list[str] = []
    if len(choices) > 25:
        problems.append(f"{len(choices)} autocomplete choices > 25")
    for index, choice in enumerate(choices):
        where = f"choices[{index}]"
        if not isinstance(choice, dict):
            problems.append(f"{where} must be an object")
            continue
        _check_len(problems, f"{where}.name", choice.get("name"), 100, minimum=1)
        value = choice.get("value")
        if isinstance(value, str) and len(value) > 100:
            problems.append(f"{where}.value is {len(value)} chars > 100")
        problems.extend(_choice_value_problems(where, value, option_type))
    return problems
