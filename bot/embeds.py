"""Pure renderers: Nekos API models to :class:`discord.Embed`, always within Discord's limits.

Every name and description from the API goes through the text rule in :mod:`bot.text`:
:func:`~bot.text.safe_text` where Discord renders markdown (titles, descriptions, field values),
:func:`~bot.text.plain_text` where it renders none (footers, author names). Every URL goes through
its URL rule, :func:`~bot.text.safe_url` (here :func:`http_url`), before it becomes a link, an
image or a ``<link>`` in text. Send every message with :data:`ALLOWED_MENTIONS`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import discord

from .nekos.models import Artist, Category, Character, Image, Rating, Stats
from .text import (
    ELLIPSIS,
    format_duration,
    plain_text,
    plural,
    safe_text,
    safe_url,
    trim,
    trim_markdown,
)

__all__ = [
    "ALLOWED_MENTIONS",
    "AUTHOR_LIMIT",
    "BRAND_COLOUR",
    "DESCRIPTION_LIMIT",
    "EMBEDS_PER_MESSAGE",
    "FIELD_COUNT_LIMIT",
    "FIELD_NAME_LIMIT",
    "FIELD_VALUE_LIMIT",
    "FOOTER_LIMIT",
    "TITLE_LIMIT",
    "TOTAL_LIMIT",
    "AboutInfo",
    "about_embed",
    "api_health",
    "artist_embed",
    "attachment_name",
    "category_list_embed",
    "character_embed",
    "embed_length",
    "fit_message",
    "format_duration",
    "gallery_page_embed",
    "http_url",
    "image_embed",
    "parse_colour",
    "rating_label",
    "stats_embed",
    "tag_list_embed",
]

# Discord's limits (see shared/discord-rules.md, "Messages, embeds and components").
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
TOTAL_LIMIT = 6000
EMBEDS_PER_MESSAGE = 10

BRAND_COLOUR = 0xE78FB3
"""The bot's colour, used whenever an image brings no valid colour of its own."""

ALLOWED_MENTIONS = discord.AllowedMentions.none()
"""Pass to every send/edit: the bot never pings anyone, whatever text slips through."""

# Profile descriptions are trimmed well below Discord's 4096 to keep the card readable.
PROFILE_DESCRIPTION_LIMIT = 1000
# One name in a comma-separated listing, so that one long name cannot crowd out the others.
LISTED_NAME_LIMIT = 100
# One line of the category list: the description part of each entry.
CATEGORY_LINE_DESCRIPTION_LIMIT = 200

_RATING_LABELS = {Rating.SFW: "Safe", Rating.QUESTIONABLE: "Questionable", Rating.NSFW: "NSFW"}
# The API's own labels, least restrictive first: v1's three, then v4's four.
_API_RATINGS = {
    "sfw": "Safe",
    "questionable": "Questionable",
    "nsfw": "NSFW",
    "safe": "Safe",
    "suggestive": "Suggestive",
    "borderline": "Borderline",
    "explicit": "Explicit",
}
_API_RATING_ORDER = {"sfw": 0, "safe": 0, "questionable": 1, "suggestive": 1}
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_ATTACHMENT_URL = re.compile(r"attachment://[A-Za-z0-9._-]{1,200}")
_SEPARATOR = " · "
_FILE_STEM = re.compile(r"[A-Za-z0-9-]{1,64}")


# --------------------------------------------------------------------------- small helpers


def parse_colour(value: str | None) -> int:
    """Parse ``#rrggbb``, ``rrggbb``, ``#rgb`` or ``rgb`` (any case); else the brand colour."""
    if not isinstance(value, str):
        return BRAND_COLOUR
    match = _HEX_COLOUR.fullmatch(value.strip())
    if match is None:
        return BRAND_COLOUR
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return int(digits, 16)


http_url = safe_url
"""The URL rule (:func:`bot.text.safe_url`): a safe http(s) URL, or ``None``."""


def attachment_name(image_id: str, suffix: str) -> str:
    """A file name for an image sent as an attachment: its id when that is a plain token
    (UUIDs are), else a digest of it, so nothing the API sent reaches the file name."""
    stem = (
        image_id
        if _FILE_STEM.fullmatch(image_id)
        else hashlib.sha256(image_id.encode("utf-8", "replace")).hexdigest()[:32]
    )
    return f"{stem}.{suffix}"


