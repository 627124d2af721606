"""The Nekos API request budget every process of the project shares, built from the settings.

The bot, ``preview``, ``check`` and the benchmarks all open it here, so that processes on one
egress address keep to one budget: through the data folder (``DATA_DIR``) by default, through
Redis when ``REDIS_URL`` is set (falling back to the data folder, or pausing, while Redis is
unreachable). ``NEKOS_API_SOURCE_ADDRESS`` binds the API connections to one local address and
gives that address a budget of its own.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp

from .config import Settings
from .nekos.ledger import BUDGET_FILE, BudgetLedger, SqliteLedger
from .nekos.pacing import Pacer, PacerState

__all__ = ["RequestBudget", "budget_key", "describe_budget", "open_budget"]


def budget_key(settings: Settings) -> str:
    """The budget's name: the egress address, the API host (with its port) and version.

    v1 and v4 (even on one host), or a fake API on another port, are counted apart by their
    servers, so they get budgets of their own; so does each ``NEKOS_API_SOURCE_ADDRESS``.
    """
    host = urlsplit(settings.nekos_api_base_url).netloc.lower()
    return f"{settings.source_address or 'default'}@{host}/{settings.nekos_api_version}"


@dataclass(slots=True)
class RequestBudget:
    """An open budget: its ledger, key and this process's name in it. Close it when done."""

    ledger: BudgetLedger
    key: str
    owner: str
    location: str
    """Where it is kept, for operators: the file, or Redis's address (never its password)."""
    source_address: str | None = None

    def pacer(self, **options: Any) -> Pacer:
        """A :class:`Pacer` for this process that shares the budget (``options``: Pacer's)."""
        return Pacer(ledger=self.ledger, budget_key=self.key, owner=self.owner, **options)

    def session(self, **options: Any) -> aiohttp.ClientSession:
        """An HTTP session whose connections leave from the budget's source address."""
        if self.source_address is not None and "connector" not in options:
            options["connector"] = aiohttp.TCPConnector(local_addr=(self.source_address, 0))
        return aiohttp.ClientSession(**options)

    async def close(self) -> None:
        await self.ledger.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def open_budget(settings: Settings) -> RequestBudget:
    """The budget the settings describe: the data folder's ledger, or Redis over it."""
    local = SqliteLedger(settings.data_dir / BUDGET_FILE)
    ledger: BudgetLedger = local
    location = str(local.path)
    if settings.redis_url is not None:
        # Imported only when configured: a bot without Redis never loads the client.
        from .nekos.ledger.failover import FailoverLedger
        from .nekos.ledger.redis_ledger import RedisLedger

        remote = RedisLedger.from_url(settings.redis_url.reveal(), prefix=settings.redis_key_prefix)
        ledger = FailoverLedger(remote, local)
        location = f"Redis at {settings.redis_location}, else {location}"
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return RequestBudget(ledger, budget_key(settings), owner, location, settings.source_address)


def describe_budget(state: PacerState) -> str:
    """One line for ``/neko about`` and ``check``: "shared via Redis with 2 other processes"."""
    peers = state.budget_peers
    if not peers:
        return state.budget
    return f"{state.budget} with {peers} other process{'es' if peers != 1 else ''}"
