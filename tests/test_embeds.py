"""Rendering models to embeds: content, escaping, missing data, and Discord's limits."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.embeds import (
    ALLOWED_MENTIONS,
    BRAND_COLOUR,
    AboutInfo,
    about_embed,
    artist_embed,
    attachment_name,
    category_list_embed,
    character_embed,
    embed_length,
    fit_message,
    gallery_page_embed,
    http_url,
    image_embed,
    parse_colour,
    rating_label,
    stats_embed,
)
from bot.nekos.models import (
    Artist,
    Category,
    Character,
    Dimensions,
    Image,
    ImageMeta,
    Rating,
    Source,
    Stats,
)
from tests.discord_markdown import links, markdown_left, mentions, shown

CREATED = dt.datetime(2023, 5, 1, 12, 30, tzinfo=dt.UTC)


def make_category(name: str = "catgirl", **kw: Any) -> Category:
    return Category(id=kw.pop("id", f"cat-{name}"), name=name, **kw)


def make_character(name: str = "Rem", **kw: Any) -> Character:
    return Character(id=kw.pop("id", f"char-{name}"), name=name, **kw)


def make_image(**kw: Any) -> Image:
    defaults: dict[str, Any] = {
        "id": "0b8c5a1e-1234-4abc-9def-000000000001",
        "url": "https://cdn.example/img.png?sig=abc",
        "rating": Rating.SFW,
        "artist": Artist(id="a1", name="Nekoartist", url="https://art.example/neko"),
        "source": Source(name="Pixiv", url="https://pixiv.example/1"),
        "categories": (make_category("catgirl"), make_category("smile")),
        "characters": (make_character("Rem"),),
        "created_at": CREATED,
        "meta": ImageMeta(color="#ff8800", dimens=Dimensions(width=1024, height=768)),
    }
    defaults.update(kw)
    return Image(**defaults)


def total_chars(data: dict[str, Any]) -> int:
    """Count Discord's 6000-limit characters from the payload, independently of discord.py."""
    total = len(data.get("title", "") or "") + len(data.get("description", "") or "")
    for field in data.get("fields", []):
        total += len(field["name"]) + len(field["value"])
    total += len(data.get("footer", {}).get("text", "") or "")
    total += len(data.get("author", {}).get("name", "") or "")
    return total


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def assert_embed_within_limits(embed: discord.Embed) -> dict[str, Any]:
    data: dict[str, Any] = dict(embed.to_dict())
    assert len(data.get("title", "") or "") <= 256
    assert len(data.get("description", "") or "") <= 4096
    fields = data.get("fields", [])
    assert len(fields) <= 25
    for field in fields:
        assert 1 <= len(field["name"]) <= 256
        assert 1 <= len(field["value"]) <= 1024
    assert len(data.get("footer", {}).get("text", "") or "") <= 2048
    assert len(data.get("author", {}).get("name", "") or "") <= 256
    assert total_chars(data) <= 6000
    for url in (data.get("url"), data.get("author", {}).get("url")):
        assert url is None or _is_http(url)
    for media in ("image", "thumbnail"):
        url = data.get(media, {}).get("url")
        assert url is None or _is_http(url) or url.startswith("attachment://")
    color = data.get("color")
    assert color is None or 0 <= color <= 0xFFFFFF
    return data


def assert_message_within_limits(embeds: list[discord.Embed]) -> None:
    assert len(embeds) <= 10
    dicts = [assert_embed_within_limits(e) for e in embeds]
    assert sum(total_chars(d) for d in dicts) <= 6000


# --------------------------------------------------------------------------- colours


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("#ff8800", 0xFF8800),
        ("ff8800", 0xFF8800),
        ("#FF8800", 0xFF8800),
        ("FfAa00", 0xFFAA00),
        ("#f80", 0xFF8800),
        ("f80", 0xFF8800),
        ("#ABC", 0xAABBCC),
        ("#000000", 0),
        ("#ffffff", 0xFFFFFF),
        (" #123456 ", 0x123456),
    ],
)
def test_parse_colour_accepts_hex_forms(value: str, expected: int) -> None:
    assert parse_colour(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "#", "#12345", "#1234567", "1000000", "#ggg", "red", "0xff8800", "#ff88 00", "١٢٣"],
)
def test_parse_colour_falls_back_to_brand_colour(value: str | None) -> None:
    assert parse_colour(value) == BRAND_COLOUR


