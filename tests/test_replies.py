"""What each ``/neko`` command answers, end to end against the loopback fake Nekos API.

The stack is the real one (NekosClient, ImagePool, CachedLookups, Catalog, Replies), built as
:mod:`bot.preview` builds it; only Discord is absent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest

from bot.catalog import Catalog, CatalogSource
from bot.gating import RefusalCounter, violates_minor_safety
from bot.nekos import NekosClient
from bot.nekos.errors import (
    BadRequest,
    Blocked,
    Forbidden,
    InvalidParameter,
    NekosError,
    NotFound,
    RateLimited,
    ResponseParseError,
    ServerError,
    Unauthorized,
    Unavailable,
)
from bot.nekos.models import Image, Rating
from bot.nekos.pacing import Priority
from bot.replies import GALLERY_LIMIT, Replies, Reply, error_reply, notice
from bot.serving import CachedLookups, ImagePool, ImageRequest, PoolSettings, ServeResult
from bot.views import AnotherButton, CategoryPageButton, GalleryPageButton
from tests.discord_markdown import payload_problems
from tests.fakes.dataset import Dataset, ImageRow, generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
USER = 424242424242424242
RATING_OF = {"sfw": Rating.SFW, "questionable": Rating.QUESTIONABLE, "nsfw": Rating.NSFW}

# A third of the images sfw, questionable and nsfw each, so gating has plenty to refuse.
HEAVY = generate_dataset(seed=7, images=450, ratings=(1.0, 1.0, 1.0))


@dataclass
class Stack:
    fake: FakeNekosAPI
    dataset: Dataset
    client: NekosClient
    lookups: CachedLookups
    pool: ImagePool
    catalog: Catalog
    refusals: RefusalCounter
    replies: Replies
    served: list[Image]
    """Every image the pool handed to a request, in order."""

    def row(self, image_id: str) -> ImageRow:
        return self.dataset.image_by_id[image_id]


@dataclass(frozen=True)
class StackOptions:
    dataset: Dataset = dataclasses.field(default_factory=generate_dataset)
    delivery: str = "link"
    load_catalog: bool = True


async def _stack(options: StackOptions) -> AsyncIterator[Stack]:
    async with FakeNekosAPI(options.dataset, rate_limit=None, seed=3) as fake:
        # The scope lifts the client's own pacing too, so the tests never wait a second.
        token = fake.add_token(["api:ratelimit:disabled"])
        async with aiohttp.ClientSession() as session:
            client = NekosClient(fake.base_url, token, session=session, timeout=5)
            async with client:
                lookups = CachedLookups(
                    client,
                    interactive_priority=Priority.INTERACTIVE,
                    background_priority=Priority.BACKGROUND,
                )
                pool = ImagePool(
                    client,
                    interactive_priority=Priority.INTERACTIVE,
                    background_priority=Priority.BACKGROUND,
                    settings=PoolSettings(max_attempts=3),
                    estimator=client.pacer,
                    rng=random.Random(5),
                )
                served: list[Image] = []
                real_take = pool.take

                async def take(request: ImageRequest) -> ServeResult:
                    result = await real_take(request)
                    served.extend(result.images)
                    return result

                pool.take = take  # type: ignore[method-assign]
                catalog = Catalog(
                    CatalogSource(
                        lookups.category_list, lookups.artist_list, lookups.character_list
                    )
                )
                if options.load_catalog:
                    await catalog.refresh()
                refusals = RefusalCounter()

                async def api_version() -> str | None:
                    return (await client.api_info()).version

                replies = Replies(
                    pool=pool,
                    lookups=lookups,
                    catalog=catalog,
                    api=client,
                    refusals=refusals,
                    delivery=options.delivery,
                    api_version=api_version,
                )
                yield Stack(
                    fake,
                    options.dataset,
                    client,
                    lookups,
                    pool,
                    catalog,
                    refusals,
                    replies,
                    served,
                )
                await pool.stop()
                await lookups.stop()


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    options = getattr(request, "param", StackOptions())
    async for built in _stack(options):
        yield built


def heavy(**changes: Any) -> Any:
    return pytest.mark.parametrize(
        "stack", [StackOptions(dataset=HEAVY, **changes)], indirect=True, ids=["heavy"]
    )


# ------------------------------------------------------------------------------ helpers


def footer_ids(reply: Reply) -> list[str]:
    """The image id at the end of each image embed's footer."""
    ids = []
    for embed in reply.embeds:
        found = UUID_RE.findall(embed.footer.text or "")
        if found and not (embed.footer.text or "").startswith(("Artist", "Character")):
            ids.append(found[-1])
    return ids


