"""What each ``/neko`` command answers, as a :class:`Reply`, with no Discord connection.

The cog turns a Reply into an interaction response; ``python -m bot preview`` prints the same
Reply as Discord JSON. Every image passes the gating check here, whoever asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import discord

from . import embeds as render
from .autocomplete import NameIndex
from .catalog import Catalog
from .gating import (
    DEFAULT_POLICY,
    ContentPolicy,
    RefusalCounter,
    RefusalReason,
    effective_max,
    may_show,
)
from .nekos.client import SEARCH_MAX_LENGTH
from .nekos.errors import (
    BadRequest,
    Blocked,
    InvalidParameter,
    NekosError,
    NotFound,
    RateLimited,
    ResponseParseError,
)
from .nekos.models import Artist, Character, Image, Rating
from .nekos.search import name_pattern
from .nekos.versions import NekosApi
from .serving import ImageRequest, ServeStatus
from .serving.pool import ImageServer
from .text import ELLIPSIS, quote, safe_text, trim_markdown
from .views import (
    AnotherButton,
    CategoryPageButton,
    GalleryPageButton,
    another_custom_id,
    link_button,
    pager_items,
)

__all__ = [
    "Outcome",
    "Replies",
    "Reply",
    "ceiling_refusal",
    "error_reply",
    "notice",
    "rating_refusal",
]

log = logging.getLogger(__name__)

GALLERY_LIMIT = 50
CONTENT_LIMIT = 2000
NAME_SEARCH_LIMIT = min(SEARCH_MAX_LENGTH["artist"], SEARCH_MAX_LENGTH["character"])
CATEGORIES_PER_PAGE = 10
TAGS_PER_PAGE = 30
_SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}

Outcome = Literal[
    "served", "nothing_matched", "input_error", "busy", "api_error", "cooldown", "unexpected"
]
"""What a command's answer was, for the operators' metrics."""


@dataclass
class Reply:
    """One message the bot would send."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | None = None
    files: list[tuple[str, bytes]] = field(default_factory=list)
    ephemeral: bool = False
    retire: bool = False
    """The buttons this answers can no longer work: disable them on their message."""
    charge: bool = False
    """Counts against the member's cooldown: the command was served, or honestly answered
    "nothing matched". Input errors and outages don't count."""
    outcome: Outcome = "served"
    """What this answer is (served, "nothing matched", an input error, "busy", …): metrics."""

    def discord_files(self) -> list[discord.File]:
        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.files]

    def payload(self) -> dict[str, Any]:
        """The message as Discord JSON (what ``preview --json`` prints)."""
        data: dict[str, Any] = {
            "content": self.content or "",
            "embeds": [e.to_dict() for e in self.embeds],
            "components": self.view.to_components() if self.view is not None else [],
            "allowed_mentions": {"parse": []},
        }
        if self.files:
            data["attachments"] = [
                {"id": i, "filename": name, "size": len(blob)}
                for i, (name, blob) in enumerate(self.files)
            ]
        if self.ephemeral:
            data["flags"] = 64
        return data


def notice(text: str, *, outcome: Outcome = "input_error") -> Reply:
    """A short, friendly, ephemeral message (by default an answer to the member's input).

    Quote untrusted parts with :func:`bot.text.quote` or :func:`bot.text.safe_text`. If a
    member's input made it longer than Discord's 2000 characters, whole lines are dropped from
    the end (a cut inside a line could split a quote).
    """
    if len(text) > CONTENT_LIMIT:
        kept = ""
        for line in text.split("\n"):
            if len(kept) + len(line) + 2 > CONTENT_LIMIT:
                break
            kept += line + "\n"
        text = kept + ELLIPSIS if kept else trim_markdown(text, CONTENT_LIMIT)
    return Reply(content=text, ephemeral=True, outcome=outcome)


