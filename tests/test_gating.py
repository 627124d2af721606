"""The content policy: what each channel may show, and the minor-safety rule."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from bot.catalog import Catalog, CatalogSource
from bot.gating import (
    DEFAULT_POLICY,
    EXPLICIT_TAGS,
    YOUTH_TAGS,
    ChannelContext,
    ChannelKind,
    ContentPolicy,
    Decision,
    GuildSettings,
    RefusalCounter,
    RefusalReason,
    allowed_max,
    category_visible,
    effective_max,
    effective_rating,
    is_known_minor,
    may_show,
    tag_visible,
    violates_minor_safety,
)
from bot.nekos import NekosClient, NekosV4Client
from bot.nekos.models import Category, Character, Image, Rating
from bot.replies import Replies, Reply
from bot.serving import ImagePool, PoolSettings
from tests.test_serving import FakeRandomSource

GUILD = 100
CHANNEL = 200
PARENT = 300

# --------------------------------------------------------------------------- reference rule


@dataclass(frozen=True)
class Place:
    """A test description of where a command runs."""

    name: str
    kind: ChannelKind
    in_guild: bool  # a guild channel (text, thread, ...) rather than a DM
    is_thread: bool = False


PLACES = [
    Place("text", ChannelKind.TEXT, True),
    Place("news", ChannelKind.NEWS, True),
    Place("voice", ChannelKind.VOICE, True),
    Place("stage", ChannelKind.STAGE, True),
    Place("forum", ChannelKind.FORUM, True),
    Place("media", ChannelKind.MEDIA, True),
    Place("forum_post", ChannelKind.THREAD, True, is_thread=True),
    Place("thread", ChannelKind.THREAD, True, is_thread=True),
    Place("dm", ChannelKind.DM, False),
    Place("group_dm", ChannelKind.GROUP_DM, False),
    Place("unknown", ChannelKind.UNKNOWN, True),
]
FLAGS = [True, False, None]
SETTING_VALUES: list[Rating | None] = [None, Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW]
REQUESTS: list[Rating | None] = [None, Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW]


def reference_maximum(
    place: Place,
    restricted: bool | None,
    override: Rating | None,
    default: Rating | None,
    requested: Rating | None,
    bot_in_guild: bool,
) -> Rating:
    """The policy written as "which ratings survive every rule", independently of bot.gating."""
    permitted = set(Rating)
    # Rule 1: only a guild channel of a known kind, in a server the bot is in, goes above sfw.
    if not place.in_guild or place.kind is ChannelKind.UNKNOWN or not bot_in_guild:
        permitted = {Rating.SFW}
    # Rule 2: above sfw only where Discord says the channel (thread: the parent) is age-restricted.
    if restricted is not True:
        permitted = {Rating.SFW}
    # Rule 3: the admins' choice: the override, else the default, else nothing above sfw.
    chosen = override if override is not None else default
    ceiling = Rating.SFW if chosen is None else chosen
    permitted = {r for r in permitted if r <= ceiling}
    # Rule 4: a member may ask for less, never more.
    if requested is not None:
        permitted = {r for r in permitted if r <= requested}
    # sfw always survives: every rule above keeps it.
    return max(permitted)


def build_context(place: Place, restricted: bool | None, bot_in_guild: bool) -> ChannelContext:
    """The context for a place; a thread's own flag is set contrary to its parent to be ignored."""
    if place.is_thread:
        return ChannelContext(
            guild_id=GUILD,
            channel_id=CHANNEL,
            kind=place.kind,
            age_restricted=restricted is not True,
            parent_id=PARENT,
            parent_age_restricted=restricted,
            bot_in_guild=bot_in_guild,
        )
    return ChannelContext(
        guild_id=GUILD if place.in_guild else None,
        channel_id=CHANNEL,
        kind=place.kind,
        age_restricted=restricted,
        bot_in_guild=bot_in_guild if place.in_guild else False,
    )


def build_settings(place: Place, override: Rating | None, default: Rating | None) -> GuildSettings:
    """Settings with ``override`` on the channel whose override applies (a thread's parent).

    For a thread, the thread's own id carries a contrary nsfw override that must be ignored.
    """
    overrides: dict[int, Rating] = {}
    if place.is_thread:
        overrides[CHANNEL] = Rating.NSFW
        if override is not None:
            overrides[PARENT] = override
    elif override is not None:
        overrides[CHANNEL] = override
    return GuildSettings(default=default, overrides=overrides)