def buttons(reply: Reply) -> list[discord.ui.Button[Any]]:
    assert reply.view is not None
    found = []
    for item in reply.view.children:
        # Persistent buttons are DynamicItems wrapping the Button Discord sees.
        inner = item.item if isinstance(item, discord.ui.DynamicItem) else item
        assert isinstance(inner, discord.ui.Button)
        found.append(inner)
    return found


def custom_ids(reply: Reply) -> list[str]:
    return [b.custom_id for b in buttons(reply) if b.custom_id is not None]


def minor_violation(dataset: Dataset, row: ImageRow) -> bool:
    """The minor-safety rule, computed from the dataset rather than from the bot's models."""
    if row.nsfw == "sfw":
        return False
    for character_id in row.character_ids:
        ages = dataset.character_by_id[character_id].ages or ()
        if any(age < 18 for age in ages):
            return True
    return False


def allowed_rows(dataset: Dataset, rows: Iterable[ImageRow], max_rating: Rating) -> list[ImageRow]:
    return [r for r in rows if RATING_OF[r.nsfw] <= max_rating and not minor_violation(dataset, r)]


async def random_reply(
    stack: Stack,
    *,
    channel_max: Rating,
    requested: Rating | None = None,
    categories: str | None = None,
    count: int = 1,
    channel_id: int = 1,
) -> Reply:
    request = stack.replies.random_request(
        user_id=USER,
        guild_id=99,
        channel_id=channel_id,
        channel_max=channel_max,
        requested=requested,
        categories=categories,
        count=count,
    )
    return await stack.replies.random(request, requested=requested)


def assert_ephemeral_notice(reply: Reply) -> None:
    assert reply.ephemeral
    assert reply.content
    assert reply.embeds == []
    payload = reply.payload()
    assert payload["flags"] == 64
    assert payload["embeds"] == []


# ------------------------------------------------------------------------------ /neko random


@heavy()
async def test_random_never_exceeds_the_channel_max_nor_shows_a_minor(stack: Stack) -> None:
    seen: dict[Rating, set[Rating]] = {r: set() for r in Rating}
    for round_ in range(12):
        # Round-robin through the ratings so the shared pool holds images an earlier,
        # more permissive request fetched.
        for channel_max in Rating:
            before = len(stack.served)
            count = 1 + (round_ * 3 + int(channel_max)) % 10
            reply = await random_reply(
                stack, channel_max=channel_max, count=count, channel_id=100 + int(channel_max)
            )
            served = stack.served[before:]
            if reply.ephemeral:
                assert served == []
                continue
            assert 1 <= len(reply.embeds) <= count
            assert footer_ids(reply) == [image.id for image in served]
            for image in served:
                assert image.rating <= channel_max
                assert not violates_minor_safety(image)
                row = stack.row(image.id)
                assert RATING_OF[row.nsfw] <= channel_max
                assert not minor_violation(stack.dataset, row)
                seen[channel_max].add(image.rating)
    # The gate had real work: permissive channels did get non-sfw images, and images
    # featuring minors reached the pool and were refused.
    assert seen[Rating.SFW] == {Rating.SFW}
    assert Rating.QUESTIONABLE in seen[Rating.QUESTIONABLE]
    assert seen[Rating.NSFW] - {Rating.SFW}
    assert stack.refusals.minor_safety > 0


@heavy()
async def test_rating_option_narrows(stack: Stack) -> None:
    for _ in range(6):
        before = len(stack.served)
        reply = await random_reply(
            stack, channel_max=Rating.NSFW, requested=Rating.SFW, count=10, channel_id=7
        )
        assert not reply.ephemeral
        assert all(image.rating is Rating.SFW for image in stack.served[before:])


@heavy()
async def test_rating_option_above_the_channel_is_refused_with_no_image(stack: Stack) -> None:
    reply = await random_reply(
        stack, channel_max=Rating.SFW, requested=Rating.NSFW, count=10, channel_id=8
    )
    assert reply.ephemeral
    assert reply.embeds == []
    assert "up to **sfw**" in (reply.content or "")
    assert "can't show **nsfw**" in (reply.content or "")
    assert stack.served == []
    assert not reply.charge  # an input error does not cost the member a use


@heavy()
@pytest.mark.parametrize("requested", [Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW])
async def test_rating_option_is_an_exact_filter(stack: Stack, requested: Rating) -> None:
    reply = await random_reply(
        stack, channel_max=Rating.NSFW, requested=requested, count=10, channel_id=8
    )
    assert not reply.ephemeral
    shown = [stack.row(i).nsfw for i in footer_ids(reply)]
    assert shown  # the fake samples a fifth of its images per call: some, maybe not all ten
    assert set(shown) == {requested.label}


