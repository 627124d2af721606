"""The autocomplete catalogue: category choices, category checks and resilient refreshes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.catalog import Catalog, CatalogSource
from bot.nekos.errors import NekosError, ServerError, Unavailable
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Image,
    Rating,
    parse_artist_data,
    parse_category_data,
    parse_character_data,
)
from bot.text import clean, plain_text
from tests.discord_markdown import forbidden_characters
from tests.fakes.discord_payloads import autocomplete_problems
from tests.hostile_api import TEXT, V1_ARTIST, V1_CATEGORY, V1_CHARACTER

NAMES = [
    "catgirl",
    "cat ears",
    "foxgirl",
    "wolfgirl",
    "long hair",
    "white hair",
    "maid",
    "café",
    "猫耳",
    "smile",
]
NSFW_NAMES = ["ecchi", "lingerie", "catsuit lewd"]


def _categories(names: Sequence[str] = NAMES, nsfw: Sequence[str] = NSFW_NAMES) -> list[Category]:
    return [Category(id=f"c{i}", name=n) for i, n in enumerate(names)] + [
        Category(id=f"n{i}", name=n, nsfw=True) for i, n in enumerate(nsfw)
    ]


def _loaded(categories: Sequence[Category] | None = None) -> Catalog:
    catalog = Catalog(CatalogSource(_returns(()), _returns(()), _returns(())))
    catalog.set_categories(_categories() if categories is None else categories)
    return catalog


def _returns(value: Sequence[object]):  # type: ignore[no-untyped-def]
    async def load() -> Sequence[object]:
        return value

    return load


def _raises(error: BaseException):  # type: ignore[no-untyped-def]
    async def load() -> Sequence[object]:
        raise error

    return load


# ------------------------------------------------------------------------------ choices


def test_choices_complete_a_single_name() -> None:
    choices = _loaded().category_choices("fox", Rating.SFW)
    assert choices == [("foxgirl", "foxgirl")]


def test_choices_complete_the_last_comma_separated_name() -> None:
    choices = _loaded().category_choices("maid, Long Hair ,whi", Rating.SFW)
    assert choices == [("maid, Long Hair, white hair", "maid, Long Hair, white hair")]


def test_choices_skip_names_already_typed() -> None:
    values = [value for _, value in _loaded().category_choices("catgirl, cat", Rating.NSFW)]
    assert "catgirl, catgirl" not in values
    assert "catgirl, cat ears" in values
    assert all(v.startswith("catgirl, ") for v in values)


def test_empty_query_offers_the_first_names() -> None:
    choices = _loaded().category_choices("", Rating.SFW)
    assert choices
    assert all(name == value for name, value in choices)


def test_choices_hide_nsfw_flagged_categories_where_only_sfw_is_allowed() -> None:
    catalog = _loaded()
    sfw = {value for _, value in catalog.category_choices("", Rating.SFW)}
    sfw |= {value for _, value in catalog.category_choices("cat", Rating.SFW)}
    sfw |= {value for _, value in catalog.category_choices("ecc", Rating.SFW)}
    assert not sfw & set(NSFW_NAMES)
    assert ("ecchi", "ecchi") in catalog.category_choices("ecc", Rating.QUESTIONABLE)
    assert ("catsuit lewd", "catsuit lewd") in catalog.category_choices("cat", Rating.NSFW)


def test_choices_match_unicode_and_accents() -> None:
    catalog = _loaded()
    assert ("café", "café") in catalog.category_choices("CAF", Rating.SFW)
    assert ("猫耳", "猫耳") in catalog.category_choices("猫", Rating.SFW)


def test_at_most_25_choices_each_at_most_100_characters() -> None:
    names = [f"tag {i:03d}" for i in range(80)]
    catalog = _loaded(_categories(names, []))
    for query in ("", "tag", "tag 0", "x, y, tag"):
        choices = catalog.category_choices(query, Rating.SFW)
        assert 0 < len(choices) <= 25
        for name, value in choices:
            assert 1 <= len(name) <= 100
            assert 1 <= len(value) <= 100


def test_choices_that_would_pass_100_characters_are_left_out() -> None:
    names = ["a" * 45, "b" * 45, "short", "a much longer category name"]
    catalog = _loaded(_categories(names, []))
    typed = f"{'a' * 45}, {'b' * 45}, "  # 94 characters of prefix
    values = [value for _, value in catalog.category_choices(typed, Rating.SFW)]
    assert values == [f"{'a' * 45}, {'b' * 45}, short"]
    assert all(len(v) <= 100 for v in values)


def test_no_match_gives_no_choices() -> None:
    assert _loaded().category_choices("zzz", Rating.NSFW) == []


# ------------------------------------------------------------------------------ check


def test_check_sorts_names_into_known() -> None:
    check = _loaded().check_categories("CATGIRL,  maid ", Rating.SFW)
    assert check.known == ("catgirl", "maid")
    assert check.unknown == ()
    assert check.hidden == ()


def test_check_reports_unknown_names_with_suggestions() -> None:
    check = _loaded().check_categories("catgrl, maid, qqqqqq", Rating.SFW)
    assert check.known == ("maid",)
    assert check.unknown == ("catgrl", "qqqqqq")
    assert "catgirl" in check.suggestions["catgrl"]
    assert check.suggestions["qqqqqq"] == []


def test_suggestions_in_an_sfw_channel_never_name_an_nsfw_category() -> None:
    catalog = _loaded()
    sfw = catalog.check_categories("ecchy", Rating.SFW)
    assert sfw.unknown == ("ecchy",)
    assert "ecchi" not in sfw.suggestions["ecchy"]
    nsfw = catalog.check_categories("ecchy", Rating.NSFW)
    assert "ecchi" in nsfw.suggestions["ecchy"]


def test_check_reports_nsfw_flagged_names_as_hidden_where_only_sfw_is_allowed() -> None:
    catalog = _loaded()
    sfw = catalog.check_categories("catgirl, Ecchi", Rating.SFW)
    assert sfw.known == ("catgirl",)
    assert sfw.hidden == ("Ecchi",)
    assert sfw.unknown == ()
    questionable = catalog.check_categories("catgirl, Ecchi", Rating.QUESTIONABLE)
    assert questionable.known == ("catgirl", "ecchi")
    assert questionable.hidden == ()


def test_check_before_loading_lets_the_api_judge() -> None:
    catalog = Catalog(CatalogSource(_returns(()), _returns(()), _returns(())))
    check = catalog.check_categories("anything, at all", Rating.SFW)
    assert check.known == ("anything", "at all")
    assert check.unknown == ()
    assert check.hidden == ()


def test_check_of_nothing_is_empty() -> None:
    for text in (None, "", " , ,"):
        check = _loaded().check_categories(text, Rating.SFW)
        assert (check.known, check.unknown, check.hidden) == ((), (), ())


def test_visible_categories_are_sorted_and_gated() -> None:
    catalog = _loaded()
    sfw = [c.name for c in catalog.visible_categories(Rating.SFW)]
    assert sfw == sorted(NAMES, key=str.casefold)
    nsfw = [c.name for c in catalog.visible_categories(Rating.NSFW)]
    assert set(nsfw) == set(NAMES) | set(NSFW_NAMES)


def test_category_lookup_is_case_and_space_insensitive() -> None:
    catalog = _loaded()
    found = catalog.category("  Long HAIR ")
    assert found is not None
    assert found.name == "long hair"
    assert catalog.category("nope") is None


# ------------------------------------------------------------------------------ refresh


async def test_refresh_loads_every_list() -> None:
    catalog = Catalog(
        CatalogSource(
            _returns(_categories()),
            _returns([Artist(id="a1", name="Mio Art"), Artist(id="a2", name=None)]),
            _returns([Character(id="h1", name="Yuki Onna")]),
        )
    )
    assert not catalog.loaded.is_set()
    await catalog.refresh()
    assert catalog.loaded.is_set()
    assert catalog.category("catgirl") is not None
    assert catalog.artist_index.best("mio art") == ("Mio Art", "a1", True)
    assert len(catalog.artist_index) == 1  # a nameless artist cannot be typed
    assert catalog.character_index.best("YUKI ONNA") == ("Yuki Onna", "h1", True)


@pytest.mark.parametrize("error", [ServerError("boom", status=500), Unavailable("timed out")])
async def test_a_failing_loader_keeps_its_previous_list(error: NekosError) -> None:
    lists: dict[str, object] = {
        "categories": _returns(_categories()),
        "artists": _returns([Artist(id="a1", name="Mio Art")]),
        "characters": _returns([Character(id="h1", name="Yuki Onna")]),
    }
    source = CatalogSource(
        lambda: lists["categories"](),  # type: ignore[operator]
        lambda: lists["artists"](),  # type: ignore[operator]
        lambda: lists["characters"](),  # type: ignore[operator]
    )
    catalog = Catalog(source)
    await catalog.refresh()

    lists["categories"] = _raises(error)
    lists["artists"] = _returns([Artist(id="a2", name="New Artist")])
    lists["characters"] = _raises(error)
    await catalog.refresh()

    assert catalog.category("catgirl") is not None
    assert catalog.category_choices("eccc", Rating.SFW) == []
    assert catalog.check_categories("ecchi", Rating.SFW).hidden == ("ecchi",)
    assert catalog.character_index.best("yuki onna") == ("Yuki Onna", "h1", True)
    # The loader that worked still replaced its list.
    assert catalog.artist_index.best("new artist") == ("New Artist", "a2", True)
    assert [name for name, _ in catalog.artist_index.match("")] == ["New Artist"]


async def test_a_first_refresh_that_fails_still_marks_loaded() -> None:
    catalog = Catalog(CatalogSource(_raises(Unavailable("down")), _returns(()), _returns(())))
    await catalog.refresh()
    assert catalog.loaded.is_set()
    assert catalog.check_categories("catgirl", Rating.SFW).known == ("catgirl",)


async def test_background_task_refreshes_and_stops() -> None:
    calls = 0

    async def categories() -> Sequence[Category]:
        nonlocal calls
        calls += 1
        return _categories()

    catalog = Catalog(CatalogSource(categories, _returns(()), _returns(())), refresh_every=0.01)
    catalog.start()
    catalog.start()  # a second start is a no-op while running
    await asyncio.wait_for(catalog.loaded.wait(), 5)
    for _ in range(200):
        if calls >= 2:
            break
        await asyncio.sleep(0.01)
    assert calls >= 2
    await catalog.stop()
    settled = calls
    await asyncio.sleep(0.05)
    assert calls == settled


# ------------------------------------------------------------------------------ hostile names


def _choice_problems(choices: Sequence[tuple[str, str]]) -> list[str]:
    data = {"choices": [{"name": name, "value": value} for name, value in choices]}
    problems = autocomplete_problems(data, option_type=3)
    for name, value in choices:
        problems += forbidden_characters(name) + forbidden_characters(value)
    return problems


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(V1_CATEGORY, min_size=1, max_size=12),
    st.lists(V1_ARTIST, max_size=6),
    st.lists(V1_CHARACTER, max_size=6),
    st.data(),
)
def test_choices_from_hostile_names_are_clean_and_round_trip(
    categories_json: list[dict[str, Any]],
    artists_json: list[dict[str, Any]],
    characters_json: list[dict[str, Any]],
    data: st.DataObject,
) -> None:
    categories = [parse_category_data(c) for c in categories_json]
    catalog = _loaded(categories)
    catalog.set_artists([parse_artist_data(a) for a in artists_json])
    catalog.set_characters([parse_character_data(c) for c in characters_json])
    # A member types the start of a name as it is shown, or anything at all.
    target = data.draw(st.sampled_from(categories))
    shown = plain_text(target.name, 100)
    # One name being typed (a comma would start the next one, after names typed before it).
    query = data.draw(
        st.one_of(st.just(shown[: len(shown) // 2]), TEXT.map(lambda s: s[:100])).map(
            lambda s: s.replace(",", " ")
        )
    )

    choices = catalog.category_choices(query, Rating.NSFW)
    assert _choice_problems(choices) == []
    for _, value in choices:
        # What the member picks comes back as the option's value: it names a category.
        check = catalog.check_categories(value, Rating.NSFW)
        assert check.unknown == ()
        assert len(check.known) == 1
        assert clean(check.known[0]).casefold() == value.casefold()

    ids = {a["id"] for a in artists_json} | {c["id"] for c in characters_json}
    for index in (catalog.artist_index, catalog.character_index):
        found = index.match(query)
        assert _choice_problems(found) == []
        assert {value for _, value in found} <= ids


def test_a_name_of_only_invisible_characters_names_no_category() -> None:
    # Found by the payload property test: "\n\u202e" typed, a category named "\n" listed.
    catalog = _loaded([Category(id="blank", name="\n"), Category(id="c", name="catgirl")])
    check = catalog.check_categories("\n\u202e", Rating.NSFW)
    assert check.known == ()
    assert catalog.category("\u200b") is None
    assert catalog.check_categories("cat\u200bgirl", Rating.NSFW).known == ("catgirl",)


# ---------------------------------------------------------------------------- tags (v4)


def _tagged(*tags: str, image_id: str = "1") -> Image:
    return Image(id=image_id, url="https://example.invalid/1.png", rating=Rating.SFW, tags=tags)


def _tag_catalog() -> Catalog:
    catalog = Catalog(CatalogSource(_returns(()), _returns(()), _returns(())), uses_tags=True)
    catalog.note_images(
        [
            _tagged("girl", "catgirl", "nude"),
            _tagged("girl", "sword", "loli"),
            _tagged("girl", "catgirl"),
        ]
    )
    return catalog


def test_tags_are_learned_from_images_most_common_first() -> None:
    catalog = _tag_catalog()
    assert catalog.visible_tags(Rating.NSFW) == [
        ("girl", 3),
        ("catgirl", 2),
        ("nude", 1),
        ("sword", 1),
    ]
    # Explicit tags only where more than sfw is allowed; youth tags nowhere.
    assert catalog.visible_tags(Rating.SFW) == [("girl", 3), ("catgirl", 2), ("sword", 1)]


def test_tag_autocomplete_completes_the_last_tag_typed() -> None:
    catalog = _tag_catalog()
    assert catalog.category_choices("girl, ca", Rating.SFW) == [("girl, catgirl", "girl, catgirl")]
    assert catalog.category_choices("nu", Rating.SFW) == []
    assert catalog.category_choices("nu", Rating.NSFW) == [("nude", "nude")]
    assert catalog.category_choices("lol", Rating.NSFW) == []


def test_any_tag_may_be_asked_for_but_not_one_the_channel_may_not_show() -> None:
    catalog = _tag_catalog()
    check = catalog.check_categories("Catgirl, never-seen, nude", Rating.SFW)
    assert check.known == ("catgirl", "never-seen")
    assert check.hidden == ("nude",)
    assert check.unknown == ()


def test_a_catalogue_of_categories_ignores_tags() -> None:
    catalog = Catalog(CatalogSource(_returns(()), _returns(()), _returns(())))
    catalog.note_images([_tagged("girl")])
    assert catalog.visible_tags(Rating.NSFW) == []


def test_a_name_with_a_comma_is_not_offered() -> None:
    # Found by the choices property test: "0," came back as "0" and "".
    catalog = _loaded([Category(id="a", name="0,"), Category(id="b", name="0 cats")])
    assert catalog.category_choices("0", Rating.NSFW) == [("0 cats", "0 cats")]
