"""Text helpers: escaping untrusted text, trimming without splitting characters, formatting."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.text import (
    ELLIPSIS,
    escape,
    format_duration,
    plain_text,
    plural,
    safe_text,
    trim,
    trim_markdown,
)


def test_trim_leaves_short_text_alone() -> None:
    assert trim("hello", 5) == "hello"


def test_trim_cuts_to_limit_with_ellipsis() -> None:
    result = trim("abcdefghij", 5)
    assert result == "abcd" + ELLIPSIS
    assert len(result) == 5


def test_trim_drops_whitespace_before_ellipsis() -> None:
    assert trim("abc   defgh", 6) == "abc" + ELLIPSIS


def test_trim_to_zero_or_one() -> None:
    assert trim("abc", 0) == ""
    assert trim("abc", 1) == ELLIPSIS


def test_trim_does_not_split_combining_marks() -> None:
    text = "e\u0301" * 50  # "é" written as e + combining acute
    result = trim(text, 10)
    head = result.removesuffix(ELLIPSIS)
    assert len(result) <= 10
    assert text.startswith(head)
    assert unicodedata.combining(text[len(head)]) == 0


def test_trim_does_not_split_zwj_emoji_sequence() -> None:
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points
    text = family * 5
    for limit in range(2, 20):
        head = trim(text, limit).removesuffix(ELLIPSIS)
        assert len(head) % len(family) == 0, limit


def test_trim_does_not_split_flag_pairs() -> None:
    flags = "\U0001f1ef\U0001f1f5" * 10  # 🇯🇵 x10
    head = trim(flags, 6).removesuffix(ELLIPSIS)
    assert len(head) % 2 == 0


def test_trim_markdown_never_leaves_a_dangling_backslash() -> None:
    escaped = escape("a*b*c*d*e*f")  # a\*b\*c\*...
    for limit in range(2, len(escaped)):
        head = trim_markdown(escaped, limit).removesuffix(ELLIPSIS)
        trailing = len(head) - len(head.rstrip("\\"))
        assert trailing % 2 == 0, (limit, head)


@pytest.mark.parametrize("mention", ["@everyone", "@here", "<@123>", "<@!123456789012345678>"])
def test_escape_neutralises_mentions(mention: str) -> None:
    escaped = escape(f"hi {mention} there")
    assert mention not in escaped
    assert "@\u200b" in escaped


def test_escape_neutralises_role_and_channel_mentions() -> None:
    escaped = escape("<@&42> <#99>")
    assert "<@&42>" not in escaped
    assert "<#99>" not in escaped


def test_escape_markdown_bold_and_code() -> None:
    assert escape("**bold**") == r"\*\*bold\*\*"
    assert escape("`code`") == r"\`code\`"
    assert escape("__u__ ~~s~~ ||spoiler||") == r"\_\_u\_\_ \~\~s\~\~ \|\|spoiler\|\|"


def test_escape_masked_link_and_heading() -> None:
    assert escape("[click](https://evil.example)").startswith("\\[")
    assert escape("# Big").startswith("\\#")


def test_safe_text_escapes_and_fits() -> None:
    result = safe_text("**" * 100, 21)
    assert len(result) <= 21
    assert result.endswith(ELLIPSIS)
    # Only whole escape pairs: every * is preceded by a backslash.
    body = result.removesuffix(ELLIPSIS)
    assert body == r"\*" * (len(body) // 2)


def test_safe_text_none_and_empty() -> None:
    assert safe_text(None, 10) == ""
    assert safe_text("", 10) == ""


def test_safe_text_trims_mentions_without_leaving_one() -> None:
    result = safe_text("@everyone " * 50, 100)
    assert len(result) <= 100
    assert "@everyone" not in result


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=0, max_value=300))
def test_safe_text_always_within_limit_and_never_mentions(text: str, limit: int) -> None:
    result = safe_text(text, limit)
    assert len(result) <= limit
    assert "@everyone" not in result
    assert "@here" not in result


def test_plain_text_collapses_whitespace_and_trims() -> None:
    assert plain_text("  a\n\n b\tc ", 100) == "a b c"
    assert plain_text("x" * 300, 256) == "x" * 255 + ELLIPSIS
    assert plain_text(None, 10) == ""


def test_plural() -> None:
    assert plural(1, "image") == "1 image"
    assert plural(0, "image") == "0 images"
    assert plural(1234, "image") == "1,234 images"
    assert plural(2, "category", "categories") == "2 categories"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-5, "0s"),
        (45, "45s"),
        (59.6, "1m"),
        (200, "3m 20s"),
        (7500, "2h 5m"),
        (7200, "2h"),
        (7201, "2h"),
        (93_600, "1d 2h"),
        (86_400 * 3 + 59, "3d"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected
