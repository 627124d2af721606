"""A per-member cooldown that blunts command spam before it reaches the pool or the API."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Protocol

from .caching import Clock

__all__ = ["Cooldown", "MemberCooldown"]


class MemberCooldown(Protocol):
    """What the commands ask of a cooldown: this process's :class:`Cooldown`, or the one shared
    through Redis (:class:`~bot.serving.shared.cooldown.SharedCooldown`)."""

    async def take(self, user_id: int) -> float | None:
        """Take a use: ``None`` if allowed, else the seconds until the next is allowed."""
        ...

    async def give_back(self, user_id: int) -> None:
        """Give back the member's latest use (the command it let through did not count)."""
        ...

    async def wait_for(self, user_id: int) -> float | None:
        """The wait before the member's next use, taking nothing (``None``: allowed now)."""
        ...


class Cooldown:
    """At most ``rate`` uses per ``per_seconds`` for each user (a sliding window).

    Only the most recently active ``max_users`` users are tracked, so memory stays bounded;
    a forgotten user simply starts with a clean slate.
    """

    def __init__(
        self,
        rate: int,
        per_seconds: float,
        *,
        clock: Clock = time.monotonic,
        max_users: int = 50_000,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.rate = rate
        self.per_seconds = per_seconds
        self._clock = clock
        self._max_users = max_users
        self._uses: OrderedDict[int, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Users currently tracked."""
        return len(self._uses)

    def check(self, user_id: int) -> float | None:
        """Record a use and return ``None`` if allowed; else the seconds until the next is allowed.

        A refused use is not recorded, so retrying early does not extend the wait.
        """
        now = self._clock()
        uses = self._uses.get(user_id)
        if uses is None:
            uses = deque(maxlen=self.rate)
            self._uses[user_id] = uses
            if len(self._uses) > self._max_users:
                self._uses.popitem(last=False)
        else:
            self._uses.move_to_end(user_id)
        while uses and uses[0] <= now - self.per_seconds:
            uses.popleft()
        if len(uses) >= self.rate:
            return max(0.0, uses[0] + self.per_seconds - now)
        uses.append(now)
        return None

    def retry_after(self, user_id: int) -> float | None:
        """Like :meth:`check` but records nothing: the wait, or ``None`` if a use is allowed now."""
        uses = self._uses.get(user_id)
        if uses is None:
            return None
        now = self._clock()
        live = [t for t in uses if t > now - self.per_seconds]
        if len(live) < self.rate:
            return None
        return max(0.0, live[0] + self.per_seconds - now)

    def refund(self, user_id: int) -> None:
        """Give back the latest recorded use: the command it let through did not count (an input
        error, an outage), so it must not hold the member back."""
        uses = self._uses.get(user_id)
        if uses:
            uses.pop()

    # The asynchronous face (MemberCooldown), shared with the Redis cooldown; nothing awaits.

    async def take(self, user_id: int) -> float | None:
        return self.check(user_id)

    async def give_back(self, user_id: int) -> None:
        self.refund(user_id)

    async def wait_for(self, user_id: int) -> float | None:
        return self.retry_after(user_id)

    def reset(self, user_id: int) -> None:
        """Forget ``user_id``'s recent uses."""
        self._uses.pop(user_id, None)