POLICY_CASES = list(itertools.product(PLACES, FLAGS, SETTING_VALUES, SETTING_VALUES, [True, False]))


def _label(rating: Rating | None) -> str:
    return "unset" if rating is None else rating.label


@pytest.mark.parametrize(
    ("place", "restricted", "override", "default", "bot_in_guild"),
    POLICY_CASES,
    ids=[
        f"{p.name}-restricted:{f}-override:{_label(o)}-default:{_label(d)}-bot_in_guild:{b}"
        for p, f, o, d, b in POLICY_CASES
    ],
)
def test_policy_matches_reference_rule(
    place: Place,
    restricted: bool | None,
    override: Rating | None,
    default: Rating | None,
    bot_in_guild: bool,
) -> None:
    ctx = build_context(place, restricted, bot_in_guild)
    settings = build_settings(place, override, default)
    channel_max = allowed_max(ctx, settings)

    # The requested rating is looped here rather than parametrized, to keep collection cheap.
    for requested in REQUESTS:
        expected = reference_maximum(place, restricted, override, default, requested, bot_in_guild)
        assert effective_max(channel_max, requested) == expected, f"requested={_label(requested)}"


# --------------------------------------------------------------------------- named policy cases


def _text(restricted: bool | None = True, **kwargs: object) -> ChannelContext:
    fields: dict[str, object] = {
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "kind": ChannelKind.TEXT,
        "age_restricted": restricted,
    }
    fields.update(kwargs)
    return ChannelContext(**fields)  # type: ignore[arg-type]


def _thread(parent_restricted: bool | None, parent_id: int | None = PARENT) -> ChannelContext:
    return ChannelContext(
        guild_id=GUILD,
        channel_id=CHANNEL,
        kind=ChannelKind.THREAD,
        age_restricted=None,
        parent_id=parent_id,
        parent_age_restricted=parent_restricted,
    )


NSFW_EVERYWHERE = GuildSettings(default=Rating.NSFW)


def test_thread_inherits_parent_age_restriction() -> None:
    assert allowed_max(_thread(True), NSFW_EVERYWHERE) is Rating.NSFW
    assert allowed_max(_thread(False), NSFW_EVERYWHERE) is Rating.SFW


def test_thread_with_unknown_parent_flag_is_sfw() -> None:
    assert allowed_max(_thread(None), NSFW_EVERYWHERE) is Rating.SFW


def test_thread_without_parent_id_is_sfw_even_if_parent_flag_claims_restricted() -> None:
    assert allowed_max(_thread(True, parent_id=None), NSFW_EVERYWHERE) is Rating.SFW


def test_thread_uses_parent_override_not_its_own() -> None:
    settings = GuildSettings(
        default=Rating.NSFW, overrides={PARENT: Rating.QUESTIONABLE, CHANNEL: Rating.NSFW}
    )
    assert allowed_max(_thread(True), settings) is Rating.QUESTIONABLE


def test_override_beats_default_in_both_directions() -> None:
    narrower = GuildSettings(default=Rating.NSFW, overrides={CHANNEL: Rating.SFW})
    wider = GuildSettings(default=Rating.SFW, overrides={CHANNEL: Rating.NSFW})
    assert allowed_max(_text(), narrower) is Rating.SFW
    assert allowed_max(_text(), wider) is Rating.NSFW


def test_no_settings_means_sfw_even_in_age_restricted_channel() -> None:
    assert allowed_max(_text(True), GuildSettings()) is Rating.SFW


def test_questionable_is_capped_outside_age_restricted_channels() -> None:
    settings = GuildSettings(default=Rating.QUESTIONABLE)
    assert allowed_max(_text(False), settings) is Rating.SFW
    assert allowed_max(_text(True), settings) is Rating.QUESTIONABLE


def test_unknown_age_restriction_is_sfw() -> None:
    assert allowed_max(_text(None), NSFW_EVERYWHERE) is Rating.SFW


def test_user_install_in_foreign_server_is_sfw() -> None:
    assert allowed_max(_text(True, bot_in_guild=False), NSFW_EVERYWHERE) is Rating.SFW


def test_no_guild_is_sfw_even_for_a_restricted_text_channel() -> None:
    assert allowed_max(_text(True, guild_id=None), NSFW_EVERYWHERE) is Rating.SFW


