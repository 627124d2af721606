"""Cached, coalesced lookups: single images, artists, characters, the full lists, stats.

Every lookup is answered from a short-lived cache when it can be; otherwise concurrent callers
asking the same thing share one upstream call. Interactive callers never wait behind a
background call (the pacer may hold it back while members wait): they start their own, which
later background callers then share.

The full artist and character lists (loaded for autocomplete anyway) double as profiles: a
``/character`` list entry carries every field of ``/character/{id}`` but the image count, and an
``/artist`` entry everything the artist card shows. So a member's character or artist lookup is
answered from the list at no upstream cost; the character's full record (with its image count)
is then fetched at background priority, i.e. only with capacity nobody is waiting for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bot.nekos.errors import NekosError, NotFound, RateLimited
from bot.nekos.models import Artist, Category, Character, Image, Page, Stats
from bot.nekos.search import RawPattern

from .caching import Clock, Coalescer, TTLCache
from .protocols import LookupSource, WaitEstimator

__all__ = [
    "CachedLookups",
    "KindCounts",
    "LookupMetrics",
    "LookupSettings",
    "SharedNotFound",
    "SharedTier",
]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T_Item = TypeVar("T_Item", bound=_HasId)


class SharedNotFound(NotFound):
    """A 404 another process got, answered from the shared tier (counted as a shared hit)."""


class SharedTier(Protocol):
    """A cache shared by processes under the in-process one (Redis: ``bot.serving.shared``)."""

    async def fetch(
        self,
        kind: str,
        key: Hashable,
        load: Callable[[], Awaitable[V]],
        *,
        lifetime: Callable[[V], float],
        not_found_ttl: float,
        background: bool,
    ) -> tuple[V, float | None]:
        """The answer (``load()``'s, or another process's) and, when it was shared, the seconds
        it has left there; ``NotFound`` for a 404 (:class:`SharedNotFound` when shared)."""
        ...

    @property
    def waits(self) -> int:
        """Lookups that waited for the same lookup under way in another process."""
        ...

    @property
    def fallbacks(self) -> int:
        """Lookups made in this process alone because the shared tier was unreachable."""
        ...


@dataclass(frozen=True, slots=True)
class LookupSettings:
    """Lifetimes (seconds) and bounds of :class:`CachedLookups`."""

    image_ttl: float = 1800.0
    """Also bounded by the image's signed URL (``url_margin`` before it expires)."""
    artist_ttl: float = 3600.0
    character_ttl: float = 3600.0
    artist_images_ttl: float = 1800.0
    """A gallery page; bounded by its images' signed URLs like ``image_ttl``."""
    list_ttl: float = 900.0
    """The full category, artist and character lists."""
    stats_ttl: float = 300.0
    search_ttl: float = 900.0
    """A name search (used when the full lists are not loaded, e.g. by ``preview``)."""
    not_found_ttl: float = 60.0
    """A 404 for an id is remembered this long, so repeated bad ids cost one call (0: never)."""
    url_margin: float = 600.0
    """Cached images are dropped this long before their signed URL expires."""
    max_entries: int = 1024
    """Per kind of lookup."""
    page_size: int = 25
    max_list_pages: int = 40
    """A full list stops after this many pages, whatever the server says (a runaway guard)."""
    shed_after: float | None = 30.0
    """A member's lookup that would wait longer than this for the API is answered "busy, try
    again in N s" at once instead of queueing (``None``: never). Cached answers are never shed."""


@dataclass(frozen=True, slots=True)
class KindCounts:
    """One kind of lookup's cache answers since start-up (a remembered 404 is a hit)."""

    kind: str
    hits: int
    misses: int
    shared_hits: int = 0
    """Misses here answered by the shared tier (another process's call) instead of upstream."""


@dataclass(frozen=True, slots=True)
class LookupMetrics:
    """Counters since start-up."""

    hits: int
    misses: int
    coalesced: int
    upstream_calls: int
    not_found: int
    shed: int = 0
    """Member lookups answered "busy" instead of queueing (see ``LookupSettings.shed_after``)."""
    listed: int = 0
    """Character and artist lookups answered from the full lists, at no upstream cost."""
    kinds: tuple[KindCounts, ...] = ()
    """``hits`` and ``misses`` per kind of lookup (image, artist, stats, …)."""
    shared_hits: int = 0
    """Misses here answered from the shared tier (Redis), not upstream."""
    shared_waits: int = 0
    """Misses that waited for the same lookup under way in another process (coalesced)."""
    shared_fallbacks: int = 0
    """Lookups made by this process alone because the shared tier was unreachable."""


