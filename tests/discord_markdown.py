"""How Discord reads a message the bot sends: checks that third-party text cannot shape it.

This is a small model of Discord's markdown written from its rules, not from :mod:`bot.text`, so
that tests can tell whether a payload *renders* a mention, a link or formatting:

- a backslash escapes the next character unless it is an ASCII letter, a digit or whitespace;
- inside an inline code span nothing renders;
- links are masked links ``[x](…)``, ``<…>`` autolinks and bare ``scheme://…``;
- mentions and pills are ``@everyone``, ``@here`` and anything starting ``<@``, ``<#``, ``</``,
  ``<t:``, ``<:`` or ``<a:``;
- headings, subtext, block quotes and lists live at the start of a line.

:func:`payload_problems` applies all of it (and Discord's limits) to a whole ``Reply.payload()``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tests.fakes.discord_payloads import message_problems

__all__ = [
    "forbidden_characters",
    "links",
    "markdown_left",
    "mentions",
    "payload_problems",
    "shown",
    "unescaped",
    "url_problem",
]

HIDDEN = "\ue000"  # stands for an escaped character or a code span in the unescaped view

# Zero-width and invisible characters that are not Cc/Cf/Zl/Zp (those are refused by category):
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian selectors, blank
# Braille, variation selectors, tags.
_INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}
_INVISIBLE_RANGES = ((0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0000, 0xE0FFF))
_PRESENTATION = "\ufe0e\ufe0f"

_MENTION = re.compile(r"@everyone|@here|<(?:@|#|/|t:|a?:)")
_SCHEME_LINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_MASKED_LINK = re.compile(r"\]\(")
# Each marker needs a space after it ("#" alone on a line, "0.1.0" or "-5" stay text).
_LINE_START = re.compile(r"^[^\S\n]*(?:#{1,6} |-# |>|[-*+] |[0-9]+\. )", re.MULTILINE)
# simple-markdown's inline code rule, which Discord uses.
_CODE_SPAN = re.compile(r"(`+)[\s\S]*?[^`]\1(?!`)")
_EMPHASIS = re.compile(r"[*_~|`]")
# A bold name: the bot's own formatting (category and tag lists, the closest-name note). Text
# from elsewhere is escaped whole, so an unescaped pair of ** can only be the bot's.
_OWN_BOLD = re.compile(r"\*\*[^*\n]+\*\*")
# A safe URL, spelled out independently: http(s), an ASCII host, no markdown, no "@", no
# non-ASCII.
_SAFE_URL = re.compile(
    r"https?://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]+)?"
    r"(?:[/?#][!#$%&'+,\-./0-9:;=?A-Za-z]*)?"
)
_ESCAPED = re.compile(r"\\([^0-9A-Za-z\s])")
_ATTACHMENT = re.compile(r"attachment://[A-Za-z0-9.-]+")


def unescaped(text: str, *, code_spans: bool = True) -> str:
    """``text`` as Discord's parser sees its syntax: every escaped character, and (unless
    ``code_spans`` is false) every inline code span, replaced by :data:`HIDDEN`.

    Read left to right as the parser does: a code span starts at an unescaped backtick and
    ends at the matching one, whatever backslashes stand inside it.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch == "\\" and nxt and not (nxt.isascii() and nxt.isalnum()) and not nxt.isspace():
            out.append(HIDDEN)
            i += 2
            continue
        span = _CODE_SPAN.match(text, i) if code_spans and ch == "`" else None
        if span is not None:
            out.append(HIDDEN)
            i = span.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def shown(text: str) -> str:
    """The characters a member reads: ``text`` with its escaping backslashes consumed."""
    return _ESCAPED.sub(r"\1", text)


def mentions(text: str) -> list[str]:
    """Mentions and pills that would render in ``text`` (a markdown surface)."""
    return _MENTION.findall(unescaped(text))


