"""What a channel may show: ratings, channel policy and the minor-safety rule.

Pure functions over plain values, no I/O and no discord import, so the policy can be tested
exhaustively. Two promises live here:

* nothing appears in a channel above the rating its admins allowed, and nothing above ``sfw``
  outside an age-restricted channel (:func:`allowed_max`, :func:`effective_max`, :func:`may_show`);
* nothing sexualises a minor anywhere (:func:`violates_minor_safety`), whatever the settings say.

Whenever something cannot be determined, the answer is the safe one: ``sfw``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bot.nekos.models import Category, Character, Image, Rating

__all__ = [
    "ADULT_AGE",
    "ChannelContext",
    "ChannelKind",
    "Decision",
    "GuildSettings",
    "RefusalCounter",
    "RefusalReason",
    "allowed_max",
    "category_visible",
    "effective_max",
    "is_known_minor",
    "may_show",
    "violates_minor_safety",
]

ADULT_AGE = 18
"""A character with any listed age below this is treated as a minor."""


class ChannelKind(enum.Enum):
    """What kind of place a command runs in, as far as the content policy cares."""

    TEXT = "text"
    VOICE = "voice"
    STAGE = "stage"
    FORUM = "forum"
    MEDIA = "media"
    NEWS = "news"
    THREAD = "thread"
    """Any thread, including a forum or media post: it takes its parent's age restriction."""
    DM = "dm"
    GROUP_DM = "group_dm"
    UNKNOWN = "unknown"


_PRIVATE_KINDS = frozenset({ChannelKind.DM, ChannelKind.GROUP_DM})


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """The facts about one channel that decide what it may show.

    ``age_restricted`` and ``parent_age_restricted`` are ``None`` when unknown (an uncached
    parent, a partial channel); unknown reads as "not age-restricted".
    ``bot_in_guild`` is ``False`` for a user-installed command used in a server the bot is not in,
    where no admin of that server has configured the bot.
    """

    guild_id: int | None
    channel_id: int | None
    kind: ChannelKind
    age_restricted: bool | None = None
    parent_id: int | None = None
    parent_age_restricted: bool | None = None
    bot_in_guild: bool = True

    @property
    def settings_channel_id(self) -> int | None:
        """The channel whose override applies here: a thread's parent, else the channel."""
        return self.parent_id if self.kind is ChannelKind.THREAD else self.channel_id

    @property
    def is_age_restricted(self) -> bool:
        """``True`` only when the channel (for a thread: its parent) is known to be restricted."""
        if self.kind is ChannelKind.THREAD:
            return self.parent_id is not None and self.parent_age_restricted is True
        return self.age_restricted is True


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A guild's rating settings: a default and per-channel overrides (keyed by channel id).

    ``default`` ``None`` means "not set", which reads as ``sfw``. ``overrides`` is copied into a
    read-only mapping so a cached instance can be shared safely.
    """

    default: Rating | None = None
    overrides: Mapping[int, Rating] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # frozen dataclass: object.__setattr__ is the sanctioned way to normalise a field.
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def configured_max(self, channel_id: int | None) -> Rating:
        """The admins' choice for a channel, before the age-restriction cap.

        The channel's override, else the default, else ``sfw``.
        """
        if channel_id is not None:
            override = self.overrides.get(channel_id)
            if override is not None:
                return override
        return self.default if self.default is not None else Rating.SFW


def allowed_max(ctx: ChannelContext, settings: GuildSettings) -> Rating:
    """The highest rating this channel may show.

    The channel's override (a thread or forum post uses its *parent's* override), else the guild
    default, else ``sfw``; then capped at ``sfw`` unless the channel (for a thread: its parent) is
    known to be age-restricted. DMs, group DMs, unknown channel kinds, threads with an unknown
    parent, channels whose flag is unknown, interactions without a guild and servers the bot is
    not in all get ``sfw``.
    """
    if ctx.kind is ChannelKind.UNKNOWN or ctx.kind in _PRIVATE_KINDS:
        return Rating.SFW
    if ctx.guild_id is None or not ctx.bot_in_guild:
        return Rating.SFW
    if not ctx.is_age_restricted:
        return Rating.SFW
    return settings.configured_max(ctx.settings_channel_id)


def effective_max(channel_max: Rating, requested: Rating | None) -> Rating:
    """Narrow the channel's maximum by a member's ``rating`` option; a request never widens it."""
    if requested is None:
        return channel_max
    return min(channel_max, requested)


def is_known_minor(character: Character) -> bool:
    """``True`` when any of the character's listed ages is under 18.

    A character whose ``ages`` is empty (the API does not know or did not say) is *not known* to
    be a minor and is not treated as one: the API marks many adult characters that way, and the
    image's rating still keeps it out of non-age-restricted channels. A character listed with
    several ages (``[17, 18]``: the story spans a birthday) counts as a minor if any is under 18.
    """
    return any(age < ADULT_AGE for age in character.ages)


def violates_minor_safety(image: Image) -> bool:
    """``True`` for an image rated above ``sfw`` that features a known minor (see
    :func:`is_known_minor`). Such an image is refused everywhere, whatever the settings say.
    """
    if image.rating <= Rating.SFW:
        return False
    return any(is_known_minor(character) for character in image.characters)


class RefusalReason(enum.Enum):
    """Why an image was not shown."""

    MINOR_SAFETY = "minor_safety"
    RATING_ABOVE_MAX = "rating_above_max"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an image may be shown; ``reason`` says why not. Truthy when allowed."""

    allowed: bool
    reason: RefusalReason | None = None

    def __bool__(self) -> bool:
        return self.allowed