def error_reply(exc: BaseException) -> Reply:
    """The member-facing message for an adapter failure (always ephemeral)."""
    if isinstance(exc, Blocked):
        when = discord.utils.format_dt(exc.until, "t")
        return notice(
            f"The Nekos API has paused requests from this bot until {when}. "
            "Images will be back then — sorry!",
            outcome="api_error",
        )
    if isinstance(exc, RateLimited):
        return notice(
            f"The Nekos API is busy right now. Please try again in about "
            f"{max(1, math.ceil(exc.retry_after))} seconds.",
            outcome="busy",
        )
    if isinstance(exc, InvalidParameter | BadRequest):
        # The API's own wording is not shown: it is not ours to vouch for, and may hold markdown.
        return notice("The Nekos API didn't accept those options. Check them and try again.")
    if isinstance(exc, NotFound):
        return notice("I couldn't find that. Check the name or id and try again.")
    if isinstance(exc, ResponseParseError):
        return notice(
            "The Nekos API sent an answer I couldn't read. Please try again later.",
            outcome="api_error",
        )
    return notice(
        "The Nekos API isn't answering right now. Please try again in a minute.",
        outcome="api_error",
    )


def rating_refusal(channel_max: Rating, requested: Rating, *, configurable: bool) -> str:
    """Why a member's ``rating`` option can't be honoured here, and what would change that."""
    if not configurable:
        return (
            "Only **sfw** images can be shown here (direct messages, group chats and servers "
            "I'm not a member of). Try again without `rating`, or with `rating: sfw`."
        )
    return (
        f"This channel shows images up to **{channel_max.label}**, so I can't show "
        f"**{requested.label}** ones here. A server admin can change that with "
        "`/neko-config channel` (anything above sfw needs an age-restricted channel)."
    )


def ceiling_refusal(ceiling: Rating) -> str:
    """Why nothing above ``ceiling`` is shown anywhere: the API can't rule out minors."""
    return (
        f"This bot shows only **{ceiling.label}** images: the Nekos API it uses has no "
        "characters' ages, so it can't rule out minors above that. Its operator can change "
        "this; try again without `rating`."
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value.strip())
    except ValueError:
        return False
    return len(value.strip()) == 36


@dataclass(frozen=True, slots=True)
class _Found:
    """An artist or character a member named: its id, its name as listed, whether exact."""

    id: str
    name: str | None
    exact: bool


_IMAGE_ID_HINTS = {
    "uuid": "Ids look like `1a2b3c4d-1a2b-1a2b-1a2b-1a2b3c4d5e6f`",
    "int": "Ids are whole numbers like `4399`",
}


def _image_id(value: str, kind: str) -> str | None:
    """``value`` as an image id of the API's ``kind`` (``uuid`` or ``int``), or ``None``."""
    text = value.strip()
    if kind == "int":
        # ASCII digits only: str.isdigit() also accepts other scripts' digits, which v4 refuses.
        return str(int(text)) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    return text.lower() if _is_uuid(text) else None