@pytest.mark.parametrize("kind", [ChannelKind.DM, ChannelKind.GROUP_DM, ChannelKind.UNKNOWN])
def test_private_and_unknown_channels_are_sfw_whatever_they_claim(kind: ChannelKind) -> None:
    ctx = ChannelContext(
        guild_id=GUILD, channel_id=CHANNEL, kind=kind, age_restricted=True, bot_in_guild=True
    )
    assert allowed_max(ctx, NSFW_EVERYWHERE) is Rating.SFW


@pytest.mark.parametrize(
    ("channel_max", "requested", "expected"),
    [
        (Rating.NSFW, None, Rating.NSFW),
        (Rating.NSFW, Rating.SFW, Rating.SFW),
        (Rating.QUESTIONABLE, Rating.NSFW, Rating.QUESTIONABLE),
        (Rating.SFW, Rating.NSFW, Rating.SFW),
        (Rating.SFW, None, Rating.SFW),
    ],
)
def test_requested_rating_narrows_never_widens(
    channel_max: Rating, requested: Rating | None, expected: Rating
) -> None:
    assert effective_max(channel_max, requested) is expected


def test_guild_settings_overrides_are_read_only_copies() -> None:
    source = {CHANNEL: Rating.NSFW}
    settings = GuildSettings(overrides=source)
    source[CHANNEL] = Rating.SFW
    assert settings.overrides[CHANNEL] is Rating.NSFW
    with pytest.raises(TypeError):
        settings.overrides[CHANNEL] = Rating.SFW  # type: ignore[index]


# --------------------------------------------------------------------------- minor safety


def _character(ages: tuple[int, ...] = (), name: str = "c") -> Character:
    return Character(id=f"id-{name}", name=name, ages=ages)


def _image(rating: Rating, *characters: Character, image_id: str = "img") -> Image:
    return Image(
        id=image_id,
        url=f"https://example.invalid/{image_id}.webp",
        rating=rating,
        characters=characters,
    )


@pytest.mark.parametrize(
    ("ages", "minor"),
    [
        ((16, 17), True),
        ((17, 18), True),
        ((17,), True),
        ((0,), True),
        ((18,), False),
        ((18, 25), False),
        ((), False),
        ((1000,), False),
    ],
)
def test_known_minor_means_any_listed_age_under_18(ages: tuple[int, ...], minor: bool) -> None:
    assert is_known_minor(_character(ages)) is minor


@pytest.mark.parametrize("rating", [Rating.QUESTIONABLE, Rating.NSFW])
@pytest.mark.parametrize("ages", [(16, 17), (17, 18)])
def test_minor_above_sfw_violates(rating: Rating, ages: tuple[int, ...]) -> None:
    assert violates_minor_safety(_image(rating, _character(ages)))


def test_minor_in_sfw_image_does_not_violate() -> None:
    assert not violates_minor_safety(_image(Rating.SFW, _character((16,))))


@pytest.mark.parametrize("rating", list(Rating))
def test_character_without_ages_is_not_known_minor(rating: Rating) -> None:
    assert not violates_minor_safety(_image(rating, _character(())))


def test_image_without_characters_does_not_violate() -> None:
    assert not violates_minor_safety(_image(Rating.NSFW))


def test_adult_characters_do_not_violate() -> None:
    assert not violates_minor_safety(_image(Rating.NSFW, _character((18,)), _character((30, 31))))


def test_one_minor_among_several_characters_violates() -> None:
    image = _image(Rating.NSFW, _character((25,), "a"), _character((), "b"), _character((15,), "c"))
    assert violates_minor_safety(image)


def test_minor_safety_refuses_even_where_nsfw_is_allowed() -> None:
    decision = may_show(_image(Rating.NSFW, _character((17, 18))), Rating.NSFW)
    assert decision == Decision(allowed=False, reason=RefusalReason.MINOR_SAFETY)
    assert not decision


def test_minor_safety_is_the_reason_even_when_rating_also_refuses() -> None:
    decision = may_show(_image(Rating.QUESTIONABLE, _character((16,))), Rating.SFW)
    assert decision.reason is RefusalReason.MINOR_SAFETY


