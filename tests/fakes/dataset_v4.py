"""A seeded, deterministic dataset shaped like the Nekos API v4's images.

:func:`generate_v4_dataset` builds image rows the way v4 serves them: integer ids (increasing,
with gaps where images were removed), one of four ratings, free-form lower-case tags,
``color_dominant`` and a ``color_palette``, and ``artist_name``/``source_url`` that are often null.
The same arguments always give the same data.

Ratings come in :data:`DEFAULT_V4_RATINGS` shares (mostly ``safe``). Tags are drawn from a
documented vocabulary so tests (and the bot's tag deny-lists) can name them:

- :data:`GENERAL_TAGS`: everyday tags (``girl``, ``boy``, ``catgirl``, ``kemonomimi``,
  ``sword`` …), on every rating;
- :data:`BODY_TAGS`: body-describing tags, mostly on suggestive and above, sometimes on ``safe``;
- :data:`EXPLICIT_TAGS`: explicit tags, on ``borderline``/``explicit`` images and, because v4's
  classifier errs, on a few images rated ``safe`` (see :data:`PLANTED`);
- :data:`YOUTH_TAGS`: youth-describing tags, mostly on ``safe`` images and on a few above it —
  the combination a deny-list exists to catch.

:data:`PLANTED` rows are always present whatever the seed: the documented sample image (id 4399)
and one of each awkward case, so tests can rely on them.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BODY_TAGS",
    "DEFAULT_V4_RATINGS",
    "EXPLICIT_TAGS",
    "GENERAL_TAGS",
    "PLANTED",
    "RATINGS",
    "YOUTH_TAGS",
    "V4Dataset",
    "V4ImageRow",
    "generate_v4_dataset",
]

RATINGS: Final = ("safe", "suggestive", "borderline", "explicit")
#: Shares of safe / suggestive / borderline / explicit images (the live shares are unpublished).
DEFAULT_V4_RATINGS: Final = (0.74, 0.16, 0.06, 0.04)

GENERAL_TAGS: Final = (
    "girl",
    "boy",
    "catgirl",
    "kemonomimi",
    "fox girl",
    "sword",
    "weapon",
    "flowers",
    "maid",
    "glasses",
    "headphones",
    "hoodie",
    "dress",
    "long hair",
    "short hair",
    "blue eyes",
    "red eyes",
    "smile",
    "night",
    "sky",
    "rain",
    "cat",
    "tail",
    "animal ears",
)
BODY_TAGS: Final = ("large breasts", "thighs", "cleavage", "swimsuit")
EXPLICIT_TAGS: Final = ("nude", "sex", "topless", "lingerie")
YOUTH_TAGS: Final = ("loli", "shota", "child", "young")

_ARTISTS: Final = (
    "Mikan",
    "nekoyama",
    "_underscore_artist_",
    "猫の手",
    "Ada **bold**",
    "R. Hayes",
    "pastel_sky",
    "Kuro",
)


@dataclass(frozen=True, slots=True)
class V4ImageRow:
    """One v4 image. ``host`` picks which of the fake's two file hosts serves it (0 or 1)."""

    id: int
    file_name: str
    rating: str
    tags: tuple[str, ...]
    color_dominant: tuple[int, int, int]
    color_palette: tuple[tuple[int, int, int], ...]
    artist_name: str | None
    source_url: str | None
    host: int = 0

    @property
    def mimetype(self) -> str:
        return "image/jpeg" if self.file_name.endswith(".jpg") else "image/png"


#: Rows present in every dataset, by id: the documented sample and one of each awkward case.
PLANTED: Final[Mapping[int, V4ImageRow]] = {
    row.id: row
    for row in (
        # The image object the v4 docs show.
        V4ImageRow(
            id=4399,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4399aaaa4399.png",
            rating="safe",
            tags=("weapon", "sword", "girl"),
            color_dominant=(75, 52, 122),
            color_palette=((220, 190, 229), (75, 52, 122), (40, 30, 60)),
            artist_name=None,
            source_url=None,
        ),
        # The classifier's error: explicit tags on an image rated safe.
        V4ImageRow(
            id=4400,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4400aaaa4400.png",
            rating="safe",
            tags=("girl", "nude"),
            color_dominant=(240, 200, 180),
            color_palette=((240, 200, 180),),
            artist_name="Mikan",
            source_url="https://www.pixiv.net/artworks/4400",
        ),
        # A youth-describing tag above safe: what a deny-list must refuse.
        V4ImageRow(
            id=4401,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4401aaaa4401.png",
            rating="borderline",
            tags=("girl", "loli", "swimsuit"),
            color_dominant=(30, 120, 200),
            color_palette=((30, 120, 200),),
            artist_name=None,
            source_url=None,
        ),
        V4ImageRow(
            id=4402,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4402aaaa4402.jpg",
            rating="suggestive",
            tags=("child", "dress"),
            color_dominant=(200, 60, 60),
            color_palette=((200, 60, 60),),
            artist_name="nekoyama",
            source_url=None,
        ),
        V4ImageRow(
            id=4403,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4403aaaa4403.png",
            rating="explicit",
            tags=("girl", "sex", "nude"),
            color_dominant=(128, 64, 96),
            color_palette=((128, 64, 96),),
            artist_name="Kuro",
            source_url="https://example.org/art/4403",
        ),
        # On the second file host: the host has changed for this one.
        V4ImageRow(
            id=4404,
            file_name="0b9a2b5e-4b8e-4f5e-9d3c-4404aaaa4404.png",
            rating="safe",
            tags=("catgirl", "kemonomimi", "girl"),
            color_dominant=(250, 180, 40),
            color_palette=((250, 180, 40),),
            artist_name="pastel_sky",
            source_url="https://www.pixiv.net/artworks/4404",
            host=1,
        ),
    )
}


