"""A heartbeat file the bot touches while connected, the check that reads it, and probes of
the shared services.

Docker's HEALTHCHECK runs ``python -m bot health`` in a separate process, so the running bot
leaves proof of life on disk rather than behind a port. That command stays light: this module
imports neither discord nor aiohttp, and the PostgreSQL and Redis clients only when configured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .config import Settings
from .database_url import DatabaseTarget, parse_database_url

__all__ = [
    "HEARTBEAT_MAX_AGE",
    "SERVICE_TIMEOUT",
    "ServiceCheck",
    "check_heartbeat",
    "check_services",
    "write_heartbeat",
]

HEARTBEAT_INTERVAL = 30.0
HEARTBEAT_MAX_AGE = 120.0
SERVICE_TIMEOUT = 3.0
"""Seconds each shared service has to answer (Docker's HEALTHCHECK allows 10 in all)."""
# What the bot does while a shared service is away: why health does not fail for it.
_WITHOUT = {
    "postgresql": "until it is back, every channel shows sfw only and settings changes are refused",
    "redis": (
        "until it is back, the request budget is on the data folder or paused, and each process"
        " serves from its own image pool, caches and cooldowns"
    ),
}


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


@dataclass(frozen=True, slots=True)
class ServiceCheck:
    """One shared service as ``health`` found it; ``line`` is for operators (no password)."""

    service: str
    reachable: bool
    line: str


def _reason(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


async def _probe(
    service: str, where: str, probe: Awaitable[None], secrets: tuple[str, ...], seconds: float
) -> ServiceCheck:
    try:
        async with asyncio.timeout(seconds):
            await probe
    except Exception as exc:  # any failure means "not usable now"; the line says which
        reason = "no answer" if isinstance(exc, TimeoutError) else _reason(exc, secrets)
        line = f"{service}: unreachable at {where} ({reason}); {_WITHOUT[service]}"
        return ServiceCheck(service, False, line)
    return ServiceCheck(service, True, f"{service}: reachable at {where}")


async def _select_one(target: DatabaseTarget, seconds: float) -> None:
    import asyncpg  # only when PostgreSQL is configured

    conn = await asyncpg.connect(target.location, timeout=seconds)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close(timeout=seconds)


async def _ping(url: str, seconds: float) -> None:
    import redis.asyncio as aioredis  # only when Redis is configured

    client = aioredis.Redis.from_url(url, socket_timeout=seconds, socket_connect_timeout=seconds)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def check_services(
    settings: Settings, *, seconds: float = SERVICE_TIMEOUT
) -> list[ServiceCheck]:
    """Probe each configured shared service at once: PostgreSQL (connect, ``SELECT 1``) and
    Redis (``PING``), each within ``seconds``. None configured: an empty list."""
    probes: list[Awaitable[ServiceCheck]] = []
    target = parse_database_url(settings.database_url)
    if target.kind == "postgresql":
        query = _select_one(target, seconds)
        probes.append(_probe("postgresql", target.display, query, target.secrets, seconds))
    if settings.redis_url is not None and settings.redis_location is not None:
        url = settings.redis_url.reveal()
        password = urlsplit(url).password
        secrets = (password,) if password else ()
        probes.append(
            _probe("redis", settings.redis_location, _ping(url, seconds), secrets, seconds)
        )
    return list(await asyncio.gather(*probes))