def links(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Clickable links in ``text`` besides ``<url>`` for each ``allowed`` URL."""
    view = unescaped(text)
    for url in allowed:
        view = view.replace(f"<{url}>", HIDDEN)
    found = _SCHEME_LINK.findall(view) + _MASKED_LINK.findall(view)
    found += [ch for ch in view if ch in "<>"]
    return found


def markdown_left(text: str) -> list[str]:
    """Formatting the text would get: emphasis/code/spoiler marks, headings, quotes, lists
    (the bot's own ``**name**`` is allowed)."""
    view = _OWN_BOLD.sub(HIDDEN, unescaped(text))
    return _EMPHASIS.findall(view) + _LINE_START.findall(view)


def _invisible(cp: int) -> bool:
    return cp in _INVISIBLE or any(low <= cp <= high for low, high in _INVISIBLE_RANGES)


def _symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Cn") or ord(ch) >= 0x1F000 or ch == "\ufe0f"


def forbidden_characters(text: str, *, newlines: bool = False) -> list[str]:
    """Characters from the forbidden classes: control (``\\n`` only where ``newlines``), format
    (zero-width, bidi, soft hyphen, BOM, tags), separators other than a space, surrogates,
    noncharacters, other invisible ones, and marks stacked more than four deep. A zero-width
    joiner between two symbols (an emoji sequence) and one presentation selector after a visible
    character are allowed."""
    bad: list[str] = []
    marks = 0
    for i, ch in enumerate(text):
        cp = ord(ch)
        category = unicodedata.category(ch)
        marks = marks + 1 if category in ("Mn", "Me", "Mc") else 0
        if marks > 4:
            bad.append(f"mark stack at {i}")
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch == "\n" and newlines:
            continue
        if ch == "\u200d" and prev and nxt and _symbol(prev) and _symbol(nxt):
            continue
        if (
            ch in _PRESENTATION
            and prev
            and unicodedata.category(prev)[0] not in "MCZ"
            and not _invisible(ord(prev))
        ):
            continue
        if (
            category in ("Cc", "Cf", "Cs", "Zl", "Zp")
            or (category == "Zs" and ch != " ")
            or _invisible(cp)
            or (cp & 0xFFFE) == 0xFFFE
            or 0xFDD0 <= cp <= 0xFDEF
        ):
            bad.append(f"U+{cp:04X} at {i}")
    return bad


def url_problem(url: Any, *, attachments: Iterable[str] = (), limit: int = 2048) -> str | None:
    """Why ``url`` is not a safe link (``None`` when it is)."""
    if not isinstance(url, str):
        return f"{url!r} is not a string"
    if _ATTACHMENT.fullmatch(url):
        name = url.removeprefix("attachment://")
        return None if name in set(attachments) else f"{url} names no attached file"
    if not _SAFE_URL.fullmatch(url):
        return f"{url!r} is not a plain http(s) URL"
    if len(url) > limit:
        return f"URL of {len(url)} chars > {limit}"
    return None


def _texts(payload: Mapping[str, Any]) -> Iterator[tuple[str, str, bool, bool]]:
    """(where, text, renders markdown, may hold line breaks) for every text a member sees."""
    yield "content", payload.get("content") or "", True, True
    for e, embed in enumerate(payload.get("embeds") or []):
        yield f"embeds[{e}].title", embed.get("title") or "", True, False
        yield f"embeds[{e}].description", embed.get("description") or "", True, True
        for f, field in enumerate(embed.get("fields") or []):
            yield f"embeds[{e}].fields[{f}].name", field.get("name") or "", True, False
            yield f"embeds[{e}].fields[{f}].value", field.get("value") or "", True, True
        yield f"embeds[{e}].footer", (embed.get("footer") or {}).get("text") or "", False, False
        yield f"embeds[{e}].author", (embed.get("author") or {}).get("name") or "", False, False
    for r, row in enumerate(payload.get("components") or []):
        for c, item in enumerate(row.get("components") or []):
            yield f"components[{r}][{c}].label", item.get("label") or "", False, False


def _urls(payload: Mapping[str, Any]) -> Iterator[tuple[str, Any, int]]:
    for e, embed in enumerate(payload.get("embeds") or []):
        for key in ("url",):
            if key in embed:
                yield f"embeds[{e}].url", embed[key], 2048
        for part in ("author", "footer", "image", "thumbnail"):
            for key in ("url", "icon_url", "proxy_url"):
                if key in (embed.get(part) or {}):
                    yield f"embeds[{e}].{part}.{key}", embed[part][key], 2048
    for r, row in enumerate(payload.get("components") or []):
        for c, item in enumerate(row.get("components") or []):
            if "url" in item:
                yield f"components[{r}][{c}].url", item["url"], 512


def payload_problems(payload: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a ``Reply.payload()``: Discord's limits, unsafe URLs, and any
    mention, link (besides ``<url>`` of the message's own links), formatting or forbidden
    character that third-party text could have put there."""
    files = [a["filename"] for a in payload.get("attachments") or []]
    problems = message_problems(payload, creating=True, file_count=len(files))
    own: list[str] = []
    for where, url, limit in _urls(payload):
        problem = url_problem(url, attachments=files, limit=limit)
        if problem:
            problems.append(f"{where}: {problem}")
        elif isinstance(url, str) and url.startswith("http"):
            own.append(url)
    for where, text, markdown, multiline in _texts(payload):
        problems += [f"{where}: {bad}" for bad in forbidden_characters(text, newlines=multiline)]
        if not markdown:
            continue
        problems += [f"{where}: mention {m!r}" for m in mentions(text)]
        problems += [f"{where}: link {m!r}" for m in links(text, own)]
        problems += [f"{where}: markdown {m!r}" for m in markdown_left(text)]
    return problems
