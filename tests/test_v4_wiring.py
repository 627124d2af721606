"""The bot's wiring on v4: pool, lookups, replies, ``preview`` and ``check`` against the v4 fake.

The issue's acceptance check runs here as the product runs it:
``NEKOS_API_BASE_URL=<v4 fake>/v4 python -m bot preview random --count 5`` gives five embeds
coloured from ``color_dominant``, all ``safe``, and ``check`` says v4.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog, CatalogSource
from bot.config import settings_from_mapping
from bot.gating import DEFAULT_POLICY, ContentPolicy, RefusalCounter
from bot.nekos import NekosClient, NekosV4Client, NotFound, Pacer, Rating
from bot.replies import Replies
from bot.serving import ImageRequest, PoolSettings, ServeStatus
from bot.serving.assembly import make_api, make_lookups, make_pool
from tests.fakes.dataset import generate_dataset
from tests.fakes.dataset_v4 import generate_v4_dataset
from tests.fakes.nekos_api import FakeNekosAPI
from tests.fakes.nekos_api_v4 import FakeNekosV4API
from tests.test_cli import DISCORD_TOKEN, Cli, closed_port

DATASET = generate_v4_dataset()
FAST = {"NEKOS_API_RATE": "50"}  # the tests' own pace; nothing here measures time


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "test.env")


@pytest.fixture
async def fake() -> AsyncIterator[FakeNekosV4API]:
    async with FakeNekosV4API(DATASET) as server:
        yield server


@pytest.fixture
async def api(fake: FakeNekosV4API) -> AsyncIterator[NekosV4Client]:
    async with NekosV4Client(fake.base_url, pacer=Pacer(interval=0.0, margin=0.0)) as client:
        yield client


def request_for(categories: frozenset[str] = frozenset(), count: int = 5) -> ImageRequest:
    return ImageRequest(
        guild_key=1,
        channel_key=2,
        user_id=3,
        categories=categories,
        count=count,
        max_rating=Rating.SFW,
        accept=lambda image: True,
    )


def random_queries(fake: FakeNekosV4API | FakeNekosAPI, path: str) -> list[dict[str, str]]:
    return [r.query for r in fake.api_requests if r.path == path]


# ------------------------------------------------------------------ the pool


async def test_the_pool_asks_v4_only_for_what_may_be_shown(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    pool = make_pool(api, rng=random.Random(1))
    try:
        result = await pool.take(request_for(frozenset({"catgirl"})))
    finally:
        await pool.stop()
    assert result.status is ServeStatus.FULL
    (query,) = random_queries(fake, "/v4/images/random")
    # A full batch of v4's 100, safe only, leaving out tags that say otherwise.
    assert {k: v for k, v in query.items() if k != "without_tags"} == {
        "limit": "100",
        "rating": "safe",
        "tags": "catgirl",
    }
    assert set(query["without_tags"].split(",")) == DEFAULT_POLICY.not_sfw_tags
    for image in result.images:
        row = DATASET.by_id[int(image.id)]
        assert row.rating == "safe"
        assert "catgirl" in row.tags


async def test_with_the_opt_in_an_nsfw_request_asks_for_every_rating_and_gates_itself(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    pool = make_pool(api, policy=ContentPolicy(unverified_above_sfw=True), rng=random.Random(1))
    try:
        request = dataclasses.replace(request_for(count=10), max_rating=Rating.NSFW)
        result = await pool.take(request)
    finally:
        await pool.stop()
    assert random_queries(fake, "/v4/images/random")[0] == {
        "limit": "100",
        "rating": "safe,suggestive,borderline,explicit",
    }
    assert result.images


async def test_without_the_opt_in_the_pool_never_asks_v4_above_sfw(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    pool = make_pool(api, rng=random.Random(1))
    try:
        request = dataclasses.replace(request_for(count=10), max_rating=Rating.NSFW)
        await pool.take(request)
    finally:
        await pool.stop()
    assert [q["rating"] for q in random_queries(fake, "/v4/images/random")] == ["safe"]


async def test_v1_is_called_as_before_even_with_a_ceiling() -> None:
    async with (
        FakeNekosAPI(generate_dataset(), rate_limit=None) as fake,
        NekosClient(fake.base_url, pacer=Pacer(interval=0.0, margin=0.0)) as api,
    ):
        pool = make_pool(api, PoolSettings(upstream_max_rating=Rating.SFW))
        try:
            result = await pool.take(request_for(count=3))
        finally:
            await pool.stop()
    assert result.images
    assert all("rating" not in query for query in random_queries(fake, "/api/image/random"))


# ------------------------------------------------------------------ lookups


async def test_v4_lookups_have_images_and_stats_and_an_empty_catalogue(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    lookups = make_lookups(api)
    try:
        image = await lookups.image("4399")
        assert image.meta.color == "#4b347a"
        stats = await lookups.stats()
        assert stats.images == len(DATASET.images)
        before = len(fake.api_requests)
        assert await lookups.category_list() == ()
        assert await lookups.artist_list() == ()
        assert await lookups.character_list() == ()
        with pytest.raises(NotFound):
            await lookups.artist("a")
        with pytest.raises(NotFound):
            await lookups.character("c")
        assert len(fake.api_requests) == before  # v1 endpoints are never tried on v4
        assert [r.path for r in fake.api_requests].count("/v4/images/4399") == 1
    finally:
        await lookups.stop()


# ------------------------------------------------------------------ replies


def replies_for(api: NekosV4Client) -> Replies:
    lookups = make_lookups(api)
    return Replies(
        pool=make_pool(api),
        lookups=lookups,
        catalog=Catalog(CatalogSource(lookups.category_list, _none, _none)),
        api=api,
        refusals=RefusalCounter(),
    )


async def _none() -> tuple[Any, ...]:
    return ()


@pytest.mark.parametrize("typed", ["4399", " 4399 ", "04399"])
async def test_image_ids_are_whole_numbers_on_v4(api: NekosV4Client, typed: str) -> None:
    reply = await replies_for(api).image(image_id=typed, channel_max=Rating.SFW)
    assert not reply.ephemeral
    assert reply.embeds[0].colour is not None
    assert reply.embeds[0].colour.value == 0x4B347A
    assert "4399" in (reply.embeds[0].footer.text or "")


@pytest.mark.parametrize(
    "typed", ["abc", "1a2b3c4d-1a2b-1a2b-1a2b-1a2b3c4d5e6f", "٤٣٩٩", "-4", "", "9" * 40]
)
async def test_other_ids_get_the_v4_hint_without_a_request(
    api: NekosV4Client, fake: FakeNekosV4API, typed: str
) -> None:
    reply = await replies_for(api).image(image_id=typed, channel_max=Rating.SFW)
    assert reply.ephemeral
    assert "whole numbers like `4399`" in (reply.content or "")
    assert fake.api_requests == []


async def test_artist_and_character_say_v4_has_none(
    api: NekosV4Client, fake: FakeNekosV4API
) -> None:
    replies = replies_for(api)
    artist = await replies.artist(user_id=1, channel_max=Rating.SFW, name="Mikan")
    character = await replies.character(name="Mio")
    assert artist.ephemeral
    assert "no artists" in (artist.content or "")
    assert character.ephemeral
    assert "no characters" in (character.content or "")
    assert fake.api_requests == []


# ------------------------------------------------------------------ the configured client


def test_settings_pick_the_client_and_its_pace() -> None:
    v4 = make_api(
        settings_from_mapping(
            {"NEKOS_API_BASE_URL": "https://api.nekosapi.com/v4", "NEKOS_API_RATE": "4"}
        )
    )
    v1 = make_api(settings_from_mapping({"NEKOS_API_BASE_URL": "https://v1.nekosapi.com/api"}))
    assert isinstance(v4, NekosV4Client)
    assert isinstance(v1, NekosClient)
    assert v4.pacer.state().interval == pytest.approx(0.25 + 0.1)  # the margin stays
    assert v1.pacer.state().interval == pytest.approx(1.1)


# ------------------------------------------------------------------ python -m bot


def v4_env(fake: FakeNekosV4API, **extra: str) -> dict[str, str]:
    return {"NEKOS_API_BASE_URL": fake.base_url, **FAST, **extra}


def shown_ids(payload: dict[str, Any]) -> list[int]:
    return [int(re.findall(r"\d+", embed["footer"]["text"])[-1]) for embed in payload["embeds"]]


async def test_preview_random_shows_five_safe_images_coloured_from_the_api(
    cli: Cli, fake: FakeNekosV4API
) -> None:
    result = await cli("preview", "random", "--count", "5", env=v4_env(fake))
    assert result.code == 0, result.output
    payload = result.json()
    assert len(payload["embeds"]) == 5
    for embed, image_id in zip(payload["embeds"], shown_ids(payload), strict=True):
        row = DATASET.by_id[image_id]
        assert row.rating == "safe"
        red, green, blue = row.color_dominant
        assert embed["color"] == (red << 16) | (green << 8) | blue
        assert embed["image"]["url"] == fake.file_url(row)
    assert random_queries(fake, "/v4/images/random")[0]["rating"] == "safe"
    assert not any(r.has_token for r in fake.requests)


async def test_preview_random_with_tags_and_a_wider_channel(cli: Cli, fake: FakeNekosV4API) -> None:
    opted_in = v4_env(fake, NEKOS_V4_ALLOW_ABOVE_SFW="true")
    tagged, wider, capped = await asyncio.gather(
        cli("preview", "random", "--tags", "catgirl", "--count", "3", env=v4_env(fake)),
        cli("preview", "random", "--max-rating", "nsfw", "--count", "2", env=opted_in),
        cli("preview", "random", "--max-rating", "nsfw", "--count", "2", env=v4_env(fake)),
    )
    assert tagged.code == 0, tagged.output
    assert all("catgirl" in DATASET.by_id[i].tags for i in shown_ids(tagged.json()))
    assert wider.code == 0, wider.output
    assert capped.code == 0, capped.output
    ratings = sorted(q.get("rating", "") for q in random_queries(fake, "/v4/images/random"))
    # Without the operator's opt-in, even a channel allowing nsfw asks v4 for safe only.
    assert ratings == ["safe", "safe", "safe,suggestive,borderline,explicit"]
    assert {DATASET.by_id[i].rating for i in shown_ids(capped.json())} == {"safe"}


async def test_preview_image_and_stats_on_v4(cli: Cli, fake: FakeNekosV4API) -> None:
    image, bad, stats = await asyncio.gather(
        cli("preview", "image", "--id", "4399", env=v4_env(fake)),
        cli("preview", "image", "--id", "not-a-number", env=v4_env(fake)),
        cli("preview", "stats", env=v4_env(fake)),
    )
    assert image.code == 0, image.output
    assert image.json()["embeds"][0]["color"] == 0x4B347A
    assert bad.code == 1
    assert "whole numbers" in bad.json()["content"]
    assert stats.code == 0, stats.output
    embed = stats.json()["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Images"] == f"{len(DATASET.images):,}"
    for label, count in DATASET.rating_counts().items():
        assert f"{label.capitalize()}: {count:,}" in fields["Ratings"]
    # In v4's order, least restrictive first.
    assert [line.split(":")[0] for line in fields["Ratings"].splitlines()] == [
        "Safe",
        "Suggestive",
        "Borderline",
        "Explicit",
    ]
    assert embed["footer"]["text"] == "API version v4"


async def test_check_says_v4_and_what_it_can_do(cli: Cli, fake: FakeNekosV4API) -> None:
    token = "Tk9" + "a1B2c3D4e5" * 9 + "Zz9Yy8X"
    result = await cli(
        "check", env=v4_env(fake, DISCORD_TOKEN=DISCORD_TOKEN, NEKOS_API_TOKEN=token)
    )
    assert result.code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[2] == (
        "[ok] content: v4 has no characters' ages: only sfw images are shown, everywhere "
        "(NEKOS_V4_ALLOW_ABOVE_SFW=true lets age-restricted channels show more)"
    )
    assert lines[3] == (
        f"[ok] nekos api: v4 at {fake.base_url} — random images, images by id, tags, "
        "tag exclusion, rating filter; no artists, characters or categories"
    )
    assert lines[4] == (
        "[ok] nekos api token: set but not sent: v4 has no authentication (remove NEKOS_API_TOKEN)"
    )
    assert token not in result.output
    assert fake.api_requests
    assert not any(r.has_token for r in fake.requests)


async def test_an_explicit_version_wins_over_the_urls_path(cli: Cli, fake: FakeNekosV4API) -> None:
    env = v4_env(fake, DISCORD_TOKEN=DISCORD_TOKEN, NEKOS_API_VERSION="v1")
    result = await cli("check", env=env)
    assert result.code == 1
    assert f"[FAIL] nekos api: unreachable at {fake.base_url} (v1)" in result.stdout
    assert [r.path for r in fake.api_requests] == ["/v4/"]  # v1's GET /, which v4 lacks


async def test_check_fails_cleanly_when_v4_is_unreachable(cli: Cli) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v4"
    result = await cli(
        "check",
        env={"DISCORD_TOKEN": DISCORD_TOKEN, "NEKOS_API_BASE_URL": base_url, **FAST},
    )
    assert result.code == 1
    assert "Traceback" not in result.output
    assert f"[FAIL] nekos api: unreachable at {base_url} (v4)" in result.stdout
