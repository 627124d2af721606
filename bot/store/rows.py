"""What every SQL query module of the store shares: the transaction protocol and row values."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from bot.nekos.models import Rating

__all__ = ["Row", "Tx", "rating_from_db"]

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class Tx(Protocol):
    """A backend's connection inside a transaction (or, for reads, a plain connection)."""

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """Rows of ``sql`` as tuples."""

    async def execute(self, sql: str, *args: object) -> int:
        """Run ``sql``; the number of rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run ``sql`` once per parameter row."""


def rating_from_db(value: object) -> Rating | None:
    """A stored label; an unreadable one is treated as the most restrictive setting, ``sfw``."""
    if value is None:
        return None
    try:
        return Rating.from_label(str(value))
    except ValueError:
        log.warning("unreadable rating %r in the settings database; using sfw", value)
        return Rating.SFW