@pytest.mark.parametrize(
    ("image_rating", "max_rating", "allowed"),
    [
        (Rating.SFW, Rating.SFW, True),
        (Rating.QUESTIONABLE, Rating.SFW, False),
        (Rating.NSFW, Rating.QUESTIONABLE, False),
        (Rating.QUESTIONABLE, Rating.QUESTIONABLE, True),
        (Rating.NSFW, Rating.NSFW, True),
    ],
)
def test_may_show_refuses_ratings_above_max(
    image_rating: Rating, max_rating: Rating, allowed: bool
) -> None:
    decision = may_show(_image(image_rating, _character((20,))), max_rating)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else RefusalReason.RATING_ABOVE_MAX)


def test_refusal_counter_counts_by_reason() -> None:
    counter = RefusalCounter()
    counter.record(RefusalReason.MINOR_SAFETY)
    counter.record(RefusalReason.RATING_ABOVE_MAX)
    counter.record(RefusalReason.MINOR_SAFETY)
    assert counter.snapshot() == {
        RefusalReason.MINOR_SAFETY: 2,
        RefusalReason.RATING_ABOVE_MAX: 1,
    }
    assert counter.minor_safety == 2
    assert counter.total == 3
    assert "minor_safety=2" in repr(counter)


@pytest.mark.parametrize(
    ("nsfw", "max_rating", "visible"),
    [
        (False, Rating.SFW, True),
        (True, Rating.SFW, False),
        (True, Rating.QUESTIONABLE, True),
        (True, Rating.NSFW, True),
        (False, Rating.NSFW, True),
    ],
)
def test_nsfw_categories_hidden_where_only_sfw_allowed(
    nsfw: bool, max_rating: Rating, visible: bool
) -> None:
    category = Category(id="cat", name="Cat", nsfw=nsfw)
    assert category_visible(category, max_rating) is visible


# --------------------------------------------------------------------------- randomised


async def _nothing() -> list[Any]:
    return []


def _random_context(rng: random.Random) -> ChannelContext:
    kind = rng.choice(list(ChannelKind))
    return ChannelContext(
        guild_id=rng.choice([GUILD, GUILD, None]),
        channel_id=CHANNEL,
        kind=kind,
        age_restricted=rng.choice(FLAGS),
        parent_id=rng.choice([PARENT, PARENT, None]),
        parent_age_restricted=rng.choice(FLAGS),
        bot_in_guild=rng.random() < 0.8,
    )


def _random_settings(rng: random.Random) -> GuildSettings:
    overrides = {
        channel: rating
        for channel in (CHANNEL, PARENT)
        if (rating := rng.choice(SETTING_VALUES)) is not None
    }
    return GuildSettings(default=rng.choice(SETTING_VALUES), overrides=overrides)


def _random_image(rng: random.Random, n: int) -> Image:
    characters = tuple(
        _character(tuple(rng.randint(5, 40) for _ in range(rng.randint(0, 3))), name=f"{n}-{i}")
        for i in range(rng.choice([0, 0, 1, 1, 2, 3]))
    )
    return _image(rng.choice(list(Rating)), *characters, image_id=str(n))


def _oracle_max(ctx: ChannelContext, settings: GuildSettings, requested: Rating | None) -> Rating:
    """Independent oracle: anything not provably an age-restricted guild channel shows sfw."""
    if ctx.kind is ChannelKind.THREAD:
        restricted, key = (
            ctx.parent_age_restricted is True and ctx.parent_id is not None,
            ctx.parent_id,
        )
    else:
        restricted, key = ctx.age_restricted is True, ctx.channel_id
    provable = (
        restricted
        and ctx.guild_id is not None
        and ctx.bot_in_guild
        and ctx.kind not in (ChannelKind.DM, ChannelKind.GROUP_DM, ChannelKind.UNKNOWN)
    )
    if not provable:
        return Rating.SFW
    chosen = settings.overrides.get(key) if key is not None else None
    if chosen is None:
        chosen = settings.default if settings.default is not None else Rating.SFW
    return chosen if requested is None else Rating(min(int(chosen), int(requested)))


def _oracle_minor_risk(image: Image) -> bool:
    return image.rating != Rating.SFW and any(
        age <= 17 for character in image.characters for age in character.ages
    )


def _shown_ids(reply: Reply) -> list[str]:
    return [str(e["footer"]["text"]).rsplit(" · ", 1)[-1] for e in reply.payload()["embeds"]]


