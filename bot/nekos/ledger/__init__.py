"""Where processes sharing one request budget record it: in memory, a data-folder file, Redis.

See :mod:`bot.nekos.ledger.base` for the rules every ledger keeps.
"""

from __future__ import annotations

from .base import (
    DEFAULT_STRIKE_WINDOW,
    BudgetHealth,
    BudgetLedger,
    Claim,
    KeyState,
    LedgerUnavailable,
    MemoryLedger,
    StrikeResult,
    Verdict,
    VerdictKind,
)
from .sqlite_ledger import BUDGET_FILE, SqliteLedger

__all__ = [
    "BUDGET_FILE",
    "DEFAULT_STRIKE_WINDOW",
    "BudgetHealth",
    "BudgetLedger",
    "Claim",
    "KeyState",
    "LedgerUnavailable",
    "MemoryLedger",
    "SqliteLedger",
    "StrikeResult",
    "Verdict",
    "VerdictKind",
]
