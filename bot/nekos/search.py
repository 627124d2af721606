"""Search patterns for the Nekos API's ``search`` parameter.

The server matches ``search`` with SQL ``SIMILAR TO`` against the whole name, so plain user text
has to be escaped and wrapped as ``%text%`` to mean "names containing this text". A caller that
deliberately wants ``SIMILAR TO`` operators wraps its pattern in :class:`RawPattern`.
"""

from __future__ import annotations

__all__ = [
    "SIMILAR_TO_SPECIALS",
    "RawPattern",
    "escape_similar_to",
    "name_pattern",
    "search_pattern",
    "utf16_length",
]

# Characters SIMILAR TO treats as operators, plus the escape character itself.
SIMILAR_TO_SPECIALS = frozenset("%_|*+?{}()[]\\")


class RawPattern(str):
    """A ``SIMILAR TO`` pattern the caller means literally; it is sent unescaped and unwrapped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"RawPattern({str.__repr__(self)})"


def escape_similar_to(text: str) -> str:
    """Escape every ``SIMILAR TO`` operator in ``text`` with a backslash.

    Only the operators are escaped: a backslash before a letter could mean a regex class
    (``\\d``) to the server, so ordinary characters are left alone.
    """
    return "".join(f"\\{ch}" if ch in SIMILAR_TO_SPECIALS else ch for ch in text)


def search_pattern(query: str) -> str:
    """The pattern to send for ``query``: a :class:`RawPattern` as is, plain text as ``%text%``."""
    if isinstance(query, RawPattern):
        return str(query)
    return f"%{escape_similar_to(query)}%"


def utf16_length(text: str) -> int:
    """``text.length`` in JavaScript (the server's language): UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def name_pattern(name: str, max_length: int) -> RawPattern:
    """A pattern of at most ``max_length`` UTF-16 units matching names that contain ``name``.

    Every ``SIMILAR TO`` operator in ``name`` becomes ``_`` (any one character) instead of a
    two-character escape, so a name full of punctuation still fits the server's short limit;
    a name too long for it is cut, so the pattern finds a superset and the caller picks the
    exact name from the results.
    """
    core = "".join("_" if ch in SIMILAR_TO_SPECIALS else ch for ch in name.strip())
    while core and utf16_length(core) + 2 > max_length:
        core = core[:-1]
    return RawPattern(f"%{core}%")
