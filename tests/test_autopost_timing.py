"""The time rules of scheduled posts (bot/autopost/timing.py), on a fake clock."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.autopost.timing import (
    DurationError,
    first_due,
    format_duration,
    not_before,
    parse_duration,
    plan_claim,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86_400), ("1h30m", 5400),
     ("1h 30m", 5400), ("2 hours", 7200), ("1D", 86_400), (" 45 min ", 2700), ("1d2h3m4s", 93_784)],
)  # fmt: skip
def test_durations_admins_type_are_read(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "Give a duration"), ("90", "`90` needs a unit"), ("5 weeks", "`weeks` isn't a unit"),
     ("soon", "can't read `soon`"), ("1h and 5m", "can't read"), ("0m", "longer than zero"),
     ("h1", "can't read")],
)  # fmt: skip
def test_unreadable_durations_say_what_is_wrong_and_show_examples(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message) as caught:
        parse_duration(text)
    assert "`30m`" in str(caught.value) or "longer than zero" in str(caught.value)


@given(st.integers(min_value=1, max_value=30 * 86_400))
def test_a_formatted_duration_reads_back_as_the_same_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_examples() -> None:
    assert [format_duration(s) for s in (90, 5400, 86_400, 3600 * 26)] == [
        "1m 30s",
        "1h 30m",
        "1d",
        "1d 2h",
    ]


def test_a_new_schedule_posts_at_once_and_a_replaced_one_an_interval_after_its_last_post() -> None:
    assert first_due(at(0), 3600, None) == at(0)
    assert first_due(at(600), 3600, last_post_at=at(0)) == at(3600)
    assert first_due(at(9000), 3600, last_post_at=at(0)) == at(9000)


def test_cadence_keeps_to_its_grid_despite_each_posts_lateness() -> None:
    # Claimed 2 s late every time: the next due time is still on the hour.
    plan = plan_claim(next_due=at(3600), set_at=at(2), interval=3600, now=at(3602))
    assert plan.post is True
    assert plan.next_due == at(7200)


def test_a_long_overdue_schedule_posts_once_then_continues_from_now() -> None:
    # Down for a day with an hourly schedule: one post now, the next an hour later.
    plan = plan_claim(next_due=at(3600), set_at=at(0), interval=3600, now=at(90_000))
    assert plan.post is True
    assert plan.next_due == at(93_600)


def test_a_post_later_than_half_an_interval_restarts_the_grid_so_none_come_closer() -> None:
    plan = plan_claim(next_due=at(100), set_at=at(0), interval=100, now=at(170))
    assert plan.next_due == at(270)
    # Just under half an interval late: still on the grid, 60 s after this post.
    plan = plan_claim(next_due=at(100), set_at=at(0), interval=100, now=at(140))
    assert plan.next_due == at(200)


def test_not_before_is_half_an_interval_after_a_post() -> None:
    assert not_before(at(50), 100) == at(100)


def test_a_clock_stepped_back_re_anchors_without_posting_and_without_a_long_stall() -> None:
    # next_due was set at 1000 for 1060; the clock now reads a day earlier.
    plan = plan_claim(next_due=at(1060), set_at=at(1000), interval=60, now=at(1000 - 86_400))
    assert plan.post is False
    assert plan.next_due == at(1060 - 86_400)  # the wait it had left, from now


def test_a_re_anchored_wait_is_at_least_half_and_at_most_one_interval() -> None:
    back = at(-86_400)
    short = plan_claim(next_due=at(1001), set_at=at(1000), interval=60, now=back)
    assert short.next_due == back + dt.timedelta(seconds=30)
    long = plan_claim(next_due=at(9000), set_at=at(1000), interval=60, now=back)
    assert long.next_due == back + dt.timedelta(seconds=60)


def test_clocks_of_processes_a_second_apart_do_not_count_as_a_step_back() -> None:
    plan = plan_claim(next_due=at(60), set_at=at(1), interval=60, now=at(60))
    assert plan.post is True
    plan = plan_claim(next_due=at(60), set_at=at(61), interval=60, now=at(60))
    assert plan.post is True


@given(
    interval=st.integers(min_value=5, max_value=86_400),
    lateness=st.floats(min_value=0, max_value=10 * 86_400, allow_nan=False),
)
def test_the_next_post_is_never_within_half_an_interval_nor_more_than_one_away(
    interval: int, lateness: float
) -> None:
    now = at(interval + lateness)
    plan = plan_claim(next_due=at(interval), set_at=at(0), interval=interval, now=now)
    gap = (plan.next_due - now).total_seconds()
    assert interval / 2 <= gap <= interval