async def test_random_reply_has_another_and_link_buttons(stack: Stack) -> None:
    reply = await random_reply(stack, channel_max=Rating.SFW, categories="Catgirl", count=2)
    assert not reply.ephemeral
    assert len(reply.embeds) == 2
    (custom_id,) = custom_ids(reply)
    match = AnotherButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None
    assert match["owner"] == str(USER)
    assert match["count"] == "2"
    assert match["cats"] == "catgirl"
    links = [b for b in buttons(reply) if b.url is not None]
    assert {b.label for b in links} >= {"Image 1", "Image 2"}
    assert len(reply.view.children) <= 25  # type: ignore[union-attr]
    for image in stack.served:
        assert "catgirl" in {c.name for c in image.categories}
    payload = reply.payload()
    assert "flags" not in payload
    assert payload["allowed_mentions"] == {"parse": []}
    assert payload["components"]


async def test_unknown_category_gets_an_ephemeral_suggestion(stack: Stack) -> None:
    reply = await random_reply(stack, channel_max=Rating.SFW, categories="catgrl")
    assert_ephemeral_notice(reply)
    assert "catgrl" in (reply.content or "")
    assert "`catgirl`" in (reply.content or "")
    assert "/neko category" in (reply.content or "")
    assert stack.served == []


async def test_nsfw_flagged_category_in_an_sfw_channel_is_refused(stack: Stack) -> None:
    reply = await random_reply(stack, channel_max=Rating.SFW, categories="catgirl, ecchi")
    assert_ephemeral_notice(reply)
    assert "`ecchi`" in (reply.content or "")
    assert "can't be shown" in (reply.content or "")
    # Narrowing by option in an nsfw channel hides it the same way.
    narrowed = await random_reply(
        stack, channel_max=Rating.NSFW, requested=Rating.SFW, categories="ecchi"
    )
    assert_ephemeral_notice(narrowed)


async def test_nsfw_flagged_category_is_not_suggested_in_an_sfw_channel(stack: Stack) -> None:
    reply = await random_reply(stack, channel_max=Rating.SFW, categories="ecchy")
    assert_ephemeral_notice(reply)
    assert "ecchi" not in (reply.content or "").replace("ecchy", "")


async def test_nothing_matched_is_an_ephemeral_notice(stack: Stack) -> None:
    stack.fake.sample_percent = 0.0  # every /image/random answers 404
    reply = await random_reply(stack, channel_max=Rating.SFW, categories="maid", count=3)
    assert_ephemeral_notice(reply)
    assert "Nothing matched" in (reply.content or "")


async def test_a_set_this_channel_has_seen_all_of_says_so(stack: Stack) -> None:
    stack.fake.sample_percent = 100.0  # every call brings the whole (three-image) set
    first = await random_reply(stack, channel_max=Rating.NSFW, categories="rare find", count=3)
    assert len(first.embeds) == 3

    again = await random_reply(stack, channel_max=Rating.NSFW, categories="rare find")
    assert_ephemeral_notice(again)
    assert "was shown in this channel recently" in (again.content or "")
    assert "`rare find`" in (again.content or "")
    # Another channel has not seen them.
    elsewhere = await random_reply(
        stack, channel_max=Rating.NSFW, categories="rare find", channel_id=2
    )
    assert len(elsewhere.embeds) == 1


# ------------------------------------------------------------------------------ /neko image


def _first(dataset: Dataset, *, rating: str, minor: bool | None = None) -> ImageRow:
    for row in dataset.images:
        if row.nsfw == rating and (minor is None or minor_violation(dataset, row) == minor):
            return row
    raise LookupError(rating)


@pytest.mark.parametrize(
    "image_id",
    ["", "not-an-id", "12345", "0f8c3a526b1e4c8e9d7a2b5e4f6a7c81", "0f8c3a52-6b1e-4c8e-9d7a"],
)
async def test_malformed_image_id_is_an_ephemeral_hint(stack: Stack, image_id: str) -> None:
    requests = len(stack.fake.api_requests)
    reply = await stack.replies.image(image_id=image_id, channel_max=Rating.NSFW)
    assert_ephemeral_notice(reply)
    assert "isn't an image id" in (reply.content or "")
    assert len(stack.fake.api_requests) == requests  # nothing was sent


async def test_unknown_image_id_is_not_found(stack: Stack) -> None:
    reply = await stack.replies.image(image_id=str(uuid.uuid4()), channel_max=Rating.SFW)
    assert_ephemeral_notice(reply)
    assert "no image with that id" in (reply.content or "")