def _image_url(url: str | None) -> str | None:
    """A safe http(s) URL, or an ``attachment://name`` reference to a file sent with it."""
    if url and _ATTACHMENT_URL.fullmatch(url):
        return url
    return http_url(url)


def _host(url: str | None) -> str | None:
    """The host of a source link, as a title when the API names no source (v4)."""
    link = http_url(url)
    if link is None:
        return None
    host = urlsplit(link).hostname
    return host.removeprefix("www.") if host else None


def rating_label(rating: Rating) -> str:
    """Human label for a rating: ``Safe``, ``Questionable`` or ``NSFW``."""
    return _RATING_LABELS[rating]


def _rating_label_for_key(key: str) -> str:
    """The API's rating label as members read it (v1's three, v4's four)."""
    return _API_RATINGS.get(key.strip().lower()) or safe_text(key, 40) or "?"


def _image_rating_label(image: Image) -> str:
    """The label the API gave (v4: Suggestive, Borderline…), else the bot's level."""
    if image.api_rating in _API_RATINGS:
        return _API_RATINGS[image.api_rating]
    return rating_label(image.rating)


def _count(n: int) -> str:
    return f"{n:,}"


def _listing(names: Iterable[str], limit: int = FIELD_VALUE_LIMIT) -> str:
    """Join escaped names with commas, ending in ``+N more`` when they do not all fit ``limit``."""
    items = [safe_text(name, min(limit, LISTED_NAME_LIMIT)) for name in names]
    items = [item for item in items if item]
    shown: list[str] = []
    used = 0
    for index, item in enumerate(items):
        rest = len(items) - index - 1
        extra = len(item) + (2 if shown else 0)
        suffix = f" +{rest} more" if rest else ""
        if used + extra + len(suffix) > limit:
            break
        shown.append(item)
        used += extra
    hidden = len(items) - len(shown)
    text = ", ".join(shown)
    if hidden:
        more = f"+{hidden} more"
        text = f"{text} {more}" if text else more
    return text


def _add_field(embed: discord.Embed, name: str, value: str, *, inline: bool = True) -> None:
    """Add a field if it has a value and there is room; names here are our own, values escaped."""
    if not value or len(embed.fields) >= FIELD_COUNT_LIMIT:
        return
    embed.add_field(
        name=trim(name, FIELD_NAME_LIMIT),
        value=trim_markdown(value, FIELD_VALUE_LIMIT),
        inline=inline,
    )


def _footer(parts: Iterable[str | None]) -> str:
    return trim(_SEPARATOR.join(p for p in parts if p), FOOTER_LIMIT)


def _dimensions(image: Image) -> str | None:
    width, height = image.meta.dimens.width, image.meta.dimens.height
    if width is None or height is None:
        return None
    return f"{width}×{height}"


def _artist_credit(artist: Artist | None) -> tuple[str, str | None] | None:
    """The author line: the artist's name and link. None when there is no name to credit
    (the API has no artist, or gave only an id that could not be named)."""
    if artist is None:
        return None
    name = plain_text(artist.name, AUTHOR_LIMIT - len("Artist: "))
    if not name:
        return None
    return f"Artist: {name}", http_url(artist.url)


# --------------------------------------------------------------------------- renderers


def image_embed(image: Image, *, image_url: str | None = None) -> discord.Embed:
    """One image: source as title, artist as author, characters/categories, footer, picture.

    ``image_url`` overrides the picture, e.g. ``attachment://name.png`` when the file is attached.
    """
    title = safe_text(image.source.name or _host(image.source.url), TITLE_LIMIT) or "Untitled"
    embed = discord.Embed(
        title=title,
        url=http_url(image.source.url),
        colour=parse_colour(image.meta.color),
        timestamp=image.created_at,
    )
    credit = _artist_credit(image.artist)
    if credit is not None:
        embed.set_author(name=credit[0], url=credit[1])
    _add_field(embed, "Characters", _listing(c.name for c in image.characters))
    _add_field(embed, "Categories", _listing(c.name for c in image.categories))
    _add_field(embed, "Tags", _listing(image.tags))
    embed.set_footer(
        text=_footer((_image_rating_label(image), _dimensions(image), plain_text(image.id, 100)))
    )
    picture = _image_url(image_url) or http_url(image.url)
    if picture is not None:
        embed.set_image(url=picture)
    return embed