async def test_randomised_serving_never_exceeds_allowed_rating_or_shows_minors() -> None:
    """12,000 random images through the path ``/neko random`` takes (Replies → ImagePool):
    nothing above what the channel allows, exactly the rating a member asked for, no minors."""
    rng = random.Random(20240601)
    sent: list[Image] = []

    def fresh_batch(categories: tuple[str, ...], limit: int) -> list[Image]:
        batch = [_random_image(rng, len(sent) + i) for i in range(limit)]
        sent.extend(batch)
        return batch

    pool = ImagePool(
        FakeRandomSource(fresh_batch),
        interactive_priority=0,
        background_priority=2,
        settings=PoolSettings(max_uses=1, barren_memory=0),
        rng=random.Random(1),
    )
    counter = RefusalCounter()
    replies = Replies(
        pool=pool,
        lookups=None,
        catalog=Catalog(CatalogSource(_nothing, _nothing, _nothing)),
        api=NekosClient("http://127.0.0.1:9/api"),  # never called: delivery is by link
        refusals=counter,
    )
    shown_by_rating: Counter[Rating] = Counter()
    refused_requests = 0
    requests = 0
    while len(sent) < 12_000:
        requests += 1
        ctx = _random_context(rng)
        settings = _random_settings(rng)
        requested = rng.choice(REQUESTS)
        channel_max = allowed_max(ctx, settings)
        request = replies.random_request(
            user_id=requests,
            guild_id=ctx.guild_id,
            channel_id=requests,
            channel_max=channel_max,
            requested=requested,
            categories=None,
            count=rng.randint(1, 10),
        )
        reply = await replies.random(request, requested=requested)

        ceiling = _oracle_max(ctx, settings, None)
        if requested is not None and requested > ceiling:
            refused_requests += 1
            assert reply.ephemeral
            assert not reply.embeds
            assert f"up to **{ceiling.label}**" in (reply.content or "")
            continue
        for image_id in _shown_ids(reply):
            image = next(i for i in sent if i.id == image_id)
            assert image.rating <= ceiling
            if requested is not None:
                assert image.rating is requested
            assert not _oracle_minor_risk(image)
            shown_by_rating[image.rating] += 1

    offered_minors = {i.id for i in sent if _oracle_minor_risk(i)}
    assert 0 < counter.minor_safety <= len(offered_minors)
    assert refused_requests > 0
    # Not vacuous: every rating was shown where it was allowed.
    assert all(shown_by_rating[rating] > 0 for rating in Rating)


# --------------------------------------------------------------------------- v4: tags, no ages


def _v4(rating: Rating, *tags: str, image_id: str = "4399") -> Image:
    """An image as v4 gives it: tags, no characters, ages not knowable."""
    return Image(
        id=image_id,
        url=f"https://example.invalid/{image_id}.webp",
        rating=rating,
        tags=tags,
        ages_known=False,
    )


OPTED_IN = ContentPolicy(unverified_above_sfw=True)


def test_without_the_opt_in_nothing_above_sfw_from_an_api_without_ages() -> None:
    assert may_show(_v4(Rating.SFW, "girl"), Rating.NSFW)
    for rating in (Rating.QUESTIONABLE, Rating.NSFW):
        decision = may_show(_v4(rating, "girl"), Rating.NSFW)
        assert decision.reason is RefusalReason.MINOR_SAFETY
    assert DEFAULT_POLICY.ceiling(ages_known=False) is Rating.SFW
    assert DEFAULT_POLICY.ceiling(ages_known=True) is Rating.NSFW


def test_with_the_opt_in_above_sfw_but_never_with_a_youth_tag() -> None:
    assert OPTED_IN.ceiling(ages_known=False) is Rating.NSFW
    assert may_show(_v4(Rating.NSFW, "girl", "sword"), Rating.NSFW, OPTED_IN)
    for tag in ("loli", "child", "school uniform"):
        decision = may_show(_v4(Rating.QUESTIONABLE, "girl", tag), Rating.NSFW, OPTED_IN)
        assert decision.reason is RefusalReason.MINOR_SAFETY, tag
        # In sfw the same tags are harmless.
        assert may_show(_v4(Rating.SFW, "girl", tag), Rating.NSFW, OPTED_IN), tag


def test_operators_extend_the_youth_deny_list() -> None:
    policy = ContentPolicy(unverified_above_sfw=True, youth_tags=YOUTH_TAGS | {"tiny"})
    assert may_show(_v4(Rating.NSFW, "tiny"), Rating.NSFW, OPTED_IN)
    assert not may_show(_v4(Rating.NSFW, "tiny"), Rating.NSFW, policy)