async def test_image_is_shown_with_its_buttons(stack: Stack) -> None:
    row = _first(stack.dataset, rating="sfw")
    reply = await stack.replies.image(image_id=f" {row.id.upper()} ", channel_max=Rating.SFW)
    assert not reply.ephemeral
    assert footer_ids(reply) == [row.id]
    assert reply.files == []
    image_url = reply.embeds[0].image.url
    assert image_url is not None
    assert f"/storage/{row.file_name}?" in image_url
    full = [b for b in buttons(reply) if b.label == "Full image"]
    assert full
    assert full[0].url == image_url


@heavy()
async def test_image_above_the_channel_max_is_refused_without_an_embed(stack: Stack) -> None:
    for rating, channel_max in (
        ("questionable", Rating.SFW),
        ("nsfw", Rating.SFW),
        ("nsfw", Rating.QUESTIONABLE),
    ):
        row = _first(stack.dataset, rating=rating, minor=False)
        reply = await stack.replies.image(image_id=row.id, channel_max=channel_max)
        assert_ephemeral_notice(reply)
        assert "can't be shown in this channel" in (reply.content or "")
        allowed = await stack.replies.image(image_id=row.id, channel_max=Rating.NSFW)
        assert footer_ids(allowed) == [row.id]


@heavy()
async def test_image_with_a_minor_is_refused_everywhere_and_counted_once(stack: Stack) -> None:
    row = _first(stack.dataset, rating="questionable", minor=True)
    for _ in range(3):
        reply = await stack.replies.image(image_id=row.id, channel_max=Rating.NSFW)
        assert_ephemeral_notice(reply)
    assert stack.refusals.minor_safety == 1


@pytest.mark.parametrize("stack", [StackOptions(delivery="attach")], indirect=True, ids=["attach"])
async def test_attach_delivery_uploads_the_file(stack: Stack) -> None:
    row = _first(stack.dataset, rating="sfw")
    reply = await stack.replies.image(
        image_id=row.id, channel_max=Rating.SFW, upload_limit=25 * 1024 * 1024
    )
    assert not reply.ephemeral
    ((name, data),) = reply.files
    extension = "png" if row.mimetype == "image/png" else "jpg"
    assert name == f"{row.id}.{extension}"
    assert data.startswith(b"\x89PNG" if extension == "png" else b"\xff\xd8")
    assert reply.embeds[0].image.url == f"attachment://{name}"
    payload = reply.payload()
    assert payload["attachments"] == [{"id": 0, "filename": name, "size": len(data)}]
    (discord_file,) = reply.discord_files()
    assert discord_file.filename == name


async def test_image_by_id_of_a_pooled_image_costs_no_upstream_call(stack: Stack) -> None:
    first = await random_reply(stack, channel_max=Rating.SFW)
    image_id = footer_ids(first)[0]
    before = len(stack.fake.requests)

    reply = await stack.replies.image(image_id=image_id.upper(), channel_max=Rating.SFW)

    assert footer_ids(reply) == [image_id]
    assert stack.fake.requests[before:] == []


@pytest.mark.parametrize("stack", [StackOptions(delivery="attach")], indirect=True, ids=["attach"])
async def test_attach_delivery_links_what_is_over_the_upload_limit(stack: Stack) -> None:
    row = _first(stack.dataset, rating="sfw")
    reply = await stack.replies.image(image_id=row.id, channel_max=Rating.SFW, upload_limit=10)
    assert reply.files == []
    assert (reply.embeds[0].image.url or "").startswith(stack.fake.origin)


# ------------------------------------------------------------------------------ /neko artist


def _artist_with_mixed_ratings(dataset: Dataset) -> tuple[str, str]:
    for artist in dataset.artists:
        rows = dataset.images_by_artist(artist.id)[:GALLERY_LIMIT]
        if len(rows) > 10 and any(r.nsfw != "sfw" for r in rows):
            return artist.id, artist.name
    raise LookupError("no artist with mixed ratings")


def _gallery_page(reply: Reply) -> tuple[int, int, str]:
    """(page, pages, image id) from the gallery embed's footer."""
    footer = reply.embeds[1].footer.text or ""
    found = re.match(r"Page (\d+) of (\d+)", footer)
    assert found is not None, footer
    return int(found[1]), int(found[2]), UUID_RE.findall(footer)[-1]


