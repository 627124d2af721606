"""The model parsers: both documented shapes parse, and no JSON body escapes as a bare error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.nekos import ResponseParseError
from bot.nekos.models import (
    Artist,
    Rating,
    parse_api_info,
    parse_artist_data,
    parse_category_data,
    parse_character_data,
    parse_image_data,
    parse_one,
    parse_page,
    parse_stats_data,
    parse_token_data,
)
from tests import nekos_payloads as P

ELEMENT_PARSERS: dict[str, Callable[[object], Any]] = {
    "image": parse_image_data,
    "artist": parse_artist_data,
    "category": parse_category_data,
    "character": parse_character_data,
    "stats": parse_stats_data,
    "token": parse_token_data,
}

# Field names the parsers look for, so random objects often reach the deeper code paths.
KNOWN_KEYS = [
    "data", "meta", "pagination", "success", "id", "url", "artist", "source", "name", "nsfw",
    "categories", "characters", "createdAt", "original", "eTag", "size", "mimetype", "color",
    "expires", "dimens", "width", "height", "aspectRatio", "orientation", "description", "type",
    "images", "gender", "ages", "birth_date", "nationality", "occupations", "count", "artists",
    "scopes", "owner", "purpose", "issuedBy", "version", "baseApiRoute", "limit", "offset",
    "total",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["sfw", "nsfw", "questionable", "2021-01-01T00:00:00.000Z", P.IMAGE_ID])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)


def call_every_parser(body: object) -> None:
    """Feed ``body`` to every public parser; each may succeed or raise ResponseParseError."""
    wrong_endpoints: list[str | None] = []
    for name, element in ELEMENT_PARSERS.items():
        for parse in (parse_one, parse_page):
            try:
                parse(body, element, f"GET /{name}")
            except ResponseParseError as exc:
                if exc.endpoint != f"GET /{name}":
                    wrong_endpoints.append(exc.endpoint)
    try:
        parse_api_info(body)
    except ResponseParseError as exc:
        if exc.endpoint != "GET /":
            wrong_endpoints.append(exc.endpoint)
    assert wrong_endpoints == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_random_json_bodies_only_ever_raise_response_parse_error(body: object) -> None:
    call_every_parser(body)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values, meta=json_values)
def test_random_data_inside_a_success_envelope_only_raises_response_parse_error(
    data: object, meta: object
) -> None:
    call_every_parser({"data": data, "meta": meta, "success": True})
    call_every_parser({"data": [data, data], "success": True})


@settings(max_examples=100)
@given(field=st.sampled_from(sorted(P.LIVE_IMAGE)), value=json_values)
def test_any_value_in_any_image_field_only_raises_response_parse_error(
    field: str, value: object
) -> None:
    image = {**P.LIVE_IMAGE, field: value}
    call_every_parser(P.reference_one(image))
    call_every_parser(P.live_page(image))


def test_reference_image_parses() -> None:
    image = parse_one(P.reference_one(P.REFERENCE_IMAGE), parse_image_data, "GET /image/{id}")
    assert image.artist == Artist(id=P.ARTIST_ID)
    assert image.rating is Rating.SFW
    assert image.meta.dimens.aspect_ratio == "1:1"
    assert image.meta.color == "#ffffff"
    assert image.original is None


def test_live_image_parses_with_drift_and_unknown_fields() -> None:
    page = parse_page(P.live_page(P.LIVE_IMAGE, P.LIVE_IMAGE_NO_ARTIST), parse_image_data, "x")
    live, no_artist = page.items
    assert live.artist is not None
    assert live.artist.image_count == 12
    assert live.meta.color is None
    assert live.meta.dimens.aspect_ratio is None
    assert live.categories[0].type == "character"
    assert live.original is False
    assert no_artist.artist is None
    assert page.pagination is not None
    assert page.pagination.total == 2890


@pytest.mark.parametrize(
    ("body", "parser", "endpoint"),
    [
        ({"data": None}, parse_artist_data, "GET /artist/{id}"),
        ({"data": {"id": P.IMAGE_ID}}, parse_image_data, "GET /image/{id}"),
        ([], parse_category_data, "GET /category/{id}"),
    ],
)
def test_wrong_shapes_name_the_endpoint(
    body: object, parser: Callable[[object], Any], endpoint: str
) -> None:
    with pytest.raises(ResponseParseError) as caught:
        parse_one(body, parser, endpoint)
    assert caught.value.endpoint == endpoint
    assert endpoint in str(caught.value)