class Replies:
    """The commands' logic: gate, serve, render."""

    def __init__(
        self,
        *,
        pool: ImageServer,
        lookups: Any,
        catalog: Catalog,
        api: NekosApi,
        refusals: RefusalCounter,
        delivery: str = "link",
        about: Callable[[], Awaitable[render.AboutInfo]] | None = None,
        api_version: Callable[[], Awaitable[str | None]] | None = None,
        artist_name_wait: float | None = 2.0,
        policy: ContentPolicy = DEFAULT_POLICY,
    ) -> None:
        self.pool = pool
        self.lookups = lookups
        self.catalog = catalog
        self.api = api
        self.refusals = refusals
        self.delivery = delivery
        self._about = about
        self._api_version = api_version
        self._artist_name_wait = artist_name_wait
        self.policy = policy
        self.ceiling = policy.ceiling(api.capabilities.has_characters)
        """The most any channel may show from this API (v4 without the operator's opt-in: sfw)."""
        # One refusal per image id, however often the pool offers the same image.
        self._refused: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ gating

    def cap(self, channel_max: Rating) -> Rating:
        """``channel_max`` within :attr:`ceiling`."""
        return min(channel_max, self.ceiling)

    def allows(self, image: Image, max_rating: Rating) -> bool:
        """Whether ``image`` may be shown where ``max_rating`` applies (within the ceiling);
        a minor-safety refusal is counted once per image."""
        decision = may_show(image, self.cap(max_rating), self.policy)
        minor = not decision and decision.reason is RefusalReason.MINOR_SAFETY
        if minor and image.id not in self._refused:
            self._refused[image.id] = None
            if len(self._refused) > 10_000:
                self._refused.popitem(last=False)
            self.refusals.record(RefusalReason.MINOR_SAFETY)
            log.info("Refused image %s: minor safety", image.id)
        return bool(decision)

    # ------------------------------------------------------------------ delivery

    async def _named_artist(self, artist_id: str) -> Artist | None:
        """The artist with this id as the artist list (or one cached lookup) knows them.

        A lookup that would keep the member waiting longer than ``artist_name_wait`` is left to
        finish in the background (for next time); the image is then shown without a credit
        rather than with a wrong one.
        """
        lookup = self.lookups.artist(artist_id)
        try:
            if self._artist_name_wait is None:
                return cast(Artist, await lookup)
            return cast(Artist, await asyncio.wait_for(lookup, self._artist_name_wait))
        except (NekosError, TimeoutError) as exc:
            log.debug("Could not name artist %s: %s", artist_id, exc)
            return None

    async def _credited(self, images: Sequence[Image]) -> list[Image]:
        """``images`` with every artist the API gave only by id named (the reference shape)."""
        unnamed = sorted(
            {i.artist.id for i in images if i.artist is not None and not i.artist.name}
        )
        if not unnamed:
            return list(images)
        named = await asyncio.gather(*map(self._named_artist, unnamed))
        found = dict(zip(unnamed, named, strict=True))
        return [
            dataclasses.replace(i, artist=found.get(i.artist.id) or i.artist)
            if i.artist is not None and not i.artist.name
            else i
            for i in images
        ]

    async def _render_images(
        self, images: Sequence[Image], upload_limit: int | None
    ) -> tuple[list[discord.Embed], list[tuple[str, bytes]]]:
        embeds, files = [], []
        budget = upload_limit or 0
        for image in await self._credited(images):
            url: str | None = None
            size = image.meta.size
            if self.delivery == "attach" and size is not None and 0 < size <= budget:
                name = render.attachment_name(
                    image.id, _SUFFIX.get(image.meta.mimetype or "", "png")
                )
                try:
                    files.append((name, await self.api.download(image.url, max_bytes=budget)))
                    budget -= size
                    url = f"attachment://{name}"
                except NekosError as exc:
                    log.warning("Download of image %s failed, linking instead: %s", image.id, exc)
            embeds.append(render.image_embed(image, image_url=url))
        return render.fit_message(embeds), files

    @staticmethod
    def _link_buttons(images: Sequence[Image], view: discord.ui.View) -> None:
        single = len(images) == 1
        for i, image in enumerate(images, start=1):
            for label, url in (
                ("Full image" if single else f"Image {i}", image.url),
                ("Source" if single else f"Source {i}", image.source.url),
            ):
                button = link_button(label, url)
                if button is not None and len(view.children) < 25:
                    view.add_item(button)

    # ------------------------------------------------------------------ /neko random

    def random_request(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        channel_max: Rating,
        requested: Rating | None,
        categories: str | None,
        count: int,
        configurable: bool = True,
        background: bool = False,
    ) -> ImageRequest | Reply:
        """Validate a random request: an ImageRequest, or an ephemeral Reply explaining why not.

        ``requested`` is the member's ``rating`` option: exactly that rating, and never above
        ``channel_max``. ``configurable`` says whether server admins decide what this channel
        shows (a server the bot is in), for the wording of a refusal. ``background``: nobody
        waits on it (a scheduled post), so members' requests go first.
        """
        if requested is not None and requested > self.ceiling:
            return notice(ceiling_refusal(self.ceiling))
        channel_max = self.cap(channel_max)
        if requested is not None and requested > channel_max:
            return notice(rating_refusal(channel_max, requested, configurable=configurable))
        max_rating = effective_max(channel_max, requested)
        check = self.catalog.check_categories(categories, max_rating)
        if check.unknown:
            lines = []
            for name in check.unknown:
                hint = check.suggestions.get(name) or []
                did_you_mean = (
                    f" Did you mean {', '.join(quote(h, 100) for h in hint)}?" if hint else ""
                )
                lines.append(f"I don't know the category {quote(name, 50)}.{did_you_mean}")
            lines.append("Use `/neko category` to see them all.")
            return notice("\n".join(lines))
        if check.hidden:
            names = ", ".join(quote(n, 50) for n in check.hidden)
            return notice(f"{names} can't be shown in this channel. Try another category.")
        return ImageRequest(
            guild_key=guild_id,
            channel_key=channel_id,
            user_id=user_id,
            categories=frozenset(check.known),
            count=max(1, min(count, 10)),
            max_rating=max_rating,
            min_rating=requested if requested is not None else Rating.SFW,
            accept=lambda image: self.allows(image, max_rating),
            background=background,
        )

    async def random(
        self,
        request: ImageRequest | Reply,
        *,
        requested: Rating | None = None,
        upload_limit: int | None = None,
    ) -> Reply:
        if isinstance(request, Reply):
            return request
        result = await self.pool.take(request)
        if not result.images:
            if result.error is not None and result.status is not ServeStatus.NOTHING_MATCHED:
                return error_reply(result.error)
            what = ", ".join(quote(c, 50) for c in sorted(request.categories)) or "any category"
            exact = request.min_rating == request.max_rating and request.min_rating > Rating.SFW
            scope = (
                f"only {request.max_rating.label}" if exact else f"up to {request.max_rating.label}"
            )
            if result.shown_here:
                text = (
                    f"Everything I found ({what}, {scope}) was shown in this channel recently. "
                    "Try another category, or again later."
                )
            else:
                text = (
                    f"Nothing matched right now ({what}, {scope}). "
                    "Images are sampled at random, so trying again in a minute may work; "
                    "fewer categories help too."
                )
            answer = notice(text, outcome="nothing_matched")
            answer.charge = True
            return answer
        embeds, files = await self._render_images(result.images, upload_limit)
        view = discord.ui.View(timeout=None)
        categories = tuple(sorted(request.categories))
        if another_custom_id(request.user_id, request.count, requested, categories) is not None:
            view.add_item(AnotherButton(request.user_id, request.count, requested, categories))
        self._link_buttons(result.images, view)
        content = None
        if result.status is ServeStatus.PARTIAL:
            content = f"Found {len(result.images)} of {request.count} right now."
        return Reply(content=content, embeds=embeds, view=view, files=files, charge=True)

    # ------------------------------------------------------------------ /neko artist

    async def _find(
        self,
        value: str,
        index: NameIndex[str],
        search: Callable[[str], Awaitable[Sequence[Artist | Character]]],
    ) -> _Found | None:
        """Who a member means by ``value``: an id (autocomplete's choice), an exact name, or
        the closest name, from the catalogue, or from an API search while it is not loaded."""
        value = value.strip()
        if not value:
            return None
        if _is_uuid(value):
            return _Found(value.lower(), None, exact=True)
        if not len(index):
            # The lists are not loaded (``preview``, the bot's first seconds): ask the API.
            found = await search(name_pattern(value, NAME_SEARCH_LIMIT))
            index = NameIndex((item.name, str(item.id)) for item in found if item.name)
        best = index.best(value)
        if best is None:
            return None
        name, item_id, exact = best
        return _Found(item_id, name, exact=exact)

    @staticmethod
    def _closest_note(kind: str, asked: str, found: _Found) -> str | None:
        if found.exact or found.name is None:
            return None
        return (
            f"No {kind} is called {quote(asked, 50)}; "
            f"showing **{safe_text(found.name, 100)}**, the closest name."
        )

    async def _gallery(
        self, artist_id: str, max_rating: Rating, want: int
    ) -> tuple[list[Image], Artist | None, bool]:
        """The artist's images this channel may see, at least ``want`` of them when there are;
        the artist as the images describe them; and whether more may exist beyond those fetched.

        Upstream pages of 25 are fetched only as far as a member has paged (most never page
        past the first 25, so the second page usually costs nothing). The live API embeds the
        artist (name, link) in every image, which saves the separate ``/artist/{id}`` call for
        a cold artist; the reference shape gives only the id.
        """
        shown: list[Image] = []
        described: Artist | None = None
        more = False
        for offset in range(0, GALLERY_LIMIT, 25):
            if len(shown) >= want:
                more = True
                break
            try:
                page = await self.lookups.artist_images(artist_id, 25, offset)
            except NotFound:
                # The live API answers an empty page (or an artist with no images) with 404.
                break
            for image in page.items:
                if described is None and image.artist is not None and image.artist.name:
                    same = image.artist.id.lower() == artist_id.lower()
                    described = image.artist if same else None
            shown.extend(i for i in page.items if self.allows(i, max_rating))
            if len(page.items) < 25:
                break
        return shown, described, more

    async def artist(self, *, user_id: int, channel_max: Rating, name: str, page: int = 1) -> Reply:
        if not self.api.capabilities.has_artists:
            return notice("The Nekos API this bot uses has no artists to look up.")
        found = await self._find(name, self.catalog.artist_index, self.lookups.artist_search)
        if found is None:
            return notice(
                f"I couldn't find an artist called {quote(name, 50)}. "
                "Pick one from the suggestions as you type."
            )
        reply = await self.artist_page(
            user_id=user_id, channel_max=channel_max, artist_id=found.id, page=page
        )
        if reply.charge:
            reply.content = self._closest_note("artist", name, found)
        return reply

    async def artist_page(
        self, *, user_id: int, channel_max: Rating, artist_id: str, page: int
    ) -> Reply:
        images, artist, more = await self._gallery(artist_id, channel_max, max(1, page))
        if artist is None:
            try:
                artist = await self.lookups.artist(artist_id)
            except NotFound:
                gone = notice("That artist isn't in the Nekos API any more.")
                gone.retire = True
                return gone
        # Only what this channel may see is counted: the total would reveal what was filtered.
        card = render.artist_embed(
            dataclasses.replace(artist, image_count=None),
            shown_images=len(images),
            more=more,
        )
        view = discord.ui.View(timeout=None)
        if not images:
            card.description = (card.description or "") + "\nNo images of theirs can be shown here."
            if (button := link_button("Artist page", artist.url)) is not None:
                view.add_item(button)
            return Reply(embeds=[card], view=view, charge=True)
        pages = len(images)
        page = max(1, min(page, pages))
        image = images[page - 1]
        gallery = render.gallery_page_embed(artist, image, page, pages, more=more)
        if pages > 1 or more:
            for item in pager_items(
                lambda p, d, off: GalleryPageButton(user_id, artist_id, p, d, disabled=off),
                page,
                pages + 1 if more else pages,
            ):
                view.add_item(item)
        if (button := link_button("Artist page", artist.url)) is not None:
            view.add_item(button)
        self._link_buttons([image], view)
        return Reply(embeds=render.fit_message([card, gallery]), view=view, charge=True)

    # ------------------------------------------------------------------ /neko character

    async def character(self, *, name: str) -> Reply:
        if not self.api.capabilities.has_characters:
            return notice("The Nekos API this bot uses has no characters to look up.")
        found = await self._find(name, self.catalog.character_index, self.lookups.character_search)
        if found is None:
            return notice(
                f"I couldn't find a character called {quote(name, 50)}. "
                "Pick one from the suggestions as you type."
            )
        try:
            character = await self.lookups.character(found.id)
        except NotFound:
            return notice("That character isn't in the Nekos API.")
        return Reply(
            content=self._closest_note("character", name, found),
            embeds=[render.character_embed(character)],
            charge=True,
        )

    # ------------------------------------------------------------------ /neko image

    async def image(
        self, *, image_id: str, channel_max: Rating, upload_limit: int | None = None
    ) -> Reply:
        kind = self.api.capabilities.id_kind
        checked = _image_id(image_id, kind)
        if checked is None:
            return notice(
                f"That isn't an image id. {_IMAGE_ID_HINTS[kind]} "
                "(the last part of an image's footer)."
            )
        image_id = checked
        try:
            image = self.pool.peek_image(image_id) or await self.lookups.image(image_id)
        except NotFound:
            return notice("There's no image with that id. Check it and try again.")
        if not self.allows(image, channel_max):
            return notice("That image can't be shown in this channel.")
        embeds, files = await self._render_images([image], upload_limit)
        view = discord.ui.View(timeout=None)
        self._link_buttons([image], view)
        return Reply(embeds=embeds, view=view, files=files, charge=True)

    # ------------------------------------------------------------------ /neko category

    async def category(
        self, *, user_id: int, channel_max: Rating, search: str = "", page: int = 1
    ) -> Reply:
        channel_max = self.cap(channel_max)
        if self.catalog.uses_tags:
            return self._tags(user_id=user_id, channel_max=channel_max, search=search, page=page)
        if not self.catalog.category_index:
            self.catalog.set_categories(await self.lookups.category_list())
        wanted = search.strip().casefold()
        listed = [
            c for c in self.catalog.visible_categories(channel_max) if wanted in c.name.casefold()
        ]
        if not listed:
            return notice(f"No category matches {quote(search, 50)}.")
        pages = math.ceil(len(listed) / CATEGORIES_PER_PAGE)
        page = max(1, min(page, pages))
        chunk = listed[(page - 1) * CATEGORIES_PER_PAGE : page * CATEGORIES_PER_PAGE]
        view = None
        if pages > 1:
            view = discord.ui.View(timeout=None)
            for item in pager_items(
                lambda p, d, off: CategoryPageButton(user_id, p, d, search[:50], disabled=off),
                page,
                pages,
            ):
                view.add_item(item)
        return Reply(embeds=[render.category_list_embed(chunk, page, pages)], view=view)

    def _tags(self, *, user_id: int, channel_max: Rating, search: str, page: int) -> Reply:
        """``/neko category`` on an API with free-form tags (v4): the tags seen so far."""
        wanted = search.strip().casefold()
        listed = [t for t in self.catalog.visible_tags(channel_max) if wanted in t[0].casefold()]
        if not listed:
            if wanted:
                return notice(f"No tag seen so far matches {quote(search, 50)}.")
            return notice(
                "No tags seen yet: the bot learns them from the images it fetches. "
                "Try `/neko random` first, then look again."
            )
        pages = math.ceil(len(listed) / TAGS_PER_PAGE)
        page = max(1, min(page, pages))
        chunk = listed[(page - 1) * TAGS_PER_PAGE : page * TAGS_PER_PAGE]
        view = None
        if pages > 1:
            view = discord.ui.View(timeout=None)
            for item in pager_items(
                lambda p, d, off: CategoryPageButton(user_id, p, d, search[:50], disabled=off),
                page,
                pages,
            ):
                view.add_item(item)
        return Reply(embeds=[render.tag_list_embed(chunk, page, pages)], view=view)

    # ------------------------------------------------------------------ /neko stats, about

    async def stats(self) -> Reply:
        stats = await self.lookups.stats()
        version = await self._api_version() if self._api_version is not None else None
        return Reply(embeds=[render.stats_embed(stats, version)])

    async def about(self, *, details: bool = False) -> Reply:
        """The bot's health for everyone; ``details`` (for server managers) adds the API's last
        error, and is then only shown to them."""
        if self._about is None:
            return notice("Bot details aren't available here.")
        embed = render.about_embed(await self._about(), details=details)
        return Reply(embeds=[embed], ephemeral=details)
