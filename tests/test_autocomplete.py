"""Autocomplete matching, "did you mean" suggestions and the categories option parser."""

from __future__ import annotations

import pytest

from bot.autocomplete import NameIndex, split_categories

CATEGORIES = [
    "Catgirl",
    "cat ears",
    "Dog girl",
    "bobcat",
    "Smile",
    "wildcat",
    "Maid",
    "catboy",
]


def index_of(names: list[str]) -> NameIndex[str]:
    return NameIndex((name, name.lower()) for name in names)


def names(result: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in result]


def test_prefix_matches_come_before_substring_matches() -> None:
    result = names(index_of(CATEGORIES).match("cat"))
    assert result == ["cat ears", "catboy", "Catgirl", "bobcat", "wildcat"]


def test_match_is_case_insensitive() -> None:
    index = index_of(CATEGORIES)
    assert names(index.match("CAT")) == names(index.match("cat"))
    assert names(index.match("mAiD")) == ["Maid"]


def test_match_returns_values() -> None:
    index = NameIndex([("Rem", "id-1"), ("Ram", "id-2")])
    assert index.match("re") == [("Rem", "id-1")]


def test_match_ignores_surrounding_whitespace_in_query() -> None:
    assert names(index_of(CATEGORIES).match("  smi ")) == ["Smile"]


def test_no_match_gives_empty_list() -> None:
    assert index_of(CATEGORIES).match("zebra") == []


def test_empty_query_lists_first_entries_alphabetically() -> None:
    result = names(index_of(CATEGORIES).match(""))
    assert result == sorted(CATEGORIES, key=str.casefold)


def test_at_most_25_choices() -> None:
    index = index_of([f"tag{i:03d}" for i in range(300)])
    assert len(index.match("")) == 25
    assert len(index.match("tag")) == 25
    assert len(index.match("1")) == 25
    assert len(index.match("tag", limit=100)) == 25
    assert len(index.match("tag", limit=5)) == 5
    assert index.match("tag", limit=0) == []


def test_substring_matches_fill_up_after_prefix_matches() -> None:
    index = index_of([f"x{i:02d}cat" for i in range(30)] + ["cat"])
    result = names(index.match("cat"))
    assert result[0] == "cat"
    assert len(result) == 25


def test_unicode_names_match_casefolded_and_normalised() -> None:
    index = index_of(["Straße", "猫耳", "Café", "Ｎｅｋｏ"])
    assert names(index.match("STRASSE")) == ["Straße"]
    assert names(index.match("猫")) == ["猫耳"]
    assert names(index.match("cafe\u0301")) == ["Café"]  # decomposed é matches composed
    assert names(index.match("neko")) == ["Ｎｅｋｏ"]  # full-width letters


def test_long_names_are_trimmed_to_100_characters() -> None:
    long = "a" * 150
    index = NameIndex([(long, "v")])
    ((name, value),) = index.match("aaa")
    assert len(name) == 100
    assert name.endswith("…")
    assert value == "v"


def test_long_names_still_match_beyond_the_trimmed_part() -> None:
    index = NameIndex([("a" * 150 + "needle", "v")])
    assert len(index.match("needle")) == 1


def test_blank_names_and_overlong_string_values_are_skipped() -> None:
    index = NameIndex([("  ", "v"), ("ok", "x" * 101), ("fine", "id"), ("empty", "")])
    assert index.match("") == [("fine", "id")]


def test_non_string_values_are_kept() -> None:
    index: NameIndex[int] = NameIndex([("one", 1), ("two", 2)])
    assert index.match("t") == [("two", 2)]


def test_replace_swaps_contents() -> None:
    index = index_of(["old"])
    index.replace([("new", "n")])
    assert index.match("") == [("new", "n")]
    assert len(index) == 1


def test_best_prefers_an_exact_name_in_any_case_or_width() -> None:
    index = NameIndex([("Catgirl", "id-1"), ("Catgirl Maid", "id-2"), ("ＣＡＴ", "id-3")])
    assert index.best("CATGIRL") == ("Catgirl", "id-1", True)
    assert index.best("cat") == ("ＣＡＴ", "id-3", True)  # full-width folds to "cat"


def test_best_falls_back_to_what_autocomplete_offers_then_to_the_closest_spelling() -> None:
    index = NameIndex([("Catgirl", "id-1"), ("Foxgirl", "id-2"), ("[bracket]", "id-3")])
    assert index.best("fox") == ("Foxgirl", "id-2", False)  # starts with
    assert index.best("racket") == ("[bracket]", "id-3", False)  # contains
    assert index.best("catgrl") == ("Catgirl", "id-1", False)  # a typo
    assert index.best("zzzzzz") is None
    assert index.best("   ") is None


def test_suggest_finds_typos() -> None:
    assert index_of(CATEGORIES).suggest("catgrl")[0] == "Catgirl"


def test_suggest_adds_substring_matches() -> None:
    # Too different for difflib (ratio < 0.6), found because the name contains the query.
    index = index_of(["A very long category name", "Smile"])
    assert index.suggest("long") == ["A very long category name"]


def test_suggest_finds_known_name_inside_longer_query() -> None:
    assert "Smile" in index_of(CATEGORIES).suggest("big smile please")


def test_suggest_limits_and_empty() -> None:
    index = index_of(CATEGORIES)
    assert len(index.suggest("cat", n=3)) == 3
    assert index.suggest("") == []
    assert index.suggest("qqqqqq") == []
    assert index.suggest("cat", n=0) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("catgirl, smile", ["catgirl", "smile"]),
        ("  catgirl ,, , smile  ,", ["catgirl", "smile"]),
        ("Catgirl, CATGIRL, smile, catgirl", ["Catgirl", "smile"]),
        ("cat ears,dog girl", ["cat ears", "dog girl"]),
        ("", []),
        (" , ,", []),
        (None, []),
        ("猫耳, 猫耳", ["猫耳"]),
    ],
)
def test_split_categories(text: str | None, expected: list[str]) -> None:
    assert split_categories(text) == expected
