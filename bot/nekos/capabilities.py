"""What each version of the Nekos API can do, so callers decide without asking which client it is.

Every client has a read-only ``capabilities``; the product side (which commands to register,
how to read an image id, whether the pool may ask upstream for a rating) reads it instead of
checking the client's class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CAPABILITIES", "V1_CAPABILITIES", "V4_CAPABILITIES", "ApiCapabilities", "ApiVersion"]

ApiVersion = Literal["v1", "v4"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiCapabilities:
    """One API version's features and limits."""

    version: ApiVersion
    max_random_batch: int
    """Largest ``limit`` of one random-images call."""
    id_kind: Literal["uuid", "int"]
    """How image ids look: ``3fa85f64-…`` (v1) or ``4399`` (v4)."""
    ratings: tuple[str, ...]
    """The API's own rating labels, least restrictive first."""
    rating_filter: bool
    """Random and list calls can be filtered by rating upstream."""
    has_tags: bool
    """Images carry free-form tags that random and list calls filter by."""
    tag_exclusion: bool
    """Calls can exclude tags (``without_tags``)."""
    has_artists: bool
    """Artist records: lookup by id, search, an artist's images."""
    has_characters: bool
    """Character records, including ages (what the minor-safety rule reads)."""
    has_categories_list: bool
    """A list of every category that random calls filter by."""
    has_stats_endpoint: bool
    """One call answers totals (v4's statistics take one count call per rating)."""
    has_api_info: bool
    """``GET /`` describes the API and its version."""
    has_image_list: bool
    """All images can be listed page by page (v1: only with a token scoped ``image:list``)."""
    uses_token: bool
    """An API token is sent (v1: optional; it unlocks listing images and custom expiry)."""
    signed_urls: bool
    """Image URLs are signed and expire (v1, an hour by default); v4's are plain."""

    def summary(self) -> str:
        """What it can do and what it cannot, in one line (for ``python -m bot check``)."""
        can = ["random images", "images by id"]
        if self.has_tags:
            can.append("tags")
        if self.tag_exclusion:
            can.append("tag exclusion")
        if self.rating_filter:
            can.append("rating filter")
        if self.has_categories_list:
            can.append("categories")
        if self.has_artists:
            can.append("artists")
        if self.has_characters:
            can.append("characters")
        if self.has_stats_endpoint:
            can.append("statistics")
        cannot = [
            name
            for name, present in (
                ("artists", self.has_artists),
                ("characters", self.has_characters),
                ("categories", self.has_categories_list),
            )
            if not present
        ]
        line = ", ".join(can)
        if cannot:
            missing = (
                cannot[0] if len(cannot) == 1 else ", ".join(cannot[:-1]) + " or " + cannot[-1]
            )
            line += f"; no {missing}"
        return line


V1_CAPABILITIES: Final = ApiCapabilities(
    version="v1",
    max_random_batch=25,
    id_kind="uuid",
    ratings=("sfw", "questionable", "nsfw"),
    rating_filter=False,
    has_tags=False,
    tag_exclusion=False,
    has_artists=True,
    has_characters=True,
    has_categories_list=True,
    has_stats_endpoint=True,
    has_api_info=True,
    has_image_list=True,
    uses_token=True,
    signed_urls=True,
)

V4_CAPABILITIES: Final = ApiCapabilities(
    version="v4",
    max_random_batch=100,
    id_kind="int",
    ratings=("safe", "suggestive", "borderline", "explicit"),
    rating_filter=True,
    has_tags=True,
    tag_exclusion=True,
    has_artists=False,
    has_characters=False,
    has_categories_list=False,
    has_stats_endpoint=False,
    has_api_info=False,
    has_image_list=True,
    uses_token=False,
    signed_urls=False,
)

CAPABILITIES: Final[Mapping[ApiVersion, ApiCapabilities]] = {
    "v1": V1_CAPABILITIES,
    "v4": V4_CAPABILITIES,
}
"""Each version's capabilities, for deciding before a client exists (which commands to register)."""
