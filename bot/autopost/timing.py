"""The time rules of scheduled posts: durations, when the next post is due, clock steps.

Pure functions, no I/O, so every rule is tested on a fake clock:

* **Cadence** — a post due at ``due`` makes the next one due at ``due + interval``, so posts
  keep to their grid instead of drifting by each post's lateness.
* **Missed posts are made once** — when that next time would be less than half an interval
  away (the bot was down, or the post was very late), the grid restarts from now: one post now,
  the next a whole interval later, never one per missed interval.
* **Never closer than half the interval** — after a post, the schedule may not post again before
  ``posted_at + interval / 2`` (:func:`not_before`), whatever ``next_due`` says; within one
  process the poster also measures this on the monotonic clock, so a wall clock stepped forward
  can't bring two posts together.
* **A skipped post is tried again soon** — a post skipped at ``now`` (nothing to show at that
  moment, a passing failure) is tried again a quarter interval later (at most
  :data:`RETRY_DELAY`), as long as that is within half an interval of its due time; so the grid
  holds and a daily post is not lost to one busy minute (:func:`retry_at`).
* **Clock stepped back** — ``set_at`` records the wall time at which ``next_due`` was last set.
  If it is later than now, the clock went back: the schedule is re-anchored to now with the wait
  it had left (at least half, at most one interval), so it neither posts at once nor stalls for
  as long as the clock was stepped.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CLOCK_TOLERANCE",
    "MAX_INTERVAL",
    "ClaimPlan",
    "DurationError",
    "first_due",
    "format_duration",
    "not_before",
    "parse_duration",
    "plan_claim",
    "retry_at",
]

MAX_INTERVAL: Final = 30 * 86_400
"""The longest cadence (30 days): beyond it a "schedule" is better done by hand."""
CLOCK_TOLERANCE: Final = dt.timedelta(seconds=2)
"""How far apart processes' wall clocks may be before a schedule's ``set_at`` in the future
counts as the clock having been stepped back."""

RETRY_DELAY: Final = dt.timedelta(minutes=1)
"""The longest wait before a skipped post is tried again."""

_UNITS: Final = {
    "d": 86_400,
    "day": 86_400,
    "days": 86_400,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
}
_PART: Final = re.compile(r"(\d{1,7})\s*([a-z]+)")
_EXAMPLES: Final = "e.g. `90s`, `30m`, `2h`, `1d` or `1h30m`"


class DurationError(ValueError):
    """A duration that can't be read; the message is for the admin who typed it."""


def parse_duration(text: str) -> int:
    """Seconds in ``text`` such as ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or ``1h 30m``.

    Units: s, m, h, d (and their words: ``2 hours``). Raises :class:`DurationError` with a
    message that says what is wrong and shows the accepted forms.
    """
    cleaned = text.strip().lower().replace(",", " ")
    if not cleaned:
        raise DurationError(f"Give a duration, {_EXAMPLES}.")
    if cleaned.isdigit():
        raise DurationError(f"`{cleaned}` needs a unit, {_EXAMPLES}.")
    total = 0
    position = 0
    for match in _PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            break
        unit = _UNITS.get(match[2])
        if unit is None:
            raise DurationError(f"`{match[2]}` isn't a unit I know; use s, m, h or d, {_EXAMPLES}.")
        total += int(match[1]) * unit
        position = match.end()
    if position == 0 or cleaned[position:].strip():
        shown = text.strip()[:30].replace("`", "")
        raise DurationError(f"I can't read `{shown}` as a duration; write it {_EXAMPLES}.")
    if total <= 0:
        raise DurationError("The interval must be longer than zero.")
    return total


def format_duration(seconds: int) -> str:
    """``5400`` → ``1h 30m``; ``90`` → ``1m 30s``; ``86400`` → ``1d``."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def first_due(now: dt.datetime, interval: int, last_post_at: dt.datetime | None) -> dt.datetime:
    """When a new (or replaced, or resumed) schedule posts first.

    At once if the channel had no post from it yet, else a whole interval after the last post
    (at the earliest now): changing the cadence right after a post doesn't post again at once.
    """
    if last_post_at is None:
        return now
    return max(now, last_post_at + _seconds(interval))


def not_before(posted_at: dt.datetime, interval: int) -> dt.datetime:
    """The earliest time the schedule may post again after a post at ``posted_at``."""
    return posted_at + _seconds(interval / 2)


def retry_at(due_at: dt.datetime, now: dt.datetime, interval: int) -> dt.datetime | None:
    """When a post due at ``due_at`` and skipped at ``now`` is tried again, or ``None`` (not
    before the next due time): a quarter interval later (at most :data:`RETRY_DELAY`), while that
    is within half an interval of ``due_at``, so a retry never shifts the schedule's grid."""
    at = now + min(RETRY_DELAY, _seconds(interval / 4))
    return at if at <= due_at + _seconds(interval / 2) else None


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """What a claim does with a schedule: post now or not, and when it is due next."""

    post: bool
    next_due: dt.datetime


def plan_claim(
    *, next_due: dt.datetime, set_at: dt.datetime, interval: int, now: dt.datetime
) -> ClaimPlan:
    """The plan for a schedule a poster claimed at ``now``.

    The claim picks schedules that are due (``next_due <= now``, past ``not_before``) or whose
    ``set_at`` is in the future (the clock was stepped back; see the module docstring).
    """
    step = _seconds(interval)
    if set_at > now + CLOCK_TOLERANCE:
        left = next_due - set_at
        wait = min(max(left, step / 2), step)
        return ClaimPlan(post=False, next_due=now + wait)
    following = next_due + step
    if following < now + step / 2:
        # Missed by more than half an interval (downtime, a step forward): once, then from now.
        following = now + step
    return ClaimPlan(post=True, next_due=following)