def gallery_page_embed(
    artist: Artist,
    image: Image,
    page: int,
    pages: int,
    *,
    image_url: str | None = None,
    more: bool = False,
) -> discord.Embed:
    """An artist gallery page: the image credited to ``artist``, "Page x of y" (1-based);
    "of y+" when ``more`` images may follow those fetched so far."""
    embed = image_embed(image, image_url=image_url)
    credit = _artist_credit(artist)
    if credit is not None:
        embed.set_author(name=credit[0], url=credit[1])
    pages = max(1, pages)
    page = min(max(1, page), pages)
    footer = embed.footer.text or ""
    embed.set_footer(text=_footer((f"Page {page} of {pages}{'+' if more else ''}", footer)))
    return embed


def artist_embed(
    artist: Artist, *, shown_images: int | None = None, more: bool = False
) -> discord.Embed:
    """An artist's card: name linked to their page, image count, id in the footer
    ("showing N+ images" when ``more`` may follow)."""
    embed = discord.Embed(
        title=safe_text(artist.name, TITLE_LIMIT) or "Unknown artist",
        url=http_url(artist.url),
        colour=BRAND_COLOUR,
    )
    if artist.image_count is not None:
        _add_field(embed, "Images", _count(artist.image_count))
    link = http_url(artist.url)
    if link is not None:
        # The profile link shown in full, so people see where it goes before clicking; the URL
        # rule leaves no ">" in it to end the <…> early.
        embed.description = f"<{link}>"
    shown = None
    if shown_images is not None:
        shown = f"showing {plural(shown_images, 'image')}"
        if more:
            shown = f"showing {shown_images}+ images"
    embed.set_footer(text=_footer((f"Artist {plain_text(artist.id, 100)}", shown)))
    return embed


def character_embed(character: Character) -> discord.Embed:
    """A character's profile; fields the API left empty are omitted."""
    embed = discord.Embed(
        title=safe_text(character.name, TITLE_LIMIT) or "Unknown character",
        description=safe_text(character.description, PROFILE_DESCRIPTION_LIMIT, multiline=True)
        or None,
        colour=BRAND_COLOUR,
    )
    _add_field(embed, "Source", safe_text(character.source, FIELD_VALUE_LIMIT))
    _add_field(embed, "Gender", safe_text(character.gender, FIELD_VALUE_LIMIT))
    if character.ages:
        _add_field(
            embed, "Age" if len(character.ages) == 1 else "Ages", _listing(map(str, character.ages))
        )
    _add_field(embed, "Birth date", safe_text(character.birth_date, FIELD_VALUE_LIMIT))
    _add_field(embed, "Nationality", safe_text(character.nationality, FIELD_VALUE_LIMIT))
    if character.occupations:
        _add_field(embed, "Occupations", _listing(character.occupations), inline=False)
    if character.image_count is not None:
        _add_field(embed, "Images", _count(character.image_count))
    embed.set_footer(text=_footer((f"Character {plain_text(character.id, 100)}",)))
    return embed


def category_list_embed(categories: Sequence[Category], page: int, pages: int) -> discord.Embed:
    """One page of categories with their descriptions; ``page`` is 1-based."""
    pages = max(1, pages)
    page = min(max(1, page), pages)
    lines: list[str] = []
    used = 0
    for index, category in enumerate(categories):
        line = f"**{safe_text(category.name, 100) or 'Unnamed'}**"
        details = []
        if category.image_count is not None:
            details.append(plural(category.image_count, "image"))
        if category.nsfw:
            details.append("NSFW")
        if details:
            line += f" ({', '.join(details)})"
        description = safe_text(category.description, CATEGORY_LINE_DESCRIPTION_LIMIT)
        if description:
            line += f" — {description}"
        rest = len(categories) - index - 1
        reserve = len(f"\n+{rest} more") if rest else 0
        if used + len(line) + 1 + reserve > DESCRIPTION_LIMIT:
            lines.append(f"+{len(categories) - index} more")
            break
        lines.append(line)
        used += len(line) + 1
    embed = discord.Embed(
        title="Categories",
        description="\n".join(lines) or "No categories on this page.",
        colour=BRAND_COLOUR,
    )
    embed.set_footer(text=f"Page {page} of {pages}")
    return embed