def test_tags_that_say_more_than_the_classifier_raise_the_rating() -> None:
    # The classifier errs: "safe" with an explicit tag is nsfw, with a suggestive one questionable.
    assert effective_rating(_v4(Rating.SFW, "nude")) is Rating.NSFW
    assert effective_rating(_v4(Rating.QUESTIONABLE, "sex")) is Rating.NSFW
    assert effective_rating(_v4(Rating.SFW, "lingerie")) is Rating.QUESTIONABLE
    assert effective_rating(_v4(Rating.SFW, "girl")) is Rating.SFW
    refused = may_show(_v4(Rating.SFW, "nude"), Rating.SFW, OPTED_IN)
    assert refused.reason is RefusalReason.RATING_ABOVE_MAX
    assert may_show(_v4(Rating.SFW, "nude"), Rating.NSFW, OPTED_IN)
    # A v1 category of that name counts the same way.
    v1 = Image(
        id="x",
        url="https://example.invalid/x.png",
        rating=Rating.SFW,
        categories=(Category(id="c", name="Lingerie"),),
    )
    assert effective_rating(v1) is Rating.QUESTIONABLE


@pytest.mark.parametrize(
    ("tag", "sfw", "nsfw"),
    [
        ("girl", True, True),
        ("nude", False, True),
        ("lingerie", False, True),
        ("loli", False, False),
    ],
)
def test_tags_offered_follow_the_channel(tag: str, sfw: bool, nsfw: bool) -> None:
    assert tag_visible(tag, Rating.SFW) is sfw
    assert tag_visible(tag, Rating.NSFW) is nsfw


def _random_v4_image(rng: random.Random, n: int) -> Image:
    vocabulary = ["girl", "catgirl", "sword", *sorted(EXPLICIT_TAGS)[:4], *sorted(YOUTH_TAGS)[:4]]
    tags = tuple(rng.sample(vocabulary, rng.randint(0, 3)))
    return _v4(rng.choice(list(Rating)), *tags, image_id=str(n))


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, OPTED_IN], ids=["default", "opted-in"])
async def test_randomised_v4_serving_never_shows_more_than_allowed(policy: ContentPolicy) -> None:
    """v4-shaped images (tags, no ages) through the path ``/neko random`` takes."""
    rng = random.Random(4399)
    sent: list[Image] = []

    def fresh_batch(categories: tuple[str, ...], limit: int) -> list[Image]:
        batch = [_random_v4_image(rng, len(sent) + i) for i in range(limit)]
        sent.extend(batch)
        return batch

    pool = ImagePool(
        FakeRandomSource(fresh_batch),
        interactive_priority=0,
        background_priority=2,
        settings=PoolSettings(max_uses=1, barren_memory=0),
        rng=random.Random(2),
    )
    replies = Replies(
        pool=pool,
        lookups=None,
        catalog=Catalog(CatalogSource(_nothing, _nothing, _nothing), uses_tags=True, policy=policy),
        api=NekosV4Client("http://127.0.0.1:9/v4"),  # never called: delivery is by link
        refusals=RefusalCounter(),
        policy=policy,
    )
    by_id = {}
    shown_levels: Counter[Rating] = Counter()
    for n in range(600):
        channel_max = rng.choice(list(Rating))
        requested = rng.choice(REQUESTS)
        request = replies.random_request(
            user_id=n,
            guild_id=1,
            channel_id=n,
            channel_max=channel_max,
            requested=requested,
            categories=None,
            count=rng.randint(1, 10),
        )
        reply = await replies.random(request, requested=requested)
        by_id.update({i.id: i for i in sent})
        ceiling = min(channel_max, Rating.NSFW if policy.unverified_above_sfw else Rating.SFW)
        for image_id in _shown_ids(reply):
            image = by_id[image_id]
            level = effective_rating(image, policy)
            assert level <= ceiling
            if level > Rating.SFW:
                assert not set(image.tags) & YOUTH_TAGS
            shown_levels[level] += 1
    assert shown_levels[Rating.SFW] > 0
    if policy.unverified_above_sfw:
        assert shown_levels[Rating.NSFW] > 0
    else:
        assert set(shown_levels) == {Rating.SFW}
