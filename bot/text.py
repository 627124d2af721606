"""Small text helpers for showing untrusted API text on Discord: escape, trim, pluralise.

Lengths are counted in code points, as Discord and discord.py count them for embed limits.
"""

from __future__ import annotations

import re
import unicodedata

from discord.utils import escape_markdown

__all__ = [
    "ELLIPSIS",
    "escape",
    "format_duration",
    "plain_text",
    "plural",
    "safe_text",
    "trim",
    "trim_markdown",
]

ELLIPSIS = "…"

# Any user/role/everyone/here mention, whatever the id length (discord.py's own helper needs 17-20
# digits, which leaves short fake ids such as <@123> rendering as mentions in embeds).
_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]+)")
# Channel and slash-command mentions render as clickable pills too.
_PILL = re.compile(r"<([#/])")
_ZWSP = "\u200b"
_WHITESPACE_RUN = re.compile(r"\s+")

# Code points that glue onto the one before them: cutting just before one splits a character.
_JOINERS = frozenset({"\u200d", "\u20e3"})  # zero-width joiner, combining keycap
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)
_TAGS = range(0xE0020, 0xE0080)  # emoji tag sequences (subdivision flags)
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)


def _attaches_to_previous(ch: str) -> bool:
    cp = ord(ch)
    return (
        ch in _JOINERS
        or unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or cp in _SKIN_TONES
        or cp in _VARIATION_SELECTORS
        or cp in _TAGS
    )


def _cut_point(text: str, at: int) -> int:
    """Largest index ``<= at`` that does not split a user-perceived character (approximately)."""
    at = max(0, min(at, len(text)))
    while 0 < at < len(text):
        if _attaches_to_previous(text[at]) or text[at - 1] == "\u200d":
            at -= 1
            continue
        if ord(text[at]) in _REGIONAL_INDICATORS and ord(text[at - 1]) in _REGIONAL_INDICATORS:
            # Flags are pairs of regional indicators: count the run to know whether we split one.
            start = at - 1
            while start > 0 and ord(text[start - 1]) in _REGIONAL_INDICATORS:
                start -= 1
            if (at - start) % 2 == 1:
                at -= 1
                continue
        break
    return at


def trim(text: str, limit: int) -> str:
    """Return ``text`` if it fits ``limit`` characters, else cut it and end it with ``…``.

    The cut never splits a base character from its combining marks or an emoji sequence.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    head = text[: _cut_point(text, limit - len(ELLIPSIS))].rstrip()
    return head + ELLIPSIS


def trim_markdown(text: str, limit: int) -> str:
    """Like :func:`trim` for already-escaped text: never leave a dangling ``\\`` before ``…``."""
    if len(text) <= limit:
        return text
    trimmed = trim(text, limit)
    if not trimmed.endswith(ELLIPSIS):
        return trimmed
    head = trimmed[: -len(ELLIPSIS)]
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2 == 1:
        # The cut fell between a backslash and the character it escaped.
        head = head[:-1].rstrip()
    return head + ELLIPSIS


def escape(text: str) -> str:
    """Escape Discord markdown and neutralise mentions so ``text`` shows literally."""
    escaped = escape_markdown(text)
    escaped = _MENTION.sub(lambda m: "@" + _ZWSP + m.group(1), escaped)
    return _PILL.sub(lambda m: "<" + _ZWSP + m.group(1), escaped)


def safe_text(text: str | None, limit: int) -> str:
    """Escape ``text`` (see :func:`escape`) and fit it in ``limit`` characters with ``…``.

    Trimming happens on the raw text before escaping, so an escape sequence is never cut in half;
    the result is re-measured until it fits.
    """
    if not text or limit <= 0:
        return ""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    budget = limit - len(ELLIPSIS)
    keep = min(len(text), budget)
    while keep > 0:
        keep = _cut_point(text, keep)
        candidate = escape(text[:keep].rstrip())
        overflow = len(candidate) - budget
        if overflow <= 0:
            return candidate + ELLIPSIS
        keep -= overflow
    return ELLIPSIS


def plain_text(text: str | None, limit: int) -> str:
    """One line of text for places Discord shows without markdown (author, footer, choice names).

    Whitespace runs (including newlines) collapse to one space; the result is trimmed to ``limit``.
    """
    if not text:
        return ""
    return trim(_WHITESPACE_RUN.sub(" ", text).strip(), limit)


def plural(n: int, word: str, plural_word: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1,234 images``; pass ``plural_word`` for irregular plurals."""
    noun = word if n == 1 else (plural_word or word + "s")
    return f"{n:,} {noun}"


_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """A short human duration with the two largest units: ``2h 5m``, ``3d 4h``, ``45s``, ``0s``."""
    remaining = max(0, round(seconds))
    parts: list[str] = []
    for suffix, size in _UNITS:
        amount, remaining = divmod(remaining, size)
        if amount or parts:
            parts.append(f"{amount}{suffix}")
        if len(parts) == 2:
            break
    parts = [p for p in parts if not p.startswith("0")] or ["0s"]
    return " ".join(parts)
