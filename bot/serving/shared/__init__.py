"""Serving state shared by every process through Redis (``REDIS_URL``): lookups and cooldowns.

* :class:`~.lookups.SharedLookups` — the Redis tier under the in-process lookup cache: an answer
  fetched by one process serves the others, a lookup asked for in several processes at once
  costs one upstream call.
* :class:`~.cooldown.SharedCooldown` — a member's cooldown holds whichever process answers.
* :class:`~.link.RedisLink` — the one client both use, with short timeouts and a circuit: while
  Redis is unreachable both serve from this process's memory, logged once on loss and once on
  recovery.
* :mod:`.codec` — JSON round-trips of the lookup models.

Without ``REDIS_URL`` none of this is loaded (nor the Redis client) and serving stays
in-process, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.config import Settings

from ..cooldown import Cooldown

if TYPE_CHECKING:
    from .cooldown import SharedCooldown
    from .link import RedisLink
    from .lookups import SharedLookups

__all__ = ["SharedServing", "api_namespace", "open_shared"]


def api_namespace(settings: Settings) -> str:
    """Answers of one API (host with port, and version) are shared; other APIs' are not."""
    host = urlsplit(settings.nekos_api_base_url).netloc.lower()
    return f"{host}/{settings.nekos_api_version}"


@dataclass(slots=True)
class SharedServing:
    """The open link and what is shared through it. Close it when done."""

    link: RedisLink
    lookups: SharedLookups
    _cooldowns: list[SharedCooldown] = field(default_factory=list)

    def cooldown(self, local: Cooldown) -> SharedCooldown:
        """A member cooldown shared through Redis, ``local`` answering while Redis cannot."""
        from .cooldown import SharedCooldown

        cooldown = SharedCooldown(self.link, local)
        self._cooldowns.append(cooldown)
        return cooldown

    @property
    def cooldown_fallbacks(self) -> int:
        """Cooldown checks and refunds answered in-process because Redis was unreachable."""
        return sum(c.counts.fallbacks for c in self._cooldowns)

    async def close(self) -> None:
        await self.link.close()


def open_shared(settings: Settings, **options: float) -> SharedServing | None:
    """The shared serving state the settings describe; ``None`` without ``REDIS_URL``.

    Opening connects nothing: the first lookup or cooldown check does (and falls back to this
    process's memory if Redis does not answer). ``options``: :class:`SharedLookups`'s.
    """
    if settings.redis_url is None:
        return None
    # Imported only when configured: a bot without Redis never loads the client.
    from .link import RedisLink
    from .lookups import SharedLookups

    link = RedisLink.from_url(
        settings.redis_url.reveal(),
        prefix=settings.redis_key_prefix,
        location=settings.redis_location or "Redis",
    )
    return SharedServing(link, SharedLookups(link, namespace=api_namespace(settings), **options))
