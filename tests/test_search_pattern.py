"""Search text becomes a SIMILAR TO pattern that matches the text literally, as a substring."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.nekos.search import (
    SIMILAR_TO_SPECIALS,
    RawPattern,
    escape_similar_to,
    name_pattern,
    search_pattern,
    utf16_length,
)

_OPERATORS = "|*+?{}()[]"


def similar_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a SQL ``SIMILAR TO`` pattern (backslash escape) into a Python regex.

    ``%`` is any string, ``_`` any character, ``| * + ? {} () []`` keep their regex meaning,
    a backslash makes the next character literal, and the whole string must match.
    """
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError("pattern ends with a lone escape character")
            parts.append(re.escape(escaped))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        elif ch in _OPERATORS:
            parts.append(ch)
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    return similar_to_regex(pattern).fullmatch(name) is not None


# Weighted towards the operators so that most examples contain several of them.
search_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(SIMILAR_TO_SPECIALS) + list("ab .^$")), st.characters()
    ),
    max_size=30,
)


@given(text=search_text, before=st.text(max_size=10), after=st.text(max_size=10))
def test_escaped_text_matches_exactly_the_names_containing_it(
    text: str, before: str, after: str
) -> None:
    pattern = search_pattern(text)
    assert matches(pattern, text)
    assert matches(pattern, before + text + after)


@given(text=search_text, name=st.text(max_size=40))
def test_escaped_text_matches_no_name_without_it(text: str, name: str) -> None:
    assert matches(search_pattern(text), name) == (text in name)


@given(text=search_text)
def test_escaped_text_does_not_match_a_near_miss(text: str) -> None:
    if text:
        # Dropping one character must not match unless the text still appears.
        shorter = text[:-1]
        assert matches(search_pattern(text), shorter) == (text in shorter)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("neko", "neko"),
        ("100%", "100\\%"),
        ("a_b", "a\\_b"),
        ("(a|b)*", "\\(a\\|b\\)\\*"),
        ("x+y?{2}", "x\\+y\\?\\{2\\}"),
        ("[ab]", "\\[ab\\]"),
        ("back\\slash", "back\\\\slash"),
        ("dot.caret^dollar$", "dot.caret^dollar$"),  # not SIMILAR TO operators
        ("d", "d"),  # letters never get a backslash (\d would be a regex class)
    ],
)
def test_escape_marks_every_operator_and_nothing_else(text: str, escaped: str) -> None:
    assert escape_similar_to(text) == escaped


def test_plain_text_is_wrapped_for_a_substring_search() -> None:
    assert search_pattern("Ai") == "%Ai%"
    assert search_pattern("") == "%%"


def test_raw_pattern_is_sent_as_is() -> None:
    raw = RawPattern("(Ai|Mio)%")
    assert search_pattern(raw) == "(Ai|Mio)%"
    assert type(search_pattern(raw)) is str
    assert matches(search_pattern(raw), "Mio Akiyama")
    assert not matches(search_pattern(raw), "Akiyama Mio")
    assert repr(raw) == "RawPattern('(Ai|Mio)%')"


def test_translator_understands_the_operators_it_is_checked_against() -> None:
    # The property tests above are only as good as this translator.
    assert matches("%", "anything")
    assert matches("a_c", "abc")
    assert not matches("a_c", "ac")
    assert matches("(a|b)+", "abba")
    assert matches("a\\%", "a%")
    assert not matches("a\\%", "ab")
    assert not matches("abc", "xabcx")
    with pytest.raises(ValueError, match="escape"):
        similar_to_regex("abc\\")


@given(name=search_text.filter(lambda t: t.strip()))
def test_name_pattern_fits_the_limit_and_matches_the_name(name: str) -> None:
    pattern = name_pattern(name, 20)
    assert isinstance(pattern, RawPattern)
    assert utf16_length(pattern) <= 20
    # A superset search: the name itself is always among the matches (cut when too long).
    assert matches(pattern, name.strip())


def test_name_pattern_spends_one_character_per_operator() -> None:
    assert name_pattern("a|b (c)*", 20) == "%a_b _c__%"
    assert name_pattern("A rather long artist name", 20) == "%A rather long arti%"