def _pager(reply: Reply) -> dict[str, tuple[int, bool]]:
    """direction -> (target page, disabled) of the gallery's Prev / Next buttons."""
    pager = {}
    for button in buttons(reply):
        if button.custom_id is None:
            continue
        match = GalleryPageButton.__discord_ui_compiled_template__.fullmatch(button.custom_id)
        assert match is not None
        assert match["owner"] == str(USER)
        pager[match["dir"]] = (int(match["page"]), button.disabled)
    return pager


@heavy()
@pytest.mark.parametrize("channel_max", list(Rating))
async def test_artist_gallery_pages_only_allowed_images(stack: Stack, channel_max: Rating) -> None:
    artist_id, name = _artist_with_mixed_ratings(stack.dataset)
    rows = stack.dataset.images_by_artist(artist_id)[:GALLERY_LIMIT]
    expected = [r.id for r in allowed_rows(stack.dataset, rows, channel_max)]
    assert len(expected) >= 2

    first = await stack.replies.artist(user_id=USER, channel_max=channel_max, name=name)
    assert not first.ephemeral
    assert artist_id in (first.embeds[0].footer.text or "")
    assert (first.embeds[0].title or "").replace("\\", "") == name  # markdown-escaped
    assert _gallery_page(first) == (1, len(expected), expected[0])
    assert _pager(first) == {"p": (1, True), "n": (2, False)}
    assert "Artist page" in {b.label for b in buttons(first)}

    shown = []
    for page in range(1, len(expected) + 1):
        reply = await stack.replies.artist_page(
            user_id=USER, channel_max=channel_max, artist_id=artist_id, page=page
        )
        number, pages, image_id = _gallery_page(reply)
        assert (number, pages) == (page, len(expected))
        shown.append(image_id)
        pager = _pager(reply)
        assert pager["p"] == (max(page - 1, 1), page == 1)
        assert pager["n"] == (min(page + 1, pages), page == pages)
    assert shown == expected


async def test_a_cold_artist_costs_no_separate_artist_call(stack: Stack) -> None:
    # The live API embeds the artist in every image: the gallery pages are enough for the card.
    artist_id, name = _artist_with_mixed_ratings(stack.dataset)
    before = len(stack.fake.requests)
    reply = await stack.replies.artist_page(
        user_id=USER, channel_max=Rating.SFW, artist_id=artist_id, page=1
    )
    paths = [r.path for r in stack.fake.requests[before:]]
    assert paths, "the gallery must come from the API"
    assert all(p.endswith("/images") for p in paths), paths
    assert (reply.embeds[0].title or "").replace("\\", "") == name


def _artist_with_two_full_pages(dataset: Dataset, channel_max: Rating) -> tuple[str, list[str]]:
    """An artist whose first 25 images include allowed ones and who has over 25 more."""
    for artist in dataset.artists:
        rows = dataset.images_by_artist(artist.id)
        if len(rows) > GALLERY_LIMIT and len(allowed_rows(dataset, rows[:25], channel_max)) > 2:
            allowed = allowed_rows(dataset, rows[:GALLERY_LIMIT], channel_max)
            return artist.id, [r.id for r in allowed]
    raise LookupError("no artist with two full pages")


def _gallery_calls(stack: Stack, since: int) -> list[str]:
    return [r.query for r in stack.fake.requests[since:] if r.path.endswith("/images")]


async def test_the_gallery_fetches_its_second_page_only_when_a_member_pages_past_the_first(
    stack: Stack,
) -> None:
    artist_id, expected = _artist_with_two_full_pages(stack.dataset, Rating.SFW)
    in_first = len(
        allowed_rows(stack.dataset, stack.dataset.images_by_artist(artist_id)[:25], Rating.SFW)
    )
    before = len(stack.fake.requests)

    first = await stack.replies.artist_page(
        user_id=USER, channel_max=Rating.SFW, artist_id=artist_id, page=1
    )
    assert len(_gallery_calls(stack, before)) == 1
    footer = first.embeds[1].footer.text or ""
    assert f"Page 1 of {in_first}+" in footer
    assert f"showing {in_first}+ images" in (first.embeds[0].footer.text or "")

    # The last page of the first 25: Next must stay open, the page after it is unknown yet.
    last = await stack.replies.artist_page(
        user_id=USER, channel_max=Rating.SFW, artist_id=artist_id, page=in_first
    )
    assert len(_gallery_calls(stack, before)) == 1
    assert _pager(last)["n"] == (in_first + 1, False)

    past = await stack.replies.artist_page(
        user_id=USER, channel_max=Rating.SFW, artist_id=artist_id, page=in_first + 1
    )
    assert len(_gallery_calls(stack, before)) == 2
    assert _gallery_page(past) == (in_first + 1, len(expected), expected[in_first])
    # GALLERY_LIMIT reached: the count is final.
    assert f"of {len(expected)}+" not in (past.embeds[1].footer.text or "")
    assert f"showing {len(expected)} images" in (past.embeds[0].footer.text or "")


