"""What each ``/neko`` command answers, as a :class:`Reply`, with no Discord connection.

The cog turns a Reply into an interaction response; ``python -m bot preview`` prints the same
Reply as Discord JSON. Every image passes the gating check here, whoever asked.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from . import embeds as render
from .catalog import Catalog
from .gating import RefusalCounter, RefusalReason, effective_max, may_show
from .nekos.client import NekosClient
from .nekos.errors import (
    BadRequest,
    Blocked,
    InvalidParameter,
    NekosError,
    NotFound,
    RateLimited,
    ResponseParseError,
)
from .nekos.models import Artist, Image, Rating
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

__all__ = ["Replies", "Reply", "error_reply", "notice"]

log = logging.getLogger(__name__)

GALLERY_LIMIT = 50
CONTENT_LIMIT = 2000
CATEGORIES_PER_PAGE = 10
_SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


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


def notice(text: str) -> Reply:
    """A short, friendly, ephemeral message (quote untrusted parts with :func:`bot.text.quote`
    or :func:`bot.text.safe_text`). If a member's input made it longer than Discord's 2000
    characters, whole lines are dropped from the end (a cut inside a line could split a quote)."""
    if len(text) > CONTENT_LIMIT:
        kept = ""
        for line in text.split("\n"):
            if len(kept) + len(line) + 2 > CONTENT_LIMIT:
                break
            kept += line + "\n"
        text = kept + ELLIPSIS if kept else trim_markdown(text, CONTENT_LIMIT)
    return Reply(content=text, ephemeral=True)


def error_reply(exc: BaseException) -> Reply:
    """The member-facing message for an adapter failure (always ephemeral)."""
    if isinstance(exc, Blocked):
        when = discord.utils.format_dt(exc.until, "t")
        return notice(
            f"The Nekos API has paused requests from this bot until {when}. "
            "Images will be back then — sorry!"
        )
    if isinstance(exc, RateLimited):
        return notice(
            f"The Nekos API is busy right now. Please try again in about "
            f"{max(1, math.ceil(exc.retry_after))} seconds."
        )
    if isinstance(exc, InvalidParameter | BadRequest):
        # The message may repeat the API's words or the member's input.
        reason = safe_text(exc.message, 500)
        return notice(f"That didn't work: {reason}. Check the options and try again.")
    if isinstance(exc, NotFound):
        return notice("I couldn't find that. Check the name or id and try again.")
    if isinstance(exc, ResponseParseError):
        return notice("The Nekos API sent an answer I couldn't read. Please try again later.")
    return notice("The Nekos API isn't answering right now. Please try again in a minute.")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value.strip())
    except ValueError:
        return False
    return len(value.strip()) == 36


class Replies:
    """The commands' logic: gate, serve, render."""

    def __init__(
        self,
        *,
        pool: ImageServer,
        lookups: Any,
        catalog: Catalog,
        api: NekosClient,
        refusals: RefusalCounter,
        delivery: str = "link",
        about: Callable[[], Awaitable[render.AboutInfo]] | None = None,
        api_version: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.pool = pool
        self.lookups = lookups
        self.catalog = catalog
        self.api = api
        self.refusals = refusals
        self.delivery = delivery
        self._about = about
        self._api_version = api_version
        # One refusal per image id, however often the pool offers the same image.
        self._refused: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ gating

    def allows(self, image: Image, max_rating: Rating) -> bool:
        decision = may_show(image, max_rating)
        minor = not decision and decision.reason is RefusalReason.MINOR_SAFETY
        if minor and image.id not in self._refused:
            self._refused[image.id] = None
            if len(self._refused) > 10_000:
                self._refused.popitem(last=False)
            self.refusals.record(RefusalReason.MINOR_SAFETY)
            log.info("Refused image %s: minor safety", image.id)
        return bool(decision)

    # ------------------------------------------------------------------ delivery

    async def _render_images(
        self, images: Sequence[Image], upload_limit: int | None
    ) -> tuple[list[discord.Embed], list[tuple[str, bytes]]]:
        embeds, files = [], []
        budget = upload_limit or 0
        for image in images:
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
    ) -> ImageRequest | Reply:
        """Validate a random request: an ImageRequest, or an ephemeral Reply explaining why not."""
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
            accept=lambda image: self.allows(image, max_rating),
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
            return notice(
                f"Nothing matched right now ({what}, up to {request.max_rating.label}). "
                "Images are sampled at random, so trying again in a minute may work; "
                "fewer categories help too."
            )
        embeds, files = await self._render_images(result.images, upload_limit)
        view = discord.ui.View(timeout=None)
        categories = tuple(sorted(request.categories))
        if another_custom_id(request.user_id, request.count, requested, categories) is not None:
            view.add_item(AnotherButton(request.user_id, request.count, requested, categories))
        self._link_buttons(result.images, view)
        content = None
        if result.status is ServeStatus.PARTIAL:
            content = f"Found {len(result.images)} of {request.count} right now."
        return Reply(content=content, embeds=embeds, view=view, files=files)

    # ------------------------------------------------------------------ /neko artist

    async def _resolve(
        self, value: str, index_get: Callable[[str], str | None], search: Callable[..., Any]
    ) -> str | None:
        value = value.strip()
        if _is_uuid(value):
            return value.lower()
        if (found := index_get(value)) is not None:
            return found
        if not value:
            return None
        page = await search(search=value[:15], limit=5)
        for item in page.items:
            if getattr(item, "name", None) and item.name.casefold() == value.casefold():
                return str(item.id)
        return str(page.items[0].id) if page.items else None

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
        try:
            artist_id = await self._resolve(name, self.catalog.artist_index.get, self.api.artists)
        except InvalidParameter:
            artist_id = None
        if artist_id is None:
            return notice(f"I couldn't find an artist called {quote(name, 50)}.")
        return await self.artist_page(
            user_id=user_id, channel_max=channel_max, artist_id=artist_id, page=page
        )

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
            return Reply(embeds=[card], view=view)
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
        return Reply(embeds=render.fit_message([card, gallery]), view=view)

    # ------------------------------------------------------------------ /neko character

    async def character(self, *, name: str) -> Reply:
        try:
            character_id = await self._resolve(
                name, self.catalog.character_index.get, self.api.characters
            )
        except InvalidParameter:
            character_id = None
        if character_id is None:
            return notice(f"I couldn't find a character called {quote(name, 50)}.")
        try:
            character = await self.lookups.character(character_id)
        except NotFound:
            return notice("That character isn't in the Nekos API.")
        return Reply(embeds=[render.character_embed(character)])

    # ------------------------------------------------------------------ /neko image

    async def image(
        self, *, image_id: str, channel_max: Rating, upload_limit: int | None = None
    ) -> Reply:
        if not _is_uuid(image_id):
            return notice(
                "That isn't an image id. Ids look like `1a2b3c4d-1a2b-1a2b-1a2b-1a2b3c4d5e6f` "
                "(the last part of an image's footer)."
            )
        image_id = image_id.strip().lower()
        try:
            image = self.pool.peek_image(image_id) or await self.lookups.image(image_id)
        except NotFound:
            return notice("There's no image with that id. Check it and try again.")
        if not self.allows(image, channel_max):
            return notice("That image can't be shown in this channel.")
        embeds, files = await self._render_images([image], upload_limit)
        view = discord.ui.View(timeout=None)
        self._link_buttons([image], view)
        return Reply(embeds=embeds, view=view, files=files)

    # ------------------------------------------------------------------ /neko category

    async def category(
        self, *, user_id: int, channel_max: Rating, search: str = "", page: int = 1
    ) -> Reply:
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

    # ------------------------------------------------------------------ /neko stats, about

    async def stats(self) -> Reply:
        stats = await self.lookups.stats()
        version = await self._api_version() if self._api_version is not None else None
        return Reply(embeds=[render.stats_embed(stats, version)])

    async def about(self) -> Reply:
        if self._about is None:
            return notice("Bot details aren't available here.")
        return Reply(embeds=[render.about_embed(await self._about())])
