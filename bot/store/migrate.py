"""``python -m bot migrate-store``: copy every setting and the whole audit trail between stores.

The copy is one transaction on the target, keeps every audit entry's id, time and actor (so the
trail's order survives), and is read back and compared with the source before it is reported.
A target that already holds anything is refused unless the caller asks to replace it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot.database_url import parse_database_url

from . import open_store
from .base import StoreCounts, StoreError

__all__ = ["CopyReport", "copy_store"]


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_store` copied; ``str()`` is the line the command prints."""

    source: str
    target: str
    counts: StoreCounts

    def __str__(self) -> str:
        return (
            f"copied {self.counts} from {self.source} to {self.target} "
            "(read back from the target and verified)"
        )


async def copy_store(source_url: str, target_url: str, *, replace: bool = False) -> CopyReport:
    """Copy everything from ``source_url`` to ``target_url``.

    Raises ``ValueError`` for an unsupported URL, :class:`StoreNotEmptyError` if the target holds
    data and ``replace`` is false (nothing is written then), and :class:`StoreError` otherwise.
    """
    source = parse_database_url(source_url)
    target = parse_database_url(target_url)
    if (source.kind, source.location) == (target.kind, target.location):
        raise StoreError("--from and --to name the same database")
    if source.kind == "sqlite" and not await asyncio.to_thread(Path(source.location).is_file):
        # Opening it would create an empty database and copy nothing: almost surely a typo.
        raise StoreError(f"the source database {source.display} does not exist")
    async with open_store(source_url) as reader, open_store(target_url) as writer:
        snapshot = await reader.export_snapshot()
        if not snapshot.counts:
            raise StoreError(f"{source.display} holds no settings and no audit entries")
        await writer.import_snapshot(snapshot, replace=replace)
        copied = await writer.export_snapshot()
    if copied != snapshot:
        raise StoreError(
            f"the copy does not match: {target.display} now holds {copied.counts}, "
            f"the source {snapshot.counts}"
        )
    return CopyReport(source.display, target.display, snapshot.counts)