def test_image_embed_uses_image_colour_or_brand() -> None:
    assert image_embed(make_image()).colour == discord.Colour(0xFF8800)
    null_colour = make_image(meta=ImageMeta(color=None))
    assert image_embed(null_colour).colour == discord.Colour(BRAND_COLOUR)


# --------------------------------------------------------------------------- image embed content


def test_image_embed_credits_source_and_artist_with_links() -> None:
    embed = image_embed(make_image())
    assert embed.title == "Pixiv"
    assert embed.url == "https://pixiv.example/1"
    assert embed.author.name == "Artist: Nekoartist"
    assert embed.author.url == "https://art.example/neko"
    assert embed.image.url == "https://cdn.example/img.png?sig=abc"


def test_image_embed_lists_characters_and_categories() -> None:
    fields = {f.name: f.value for f in image_embed(make_image()).fields}
    assert fields == {"Characters": "Rem", "Categories": "catgirl, smile"}


def test_image_embed_footer_has_rating_dimensions_and_id() -> None:
    embed = image_embed(make_image(rating=Rating.QUESTIONABLE))
    assert embed.footer.text == "Questionable · 1024×768 · 0b8c5a1e-1234-4abc-9def-000000000001"


def test_image_embed_footer_omits_missing_dimensions() -> None:
    image = make_image(meta=ImageMeta(dimens=Dimensions(width=1024, height=None)))
    assert image_embed(image).footer.text == "Safe · 0b8c5a1e-1234-4abc-9def-000000000001"


def test_image_embed_timestamp_from_created_at() -> None:
    assert image_embed(make_image()).timestamp == CREATED
    assert image_embed(make_image(created_at=None)).timestamp is None


def test_image_embed_attachment_mode_points_at_the_file() -> None:
    embed = image_embed(make_image(), image_url="attachment://neko.png")
    assert embed.image.url == "attachment://neko.png"


def test_image_embed_without_source_is_untitled_and_unlinked() -> None:
    embed = image_embed(make_image(source=Source()))
    assert embed.title == "Untitled"
    assert embed.url is None


def test_image_embed_without_artist_has_no_author() -> None:
    embed = image_embed(make_image(artist=None))
    assert embed.author.name is None


def test_image_embed_credits_no_one_rather_than_an_unnamed_artist() -> None:
    # The commands name an id-only artist before rendering; one they could not name is not
    # credited as "Unknown artist" (the API does know them).
    embed = image_embed(make_image(artist=Artist(id="5f1e0d4c-aaaa")))
    assert embed.author.name is None
    assert embed.author.url is None


def test_image_embed_without_characters_or_categories_has_no_fields() -> None:
    embed = image_embed(make_image(characters=(), categories=()))
    assert embed.fields == []


@pytest.mark.parametrize(
    "bad_url",
    ["javascript:alert(1)", "ftp://files.example/x", "//no-scheme.example", "not a url", "", None],
)
def test_non_http_urls_are_never_set(bad_url: str | None) -> None:
    image = make_image(
        url=bad_url or "data:image/png;base64,AAAA",
        source=Source(name="S", url=bad_url),
        artist=Artist(id="a", name="A", url=bad_url),
    )
    data = assert_embed_within_limits(image_embed(image, image_url=bad_url))
    assert "url" not in data
    assert "url" not in data.get("author", {})
    assert "image" not in data


def test_image_override_that_is_not_http_or_attachment_falls_back_to_image_url() -> None:
    embed = image_embed(make_image(), image_url="file:///etc/passwd")
    assert embed.image.url == "https://cdn.example/img.png?sig=abc"


