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
    "DEFAULT_POLICY",
    "EXPLICIT_TAGS",
    "SUGGESTIVE_TAGS",
    "YOUTH_TAGS",
    "ChannelContext",
    "ChannelKind",
    "ContentPolicy",
    "Decision",
    "GuildSettings",
    "RefusalCounter",
    "RefusalReason",
    "allowed_max",
    "category_visible",
    "effective_max",
    "effective_rating",
    "is_known_minor",
    "may_show",
    "tag_visible",
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


EXPLICIT_TAGS: frozenset[str] = frozenset(
    {
        "nude",
        "nudity",
        "naked",
        "topless",
        "bottomless",
        "nipples",
        "areolae",
        "sex",
        "hentai",
        "explicit",
        "penis",
        "pussy",
        "vagina",
        "genitals",
        "pubic hair",
        "cum",
        "anal",
        "oral",
        "fellatio",
        "masturbation",
        "erection",
        "bondage",
    }
)
"""Tags that mark an image as explicit whatever rating the API's classifier gave it (v4's ratings
come from a classifier that errs): such an image counts as nsfw, and an sfw request asks the API
to leave them out (``without_tags``)."""

SUGGESTIVE_TAGS: frozenset[str] = frozenset(
    {"lingerie", "underwear", "panties", "bra", "see-through", "lewd", "ecchi"}
)
"""Tags that make an image at least questionable whatever its rating; left out of sfw requests."""

YOUTH_TAGS: frozenset[str] = frozenset(
    {
        "loli",
        "lolicon",
        "shota",
        "shotacon",
        "child",
        "children",
        "kid",
        "kids",
        "toddler",
        "baby",
        "young",
        "younger",
        "underage",
        "minor",
        "elementary school",
        "middle school",
        "schoolgirl",
        "schoolboy",
        "school uniform",
        "randoseru",
        "petite",
        "flat chest",
        "aged down",
    }
)
"""Youth-describing tags: an image carrying one is never shown above sfw, whatever the settings
(operators add their own with ``NEKOS_V4_DENY_TAGS``). A heuristic where an API has no ages."""


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """The operator's part of the content rules, beside each channel's settings.

    ``unverified_above_sfw``: show images whose characters' ages the API cannot tell (v4) above
    sfw at all (``NEKOS_V4_ALLOW_ABOVE_SFW``; off by default). The tag lists: see
    :data:`YOUTH_TAGS`, :data:`EXPLICIT_TAGS` and :data:`SUGGESTIVE_TAGS`.
    """

    unverified_above_sfw: bool = False
    youth_tags: frozenset[str] = YOUTH_TAGS
    explicit_tags: frozenset[str] = EXPLICIT_TAGS
    suggestive_tags: frozenset[str] = SUGGESTIVE_TAGS

    @property
    def not_sfw_tags(self) -> frozenset[str]:
        """Every tag an sfw request asks the API to leave out."""
        return self.explicit_tags | self.suggestive_tags

    def ceiling(self, ages_known: bool) -> Rating:
        """The highest rating any channel may show from an API that does (not) know ages."""
        return Rating.NSFW if ages_known or self.unverified_above_sfw else Rating.SFW


DEFAULT_POLICY = ContentPolicy()


def effective_rating(image: Image, policy: ContentPolicy = DEFAULT_POLICY) -> Rating:
    """The image's rating, raised to nsfw by an explicit tag, to questionable by a suggestive."""
    rating = image.rating
    if rating is Rating.NSFW:
        return rating
    names = image.category_names
    if not names:
        return rating
    if not policy.explicit_tags.isdisjoint(names):
        return Rating.NSFW
    if rating is Rating.SFW and not policy.suggestive_tags.isdisjoint(names):
        return Rating.QUESTIONABLE
    return rating


def violates_minor_safety(image: Image, policy: ContentPolicy = DEFAULT_POLICY) -> bool:
    """``True`` for an image rated above ``sfw`` (see :func:`effective_rating`) that features a
    known minor (see :func:`is_known_minor`), carries a youth-describing tag, or comes from an
    API that cannot tell ages while the operator has not opted in. Such an image is refused
    everywhere, whatever the settings say.
    """
    if effective_rating(image, policy) <= Rating.SFW:
        return False
    if not image.ages_known and not policy.unverified_above_sfw:
        return True
    if not policy.youth_tags.isdisjoint(image.category_names):
        return True
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


def may_show(image: Image, max_rating: Rating, policy: ContentPolicy = DEFAULT_POLICY) -> Decision:
    """Decide whether ``image`` may be shown where ``max_rating`` is the limit.

    Minor safety is checked first so that such an image is always counted as
    :attr:`RefusalReason.MINOR_SAFETY`, even where its rating alone would also refuse it.
    """
    if violates_minor_safety(image, policy):
        return _REFUSE_MINOR
    if effective_rating(image, policy) > max_rating:
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


def tag_visible(tag: str, max_rating: Rating, policy: ContentPolicy = DEFAULT_POLICY) -> bool:
    """Whether a tag may be offered (autocomplete, the tag list) where ``max_rating`` applies:
    explicit tags only above sfw, youth-describing tags nowhere."""
    name = tag.strip().lower()
    if name in policy.youth_tags:
        return False
    return name not in policy.not_sfw_tags or max_rating > Rating.SFW


def category_visible(category: Category, max_rating: Rating) -> bool:
    """Whether a category may be listed or offered (autocomplete) where ``max_rating`` applies:
    categories flagged nsfw are hidden where the maximum is ``sfw``.
    """
    return not category.nsfw or max_rating > Rating.SFW