_ALLOW = Decision(allowed=True)
_REFUSE_MINOR = Decision(allowed=False, reason=RefusalReason.MINOR_SAFETY)
_REFUSE_RATING = Decision(allowed=False, reason=RefusalReason.RATING_ABOVE_MAX)


def may_show(image: Image, max_rating: Rating) -> Decision:
    """Decide whether ``image`` may be shown where ``max_rating`` is the limit.

    Minor safety is checked first so that such an image is always counted as
    :attr:`RefusalReason.MINOR_SAFETY`, even where its rating alone would also refuse it.
    """
    if violates_minor_safety(image):
        return _REFUSE_MINOR
    if image.rating > max_rating:
        return _REFUSE_RATING
    return _ALLOW


class RefusalCounter:
    """In-memory counts of refused images by reason, for operators (``/neko stats``, logs).

    One instance is owned by whoever serves images (the bot holds one); nothing here is global.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[RefusalReason] = Counter()

    def record(self, reason: RefusalReason) -> None:
        """Count one refusal."""
        self._counts[reason] += 1

    def count(self, reason: RefusalReason) -> int:
        """How many refusals for ``reason`` so far."""
        return self._counts[reason]

    @property
    def minor_safety(self) -> int:
        """How many images were refused by the minor-safety rule so far."""
        return self._counts[RefusalReason.MINOR_SAFETY]

    @property
    def total(self) -> int:
        """All refusals so far."""
        return sum(self._counts.values())

    def snapshot(self) -> dict[RefusalReason, int]:
        """A copy of the counts, every reason present (zero when none)."""
        return {reason: self._counts[reason] for reason in RefusalReason}

    def __repr__(self) -> str:
        counts = ", ".join(f"{r.value}={n}" for r, n in self.snapshot().items())
        return f"RefusalCounter({counts})"


def category_visible(category: Category, max_rating: Rating) -> bool:
    """Whether a category may be listed or offered (autocomplete) where ``max_rating`` applies:
    categories flagged nsfw are hidden where the maximum is ``sfw``.
    """
    return not category.nsfw or max_rating > Rating.SFW