def test_http_url_requires_scheme_and_host() -> None:
    assert http_url("https://a.example/x") == "https://a.example/x"
    assert http_url("HTTP://A.example") == "http://a.example"
    assert http_url("https://") is None
    assert http_url("https://a.example/x y") is None
    assert http_url("mailto:x@example.com") is None


# --------------------------------------------------------------------------- escaping


@pytest.mark.parametrize(
    "raw",
    [
        "@everyone",
        "@here",
        "<@123>",
        "<@&456>",
        "**bold**",
        "`code`",
        "||spoiler||",
        "__under__",
        "[x](https://evil.example)",
        "# heading",
        "> quote",
        "https://example.org/a>[click](https://evil.example)",
    ],
)
def test_api_names_cannot_format_mention_or_link(raw: str) -> None:
    image = make_image(
        source=Source(name=raw),
        characters=(make_character(raw),),
        categories=(make_category(raw, description=raw),),
    )
    data = image_embed(image).to_dict()
    texts = [data["title"], *(field["value"] for field in data.get("fields", []))]
    character = character_embed(
        make_character(raw, description=f"{raw}\n{raw}", source=raw, occupations=(raw,))
    ).to_dict()
    texts += [character["title"], character["description"]]
    texts += [field["value"] for field in character.get("fields", [])]
    # The list bolds each name itself at the start of its line; nothing else may format.
    texts.append(category_list_embed([make_category(raw, description=raw)], 1, 1).description)
    for text in texts:
        assert text is not None
        assert mentions(text) == [], text
        assert links(text) == [], text
        assert markdown_left(text) == [], text
        assert raw in shown(text), text  # shown as written


def test_artist_card_link_cannot_be_closed_early() -> None:
    crafted = "https://example.org/a>[click](https://evil.example)"
    embed = artist_embed(Artist(id="a1", name="A", url=crafted))
    assert embed.description == "<https://example.org/a%3E%5Bclick%5D%28https://evil.example%29>"
    assert embed.url == embed.description[1:-1]
    assert links(embed.description, [embed.url]) == []


def test_bold_name_is_escaped_literally() -> None:
    embed = image_embed(make_image(source=Source(name="**bold** `x`")))
    assert embed.title == r"\*\*bold\*\* \`x\`"


def test_allowed_mentions_allow_nothing() -> None:
    assert ALLOWED_MENTIONS.everyone is False
    assert ALLOWED_MENTIONS.users is False
    assert ALLOWED_MENTIONS.roles is False
    assert ALLOWED_MENTIONS.replied_user is False


# --------------------------------------------------------------------------- limits


def test_hundred_characters_on_one_image_are_trimmed_with_more_marker() -> None:
    characters = tuple(make_character(f"Character number {i:03d}") for i in range(100))
    embed = image_embed(make_image(characters=characters))
    data = assert_embed_within_limits(embed)
    value = next(f["value"] for f in data["fields"] if f["name"] == "Characters")
    assert value.startswith("Character number 000, Character number 001")
    shown = value.count("Character number")
    assert value.endswith(f" +{100 - shown} more")
    assert 0 < shown < 100


def test_listing_keeps_everything_when_it_fits() -> None:
    characters = tuple(make_character(f"C{i}") for i in range(10))
    value = next(f.value for f in image_embed(make_image(characters=characters)).fields)
    assert value == ", ".join(f"C{i}" for i in range(10))


def test_one_huge_name_in_a_listing_is_trimmed_not_lost() -> None:
    characters = (make_character("x" * 5000),)
    data = assert_embed_within_limits(image_embed(make_image(characters=characters)))
    assert data["fields"][0]["value"].startswith("xxxx")


def test_very_long_names_and_descriptions_stay_within_limits() -> None:
    long = "Ω" * 10_000
    image = make_image(
        source=Source(name=long, url="https://s.example"),
        artist=Artist(id="a", name=long),
        characters=tuple(make_character(long + str(i)) for i in range(40)),
        categories=tuple(make_category(long + str(i), description=long) for i in range(40)),
        id="i" * 5000,
    )
    data = assert_embed_within_limits(image_embed(image))
    assert len(data["title"]) == 256
    assert len(data["author"]["name"]) <= 256
    assert_embed_within_limits(character_embed(make_character(long, description=long, source=long)))
    assert_embed_within_limits(artist_embed(Artist(id=long, name=long, url="https://a.example")))
    cats = [make_category(long + str(i), description=long) for i in range(50)]
    assert_embed_within_limits(category_list_embed(cats, 1, 3))