def tag_list_embed(tags: Sequence[tuple[str, int]], page: int, pages: int) -> discord.Embed:
    """One page of tags seen so far (v4 has no list of its own), each with how many images of
    those the bot fetched carried it; ``page`` is 1-based."""
    pages = max(1, pages)
    page = min(max(1, page), pages)
    lines = [f"**{safe_text(tag, 100) or '?'}** ({plural(n, 'image')})" for tag, n in tags]
    embed = discord.Embed(
        title="Tags",
        description=trim_markdown("\n".join(lines), DESCRIPTION_LIMIT) or "No tags on this page.",
        colour=BRAND_COLOUR,
    )
    embed.set_footer(
        text=f"Page {page} of {pages} · tags seen on the images fetched so far; "
        "use them in /neko random"
    )
    return embed


def stats_embed(stats: Stats, api_version: str | None) -> discord.Embed:
    """The API's totals and the share of each rating."""
    embed = discord.Embed(title="Nekos API statistics", colour=BRAND_COLOUR)
    _add_field(embed, "Images", _count(stats.images))
    for name, value in (
        ("Artists", stats.artists),
        ("Characters", stats.characters),
        ("Categories", stats.categories),
    ):
        if value is not None:
            _add_field(embed, name, _count(value))
    if stats.ratings:
        total = sum(stats.ratings.values())
        lines = []
        for key, n in sorted(stats.ratings.items(), key=lambda kv: _rating_order(kv[0])):
            share = f" ({n / total:.1%})" if total > 0 else ""
            lines.append(f"{_rating_label_for_key(key)}: {_count(n)}{share}")
        _add_field(embed, "Ratings", "\n".join(lines), inline=False)
    if api_version:
        embed.set_footer(text=_footer((f"API version {plain_text(api_version, 100)}",)))
    return embed


def _rating_order(key: str) -> tuple[int, int, str]:
    label = key.strip().lower()
    known = list(_API_RATINGS)
    return (
        _API_RATING_ORDER.get(label, 2),
        known.index(label) if label in known else len(known),
        key,
    )


@dataclass(frozen=True, slots=True)
class AboutInfo:
    """What ``/neko about`` reports; times in seconds, ``None`` where unknown."""

    bot_version: str
    api_version: str | None
    uptime_seconds: float
    guild_count: int
    queue_length: int
    estimated_wait: float | None
    last_error: str | None
    requests_sent: int
    minor_safety_refusals: int
    pooled_images: int | None = None
    """Images in the random pool now."""
    random_requests: int = 0
    served_from_stock: int = 0
    """``/neko random`` requests answered from the pool without waiting for the API."""
    busy_answers: int = 0
    """Lookups answered "busy, try again" instead of queueing."""
    last_error_at: dt.datetime | None = None
    blocked_until: dt.datetime | None = None
    """While the API (or the bot's own strike guard) has paused requests."""
    now: dt.datetime | None = None
    """The time of this report (for "recently"); defaults to the current time."""
    request_budget: str | None = None
    """Where the API request budget is kept, e.g. "shared via Redis with 2 other processes"."""
    sharing: str | None = None
    """Whether the image pool, lookups and cooldowns are shared now (``None``: no Redis)."""
    shards: str | None = None
    """The shards this process runs when it runs only some, e.g. "0-1 of 4"."""
    guild_total: int | None = None
    """Servers of every process together (approximate), when this process runs only some."""


RECENT_ERROR = dt.timedelta(minutes=5)
"""An API error this recent makes ``/neko about`` say the connection is having trouble."""


def api_health(info: AboutInfo) -> str:
    """The API connection's health in our own words (the API's error text is not shown)."""
    now = info.now or dt.datetime.now(dt.UTC)
    if info.blocked_until is not None and info.blocked_until > now:
        return f"paused until {discord.utils.format_dt(info.blocked_until, 't')}"
    if info.last_error_at is not None and now - info.last_error_at < RECENT_ERROR:
        return f"having trouble (last error {discord.utils.format_dt(info.last_error_at, 'R')})"
    return "working"


