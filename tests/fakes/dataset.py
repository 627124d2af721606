"""A seeded, deterministic dataset shaped like the live Nekos API v1 database.

:func:`generate_dataset` builds artists, characters, categories and images the way the live server
stores them (one row per record, ids as UUID strings, artists/categories/characters referenced by id
from images). The same arguments always give the same data. The data deliberately carries the drift
and awkward values the bot must survive:

- names with SQL pattern characters (``50% off``, ``under_score``, ``(paren)``, ``a|b``, a
  backslash) and unicode (``café``, ``猫耳``), plus near-twins (``under-score``, ``50 percent off``)
  so that an unescaped search visibly matches too much;
- characters whose ``ages`` are ``[16, 17]``, ``[17, 18]``, ``[]``, adults, or ``None``; some of
  them appear on ``questionable``/``nsfw`` images, so minor-safety gating can be tested;
- images with ``color`` null, no ``aspectRatio``, square dimensions, no artist, a null source name
  or url, ``original`` true/false/null, and ``image/png`` or ``image/jpeg`` files;
- a narrow category (``rare find``, three images) for the random endpoint's sampling quirks, and
  two artists with no images.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_RATINGS",
    "ArtistRow",
    "CategoryRow",
    "CharacterRow",
    "Dataset",
    "ImageRow",
    "generate_dataset",
]

#: Shares of sfw / questionable / nsfw images, as in the live ``/stats`` (2862/19/9 of 2890).
DEFAULT_RATINGS: tuple[float, float, float] = (2862 / 2890, 19 / 2890, 9 / 2890)

_EPOCH = dt.datetime(2022, 11, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class ArtistRow:
    """A row of the ``Artists`` table."""

    id: str
    name: str
    url: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CategoryRow:
    """A row of the ``Categories`` table; ``type`` is ``setting``, ``character`` or ``format``."""

    id: str
    name: str
    description: str
    nsfw: bool
    type: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CharacterRow:
    """A row of the ``Characters`` table; ``ages`` may be empty or ``None`` (unknown)."""

    id: str
    name: str
    description: str
    source: str | None
    gender: str | None
    ages: tuple[int, ...] | None
    birth_date: str | None
    nationality: str | None
    occupations: tuple[str, ...]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ImageRow:
    """A row of the ``Images`` table joined with its storage object (file name, eTag, size, type).

    ``aspect_ratio`` ``None`` means the live server omits ``dimens.aspectRatio`` for this image.
    """

    id: str
    file_name: str
    width: int
    height: int
    aspect_ratio: str | None
    nsfw: str
    original: bool | None
    color: str | None
    source_name: str | None
    source_url: str | None
    artist_id: str | None
    category_ids: tuple[str, ...]
    character_ids: tuple[str, ...]
    created_at: dt.datetime
    etag: str
    size: int
    mimetype: str

    @property
    def orientation(self) -> str:
        """``landscape``, ``portrait`` or ``square`` (the live rule, not the reference's)."""
        if self.width > self.height:
            return "landscape"
        if self.width < self.height:
            return "portrait"
        return "square"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Everything the fake server serves, with lookups by id.

    Rows are tuples in "database order" (the order list endpoints return them in).
    """

    seed: int
    artists: tuple[ArtistRow, ...]
    categories: tuple[CategoryRow, ...]
    characters: tuple[CharacterRow, ...]
    images: tuple[ImageRow, ...]
    artist_by_id: Mapping[str, ArtistRow] = field(repr=False)
    category_by_id: Mapping[str, CategoryRow] = field(repr=False)
    character_by_id: Mapping[str, CharacterRow] = field(repr=False)
    image_by_id: Mapping[str, ImageRow] = field(repr=False)

    @classmethod
    def from_rows(
        cls,
        *,
        seed: int,
        artists: Sequence[ArtistRow],
        categories: Sequence[CategoryRow],
        characters: Sequence[CharacterRow],
        images: Sequence[ImageRow],
    ) -> Dataset:
        """Build a dataset (and its lookups) from rows; usable for hand-made test data too."""
        return cls(
            seed=seed,
            artists=tuple(artists),
            categories=tuple(categories),
            characters=tuple(characters),
            images=tuple(images),
            artist_by_id={a.id: a for a in artists},
            category_by_id={c.id: c for c in categories},
            character_by_id={c.id: c for c in characters},
            image_by_id={i.id: i for i in images},
        )

    def category_named(self, name: str) -> CategoryRow:
        """The category with exactly this name (case-insensitive); ``KeyError`` if none."""
        wanted = name.lower()
        for category in self.categories:
            if category.name.lower() == wanted:
                return category
        raise KeyError(name)

    def artist_named(self, name: str) -> ArtistRow:
        """The artist with exactly this name (case-insensitive); ``KeyError`` if none."""
        wanted = name.lower()
        for artist in self.artists:
            if artist.name.lower() == wanted:
                return artist
        raise KeyError(name)

    def character_named(self, name: str) -> CharacterRow:
        """The character with exactly this name (case-insensitive); ``KeyError`` if none."""
        wanted = name.lower()
        for character in self.characters:
            if character.name.lower() == wanted:
                return character
        raise KeyError(name)

    def images_by_artist(self, artist_id: str) -> tuple[ImageRow, ...]:
        """Images credited to the artist, in database order."""
        return tuple(i for i in self.images if i.artist_id == artist_id)

    def images_in_category(self, category_id: str) -> tuple[ImageRow, ...]:
        """Images tagged with the category, in database order."""
        return tuple(i for i in self.images if category_id in i.category_ids)

    def images_with_character(self, character_id: str) -> tuple[ImageRow, ...]:
        """Images showing the character, in database order."""
        return tuple(i for i in self.images if character_id in i.character_ids)

    def rating_counts(self) -> dict[str, int]:
        """Number of images per rating label."""
        counts = {"sfw": 0, "questionable": 0, "nsfw": 0}
        for image in self.images:
            counts[image.nsfw] = counts.get(image.nsfw, 0) + 1
        return counts


# --------------------------------------------------------------------------- curated names

# (name, type, nsfw, popularity weight); "rare find" is kept at exactly three images.
_CATEGORIES: tuple[tuple[str, str, bool, float], ...] = (
    ("catgirl", "character", False, 30.0),
    ("foxgirl", "character", False, 12.0),
    ("wolfgirl", "character", False, 6.0),
    ("bunny girl", "character", False, 4.0),
    ("kemonomimi", "character", False, 14.0),
    ("maid", "character", False, 5.0),
    ("elf", "character", False, 3.0),
    ("vampire", "character", False, 2.0),
    ("long hair", "character", False, 16.0),
    ("white hair", "character", False, 8.0),
    ("smile", "character", False, 12.0),
    ("blush", "character", False, 9.0),
    ("beach", "setting", False, 3.0),
    ("city", "setting", False, 4.0),
    ("night", "setting", False, 5.0),
    ("forest", "setting", False, 3.0),
    ("sky", "setting", False, 6.0),
    ("snow", "setting", False, 2.0),
    ("café", "setting", False, 1.5),
    ("wallpaper", "format", False, 7.0),
    ("pixel art", "format", False, 1.0),
    ("sketch", "format", False, 2.0),
    ("monochrome", "format", False, 2.0),
    ("chibi", "format", False, 2.5),
    ("under_score", "format", False, 1.0),
    ("under-score", "format", False, 1.0),
    ("50% off", "format", False, 1.0),
    ("(paren)", "format", False, 1.0),
    ("猫耳", "character", False, 2.0),
    ("ecchi", "format", True, 0.0),
    ("lingerie", "character", True, 0.0),
    ("suggestive", "format", True, 0.0),
    ("rare find", "setting", False, 0.0),
)
_RARE_CATEGORY = "rare find"
_RARE_CATEGORY_IMAGES = 3

_ARTIST_SPECIAL: tuple[str, ...] = (
    "50% off",
    "50 percent off",
    "under_score",
    "under-score",
    "(paren)",
    "a|b studio",
    "dot.art",
    "star*",
    "+plus+",
    "[bracket]",
    "back\\slash",
    "MiXeD CaSe",
    "Ünïcødé",
    "猫絵師",
    "A rather long artist name",
)
_SYLLABLES = (
    "ka", "ki", "ku", "mo", "mi", "na", "ne", "no", "sa", "shi", "ta", "to",
    "ra", "ri", "ru", "yu", "yo", "ha", "hi", "ko", "ma", "chi", "ne", "ko",
)  # fmt: skip

_CHARACTER_SPECIAL: tuple[str, ...] = (
    "Mio (Summer)",
    "100% Neko",
    "Yuki_Onna",
    "Nekoúmi",
    "ねこ",
    "Hana|Kaze",
)
_SERIES = (
    "Paws of Tomorrow",
    "Moonlit Café",
    "Neko Academy",
    "Tails & Tales",
    "Starlight Shrine",
    "Whisker Quest",
)
# Ages cycle through these: teenagers, borderline, adults, empty and unknown (None).
_AGES: tuple[tuple[int, ...] | None, ...] = (
    (16, 17),
    (17, 18),
    (),
    (18,),
    (24,),
    None,
    (16,),
    (19, 20),
    (15,),
    (30,),
    (500,),
    (17,),
    (21,),
    (),
)
_GENDERS = ("female", "female", "female", "male", "non-binary", None)
_NATIONALITIES = ("Japanese", "Japanese", "French", "Korean", None)
_OCCUPATIONS = ("student", "maid", "shrine maiden", "barista", "knight", "idol", "librarian")

_DIMENSIONS: tuple[tuple[int, int], ...] = (
    (1920, 1080),
    (1080, 1920),
    (1024, 1024),
    (2048, 2048),
    (1280, 720),
    (720, 1280),
    (3840, 2160),
    (2894, 4093),
    (800, 600),
    (600, 800),
    (1500, 1500),
    (2480, 3508),
)
_SOURCES = (
    ("Pixiv", "https://www.pixiv.net/en/artworks/{n}"),
    ("Twitter", "https://twitter.com/i/status/{n}"),
    ("DeviantArt", "https://www.deviantart.com/art/{n}"),
    (None, "https://example.org/gallery/{n}"),
    ("Original upload", None),
    (None, None),
)


# --------------------------------------------------------------------------- generation


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _timestamp(rng: random.Random, index: int) -> dt.datetime:
    # Milliseconds only, as Postgres/JSON round-trips them on the live server.
    return _EPOCH + dt.timedelta(minutes=index * 7, milliseconds=rng.randrange(1000))


def _artist_name(rng: random.Random, used: set[str]) -> str:
    while True:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = word.capitalize() + rng.choice(("", "", " Art", "_ink", " Studio", "-chan"))
        if name.lower() not in used:
            return name


def _aspect_ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _rating_counts(images: int, ratings: tuple[float, float, float]) -> tuple[int, int, int]:
    total = sum(ratings)
    if images < 0 or total <= 0 or any(share < 0 for share in ratings):
        raise ValueError("images must be >= 0 and ratings non-negative shares with a positive sum")
    questionable = round(images * ratings[1] / total)
    nsfw = round(images * ratings[2] / total)
    sfw = max(0, images - questionable - nsfw)
    return sfw, questionable, nsfw


def _make_categories(rng: random.Random, count: int) -> list[CategoryRow]:
    rows = []
    for index in range(count):
        if index < len(_CATEGORIES):
            name, kind, nsfw, _ = _CATEGORIES[index]
        else:
            name, kind, nsfw = f"tag {index}", ("setting", "character", "format")[index % 3], False
        rows.append(
            CategoryRow(
                id=_uuid(rng),
                name=name,
                description=f"Images tagged {name}.",
                nsfw=nsfw,
                type=kind,
                created_at=_timestamp(rng, index),
            )
        )
    return rows


def _make_artists(rng: random.Random, count: int) -> list[ArtistRow]:
    rows = []
    used: set[str] = set()
    for index in range(count):
        # Interleave the special names so small datasets still carry some of them.
        special = index % 4 == 1 and index // 4 < len(_ARTIST_SPECIAL)
        name = _ARTIST_SPECIAL[index // 4] if special else _artist_name(rng, used)
        used.add(name.lower())
        slug = "".join(ch for ch in name.lower() if ch.isalnum()) or f"artist{index}"
        rows.append(
            ArtistRow(
                id=_uuid(rng),
                name=name,
                url=f"https://www.pixiv.net/en/users/{slug}{index}",
                created_at=_timestamp(rng, index),
            )
        )
    return rows


def _make_characters(rng: random.Random, count: int) -> list[CharacterRow]:
    rows = []
    used: set[str] = set()
    for index in range(count):
        special = index % 5 == 2 and index // 5 < len(_CHARACTER_SPECIAL)
        if special:
            name = _CHARACTER_SPECIAL[index // 5]
        else:
            name = _artist_name(rng, used).split(" ")[0].replace("_ink", "").replace("-chan", "")
            name = f"{name} {rng.choice(('Hoshino', 'Tsukishima', 'Aoi', 'Kurosaki', 'Mori'))}"
            while name.lower() in used:
                name += "ko"
        used.add(name.lower())
        series = rng.choice(_SERIES) if index % 9 != 4 else None
        n_jobs = rng.choice((0, 1, 1, 2))
        rows.append(
            CharacterRow(
                id=_uuid(rng),
                name=name,
                description=f"A character called {name}.",
                source=series,
                gender=_GENDERS[index % len(_GENDERS)],
                ages=_AGES[index % len(_AGES)],
                birth_date=None
                if index % 6 == 5
                else f"{rng.choice(('March', 'May', 'July', 'December'))} {rng.randint(1, 28)}",
                nationality=_NATIONALITIES[index % len(_NATIONALITIES)],
                occupations=tuple(rng.sample(_OCCUPATIONS, n_jobs)),
                created_at=_timestamp(rng, index),
            )
        )
    return rows


def _pick_categories(
    rng: random.Random, rating: str, sfw_pool: list[CategoryRow], cum_weights: list[float],
    nsfw_pool: list[CategoryRow],
) -> tuple[str, ...]:  # fmt: skip
    chosen: list[CategoryRow] = []
    if sfw_pool:
        k = min(len(sfw_pool), rng.choice((1, 2, 2, 3, 3, 4)))
        while len(chosen) < k:
            category = rng.choices(sfw_pool, cum_weights=cum_weights)[0]
            if category not in chosen:
                chosen.append(category)
    if rating != "sfw" and nsfw_pool and rng.random() < 0.8:
        chosen.append(rng.choice(nsfw_pool))
    return tuple(c.id for c in chosen)


def _build(
    seed: int,
    images: int,
    ratings: tuple[float, float, float],
    categories: int,
    artists: int,
    characters: int,
) -> Dataset:
    rng = random.Random(seed)
    category_rows = _make_categories(rng, categories)
    artist_rows = _make_artists(rng, artists)
    character_rows = _make_characters(rng, characters)

    sfw, questionable, nsfw = _rating_counts(images, ratings)
    labels = ["sfw"] * sfw + ["questionable"] * questionable + ["nsfw"] * nsfw
    rng.shuffle(labels)

    weights_by_name = {name: weight for name, _, _, weight in _CATEGORIES}
    sfw_pool = [c for c in category_rows if not c.nsfw and weights_by_name.get(c.name, 1.0) > 0]
    sfw_weights = list(itertools.accumulate(weights_by_name.get(c.name, 1.0) for c in sfw_pool))
    nsfw_pool = [c for c in category_rows if c.nsfw]
    # The last two artists get no images (for /artist/{id}/images' 404 on an empty artist).
    credited = artist_rows[:-2] if len(artist_rows) > 2 else artist_rows
    minors = [c for c in character_rows if c.ages and min(c.ages) < 18]
    rare = next((c for c in category_rows if c.name == _RARE_CATEGORY), None)
    rare_slots = (
        set(rng.sample(range(images), min(images, _RARE_CATEGORY_IMAGES))) if rare else set()
    )

    rows: list[ImageRow] = []
    for index, rating in enumerate(labels):
        image_id = _uuid(rng)
        width, height = rng.choice(_DIMENSIONS)
        mimetype = "image/png" if rng.random() < 0.7 else "image/jpeg"
        extension = "png" if mimetype == "image/png" else "jpg"
        category_ids = _pick_categories(rng, rating, sfw_pool, sfw_weights, nsfw_pool)
        if rare is not None and index in rare_slots:
            category_ids += (rare.id,)
        n_characters = rng.choice((0, 0, 1, 1, 1, 2))
        character_ids = tuple(c.id for c in rng.sample(character_rows, n_characters))
        # A few questionable/nsfw images show a minor, so the bot's minor-safety rule has prey.
        if rating != "sfw" and minors and index % 3 == 0:
            minor = rng.choice(minors).id
            character_ids = (minor, *(c for c in character_ids if c != minor))
        source_name, source_url = rng.choice(_SOURCES)
        n = rng.randrange(10**7, 10**8)
        rows.append(
            ImageRow(
                id=image_id,
                file_name=f"{image_id}.{extension}",
                width=width,
                height=height,
                aspect_ratio=None if rng.random() < 0.1 else _aspect_ratio(width, height),
                nsfw=rating,
                original=rng.choice((True, False, False, None)),
                color=None if rng.random() < 0.08 else f"#{rng.randrange(0x1000000):06x}",
                source_name=source_name,
                source_url=source_url.format(n=n) if source_url else None,
                artist_id=None if not credited or rng.random() < 0.15 else rng.choice(credited).id,
                category_ids=category_ids,
                character_ids=character_ids,
                created_at=_timestamp(rng, index),
                etag=f'"{rng.getrandbits(128):032x}"',
                size=int(width * height * rng.uniform(0.3, 1.4)),
                mimetype=mimetype,
            )
        )
    return Dataset.from_rows(
        seed=seed,
        artists=artist_rows,
        categories=category_rows,
        characters=character_rows,
        images=rows,
    )


@functools.lru_cache(maxsize=8)
def generate_dataset(
    seed: int = 0,
    images: int = 2900,
    ratings: tuple[float, float, float] = DEFAULT_RATINGS,
    categories: int = len(_CATEGORIES),
    artists: int = 60,
    characters: int = 80,
) -> Dataset:
    """Build (or return the cached) dataset for these arguments; same arguments, same data.

    ``ratings`` are the shares of sfw / questionable / nsfw images (any positive scale);
    counts are rounded so that they add up to ``images``. ``categories`` beyond the curated
    list get generic names (``tag 40``). The result is immutable, so sharing it is safe.
    """
    return _build(seed, images, ratings, categories, artists, characters)