def test_unicode_emoji_and_combining_marks_survive_trimming() -> None:
    name = ("e\u0301" + "\U0001f469\u200d\U0001f4bb") * 200
    embed = image_embed(make_image(source=Source(name=name)))
    data = assert_embed_within_limits(embed)
    head = data["title"].removesuffix("…")
    assert name.startswith(head)
    assert name[len(head)] == "e"  # the cut fell before a base character


def test_many_images_fit_one_message() -> None:
    long = "name " * 300
    images = [
        make_image(
            id=f"img-{n}",
            source=Source(name=long),
            artist=Artist(id="a", name=long),
            characters=tuple(make_character(f"{long}{i}") for i in range(30)),
            categories=tuple(make_category(f"{long}{i}") for i in range(30)),
        )
        for n in range(14)
    ]
    embeds = [image_embed(image) for image in images]
    assert sum(embed_length(e) for e in embeds[:10]) > 6000  # the point of the test
    fitted = fit_message(embeds)
    assert len(fitted) == 10
    assert_message_within_limits(fitted)
    assert all(e.image.url == "https://cdn.example/img.png?sig=abc" for e in fitted)
    assert [e.footer.text.rsplit(" · ", 1)[-1] for e in fitted if e.footer.text] == [
        f"img-{n}" for n in range(10)
    ]


def test_fit_message_leaves_small_messages_unchanged() -> None:
    embeds = [image_embed(make_image()), stats_embed(Stats(images=3, ratings={}), "1.0")]
    fitted = fit_message(embeds)
    assert [e.to_dict() for e in fitted] == [e.to_dict() for e in embeds]


def test_fit_message_fills_an_empty_field_from_elsewhere_even_in_a_short_message() -> None:
    embed = discord.Embed(title="t").add_field(name="", value="")
    fitted = fit_message([embed])
    assert [(f.name, f.value) for f in fitted[0].fields] == [("…", "…")]
    assert embed.fields[0].name == ""  # the input is untouched


def test_fit_message_does_not_modify_its_input() -> None:
    characters = tuple(make_character("c" * 900 + str(i)) for i in range(3))
    embeds = [image_embed(make_image(characters=characters)) for _ in range(10)]
    before = [e.to_dict() for e in embeds]
    fit_message(embeds)
    assert [e.to_dict() for e in embeds] == before


def test_fit_message_shrinks_descriptions_before_fields() -> None:
    big = discord.Embed(title="t", description="d" * 4000)
    big.add_field(name="keep", value="v" * 1000)
    other = discord.Embed(title="u", description="e" * 4000)
    fitted = fit_message([big, other])
    assert_message_within_limits(fitted)
    assert fitted[0].fields[0].value == "v" * 1000


def test_fit_message_shares_the_cut_between_embeds() -> None:
    embeds = [discord.Embed(description=c * 4000) for c in "abc"]
    lengths = [len(e.description or "") for e in fit_message(embeds)]
    assert sum(lengths) <= 6000
    assert max(lengths) - min(lengths) <= 1
    assert min(lengths) >= 1900


def test_fit_message_clamps_oversized_embeds_from_elsewhere() -> None:
    embed = discord.Embed(title="T" * 300, description="D" * 5000)
    for i in range(30):
        embed.add_field(name="N" * 300, value="V" * 2000 if i % 2 else "")
    embed.set_footer(text="F" * 3000)
    embed.set_author(name="A" * 300)
    embed.set_image(url="https://img.example/x.png")
    fitted = fit_message([embed] * 12)
    assert len(fitted) == 10
    assert_message_within_limits(fitted)
    assert all(e.image.url == "https://img.example/x.png" for e in fitted)