def about_embed(info: AboutInfo, *, details: bool = False) -> discord.Embed:
    """The bot's health: versions, uptime, servers, queue, API usage, safety refusals.

    ``details`` adds the API's last error message (escaped): for server managers only.
    """
    embed = discord.Embed(title="About this bot", colour=BRAND_COLOUR)
    # Field values render markdown: the API's version string is escaped like any API text.
    _add_field(embed, "Version", safe_text(info.bot_version, 100) or "unknown")
    _add_field(embed, "API version", safe_text(info.api_version, 100) or "unknown")
    _add_field(embed, "Uptime", format_duration(info.uptime_seconds))
    servers = _count(info.guild_count)
    if info.shards is not None:
        servers += f" on this process's shards ({info.shards})"
        if info.guild_total is not None:
            servers += f", about {_count(info.guild_total)} in all"
    _add_field(embed, "Servers", servers)
    queue = plural(info.queue_length, "request")
    if info.estimated_wait is not None and info.queue_length > 0:
        queue += f", about {format_duration(info.estimated_wait)} wait"
    _add_field(embed, "Queue", queue)
    _add_field(embed, "API connection", api_health(info))
    _add_field(embed, "API requests sent", _count(info.requests_sent))
    if info.pooled_images is not None:
        pool = plural(info.pooled_images, "image")
        if info.random_requests:
            share = 100 * info.served_from_stock / info.random_requests
            pool += f", {share:.0f}% of random requests answered from it"
        _add_field(embed, "Image pool", pool)
    _add_field(embed, "Busy answers", _count(info.busy_answers))
    if info.request_budget:
        _add_field(embed, "Request budget", safe_text(info.request_budget, FIELD_VALUE_LIMIT))
    if info.sharing:
        _add_field(embed, "Shared serving", safe_text(info.sharing, FIELD_VALUE_LIMIT))
    _add_field(embed, "Minor-safety refusals", _count(info.minor_safety_refusals))
    if details:
        _add_field(
            embed,
            "Last API error (only you can see this)",
            safe_text(info.last_error, FIELD_VALUE_LIMIT) or "none",
            inline=False,
        )
    return embed


# --------------------------------------------------------------------------- message limits


def embed_length(embed: discord.Embed) -> int:
    """Characters Discord counts against the 6000 limit: title, description, fields, footer, author.

    discord.py's ``len(embed)`` counts exactly these.
    """
    return len(embed)


def _clone(embed: discord.Embed) -> discord.Embed:
    # Embed.copy() shares the field dicts with the original; a deep copy keeps the input untouched.
    return discord.Embed.from_dict(copy.deepcopy(embed.to_dict()))


def _within_limits(embed: discord.Embed) -> bool:
    """Whether :func:`_clamp` would leave ``embed`` unchanged."""
    return (
        len(embed.title or "") <= TITLE_LIMIT
        and len(embed.description or "") <= DESCRIPTION_LIMIT
        and len(embed.fields) <= FIELD_COUNT_LIMIT
        and all(
            0 < len(f.name or "") <= FIELD_NAME_LIMIT
            and 0 < len(f.value or "") <= FIELD_VALUE_LIMIT
            for f in embed.fields
        )
        and len(embed.footer.text or "") <= FOOTER_LIMIT
        and len(embed.author.name or "") <= AUTHOR_LIMIT
    )


def _clamp(embed: discord.Embed) -> None:
    """Enforce the per-embed limits in place (builders here already do; callers may not)."""
    if embed.title:
        embed.title = trim_markdown(embed.title, TITLE_LIMIT)
    if embed.description:
        embed.description = trim_markdown(embed.description, DESCRIPTION_LIMIT)
    for index in range(len(embed.fields) - 1, FIELD_COUNT_LIMIT - 1, -1):
        embed.remove_field(index)
    for index, field in enumerate(embed.fields):
        embed.set_field_at(
            index,
            name=trim_markdown(field.name or "", FIELD_NAME_LIMIT) or ELLIPSIS,
            value=trim_markdown(field.value or "", FIELD_VALUE_LIMIT) or ELLIPSIS,
            inline=bool(field.inline),
        )
    if embed.footer.text and len(embed.footer.text) > FOOTER_LIMIT:
        embed.set_footer(text=trim(embed.footer.text, FOOTER_LIMIT), icon_url=embed.footer.icon_url)
    if embed.author.name and len(embed.author.name) > AUTHOR_LIMIT:
        embed.set_author(
            name=trim(embed.author.name, AUTHOR_LIMIT),
            url=embed.author.url,
            icon_url=embed.author.icon_url,
        )


# Texts trimmed below these many characters say nothing: descriptions go, fields are dropped.
_MIN_DESCRIPTION = 48
_MIN_FIELD_VALUE = 24


