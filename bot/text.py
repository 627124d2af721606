"""The two rules for anything a third party wrote, plus trimming and small formatters.

Everything the Nekos API sends (names, descriptions, sources, ids, URLs) and everything a member
types is untrusted. Before Discord sees it, it passes one of these:

- **URLs** — :func:`safe_url`: ``http``/``https`` with a real host, nothing invisible, and every
  character Discord's markdown reacts to percent-encoded; a URL that cannot be made so is
  dropped (``None``), never shown raw.
- **Text** — :func:`clean` drops control, format (zero-width, bidirectional), separator and other
  invisible characters. On top of it, :func:`safe_text` (surfaces that render markdown: titles,
  descriptions, field values) escapes markdown, mentions, masked and bare links, headings,
  quotes and lists, then fits the limit *after* escaping; :func:`plain_text` (surfaces that
  render none: footers, author names, button labels, autocomplete choices) only cleans and
  trims; :func:`quote` shows member input inside an inline code span of a message's content.

Lengths are counted in code points, as Discord and discord.py count them for embed limits.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import idna
import regex

__all__ = [
    "BUTTON_URL_LIMIT",
    "ELLIPSIS",
    "URL_LIMIT",
    "clean",
    "escape",
    "format_duration",
    "plain_text",
    "plural",
    "quote",
    "safe_text",
    "safe_url",
    "trim",
    "trim_markdown",
]

ELLIPSIS = "…"
URL_LIMIT = 2048
"""Longest URL Discord accepts in an embed (its url, author url, image)."""
BUTTON_URL_LIMIT = 512
"""Longest URL Discord accepts on a link button."""

# --------------------------------------------------------------------------- the text rule

# Line breaks of every kind: in one-line text they become spaces, in multi-line text "\n".
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# Control (Cc, "\n" aside), format (Cf: zero-width, bidi overrides and isolates, soft hyphen,
# BOM, tags), surrogates, noncharacters, and whatever Unicode says renders as nothing (Hangul
# fillers, Mongolian and Khmer invisibles, variation selectors), plus the blank Braille pattern
# used to fake empty names. Two things in that class are kept: a zero-width joiner *between
# emoji* (👩‍💻 stays one picture; there it can neither hide text nor reorder it, so it is harmless
# in a name) and one presentation selector right after a visible character (❤️). Dropping the
# rest also undoes hidden tag text and variation-selector smuggling; the price is that a
# subdivision flag (🏴 + tags) shows as a plain black flag.
_INVISIBLE = (
    r"\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}"
    r"\p{Default_Ignorable_Code_Point}\u2800"
)
_UNSEEN = regex.compile(
    r"(?P<keep>(?<=[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F])\u200D"
    r"(?=\p{Extended_Pictographic})"
    r"|(?<=[^\p{M}\s" + _INVISIBLE + r"])[\uFE0E\uFE0F])"
    r"|(?!\n)[" + _INVISIBLE + "]"
)
# Stacked combining marks ("Zalgo") spill over the lines around them: a few are real writing.
_MARK_STACK = regex.compile(r"(\p{M}{4})\p{M}+")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")

# Markdown and mention syntax, escaped with a backslash wherever it appears: emphasis, code,
# spoilers, masked links, block quotes, mentions and every <…> pill (<@1>, <#1>, </cmd:1>,
# <t:1>, <:emoji:1>), the backslash itself, and "://" so no bare URL turns into a link.
_MARKDOWN = re.compile(r"[\\*_~|`<>\[\]@]|:(?=//)")
# Headings (#, ##, ###, -#), lists (-, +, 1.) at the start of a line: each needs a space after
# it, so "0.1.0" or "-5" stay as they are.
_LINE_START = re.compile(r"^([^\S\n]*)(#{1,6}(?= )|-#(?= )|[+-](?= )|[0-9]+(?=\. ))", re.MULTILINE)
_CODE_TICK = "ˋ"  # U+02CB looks like a backtick but cannot close a code span


def clean(text: str | None, *, multiline: bool = False) -> str:
    """``text`` without invisible characters, its whitespace tidied, no markdown touched.

    Whitespace runs become one space; line breaks too unless ``multiline`` (then at most one
    blank line in a row survives). Runs of more than four combining marks are cut to four.
    """
    if not text:
        return ""
    text = _LINE_BREAK.sub("\n" if multiline else " ", text.replace("\t", " "))
    # Until nothing changes: dropping a character can leave a joiner or selector it carried.
    while (seen := _UNSEEN.sub(lambda m: m.group("keep") or "", text)) != text:
        text = seen
    text = _MARK_STACK.sub(r"\1", text)
    text = _SPACES.sub(" ", text)
    if multiline:
        text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
    return text.strip()


def _line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    # "1." is a list when the dot is bare: a backslash before a digit would escape nothing.
    return indent + (marker + "\\" if marker[0].isdigit() else "\\" + marker)


def _escape_clean(text: str) -> str:
    return _LINE_START.sub(_line_start, _MARKDOWN.sub(lambda m: "\\" + m.group(0), text))


def escape(text: str | None, *, multiline: bool = False) -> str:
    """:func:`clean` ``text``, then escape what Discord would render, so it shows literally."""
    return _escape_clean(clean(text, multiline=multiline))


def safe_text(text: str | None, limit: int, *, multiline: bool = False) -> str:
    """``text`` for a surface that renders markdown, within ``limit`` characters *as escaped*.

    When it must be cut, the clean text is cut (never inside a character sequence) and the cut
    escaped again, so an escape sequence is never split; the longest such cut that fits with its
    ``…`` wins (escaping a longer cut never gives a shorter result, so a bisection finds it).
    """
    if not text or limit <= 0:
        return ""
    plain = clean(text, multiline=multiline)
    escaped = _escape_clean(plain)
    if len(escaped) <= limit:
        return escaped
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    budget = limit - len(ELLIPSIS)
    low, high = 0, min(len(plain), budget)
    while low < high:
        middle = (low + high + 1) // 2
        if len(_escape_clean(plain[:middle].rstrip())) <= budget:
            low = middle
        else:
            high = middle - 1
    return _escape_clean(plain[: _cut_point(plain, low)].rstrip()) + ELLIPSIS


def plain_text(text: str | None, limit: int) -> str:
    """One clean line for surfaces Discord shows without markdown (author, footer, labels,
    autocomplete choices), trimmed to ``limit``."""
    return trim(clean(text), limit)


def quote(text: str | None, limit: int) -> str:
    """Member (or API) text inside an inline code span, for a message's content.

    Nothing renders inside a code span (no markdown, mention or link); a backtick, the one thing
    that could end it early, is shown as a look-alike. ``limit`` counts the text, not the ticks.
    """
    shown = plain_text(text, limit).replace("`", _CODE_TICK)
    return f"`{shown}`" if shown else '""'


# --------------------------------------------------------------------------- the URL rule

# Allowed as they are in a path, query or fragment: unreserved and sub-delimiter characters
# (RFC 3986) minus those markdown reacts to (( ) * _ ~ are encoded, and @ so that no
# "@everyone" shows even if a client does not take the text for a link), and "%" of an existing
# escape. Everything else, non-ASCII included, is percent-encoded as UTF-8.
_URL_KEEP = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!$&'+,;=:/?%"
)
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TOP_LEVEL = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
)
_URL_UNSAFE = regex.compile(r"[\s" + _INVISIBLE + "]")


def _encode(part: str) -> str:
    part = _BARE_PERCENT.sub("%25", part)
    return "".join(
        ch if ch in _URL_KEEP else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "replace"))
        for ch in part
    )


def _ascii_host(host: str) -> str | None:
    """The host in ASCII (IDNA for international names), or None unless it is a dotted IPv4
    address or a name with a top-level domain (what Discord turns into a link)."""
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    host = host.lower()
    if _IPV4.fullmatch(host):
        return host
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not _TOP_LEVEL.fullmatch(labels[-1]):
        return None
    return host if all(_HOST_LABEL.fullmatch(label) for label in labels) else None


def safe_url(url: str | None, *, limit: int = URL_LIMIT) -> str | None:
    """``url`` made safe to show and link on Discord, or ``None`` when it cannot be.

    Accepted: ``http``/``https``, a host name with a top-level domain or a dotted IPv4 address
    (international names in their ``xn--`` form, which also shows look-alike letters for what
    they are), an optional port.
    Refused: any other scheme, whitespace or an invisible character anywhere (see :func:`clean`),
    a ``user@`` part (``https://discord.com@evil.example`` goes to evil.example), IPv6 literals
    (their brackets are markdown), and a result longer than ``limit``. The path, query and
    fragment keep their meaning, but markdown characters (``< > ( ) [ ] ` * _ | ~``), ``@``,
    quotes, backslashes and non-ASCII are percent-encoded, so the URL cannot end a ``<link>`` or a
    masked link early, nor carry formatting.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or _URL_UNSAFE.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc:
        return None
    host = _ascii_host(parts.hostname or "")
    if host is None:
        return None
    safe = f"{parts.scheme.lower()}://{host}"
    if port is not None:
        safe += f":{port}"
    safe += _encode(parts.path)
    if parts.query:
        safe += "?" + _encode(parts.query)
    if parts.fragment:
        safe += "#" + _encode(parts.fragment)
    return safe if len(safe) <= limit else None


# --------------------------------------------------------------------------- trimming

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


# --------------------------------------------------------------------------- formatting


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