async def test_artist_page_past_the_end_shows_the_last_page(stack: Stack) -> None:
    artist = stack.dataset.artists[0]
    rows = allowed_rows(stack.dataset, stack.dataset.images_by_artist(artist.id), Rating.SFW)
    pages = min(len(rows), GALLERY_LIMIT)
    reply = await stack.replies.artist_page(
        user_id=USER, channel_max=Rating.SFW, artist_id=artist.id, page=999
    )
    assert _gallery_page(reply)[:2] == (pages, pages)
    assert _pager(reply)["n"] == (pages, True)


async def test_artist_without_images_gets_a_card(stack: Stack) -> None:
    artist = next(a for a in stack.dataset.artists if not stack.dataset.images_by_artist(a.id))
    reply = await stack.replies.artist(user_id=USER, channel_max=Rating.NSFW, name=artist.name)
    assert not reply.ephemeral
    assert len(reply.embeds) == 1
    assert artist.id in (reply.embeds[0].footer.text or "")
    assert "No images of theirs can be shown here" in (reply.embeds[0].description or "")
    assert [b.label for b in buttons(reply)] == ["Artist page"]


async def test_artist_with_exactly_one_full_page_of_images() -> None:
    # The API answers the empty second page with 404; the gallery must still show page one.
    base = generate_dataset()
    artist = next(a for a in base.artists if len(base.images_by_artist(a.id)) > 25)
    mine = base.images_by_artist(artist.id)
    keep = {r.id for r in mine[:25]}
    images = [r for r in base.images if r.artist_id != artist.id or r.id in keep]
    dataset = Dataset.from_rows(
        seed=base.seed,
        artists=base.artists,
        categories=base.categories,
        characters=base.characters,
        images=images,
    )
    async for stack in _stack(StackOptions(dataset=dataset, load_catalog=False)):
        reply = await stack.replies.artist_page(
            user_id=USER, channel_max=Rating.NSFW, artist_id=artist.id, page=25
        )
        assert _gallery_page(reply)[:2] == (25, 25)


SPECIAL_ARTISTS = [
    "50% off",
    "under_score",
    "(paren)",
    "a|b studio",
    "star*",
    "+plus+",
    "[bracket]",
    "back\\slash",
    "MiXeD CaSe",
    "A rather long artist name",
    "China",
]


async def test_artist_found_by_exact_name_by_search_when_the_catalogue_is_empty() -> None:
    dataset = generate_dataset()
    async for stack in _stack(StackOptions(dataset=dataset, load_catalog=False)):
        for name in SPECIAL_ARTISTS:
            artist = dataset.artist_named(name)
            reply = await stack.replies.artist(user_id=USER, channel_max=Rating.SFW, name=name)
            assert not reply.ephemeral, name
            assert artist.id in (reply.embeds[0].footer.text or ""), name
            assert reply.content is None, name  # exact: no "closest name" note


@pytest.mark.parametrize("load_catalog", [True, False], ids=["catalogue", "search"])
async def test_artist_by_a_partial_name_says_which_artist_is_shown(load_catalog: bool) -> None:
    dataset = generate_dataset()
    options = StackOptions(dataset=dataset, load_catalog=load_catalog)
    async for stack in _stack(options):
        reply = await stack.replies.artist(user_id=USER, channel_max=Rating.SFW, name="bracket")
        assert not reply.ephemeral
        assert dataset.artist_named("[bracket]").id in (reply.embeds[0].footer.text or "")
        content = (reply.content or "").replace("\\", "")  # however the name is escaped
        assert content == "No artist is called `bracket`; showing **[bracket]**, the closest name."


async def test_character_found_by_name_with_special_characters_by_search() -> None:
    dataset = generate_dataset()
    async for stack in _stack(StackOptions(dataset=dataset, load_catalog=False)):
        for name in ("Mio (Summer)", "100% Neko", "Yuki_Onna", "Hana|Kaze"):
            character = dataset.character_named(name)
            reply = await stack.replies.character(name=name)
            assert not reply.ephemeral, name
            assert character.id in (reply.embeds[0].footer.text or ""), name
            assert reply.content is None, name