def _level(lengths: Sequence[int], excess: int, floor: int) -> int:
    """Largest cap (not below ``floor``) such that cutting every length to it frees ``excess``.

    Sharing the cut evenly keeps every embed informative instead of gutting the first one.
    """
    lo, hi = floor, max(lengths, default=floor)
    if sum(max(0, n - lo) for n in lengths) < excess:
        return floor
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shrink_descriptions(embeds: list[discord.Embed], excess: int) -> int:
    described = [e for e in embeds if e.description]
    cap = _level([len(e.description or "") for e in described], excess, _MIN_DESCRIPTION)
    for embed in described:
        current = embed.description or ""
        if len(current) > cap:
            embed.description = trim_markdown(current, cap)
            excess -= len(current) - len(embed.description)
    for embed in reversed(described):
        if excess <= 0:
            break
        excess -= len(embed.description or "")
        embed.description = None
    return excess


def _shrink_fields(embeds: list[discord.Embed], excess: int) -> int:
    slots = [(embed, i) for embed in embeds for i in range(len(embed.fields))]
    cap = _level([len(e.fields[i].value or "") for e, i in slots], excess, _MIN_FIELD_VALUE)
    for embed, index in slots:
        field = embed.fields[index]
        value = field.value or ""
        if len(value) > cap:
            new_value = trim_markdown(value, cap)
            embed.set_field_at(index, name=field.name, value=new_value, inline=bool(field.inline))
            excess -= len(value) - len(new_value)
    # Still too long: drop whole fields, last embed first, so the first images keep theirs.
    for embed in reversed(embeds):
        while excess > 0 and embed.fields:
            last = embed.fields[-1]
            excess -= len(last.name or "") + len(last.value or "")
            embed.remove_field(len(embed.fields) - 1)
    return excess


def _shrink_labels(embeds: list[discord.Embed], excess: int) -> int:
    # Last resort: footers, then authors, then titles, longest first, down to a few characters.
    for kind in ("footer", "author", "title"):
        for embed in sorted(embeds, key=lambda e: len(_label(e, kind)), reverse=True):
            if excess <= 0:
                return excess
            current = _label(embed, kind)
            target = max(len(current) - excess, min(len(current), 16))
            if target >= len(current):
                continue
            new = trim(current, target) if kind != "title" else trim_markdown(current, target)
            _set_label(embed, kind, new)
            excess -= len(current) - len(new)
    for embed in embeds:
        for kind in ("footer", "author", "title"):
            if excess <= 0:
                return excess
            current = _label(embed, kind)
            if current:
                _set_label(embed, kind, "")
                excess -= len(current)
    return excess


def _label(embed: discord.Embed, kind: str) -> str:
    if kind == "footer":
        return embed.footer.text or ""
    if kind == "author":
        return embed.author.name or ""
    return embed.title or ""


def _set_label(embed: discord.Embed, kind: str, text: str) -> None:
    if kind == "footer":
        if text:
            embed.set_footer(text=text, icon_url=embed.footer.icon_url)
        else:
            embed.remove_footer()
    elif kind == "author":
        if text:
            embed.set_author(name=text, url=embed.author.url, icon_url=embed.author.icon_url)
        else:
            embed.remove_author()
    else:
        embed.title = text or None


def fit_message(embeds: list[discord.Embed]) -> list[discord.Embed]:
    """At most 10 ``embeds``, each within its limits, all together ≤ 6000 characters.

    Descriptions shrink first (the longest cut to a shared length), then field values likewise,
    then whole fields go from the last embed backwards, and only then footers, authors and
    titles. Images are never touched.
    The input embeds are not modified: when they already fit they are returned as they are,
    otherwise copies are trimmed.
    """
    fits = len(embeds) <= EMBEDS_PER_MESSAGE and all(map(_within_limits, embeds))
    if fits and sum(embed_length(e) for e in embeds) <= TOTAL_LIMIT:
        # The common case: nothing to trim, so no copies (each costs a deep copy).
        return list(embeds)
    fitted = [_clone(embed) for embed in embeds[:EMBEDS_PER_MESSAGE]]
    for embed in fitted:
        _clamp(embed)
    excess = sum(embed_length(e) for e in fitted) - TOTAL_LIMIT
    for shrink in (_shrink_descriptions, _shrink_fields, _shrink_labels):
        if excess <= 0:
            break
        excess = shrink(fitted, excess)
    return fitted
