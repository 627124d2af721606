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
    "search_pattern",
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