async def test_unknown_artist_is_an_ephemeral_notice(stack: Stack) -> None:
    reply = await stack.replies.artist(user_id=USER, channel_max=Rating.SFW, name="qqqqqqqq")
    assert_ephemeral_notice(reply)
    assert "qqqqqqqq" in (reply.content or "")
    gone = await stack.replies.artist(user_id=USER, channel_max=Rating.SFW, name=str(uuid.uuid4()))
    assert_ephemeral_notice(gone)


# ------------------------------------------------------------------------------ /neko character


async def test_character_profile_by_name_and_by_id(stack: Stack) -> None:
    character = next(c for c in stack.dataset.characters if c.source and c.ages)
    for query in (character.name, character.name.upper(), character.id):
        reply = await stack.replies.character(name=query)
        assert not reply.ephemeral
        (embed,) = reply.embeds
        assert (embed.title or "").replace("\\", "") == character.name  # markdown-escaped
        assert character.id in (embed.footer.text or "")
        fields = {f.name: f.value for f in embed.fields}
        assert fields["Source"] == character.source


async def test_unknown_character_is_an_ephemeral_notice(stack: Stack) -> None:
    assert_ephemeral_notice(await stack.replies.character(name="qqqqqqqq"))
    assert_ephemeral_notice(await stack.replies.character(name=str(uuid.uuid4())))


# ------------------------------------------------------------------------------ /neko category


async def _category_pages(stack: Stack, channel_max: Rating, search: str = "") -> list[Reply]:
    first = await stack.replies.category(user_id=USER, channel_max=channel_max, search=search)
    pages = int(re.findall(r"of (\d+)", first.embeds[0].footer.text or "")[0])
    replies = [first]
    for page in range(2, pages + 1):
        replies.append(
            await stack.replies.category(
                user_id=USER, channel_max=channel_max, search=search, page=page
            )
        )
    return replies