@dataclass(frozen=True, eq=False)
class V4Dataset:
    """Every image the fake serves, in id order, with a lookup by id."""

    seed: int
    images: tuple[V4ImageRow, ...]
    by_id: Mapping[int, V4ImageRow] = field(repr=False)
    by_file: Mapping[str, V4ImageRow] = field(repr=False)

    @classmethod
    def from_rows(cls, rows: Sequence[V4ImageRow], *, seed: int = 0) -> V4Dataset:
        """A dataset from rows (sorted by id); usable for hand-made test data too."""
        ordered = tuple(sorted(rows, key=lambda r: r.id))
        return cls(
            seed=seed,
            images=ordered,
            by_id={r.id: r for r in ordered},
            by_file={r.file_name: r for r in ordered},
        )

    def rating_counts(self) -> dict[str, int]:
        """Images per rating label (all four, zero included)."""
        counts = dict.fromkeys(RATINGS, 0)
        for image in self.images:
            counts[image.rating] += 1
        return counts

    def matching(
        self,
        *,
        ratings: Sequence[str] = (),
        tags: Sequence[str] = (),
        without_tags: Sequence[str] = (),
    ) -> tuple[V4ImageRow, ...]:
        """Images with one of ``ratings`` (any when empty), every tag, none of ``without_tags``."""
        wanted, unwanted = set(tags), set(without_tags)
        return tuple(
            image
            for image in self.images
            if (not ratings or image.rating in ratings)
            and wanted.issubset(image.tags)
            and unwanted.isdisjoint(image.tags)
        )


def _rgb(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _tags_for(rng: random.Random, rating: str) -> tuple[str, ...]:
    tags = rng.sample(GENERAL_TAGS, rng.randint(2, 5))
    body_chance = {"safe": 0.05, "suggestive": 0.5, "borderline": 0.7, "explicit": 0.8}[rating]
    if rng.random() < body_chance:
        tags.append(rng.choice(BODY_TAGS))
    explicit_chance = {"safe": 0.0, "suggestive": 0.05, "borderline": 0.5, "explicit": 0.95}
    if rng.random() < explicit_chance[rating]:
        tags.extend(rng.sample(EXPLICIT_TAGS, rng.randint(1, 2)))
    youth_chance = {"safe": 0.04, "suggestive": 0.02, "borderline": 0.02, "explicit": 0.0}
    if rng.random() < youth_chance[rating]:
        tags.append(rng.choice(YOUTH_TAGS))
    return tuple(dict.fromkeys(tags))


def _build(seed: int, images: int, ratings: tuple[float, float, float, float]) -> V4Dataset:
    rng = random.Random(f"v4-{seed}")
    count = max(0, images - len(PLANTED))
    # Increasing ids with gaps, around the planted ones (as after deletions upstream).
    candidates = [i for i in range(1000, 1000 + 3 * count + 10) if i not in PLANTED]
    ids = sorted(rng.sample(candidates, count))
    rows: list[V4ImageRow] = list(PLANTED.values())
    for image_id in ids:
        rating = rng.choices(RATINGS, weights=ratings)[0]
        extension = "png" if rng.random() < 0.8 else "jpg"
        dominant = _rgb(rng)
        rows.append(
            V4ImageRow(
                id=image_id,
                file_name=f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.{extension}",
                rating=rating,
                tags=_tags_for(rng, rating),
                color_dominant=dominant,
                color_palette=(dominant, *(_rgb(rng) for _ in range(rng.randint(2, 5)))),
                artist_name=rng.choice(_ARTISTS) if rng.random() < 0.6 else None,
                source_url=(
                    f"https://www.pixiv.net/artworks/{rng.randrange(10**7, 10**8)}"
                    if rng.random() < 0.5
                    else None
                ),
                host=1 if rng.random() < 0.15 else 0,
            )
        )
    return V4Dataset.from_rows(rows, seed=seed)


@functools.lru_cache(maxsize=8)
def generate_v4_dataset(
    seed: int = 0,
    images: int = 800,
    ratings: tuple[float, float, float, float] = DEFAULT_V4_RATINGS,
) -> V4Dataset:
    """Build (or return the cached) dataset; same arguments, same data. ``images`` counts the
    :data:`PLANTED` rows too (there are never fewer than those)."""
    return _build(seed, images, ratings)
