"""The text and URL rules for untrusted text, trimming without splitting characters, formatting."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.text import (
    BUTTON_URL_LIMIT,
    ELLIPSIS,
    clean,
    escape,
    format_duration,
    plain_text,
    plural,
    quote,
    safe_text,
    safe_url,
    trim,
    trim_markdown,
)
from tests.discord_markdown import (
    forbidden_characters,
    links,
    markdown_left,
    mentions,
    shown,
    url_problem,
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


@pytest.mark.parametrize(
    "mention",
    ["@everyone", "@here", "<@123>", "<@!123456789012345678>", "<@&42>", "<#99>", "</neko:1>"],
)
def test_escape_neutralises_mentions_and_pills(mention: str) -> None:
    escaped = escape(f"hi {mention} there")
    assert mentions(escaped) == []
    assert shown(escaped) == f"hi {mention} there"  # still reads as written


@pytest.mark.parametrize("pill", ["<t:1700000000:R>", "<:neko:123>", "<a:neko:123>"])
def test_escape_neutralises_timestamps_and_custom_emoji(pill: str) -> None:
    escaped = escape(pill)
    assert mentions(escaped) == []
    assert links(escaped) == []


def test_escape_markdown_bold_and_code() -> None:
    assert escape("**bold**") == r"\*\*bold\*\*"
    assert escape("`code`") == r"\`code\`"
    assert escape("__u__ ~~s~~ ||spoiler||") == r"\_\_u\_\_ \~\~s\~\~ \|\|spoiler\|\|"


@pytest.mark.parametrize(
    "text",
    [
        "[click](https://evil.example)",
        "https://evil.example/path",
        "see <https://evil.example>",
        "https://example.org/a>[click](https://evil.example)",
        "steam://run/1",
    ],
)
def test_escape_leaves_no_link(text: str) -> None:
    escaped = escape(text)
    assert links(escaped) == []
    assert shown(escaped) == text


@pytest.mark.parametrize(
    "text",
    ["# Big", "## Big", "### Big", "-# small", "> quote", ">>> quote", "- item", "+ item",
     "* item", "1. item", "12. item"],
)  # fmt: skip
def test_escape_neutralises_line_start_markdown(text: str) -> None:
    for multiline in (False, True):
        escaped = escape(f"{text}\n{text}", multiline=multiline)
        assert markdown_left(escaped) == [], escaped
        assert shown(escaped).replace("\n", " ") == f"{text} {text}"


def test_escape_keeps_backslashes_literal() -> None:
    escaped = escape(r"\*not bold\* \@everyone")
    assert shown(escaped) == r"\*not bold\* \@everyone"
    assert markdown_left(escaped) == []
    assert mentions(escaped) == []


@pytest.mark.parametrize(
    "char",
    [
        "\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u200b",
        "\u00ad", "\ufeff", "\u2060", "\U000e0041", "\u3164", "\u115f", "\u1160", "\uffa0",
        "\u180e", "\u2800", "\x00", "\x1b", "\x7f", "\ud800", "\uffff", "\u034f",
    ],
)  # fmt: skip
def test_clean_drops_invisible_and_bidi_characters(char: str) -> None:
    assert clean(f"ab{char}cd") == "abcd"
    assert clean(f"ab{char}cd", multiline=True) == "abcd"


def test_clean_tidies_whitespace() -> None:
    assert clean("  a\u00a0\u3000b\t\tc  ") == "a b c"
    assert clean("a\r\nb\u2028c\u2029d\x85e") == "a b c d e"
    assert clean("a\r\n\r\n\r\n\n b \n\u2028c", multiline=True) == "a\n\nb\n\nc"


def test_clean_keeps_emoji_sequences_and_drops_lone_joiners() -> None:
    technologist = "\U0001f469\u200d\U0001f4bb"
    family = "\U0001f469\U0001f3fd\u200d\U0001f467"
    assert clean(f"{technologist} {family} \u2764\ufe0f") == f"{technologist} {family} \u2764\ufe0f"
    assert clean("a\u200db \U0001f469\u200d") == "ab \U0001f469"
    assert clean("x\ufe0f\ufe0f\ufe0f") == "x\ufe0f"  # one selector, no smuggled run


def test_clean_caps_stacked_combining_marks() -> None:
    zalgo = "Z" + "\u0301\u0316\u0317\u0318\u0319\u031a" * 5
    assert clean(zalgo) == "Z\u0301\u0316\u0317\u0318"
    assert clean("Vi\u1ec7t e\u0301\u0302") == "Vi\u1ec7t e\u0301\u0302"  # real text is untouched


def test_safe_text_escapes_and_fits() -> None:
    result = safe_text("**" * 100, 21)
    assert len(result) == 21
    assert result == r"\*" * 10 + ELLIPSIS


def test_safe_text_none_and_empty() -> None:
    assert safe_text(None, 10) == ""
    assert safe_text("", 10) == ""
    assert safe_text("\u200b\u202e", 10) == ""


def test_safe_text_trims_mentions_without_leaving_one() -> None:
    result = safe_text("@everyone " * 50, 100)
    assert len(result) <= 100
    assert mentions(result) == []


def test_safe_text_is_one_line_unless_asked() -> None:
    assert "\n" not in safe_text("a\nb", 10)
    assert safe_text("a\n# b", 10, multiline=True) == "a\n\\# b"


_HOSTILE = st.lists(
    st.sampled_from(
        [
            *"ab *_~|`<>[]()#-+1.:/@\\\n\t ",
            *("@everyone", "<@123>", "https://", "\u202e", "\u200b", "\u200d", "\U0001f469"),
        ]
    ),
    max_size=150,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=400), _HOSTILE), st.integers(min_value=0, max_value=300))
def test_safe_text_never_renders_anything_and_fits(text: str, limit: int) -> None:
    for multiline in (False, True):
        result = safe_text(text, limit, multiline=multiline)
        assert len(result) <= limit
        assert mentions(result) == []
        assert links(result) == []
        assert markdown_left(result) == []
        assert forbidden_characters(result, newlines=multiline) == []
        assert clean(text, multiline=multiline).startswith(shown(result).removesuffix(ELLIPSIS))


def test_plain_text_collapses_whitespace_and_trims() -> None:
    assert plain_text("  a\n\n b\tc ", 100) == "a b c"
    assert plain_text("x" * 300, 256) == "x" * 255 + ELLIPSIS
    assert plain_text(None, 10) == ""
    assert plain_text("**a** \u202eb", 10) == "**a** b"  # no markdown where none renders


def test_quote_shows_member_input_in_a_code_span() -> None:
    quoted = quote("x` @everyone [a](https://evil.example) `", 100)
    assert quoted.startswith("`")
    assert quoted.endswith("`")
    assert quoted.count("`") == 2
    assert mentions(quoted) == links(quoted) == markdown_left(quoted) == []
    assert quote("", 10) == quote("\u200b", 10) == '""'
    assert len(quote("y" * 500, 50)) == 52


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", "https://a.example/x"),
        ("HTTP://A.example", "http://a.example"),
        ("  https://a.example/  ", "https://a.example/"),
        ("https://a.example:8443/p?q=1&r=2#top", "https://a.example:8443/p?q=1&r=2#top"),
        (
            "https://example.org/a>[click](https://evil.example)",
            "https://example.org/a%3E%5Bclick%5D%28https://evil.example%29",
        ),
        ("https://ex.org/a)x", "https://ex.org/a%29x"),
        ("https://ex.org/~me/a_b*c|d`e<f", "https://ex.org/%7Eme/a%5Fb%2Ac%7Cd%60e%3Cf"),
        ("https://ex.org/100%", "https://ex.org/100%25"),
        ("https://ex.org/@everyone", "https://ex.org/%40everyone"),
        ("https://ex.org/%41%5b", "https://ex.org/%41%5b"),
        ("https://café.example/猫", "https://xn--caf-dma.example/%E7%8C%AB"),
        ("http://127.0.0.1:8080/s/x.png?token=ab&expires=1", None),
    ],
)
def test_safe_url_percent_encodes_what_markdown_reads(url: str, expected: str | None) -> None:
    assert safe_url(url) == (expected or url)


@pytest.mark.parametrize(
    "url",
    [
        None, "", "   ", "javascript:alert(1)", "ftp://files.example/x", "//no-scheme.example",
        "not a url", "mailto:x@example.com", "data:image/png;base64,AAAA", "https://",
        "https:///path", "https://a.example/x y", "https://a.example/\u202egpj.exe",
        "https://a.exa\u200bmple/", "https://a.example/\u2066x", "https://a.example/\nx",
        "https://a.example/\tx", "https://discord.com@evil.example/", "https://u:p@a.example/",
        "https://[::1]/", "https://a_b.example/", "https://a..example/", "https://-a.example/",
        "https://a.example:99999/", "https://a.example:port/", "https://<b>.example/",
        "https://a.example/" + "x" * 2100,
        "http://0/@everyone", "http://localhost/", "http://256.1.1.1/", "https://ex.123/",
    ],
)  # fmt: skip
def test_safe_url_refuses_what_cannot_be_made_safe(url: str | None) -> None:
    assert safe_url(url) is None


def test_safe_url_limit_for_buttons() -> None:
    url = "https://a.example/" + "x" * 600
    assert safe_url(url) == url
    assert safe_url(url, limit=BUTTON_URL_LIMIT) is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            "".join,
            st.lists(
                st.sampled_from(
                    ["https://", "http://", "ex.org", "café.example", ":80", "/", "a", ">",
                     "<", "(", ")", "[", "]", "`", "*", "_", "|", "~", " ", "\u202e", "%",
                     "?", "#", "@", "\\", '"', "猫", "\u200b"]
                ),
                max_size=12,
            ),
        ),
    )
)  # fmt: skip
def test_safe_url_is_always_a_plain_link_or_nothing(url: str) -> None:
    result = safe_url(url)
    if result is not None:
        assert url_problem(result) is None
        assert safe_url(result) == result  # already safe: unchanged
        assert links(f"<{result}>", [result]) == []


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
