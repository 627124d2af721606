"""A heartbeat file the bot touches while connected, and the check that reads it.

Docker's HEALTHCHECK runs ``python -m bot health`` in a separate process, so the running bot
leaves proof of life on disk rather than behind a port.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["HEARTBEAT_MAX_AGE", "check_heartbeat", "write_heartbeat"]

HEARTBEAT_INTERVAL = 30.0
HEARTBEAT_MAX_AGE = 120.0


def write_heartbeat(path: Path, *, connected: bool, now: float | None = None) -> None:
    """Record the time when connected; remove the file when not, so the check fails at once."""
    if not connected:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{time.time() if now is None else now:.3f}\n", encoding="utf-8")
    tmp.replace(path)


def check_heartbeat(
    path: Path, *, max_age: float = HEARTBEAT_MAX_AGE, now: float | None = None
) -> tuple[bool, str]:
    """(healthy, one-line reason)."""
    try:
        stamp = float(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the bot is not connected to Discord"
    except (OSError, ValueError):
        return False, f"heartbeat file {path} is unreadable"
    age = (time.time() if now is None else now) - stamp
    if age > max_age:
        return False, f"last heartbeat {age:.0f}s ago (limit {max_age:.0f}s): connection lost"
    return True, f"connected; heartbeat {age:.0f}s ago"