async def test_category_listing_hides_nsfw_categories_where_only_sfw_is_allowed(
    stack: Stack,
) -> None:
    nsfw_names = {c.name for c in stack.dataset.categories if c.nsfw}
    sfw_count = sum(1 for c in stack.dataset.categories if not c.nsfw)
    sfw_pages = await _category_pages(stack, Rating.SFW)
    text = "\n".join(r.embeds[0].description or "" for r in sfw_pages)
    assert not any(f"**{n}**" in text for n in nsfw_names)
    assert len(sfw_pages) == -(-sfw_count // 10)
    assert text.count("**") // 2 == sfw_count

    nsfw_pages = await _category_pages(stack, Rating.NSFW)
    text = "\n".join(r.embeds[0].description or "" for r in nsfw_pages)
    assert all(f"**{n}**" in text for n in nsfw_names)


async def test_category_pager_buttons(stack: Stack) -> None:
    pages = await _category_pages(stack, Rating.SFW)
    assert len(pages) >= 3
    for number, reply in enumerate(pages, start=1):
        states = {}
        for button in buttons(reply):
            assert button.custom_id is not None
            match = CategoryPageButton.__discord_ui_compiled_template__.fullmatch(button.custom_id)
            assert match is not None
            states[match["dir"]] = (int(match["page"]), button.disabled)
        assert states["p"] == (max(number - 1, 1), number == 1)
        assert states["n"] == (min(number + 1, len(pages)), number == len(pages))


async def test_category_search_filters_and_fits_one_page(stack: Stack) -> None:
    reply = await stack.replies.category(user_id=USER, channel_max=Rating.SFW, search="HAIR")
    assert reply.view is None
    description = reply.embeds[0].description or ""
    assert "**long hair**" in description
    assert "**white hair**" in description
    assert "catgirl" not in description


async def test_category_search_without_matches_is_an_ephemeral_notice(stack: Stack) -> None:
    assert_ephemeral_notice(
        await stack.replies.category(user_id=USER, channel_max=Rating.NSFW, search="zzzz")
    )
    # An nsfw category searched for in an sfw channel is simply not there.
    assert_ephemeral_notice(
        await stack.replies.category(user_id=USER, channel_max=Rating.SFW, search="ecchi")
    )


@pytest.mark.parametrize("stack", [StackOptions(load_catalog=False)], indirect=True, ids=["cold"])
async def test_category_listing_loads_the_catalogue_when_empty(stack: Stack) -> None:
    reply = await stack.replies.category(user_id=USER, channel_max=Rating.SFW)
    assert "Page 1 of" in (reply.embeds[0].footer.text or "")
    assert stack.catalog.category("catgirl") is not None


# ------------------------------------------------------------------------------ /neko stats


async def test_stats(stack: Stack) -> None:
    reply = await stack.replies.stats()
    assert not reply.ephemeral
    (embed,) = reply.embeds
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Images"] == f"{len(stack.dataset.images):,}"
    assert fields["Artists"] == f"{len(stack.dataset.artists):,}"
    assert "API version v1.6.0" in (embed.footer.text or "")


async def test_about_without_details_is_a_notice(stack: Stack) -> None:
    assert_ephemeral_notice(await stack.replies.about())


# ------------------------------------------------------------------------------ errors


UNTIL = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
ERRORS: list[tuple[NekosError, str]] = [
    (Blocked("blocked", until=UNTIL, retry_after=3600), "paused requests"),
    (RateLimited("slow down", retry_after=2.2), "about 3 seconds"),
    (RateLimited("slow down", retry_after=0.0), "about 1 seconds"),
    (InvalidParameter("limit must be 1-25"), "didn't accept those options"),
    (BadRequest("The following **categories** do not exist: zzz", status=400), "Check them"),
    (NotFound("Could not find image", status=404), "couldn't find that"),
    (ResponseParseError("bad JSON"), "couldn't read"),
    (ServerError("Internal Server Error", status=500), "isn't answering"),
    (Unavailable("timed out"), "isn't answering"),
    (Unauthorized("Invalid token", status=401), "isn't answering"),
    (Forbidden("Missing scope", status=403), "isn't answering"),
    (NekosError("something odd"), "isn't answering"),
]


@pytest.mark.parametrize(("error", "phrase"), ERRORS, ids=lambda v: type(v).__name__)
def test_error_reply_is_ephemeral_and_friendly(error: NekosError, phrase: str) -> None:
    reply = error_reply(error)
    assert_ephemeral_notice(reply)
    text = reply.content or ""
    assert phrase in text
    assert "Traceback" not in text
    assert type(error).__name__ not in text
    assert error.message not in text  # the API's (or the adapter's) own wording is never shown
    assert text.rstrip().endswith((".", "!"))


def test_blocked_reply_names_the_time() -> None:
    reply = error_reply(Blocked("blocked", until=UNTIL, retry_after=3600))
    assert f"<t:{int(UNTIL.timestamp())}:t>" in (reply.content or "")


# ------------------------------------------------------------------------------ payload


async def test_payload_shape() -> None:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Source", url="https://example.org/"))
    reply = Reply(
        content="hi @everyone",
        embeds=[discord.Embed(title="t")],
        view=view,
        files=[("a.png", b"12345")],
    )
    payload = reply.payload()
    assert payload["content"] == "hi @everyone"
    assert payload["allowed_mentions"] == {"parse": []}
    assert payload["embeds"][0]["title"] == "t"
    assert payload["components"][0]["components"][0]["url"] == "https://example.org/"
    assert payload["attachments"] == [{"id": 0, "filename": "a.png", "size": 5}]
    assert "flags" not in payload


def test_notice_payload_is_ephemeral_and_mentions_nobody() -> None:
    payload = notice("<@123> nope").payload()
    assert payload == {
        "content": "<@123> nope",
        "embeds": [],
        "components": [],
        "allowed_mentions": {"parse": []},
        "flags": 64,
    }


def test_empty_reply_payload() -> None:
    payload = Reply().payload()
    assert payload["content"] == ""
    assert payload["components"] == []
    assert "attachments" not in payload


# ------------------------------------------------------------------------------ member input

HOSTILE_INPUT = "x` @everyone <@123> [a](https://evil.example) **b** \u202e\n# big"


async def test_notices_quote_member_input_without_letting_it_render(stack: Stack) -> None:
    replies = [
        await stack.replies.artist(user_id=USER, channel_max=Rating.SFW, name=HOSTILE_INPUT),
        await stack.replies.character(name=HOSTILE_INPUT),
        await stack.replies.category(user_id=USER, channel_max=Rating.SFW, search=HOSTILE_INPUT),
        await random_reply(stack, channel_max=Rating.SFW, categories=f"catgirl,{HOSTILE_INPUT}"),
        await random_reply(stack, channel_max=Rating.SFW, categories="ecchi, catgirl"),
    ]
    for reply in replies:
        assert_ephemeral_notice(reply)
        assert payload_problems(reply.payload()) == [], reply.content
    assert "x\u02cb @everyone <@123>" in (replies[0].content or "")  # shown, inside `…`


async def test_a_notice_never_passes_discords_2000_characters(stack: Stack) -> None:
    typed = ",".join(f"unknown{i}{'z' * 40}" for i in range(120))
    reply = await random_reply(stack, channel_max=Rating.SFW, categories=typed)
    assert_ephemeral_notice(reply)
    assert len(reply.content or "") <= 2000
    assert payload_problems(reply.payload()) == []