def _texts(max_size: int) -> st.SearchStrategy[str]:
    """Text of any length up to ``max_size`` (plain st.text rarely produces long strings)."""
    return st.builds(
        lambda chunk, n: (chunk * n)[:max_size],
        st.text(alphabet="ab *_\\`@é\u0301\U0001f600\n", min_size=1, max_size=8),
        st.integers(min_value=0, max_value=max_size),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            _texts(300),
            _texts(5000),
            st.lists(st.tuples(_texts(300), _texts(1200)), max_size=30),
            _texts(2500),
            _texts(300),
        ),
        max_size=12,
    )
)
def test_fit_message_always_fits(
    specs: list[tuple[str, str, list[tuple[str, str]], str, str]],
) -> None:
    embeds = []
    for title, description, fields, footer, author in specs:
        embed = discord.Embed(title=title or None, description=description or None)
        for name, value in fields:
            embed.add_field(name=name or "n", value=value or "v")
        if footer:
            embed.set_footer(text=footer)
        if author:
            embed.set_author(name=author)
        embeds.append(embed)
    assert_message_within_limits(fit_message(embeds))


# --------------------------------------------------------------------------- other renderers


def test_gallery_page_shows_page_and_credits_given_artist() -> None:
    artist = Artist(id="a1", name="Gallery Artist", url="https://art.example/g")
    image = make_image(artist=Artist(id="a1"))  # the gallery endpoint may give only the id
    embed = gallery_page_embed(artist, image, 2, 5)
    assert embed.author.name == "Artist: Gallery Artist"
    assert embed.footer.text is not None
    assert embed.footer.text.startswith("Page 2 of 5 · Safe · 1024×768 · ")
    assert embed.image.url == image.url


def test_gallery_page_clamps_page_numbers() -> None:
    embed = gallery_page_embed(Artist(id="a"), make_image(), 9, 0)
    assert embed.footer.text is not None
    assert embed.footer.text.startswith("Page 1 of 1")


def test_artist_embed_profile() -> None:
    artist = Artist(id="a1", name="Neko *Artist*", url="https://art.example/n", image_count=1234)
    embed = artist_embed(artist, shown_images=25)
    assert embed.title == r"Neko \*Artist\*"
    assert embed.url == "https://art.example/n"
    assert {f.name: f.value for f in embed.fields} == {"Images": "1,234"}
    assert embed.footer.text == "Artist a1 · showing 25 images"


def test_artist_embed_with_only_an_id() -> None:
    embed = artist_embed(Artist(id="a1", url="javascript:x"))
    assert embed.title == "Unknown artist"
    assert embed.url is None
    assert embed.description is None
    assert embed.fields == []


def test_character_embed_full_profile() -> None:
    character = make_character(
        "Rem",
        description="A maid.",
        source="Re:Zero",
        gender="Female",
        ages=(17, 18),
        birth_date="February 2",
        nationality="Lugunica",
        occupations=("Maid", "Demon"),
        image_count=42,
    )
    embed = character_embed(character)
    assert embed.title == "Rem"
    assert embed.description == "A maid."
    assert {f.name: f.value for f in embed.fields} == {
        "Source": "Re:Zero",
        "Gender": "Female",
        "Ages": "17, 18",
        "Birth date": "February 2",
        "Nationality": "Lugunica",
        "Occupations": "Maid, Demon",
        "Images": "42",
    }


def test_character_embed_omits_missing_fields() -> None:
    embed = character_embed(make_character("Nobody"))
    assert embed.description is None
    assert embed.fields == []


def test_character_embed_single_age_and_trimmed_description() -> None:
    embed = character_embed(make_character("X", ages=(16,), description="word " * 1000))
    assert [f.name for f in embed.fields] == ["Age"]
    assert embed.description is not None
    assert len(embed.description) <= 1000
    assert embed.description.endswith("…")