@dataclass(frozen=True, slots=True)
class _Absent:
    """A remembered 404."""

    message: str
    endpoint: str | None

    def error(self) -> NotFound:
        return NotFound(self.message, status=404, endpoint=self.endpoint)


@dataclass(slots=True)
class _Counters:
    upstream_calls: int = 0
    not_found: int = 0
    shed: int = 0
    listed: int = 0


class _CachedKind(Generic[K, V]):
    """One kind of lookup: its cache, its coalescer and how to load a value."""

    def __init__(
        self,
        kind: str,
        settings: LookupSettings,
        ttl: float,
        clock: Clock,
        counters: _Counters,
        load: Callable[[K, Any], Awaitable[V]],
        lifetime: Callable[[V], float] | None = None,
        *,
        adopt: Callable[[V], None] | None = None,
        shared: SharedTier | None = None,
    ) -> None:
        self.kind = kind
        self.hits = 0
        self.misses = 0
        self.shared_hits = 0
        self._settings = settings
        self._cache: TTLCache[K, V | _Absent] = TTLCache(settings.max_entries, ttl, clock=clock)
        self.coalescer: Coalescer[tuple[K, bool], V] = Coalescer()
        self._counters = counters
        self._load = load
        self._lifetime = lifetime
        self._adopt = adopt
        self._shared = shared

    def cached(self, key: K) -> V | None:
        """The live cached value for ``key`` (a remembered 404 counts as none)."""
        cached = self._cache.get(key)
        return None if isinstance(cached, _Absent) else cached

    def lifetime(self, value: V) -> float:
        """Seconds ``value`` may be cached (a signed URL's deadline may shorten it)."""
        return self._cache.ttl if self._lifetime is None else self._lifetime(value)

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Cache ``value`` as if it had just been loaded (for at most ``ttl`` seconds)."""
        lifetime = self.lifetime(value)
        self._cache.set(key, value, lifetime if ttl is None else min(ttl, lifetime))

    async def get(self, key: K, priority: Any, *, background: bool) -> V:
        cached = self._cache.get(key)
        if isinstance(cached, _Absent):
            self.hits += 1
            raise cached.error()
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        # A background caller rides along with an interactive call, never the other way round.
        flight = (
            (key, True)
            if background and not self.coalescer.in_flight((key, False))
            else (
                key,
                False,
            )
        )
        return await self.coalescer.run(flight, lambda: self._fetch(key, priority, background))

    async def _fetch(self, key: K, priority: Any, background: bool) -> V:
        shared_ttl: float | None = None
        try:
            if self._shared is None:
                value = await self._load(key, priority)
            else:
                value, shared_ttl = await self._shared.fetch(
                    self.kind,
                    key,
                    lambda: self._load(key, priority),
                    lifetime=self.lifetime,
                    not_found_ttl=self._settings.not_found_ttl,
                    background=background,
                )
        except NotFound as exc:
            if isinstance(exc, SharedNotFound):
                self.shared_hits += 1
            self._counters.not_found += 1
            self._cache.set(key, _Absent(exc.message, exc.endpoint), self._settings.not_found_ttl)
            raise
        if shared_ttl is not None:
            self.shared_hits += 1
        self.put(key, value, shared_ttl)
        if self._adopt is not None:
            self._adopt(value)
        return value

    def clear(self) -> None:
        self._cache.clear()


class CachedLookups:
    """Coalesced, cached read-only lookups for commands and autocomplete refresh.

    ``background=True`` marks a call nobody is waiting for (e.g. refreshing autocomplete lists):
    it goes upstream at ``background_priority``. Values are shared objects; models are frozen.
    """

    def __init__(
        self,
        source: LookupSource,
        *,
        interactive_priority: Any,
        background_priority: Any,
        settings: LookupSettings | None = None,
        estimator: WaitEstimator | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        shared: SharedTier | None = None,
    ) -> None:
        self._source = source
        self._shared = shared
        self._estimator = estimator
        self._interactive = interactive_priority
        self._background = background_priority
        self._settings = s = settings or LookupSettings()
        self._wall_clock = wall_clock
        self._counters = _Counters()
        c = self._counters
        self._images: _CachedKind[str, Image] = _CachedKind(
            "image",
            s,
            s.image_ttl,
            clock,
            c,
            self._admitted(self._load_image),
            self._image_lifetime,
            shared=shared,
        )
        self._artists: _CachedKind[str, Artist] = _CachedKind(
            "artist", s, s.artist_ttl, clock, c, self._admitted(self._load_artist), shared=shared
        )
        self._artist_pages: _CachedKind[tuple[str, int, int], Page[Image]] = _CachedKind(
            "artist_images",
            s,
            s.artist_images_ttl,
            clock,
            c,
            self._admitted(self._load_artist_images),
            self._page_lifetime,
            shared=shared,
        )
        self._characters: _CachedKind[str, Character] = _CachedKind(
            "character",
            s,
            s.character_ttl,
            clock,
            c,
            self._admitted(self._load_character),
            shared=shared,
        )
        self._category_list: _CachedKind[str, tuple[Category, ...]] = _CachedKind(
            "category_list",
            s,
            s.list_ttl,
            clock,
            c,
            self._admitted(self._load_category_list),
            shared=shared,
        )
        self._artist_list: _CachedKind[str, tuple[Artist, ...]] = _CachedKind(
            "artist_list",
            s,
            s.list_ttl,
            clock,
            c,
            self._admitted(self._load_artist_list),
            adopt=self._adopt_artists,
            shared=shared,
        )
        self._character_list: _CachedKind[str, tuple[Character, ...]] = _CachedKind(
            "character_list",
            s,
            s.list_ttl,
            clock,
            c,
            self._admitted(self._load_character_list),
            adopt=self._adopt_characters,
            shared=shared,
        )
        self._stats: _CachedKind[str, Stats] = _CachedKind(
            "stats", s, s.stats_ttl, clock, c, self._admitted(self._load_stats), shared=shared
        )
        self._artist_searches: _CachedKind[str, tuple[Artist, ...]] = _CachedKind(
            "artist_search",
            s,
            s.search_ttl,
            clock,
            c,
            self._admitted(self._search_artists),
            shared=shared,
        )
        self._character_searches: _CachedKind[str, tuple[Character, ...]] = _CachedKind(
            "character_search",
            s,
            s.search_ttl,
            clock,
            c,
            self._admitted(self._search_characters),
            shared=shared,
        )
        self._kinds: tuple[_CachedKind[Any, Any], ...] = (
            self._images,
            self._artists,
            self._artist_pages,
            self._characters,
            self._category_list,
            self._artist_list,
            self._character_list,
            self._stats,
            self._artist_searches,
            self._character_searches,
        )
        self._listed_artists: dict[str, Artist] = {}
        self._listed_characters: dict[str, Character] = {}
        self._fills: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ public lookups

    async def image(self, image_id: str, *, background: bool = False) -> Image:
        """One image by id (``NotFound`` if there is none)."""
        return await self._images.get(image_id, self._priority(background), background=background)

    async def artist(self, artist_id: str, *, background: bool = False) -> Artist:
        """One artist by id; from the artist list when it holds them (no image count then)."""
        if self._artists.cached(artist_id) is None and (
            listed := self._listed_artists.get(artist_id.lower())
        ):
            self._counters.listed += 1
            return listed
        return await self._artists.get(artist_id, self._priority(background), background=background)

    async def artist_images(
        self, artist_id: str, limit: int = 25, offset: int = 0, *, background: bool = False
    ) -> Page[Image]:
        """One page of an artist's images."""
        key = (artist_id, limit, offset)
        return await self._artist_pages.get(key, self._priority(background), background=background)

    async def character(self, character_id: str, *, background: bool = False) -> Character:
        """One character by id.

        From the character list when it holds them and the full record is not cached: that
        entry lacks only the image count, which a background call then fetches for next time.
        """
        if self._characters.cached(character_id) is None and (
            listed := self._listed_characters.get(character_id.lower())
        ):
            self._counters.listed += 1
            self._fill_character(character_id)
            return listed
        priority = self._priority(background)
        return await self._characters.get(character_id, priority, background=background)

    async def category_list(self, *, background: bool = False) -> tuple[Category, ...]:
        """Every category (all pages of ``/category``)."""
        return await self._category_list.get("", self._priority(background), background=background)

    async def artist_list(self, *, background: bool = False) -> tuple[Artist, ...]:
        """Every artist (all pages of ``/artist``)."""
        return await self._artist_list.get("", self._priority(background), background=background)

    async def character_list(self, *, background: bool = False) -> tuple[Character, ...]:
        """Every character (all pages of ``/character``)."""
        priority = self._priority(background)
        return await self._character_list.get("", priority, background=background)

    async def stats(self, *, background: bool = False) -> Stats:
        """The API's ``/stats``."""
        return await self._stats.get("", self._priority(background), background=background)

    async def artist_search(self, pattern: str) -> tuple[Artist, ...]:
        """Artists whose name matches ``pattern`` (a ``SIMILAR TO`` pattern, see ``search``)."""
        return await self._artist_searches.get(pattern, self._interactive, background=False)

    async def character_search(self, pattern: str) -> tuple[Character, ...]:
        """Characters whose name matches ``pattern`` (a ``SIMILAR TO`` pattern)."""
        return await self._character_searches.get(pattern, self._interactive, background=False)

    def prime(
        self,
        *,
        categories: Sequence[Category] | None = None,
        artists: Sequence[Artist] | None = None,
        characters: Sequence[Character] | None = None,
    ) -> None:
        """Adopt full lists loaded elsewhere (e.g. by another process), as if loaded here."""
        if categories is not None:
            self._category_list.put("", tuple(categories))
        if artists is not None:
            self._artist_list.put("", tuple(artists))
            self._adopt_artists(artists)
        if characters is not None:
            self._character_list.put("", tuple(characters))
            self._adopt_characters(characters)

    def _adopt_artists(self, artists: Sequence[Artist]) -> None:
        """Answer artist lookups from this list (however it was loaded: here, or shared)."""
        self._listed_artists = {a.id.lower(): a for a in artists if a.name}

    def _adopt_characters(self, characters: Sequence[Character]) -> None:
        self._listed_characters = {c.id.lower(): c for c in characters}

    def metrics(self) -> LookupMetrics:
        """Counters since start-up."""
        c = self._counters
        shared = self._shared
        return LookupMetrics(
            hits=sum(kind.hits for kind in self._kinds),
            misses=sum(kind.misses for kind in self._kinds),
            coalesced=sum(kind.coalescer.joins for kind in self._kinds),
            upstream_calls=c.upstream_calls,
            not_found=c.not_found,
            shed=c.shed,
            listed=c.listed,
            kinds=tuple(KindCounts(k.kind, k.hits, k.misses, k.shared_hits) for k in self._kinds),
            shared_hits=sum(kind.shared_hits for kind in self._kinds),
            shared_waits=shared.waits if shared is not None else 0,
            shared_fallbacks=shared.fallbacks if shared is not None else 0,
        )

    def clear(self) -> None:
        """Forget every cached value (calls in flight still complete)."""
        for kind in self._kinds:
            kind.clear()
        self._listed_artists.clear()
        self._listed_characters.clear()

    async def stop(self) -> None:
        """Cancel the background fills still waiting for spare capacity."""
        fills = list(self._fills.items())
        for character_id, task in fills:
            self._characters.coalescer.cancel((character_id, True))
            task.cancel()
        await asyncio.gather(*(task for _, task in fills), return_exceptions=True)
        self._fills.clear()

    def _fill_character(self, character_id: str) -> None:
        """Fetch the full record at background priority, once at a time per character."""
        if character_id in self._fills:
            return

        async def fill() -> None:
            try:
                await self._characters.get(character_id, self._background, background=True)
            except NekosError as exc:
                # Nobody waits for this; the list entry keeps serving meanwhile.
                log.debug("Background fetch of character %s failed: %s", character_id, exc)
            finally:
                self._fills.pop(character_id, None)

        self._fills[character_id] = asyncio.create_task(fill(), name="character-fill")

    # ------------------------------------------------------------------ loading

    def _admitted(self, load: Callable[[K, Any], Awaitable[V]]) -> Callable[[K, Any], Awaitable[V]]:
        """``load``, refusing an interactive call the pacer could not start for a long while."""

        async def admitted(key: K, priority: Any) -> V:
            shed_after = self._settings.shed_after
            if priority == self._interactive and self._estimator is not None and shed_after:
                wait = self._estimator.estimated_wait()
                if wait > shed_after:
                    self._counters.shed += 1
                    raise RateLimited("the bot's queue for the Nekos API is long", retry_after=wait)
            return await load(key, priority)

        return admitted

    def _priority(self, background: bool) -> Any:
        return self._background if background else self._interactive

    async def _load_image(self, image_id: str, priority: Any) -> Image:
        self._counters.upstream_calls += 1
        return await self._source.image(image_id, priority=priority)

    async def _load_artist(self, artist_id: str, priority: Any) -> Artist:
        self._counters.upstream_calls += 1
        return await self._source.artist(artist_id, priority=priority)

    async def _load_artist_images(self, key: tuple[str, int, int], priority: Any) -> Page[Image]:
        artist_id, limit, offset = key
        self._counters.upstream_calls += 1
        return await self._source.artist_images(
            artist_id, limit=limit, offset=offset, priority=priority
        )

    async def _load_character(self, character_id: str, priority: Any) -> Character:
        self._counters.upstream_calls += 1
        return await self._source.character(character_id, priority=priority)

    async def _load_stats(self, _: str, priority: Any) -> Stats:
        self._counters.upstream_calls += 1
        return await self._source.stats(priority=priority)

    async def _search_artists(self, pattern: str, priority: Any) -> tuple[Artist, ...]:
        self._counters.upstream_calls += 1
        page = await self._source.artists(RawPattern(pattern), limit=25, priority=priority)
        return page.items

    async def _search_characters(self, pattern: str, priority: Any) -> tuple[Character, ...]:
        self._counters.upstream_calls += 1
        page = await self._source.characters(RawPattern(pattern), limit=25, priority=priority)
        return page.items

    async def _load_category_list(self, _: str, priority: Any) -> tuple[Category, ...]:
        return await self._all_pages(self._source.categories, priority, "/category")

    async def _load_artist_list(self, _: str, priority: Any) -> tuple[Artist, ...]:
        return await self._all_pages(self._source.artists, priority, "/artist")

    async def _load_character_list(self, _: str, priority: Any) -> tuple[Character, ...]:
        return await self._all_pages(self._source.characters, priority, "/character")

    async def _all_pages(
        self,
        fetch: Callable[..., Awaitable[Page[T_Item]]],
        priority: Any,
        endpoint: str,
    ) -> tuple[T_Item, ...]:
        limit = self._settings.page_size
        items: list[T_Item] = []
        seen: set[str] = set()
        offset = 0
        for _ in range(self._settings.max_list_pages):
            self._counters.upstream_calls += 1
            page = await fetch(None, limit=limit, offset=offset, priority=priority)
            for item in page.items:
                # Rows added while paging shift later pages; never list one twice.
                if item.id not in seen:
                    seen.add(item.id)
                    items.append(item)
            offset += len(page.items)
            total = page.pagination.total if page.pagination else None
            if len(page.items) < limit or (total is not None and offset >= total):
                break
        else:
            log.warning("%s: stopped after %d pages", endpoint, self._settings.max_list_pages)
        return tuple(items)

    # ------------------------------------------------------------------ lifetimes

    def _url_lifetime(self, image: Image) -> float | None:
        """Seconds the image's signed URL stays usable, margin taken off; None if unknown."""
        expires = image.meta.expires
        if expires is None:
            return None
        return expires.timestamp() - self._settings.url_margin - self._wall_clock()

    def _image_lifetime(self, image: Image) -> float:
        url = self._url_lifetime(image)
        return self._settings.image_ttl if url is None else min(self._settings.image_ttl, url)

    def _page_lifetime(self, page: Page[Image]) -> float:
        lifetime = self._settings.artist_images_ttl
        for image in page.items:
            url = self._url_lifetime(image)
            if url is not None:
                lifetime = min(lifetime, url)
        return lifetime