def test_category_list_embed_shows_descriptions_and_page() -> None:
    categories = [
        make_category("catgirl", description="Girls with cat ears.", image_count=10),
        make_category("lewd", description="Not for everyone.", nsfw=True),
    ]
    embed = category_list_embed(categories, 1, 4)
    assert embed.description == (
        "**catgirl** (10 images) — Girls with cat ears.\n**lewd** (NSFW) — Not for everyone."
    )
    assert embed.footer.text == "Page 1 of 4"


def test_category_list_embed_empty_page() -> None:
    embed = category_list_embed([], 1, 1)
    assert embed.description == "No categories on this page."


def test_category_list_embed_marks_what_did_not_fit() -> None:
    categories = [make_category(f"c{i}", description="d" * 300) for i in range(40)]
    data = assert_embed_within_limits(category_list_embed(categories, 1, 1))
    assert data["description"].splitlines()[-1].endswith("more")
    shown = len(data["description"].splitlines()) - 1
    assert data["description"].endswith(f"+{40 - shown} more")


def test_stats_embed_counts_ratings_and_version() -> None:
    stats = Stats(
        images=1000,
        ratings={"nsfw": 10, "sfw": 980, "questionable": 10},
        artists=50,
        characters=None,
        categories=7,
    )
    embed = stats_embed(stats, "1.2.3")
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Images"] == "1,000"
    assert fields["Artists"] == "50"
    assert "Characters" not in fields
    assert fields["Ratings"] == "Safe: 980 (98.0%)\nQuestionable: 10 (1.0%)\nNSFW: 10 (1.0%)"
    assert embed.footer.text == "API version 1.2.3"


def test_stats_embed_without_version_or_ratings() -> None:
    embed = stats_embed(Stats(images=0, ratings={}), None)
    assert embed.footer.text is None
    assert [f.name for f in embed.fields] == ["Images"]


def test_about_embed_reports_health() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    info = AboutInfo(
        bot_version="0.1.0",
        api_version=None,
        uptime_seconds=7500,
        guild_count=12_345,
        queue_length=3,
        estimated_wait=4,
        last_error="429 **bold** [x](https://evil.example) @everyone",
        requests_sent=99,
        minor_safety_refusals=2,
        now=now,
    )
    fields = {f.name: f.value for f in about_embed(info).fields}
    assert fields["Uptime"] == "2h 5m"
    assert fields["Servers"] == "12,345"
    assert fields["Queue"] == "3 requests, about 4s wait"
    assert fields["API version"] == "unknown"
    assert fields["API connection"] == "working"
    assert fields["Minor-safety refusals"] == "2"
    assert "Image pool" not in fields  # unknown (e.g. a preview): not shown
    assert fields["Busy answers"] == "0"
    # Everyone sees the health in our words, never the API's error text.
    assert not [name for name in fields if "error" in name.lower()]
    assert not [v for v in fields.values() if "evil" in (v or "") or "bold" in (v or "")]
    busy = about_embed(
        replace(info, pooled_images=412, random_requests=200, served_from_stock=174, busy_answers=3)
    )
    busy_fields = {f.name: f.value for f in busy.fields}
    assert busy_fields["Image pool"] == "412 images, 87% of random requests answered from it"
    assert busy_fields["Busy answers"] == "3"
    idle = about_embed(replace(info, queue_length=0, last_error=None))
    idle_fields = {f.name: f.value for f in idle.fields}
    assert idle_fields["Queue"] == "0 requests"
    assert "Request budget" not in fields  # unknown: not shown
    shared = about_embed(replace(info, request_budget="shared via Redis with 2 other processes"))
    shared_fields = {f.name: f.value for f in shared.fields}
    assert shared_fields["Request budget"] == "shared via Redis with 2 other processes"
    assert "Shared serving" not in fields  # no Redis: not shown


def test_about_embed_counts_this_processs_shards_and_the_whole_bot() -> None:
    info = AboutInfo("0.1.0", "v1", 60, 1_204, 0, 0, None, 5, 0)
    sharded = about_embed(replace(info, shards="0-1 of 4", guild_total=4_810))
    servers = {f.name: f.value for f in sharded.fields}["Servers"]
    assert servers == "1,204 on this process's shards (0-1 of 4), about 4,810 in all"
    unknown_total = about_embed(replace(info, shards="2 of 4"))
    servers = {f.name: f.value for f in unknown_total.fields}["Servers"]
    assert servers == "1,204 on this process's shards (2 of 4)"


def test_about_embed_says_when_the_api_is_in_trouble_or_paused() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    info = AboutInfo("0.1.0", "v1", 60, 1, 0, 0, "boom", 5, 0, now=now)
    recent = replace(info, last_error_at=now - dt.timedelta(minutes=2))
    old = replace(info, last_error_at=now - dt.timedelta(minutes=20))
    paused = replace(info, blocked_until=now + dt.timedelta(minutes=30))
    health = {f.name: f.value for f in about_embed(recent).fields}["API connection"]
    assert health is not None
    assert health.startswith("having trouble (last error <t:")
    assert {f.name: f.value for f in about_embed(old).fields}["API connection"] == "working"
    paused_health = {f.name: f.value for f in about_embed(paused).fields}["API connection"]
    assert paused_health is not None
    assert paused_health.startswith("paused until <t:")


def test_about_embed_details_show_the_last_error_escaped() -> None:
    info = AboutInfo(
        "0.1.0", "v1", 60, 1, 0, 0, "**bold** [x](https://evil.example) @everyone", 5, 0
    )
    fields = {f.name: f.value for f in about_embed(info, details=True).fields}
    shown = fields["Last API error (only you can see this)"] or ""
    assert "\\*\\*bold\\*\\*" in shown
    assert mentions(shown) == []
    assert links(shown) == []
    none = about_embed(replace(info, last_error=None), details=True)
    assert {f.name: f.value for f in none.fields}["Last API error (only you can see this)"] == (
        "none"
    )


def test_rating_labels() -> None:
    assert [rating_label(r) for r in Rating] == ["Safe", "Questionable", "NSFW"]


@pytest.mark.parametrize(
    "image_id",
    ["<@123>", "../../etc/passwd", "a b", "\u202egnp.exe", "x" * 300, "猫", "a_b*c"],
)
def test_attachment_names_carry_nothing_the_api_sent(image_id: str) -> None:
    name = attachment_name(image_id, "png")
    assert re.fullmatch(r"[0-9a-f]{32}\.png", name)
    assert attachment_name(image_id, "png") == name  # the same image, the same file
    embed = image_embed(make_image(id=image_id), image_url=f"attachment://{name}")
    assert embed.image.url == f"attachment://{name}"


def test_attachment_name_of_a_uuid_is_the_uuid() -> None:
    image_id = "0b8c5a1e-1234-4abc-9def-000000000001"
    assert attachment_name(image_id, "jpg") == f"{image_id}.jpg"


def test_about_embed_escapes_the_apis_version_string() -> None:
    info = AboutInfo("0.1.0", "**v1** <@123> [x](https://evil.example)", 60, 1, 0, 0, None, 5, 0)
    version = {f.name: f.value for f in about_embed(info).fields}["API version"] or ""
    assert shown(version) == "**v1** <@123> [x](https://evil.example)"
    assert mentions(version) == links(version) == markdown_left(version) == []


async def test_about_says_whether_serving_is_shared_right_now() -> None:
    from types import SimpleNamespace

    from bot.config import Settings
    from bot.core import NekosBot

    bot = NekosBot(Settings(health_file=None), background=False)  # type: ignore[call-arg]
    assert bot._sharing() is None  # no REDIS_URL: nothing shared, the field is left out
    lookups, pool = SimpleNamespace(up=True), SimpleNamespace(up=True)
    bot.shared = SimpleNamespace(link=lookups)  # type: ignore[assignment]
    bot.cluster = SimpleNamespace(link=pool)  # type: ignore[assignment]
    assert bot._sharing() == (
        "image pool, lookups and cooldowns shared with the other processes (Redis)"
    )
    pool.up = False  # one link's circuit open: that process serves alone for now
    assert bot._sharing() == "on this process's own until Redis answers again"
