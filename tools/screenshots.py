"""Pictures of the bot's commands for the README, drawn from the real ``python -m bot preview``.

Run from the repository root::

    python -m tools.screenshots [--out docs/images] [--scale 2] [--chromium /usr/bin/chromium]

It starts the loopback fake Nekos API (``tests/fakes``) in-process, runs ``python -m bot preview
KIND ... --json`` against it for each command, draws each payload as a Discord message (dark
theme) in HTML and photographs it with headless Chromium. Chromium is a developer tool here, not a
dependency of the bot or its tests; on Debian:
``apt-get install -y chromium fonts-noto-color-emoji``.

The fake serves 8x8 one-colour pictures, so each embed image is drawn as that picture stretched to
the size Discord would give the real image (from its width and height), with those dimensions
written on it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import html
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.fakes.dataset import Dataset, ImageRow, generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "docs" / "images"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PAGE_WIDTH = 660  # CSS pixels: a chat column wide enough for Discord's widest embed (516 px)
BOTTOM_MARGIN = 16
BOT_NAME = "Nekos"
USER_NAME = "Mika"
MESSAGE_TIME = "Today at 12:00"  # fixed so that regenerating unchanged output changes no pixel
BRAND_COLOUR = "#e78fb3"

# Discord scales an embed image down to fit this box, keeping its aspect ratio.
IMAGE_BOX = (400, 300)

EXIT_MISSING_CHROMIUM = 2
EXIT_FAILED = 1


class ScreenshotError(Exception):
    """A step failed in a way the user must see (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Shot:
    """One picture: the file name, the slash command it shows and its ``preview`` arguments."""

    name: str
    command: str
    args: tuple[str, ...]


# --------------------------------------------------------------------------- choosing examples


def _sfw_images(dataset: Dataset) -> list[ImageRow]:
    return [i for i in dataset.images if i.nsfw == "sfw"]


def pick_artist(dataset: Dataset) -> str:
    """The artist with the most sfw images, so the gallery has many pages."""
    counts: dict[str, int] = {}
    for image in _sfw_images(dataset):
        if image.artist_id is not None:
            counts[image.artist_id] = counts.get(image.artist_id, 0) + 1
    best = max(counts, key=lambda artist_id: (counts[artist_id], artist_id))
    return dataset.artist_by_id[best].name


def pick_character(dataset: Dataset) -> str:
    """The character with the most images among those whose every profile field is filled."""
    complete = [
        c
        for c in dataset.characters
        if c.source and c.gender and c.ages and c.birth_date and c.nationality and c.occupations
    ]
    if not complete:
        raise ScreenshotError("the fake dataset has no character with a complete profile")
    best = max(complete, key=lambda c: (len(dataset.images_with_character(c.id)), c.id))
    return best.name


def pick_image(dataset: Dataset) -> str:
    """A landscape sfw PNG with an artist, characters and a source link (all fields shown).

    PNG because the fake's JPEGs are grey, which would not match the embed's colour bar.
    """
    for image in _sfw_images(dataset):
        if (
            image.mimetype == "image/png"
            and image.artist_id
            and image.character_ids
            and image.source_url
            and len(image.category_ids) >= 2
            and image.width > image.height
        ):
            return image.id
    raise ScreenshotError("the fake dataset has no sfw image with every field filled")


def plan(dataset: Dataset) -> list[Shot]:
    """The commands to photograph, in README order."""
    return [
        Shot("random", "neko random", ("random", "--count", "2")),
        Shot("artist", "neko artist", ("artist", "--name", pick_artist(dataset))),
        Shot("character", "neko character", ("character", "--name", pick_character(dataset))),
        Shot("image", "neko image", ("image", "--id", pick_image(dataset))),
        Shot("category", "neko category", ("category",)),
        Shot("stats", "neko stats", ("stats",)),
    ]


# --------------------------------------------------------------------------- running preview


async def run_preview(base_url: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m bot preview ARGS --json`` against ``base_url`` and return its payload."""
    env = dict(os.environ)
    env["NEKOS_API_BASE_URL"] = base_url
    env["HEALTH_FILE"] = ""
    env.pop("NEKOS_API_TOKEN", None)  # a real token would be refused by the fake
    command = [sys.executable, "-m", "bot", "--env-file", os.devnull, "preview", *args, "--json"]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    shown = " ".join(["python -m bot preview", *args])
    if process.returncode != 0:
        detail = (stderr.decode(errors="replace").strip() or stdout.decode(errors="replace"))[-800:]
        raise ScreenshotError(f"`{shown}` exited with {process.returncode}: {detail}")
    try:
        payload = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise ScreenshotError(f"`{shown}` printed something that is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ScreenshotError(f"`{shown}` printed {type(payload).__name__}, not a JSON object")
    return payload


# --------------------------------------------------------------------------- Discord markdown

# Hand-written: Discord's markdown dialect is not CommonMark, and only its inline subset is needed.
_INLINE = re.compile(
    r"\\(?P<escaped>[^A-Za-z0-9\s])"
    r"|\*\*(?P<bold>(?:\\.|[^\\])+?)\*\*"
    r"|__(?P<underline>(?:\\.|[^\\])+?)__"
    r"|~~(?P<strike>(?:\\.|[^\\])+?)~~"
    r"|\*(?P<star>[^\s*\\](?:(?:\\.|[^\\])*?[^\s\\])?)\*"
    r"|\b_(?P<under>[^\s_\\](?:(?:\\.|[^\\])*?[^\s\\])?)_\b"
    r"|`(?P<code>[^`]+)`"
    r"|\[(?P<label>[^\]]+)\]\((?P<href>https?://[^)\s]+)\)"
    r"|<(?P<angle>https?://[^>\s]+)>"
    r"|(?P<bare>https?://[^\s<]+[^\s<.,:;\"')\]])",
    re.DOTALL,
)


def _link(url: str, label_html: str) -> str:
    return f'<a href="{html.escape(url)}">{label_html}</a>'


def markdown_line(text: str, *, links: bool = True) -> str:
    """One line of Discord markdown as HTML: escapes, bold, italics, underline, strike, code, links.

    Every piece of text is HTML-escaped; ``links=False`` leaves URLs as text (titles, labels).
    """
    out: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[position : match.start()]))
        position = match.end()
        group = match.lastgroup
        value = match.group(group) if group else ""
        if group == "escaped":
            out.append(html.escape(value))
        elif group == "bold":
            out.append(f"<strong>{markdown_line(value, links=links)}</strong>")
        elif group == "underline":
            out.append(f"<u>{markdown_line(value, links=links)}</u>")
        elif group == "strike":
            out.append(f"<s>{markdown_line(value, links=links)}</s>")
        elif group in ("star", "under"):
            out.append(f"<em>{markdown_line(value, links=links)}</em>")
        elif group == "code":
            out.append(f"<code>{html.escape(value)}</code>")
        elif group == "href":  # the last group of a [label](url) link
            label = markdown_line(match.group("label"), links=False)
            out.append(_link(match.group("href"), label) if links else label)
        elif group in ("angle", "bare"):
            out.append(_link(value, html.escape(value)) if links else html.escape(match.group(0)))
        else:
            out.append(html.escape(match.group(0)))
    out.append(html.escape(text[position:]))
    return "".join(out)


def markdown(text: str, *, links: bool = True) -> str:
    """Discord markdown (inline subset) as HTML, line breaks kept."""
    return "<br>".join(markdown_line(line, links=links) for line in text.split("\n"))


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class Picture:
    """An embed image, inlined: its bytes as a data URI and the size Discord would draw it at."""

    data_uri: str
    width: int
    height: int
    label: str


def display_size(width: int, height: int, box: tuple[int, int] = IMAGE_BOX) -> tuple[int, int]:
    """``width`` x ``height`` scaled down (never up) to fit ``box``, keeping the aspect ratio."""
    scale = min(1.0, box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _hex_colour(value: object) -> str | None:
    if isinstance(value, int) and 0 <= value <= 0xFFFFFF:
        return f"#{value:06x}"
    return None


def _timestamp(value: object) -> str | None:
    """An embed timestamp as Discord's en-US clients show a past date: ``11/13/2022 3:33 AM``."""
    if not isinstance(value, str):
        return None
    moment = dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    hour = moment.hour % 12 or 12
    return f"{moment:%m/%d/%Y} {hour}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


def _field_rows(fields: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """Fields grouped as Discord lays them out: up to three inline fields share a row."""
    row: list[Mapping[str, Any]] = []
    for field in fields:
        if field.get("inline") and len(row) < 3 and all(f.get("inline") for f in row):
            row.append(field)
            continue
        if row:
            yield row
        row = [field]
        if not field.get("inline"):
            yield row
            row = []
    if row:
        yield row


def render_fields(fields: Sequence[Mapping[str, Any]]) -> str:
    """The fields grid (12 columns, as Discord's)."""
    cells: list[str] = []
    for row in _field_rows(fields):
        span = 12 // len(row)
        for index, field in enumerate(row):
            start = 1 + index * span
            cells.append(
                f'<div class="field" style="grid-column:{start}/{start + span}">'
                f'<div class="field-name">{markdown(str(field.get("name", "")), links=False)}</div>'
                f'<div class="field-value">{markdown(str(field.get("value", "")))}</div>'
                "</div>"
            )
    return f'<div class="fields">{"".join(cells)}</div>'


def render_embed(embed: Mapping[str, Any], pictures: Mapping[str, Picture]) -> str:
    """One embed: coloured bar, author, title, description, fields, image, footer + timestamp."""
    parts: list[str] = []
    author = embed.get("author") or {}
    if author.get("name"):
        name = html.escape(str(author["name"]))
        if author.get("url"):
            name = f'<a class="plain" href="{html.escape(str(author["url"]))}">{name}</a>'
        parts.append(f'<div class="author">{name}</div>')
    if embed.get("title"):
        title = markdown(str(embed["title"]), links=False)
        if embed.get("url"):
            title = _link(str(embed["url"]), title)
        parts.append(f'<div class="title">{title}</div>')
    if embed.get("description"):
        parts.append(f'<div class="description">{markdown(str(embed["description"]))}</div>')
    if embed.get("fields"):
        parts.append(render_fields(embed["fields"]))
    image = embed.get("image") or {}
    if image.get("url"):
        picture = pictures[str(image["url"])]
        parts.append(
            f'<div class="image" style="width:{picture.width}px;height:{picture.height}px">'
            f'<img src="{picture.data_uri}" alt="">'
            f'<span class="image-size">{html.escape(picture.label)}</span></div>'
        )
    footer_text = str((embed.get("footer") or {}).get("text") or "")
    stamp = _timestamp(embed.get("timestamp"))
    footer = " • ".join(html.escape(p) for p in (footer_text, stamp) if p)
    if footer:
        parts.append(f'<div class="footer">{footer}</div>')
    colour = _hex_colour(embed.get("color")) or "#1e1f22"
    return f'<div class="embed" style="border-left-color:{colour}">{"".join(parts)}</div>'


_LINK_ICON = (
    '<svg class="link-icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">'
    '<path fill="currentColor" d="M15 2a1 1 0 1 0 0 2h3.59l-7.3 7.3a1 1 0 0 0 1.42 1.4L20 '
    '5.42V9a1 1 0 1 0 2 0V3a1 1 0 0 0-1-1h-6Z"/><path fill="currentColor" d="M5 4a3 3 0 0 0-3 '
    "3v12a3 3 0 0 0 3 3h12a3 3 0 0 0 3-3v-6a1 1 0 1 0-2 0v6a1 1 0 0 1-1 1H5a1 1 0 0 "
    '1-1-1V7a1 1 0 0 1 1-1h6a1 1 0 1 0 0-2H5Z"/></svg>'
)
_BUTTON_STYLES = {1: "primary", 2: "secondary", 3: "success", 4: "danger", 5: "link"}


def _emoji(emoji: Mapping[str, Any] | None) -> str:
    if not emoji or not emoji.get("name"):
        return ""
    name = str(emoji["name"])
    text = f":{name}:" if emoji.get("id") else name  # custom emoji need Discord's CDN
    return f'<span class="emoji">{html.escape(text)}</span>'


def render_component(component: Mapping[str, Any]) -> str:
    """A button (any style) or a string select, as Discord draws them."""
    kind = component.get("type")
    if kind == 2:
        style = _BUTTON_STYLES.get(int(component.get("style", 2)), "secondary")
        classes = ["button", style] + (["disabled"] if component.get("disabled") else [])
        label = html.escape(str(component.get("label") or ""))
        icon = _LINK_ICON if style == "link" else ""
        return (
            f'<span class="{" ".join(classes)}">{_emoji(component.get("emoji"))}'
            f"<span>{label}</span>{icon}</span>"
        )
    if kind == 3:
        placeholder = html.escape(str(component.get("placeholder") or "Make a selection"))
        return (
            f'<span class="select"><span>{placeholder}</span><span class="chevron">⌄</span></span>'
        )
    raise ScreenshotError(f"cannot draw component type {kind!r}; teach render_component")


def render_components(rows: Sequence[Mapping[str, Any]]) -> str:
    """Action rows of components."""
    out: list[str] = []
    for row in rows:
        if row.get("type") != 1:
            raise ScreenshotError(f"top-level component of type {row.get('type')!r}, not a row")
        inner = "".join(render_component(c) for c in row.get("components", []))
        out.append(f'<div class="row">{inner}</div>')
    return "".join(out)


_BOT_AVATAR = (
    '<svg class="avatar" viewBox="0 0 40 40" aria-hidden="true">'
    f'<circle cx="20" cy="20" r="20" fill="{BRAND_COLOUR}"/>'
    '<path fill="#fff" d="M9.5 12.5 11 24h18l1.5-11.5-6.5 5h-8z"/>'
    '<ellipse cx="20" cy="24.5" rx="10.5" ry="8" fill="#fff"/>'
    f'<circle cx="16" cy="24" r="1.6" fill="{BRAND_COLOUR}"/>'
    f'<circle cx="24" cy="24" r="1.6" fill="{BRAND_COLOUR}"/></svg>'
)

_CSS = """
* { box-sizing: border-box; }
html, body { margin: 0; background: #313338; }
body {
  width: %(width)dpx; padding-top: 16px; color: #dbdee1;
  font-family: "gg sans", "Noto Sans", "DejaVu Sans", "Noto Sans Symbols2", "Noto Color Emoji",
    sans-serif;
  font-size: 16px; line-height: 22px; -webkit-font-smoothing: antialiased;
}
a { color: #00a8fc; text-decoration: none; }
a.plain { color: inherit; }
strong { font-weight: 700; }
code {
  font-family: "Noto Sans Mono", "DejaVu Sans Mono", monospace; font-size: 85%%;
  background: #1e1f22; border-radius: 4px; padding: 0 .2em;
}
.message { position: relative; padding: 2px 16px 2px 72px; }
.interaction {
  position: relative; display: flex; align-items: center; height: 22px; margin-bottom: 4px;
  font-size: 14px; color: #b5bac1; white-space: nowrap;
}
.spine {
  position: absolute; left: -36px; top: 10px; width: 30px; height: 14px;
  border-left: 2px solid #4e5058; border-top: 2px solid #4e5058; border-top-left-radius: 6px;
}
.user-avatar {
  width: 16px; height: 16px; border-radius: 50%%; background: #f0b232; margin-right: 4px;
}
.user-name { color: #f2f3f5; font-weight: 500; margin-right: 4px; }
.slash { color: #00a8fc; font-weight: 500; margin-left: 4px; }
.avatar { position: absolute; left: 16px; width: 40px; height: 40px; margin-top: 2px; }
.header { display: flex; align-items: baseline; }
.name { color: #f2f3f5; font-weight: 500; }
.app {
  align-self: center; margin-left: 4px; padding: 0 4px; height: 15px; border-radius: 3px;
  background: #5865f2; color: #fff; font-size: 10px; font-weight: 600; line-height: 15px;
}
.time { margin-left: 6px; color: #949ba4; font-size: 12px; }
.content { white-space: normal; overflow-wrap: anywhere; }
.embeds { display: flex; flex-direction: column; align-items: flex-start; gap: 4px;
  margin-top: 2px; }
.embed {
  display: flex; flex-direction: column; max-width: 516px; padding: 8px 16px 16px 12px;
  background: #2b2d31; border-left: 4px solid; border-radius: 4px;
  font-size: 14px; line-height: 18px; overflow-wrap: anywhere;
}
.embed > * { margin-top: 8px; }
.author { color: #f2f3f5; font-weight: 600; }
.title { color: #f2f3f5; font-size: 16px; line-height: 22px; font-weight: 600; }
.fields { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr));
  gap: 8px 16px; }
.field-name { color: #f2f3f5; font-weight: 600; margin-bottom: 2px; }
.image { position: relative; margin-top: 16px; border-radius: 4px; overflow: hidden; }
.image img { display: block; width: 100%%; height: 100%%; }
.image-size {
  position: absolute; right: 6px; bottom: 6px; padding: 1px 6px; border-radius: 4px;
  background: rgba(0, 0, 0, .55); color: #fff; font-size: 12px; line-height: 16px;
}
.footer { color: #dbdee1; font-size: 12px; line-height: 16px; font-weight: 500; }
.row { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.button, .select {
  display: inline-flex; align-items: center; justify-content: center; gap: 4px;
  height: 32px; min-width: 60px; padding: 2px 16px; border-radius: 8px;
  font-size: 14px; font-weight: 500; line-height: 16px; color: #fff; white-space: nowrap;
}
.primary { background: #5865f2; }
.secondary, .link { background: #4e5058; }
.success { background: #248046; }
.danger { background: #da373c; }
.disabled { opacity: .5; }
.emoji { font-size: 16px; }
.select {
  justify-content: space-between; width: 400px; background: #1e1f22; color: #949ba4;
  border: 1px solid #1e1f22; padding: 0 12px;
}
"""

# Reports the content's height so the screenshot can be cropped to it (no DevTools protocol).
_MEASURE = (
    "<script>document.body.setAttribute('data-height', "
    "Math.ceil(document.getElementById('message').getBoundingClientRect().bottom));</script>"
)


def render_page(payload: Mapping[str, Any], command: str, pictures: Mapping[str, Picture]) -> str:
    """A whole HTML page showing ``payload`` as the bot's answer to ``/command``."""
    content = str(payload.get("content") or "")
    embeds = payload.get("embeds") or []
    components = payload.get("components") or []
    body = [
        '<div class="interaction"><span class="spine"></span><span class="user-avatar"></span>'
        f'<span class="user-name">{html.escape(USER_NAME)}</span>used'
        f'<span class="slash">/{html.escape(command)}</span></div>',
        _BOT_AVATAR,
        f'<div class="header"><span class="name">{html.escape(BOT_NAME)}</span>'
        f'<span class="app">APP</span><span class="time">{html.escape(MESSAGE_TIME)}</span></div>',
    ]
    if content:
        body.append(f'<div class="content">{markdown(content)}</div>')
    if embeds:
        inner = "".join(render_embed(e, pictures) for e in embeds)
        body.append(f'<div class="embeds">{inner}</div>')
    if components:
        body.append(render_components(components))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<style>{_CSS % {'width': PAGE_WIDTH}}</style></head><body>"
        f'<div class="message" id="message">{"".join(body)}</div>{_MEASURE}</body></html>'
    )


# --------------------------------------------------------------------------- embed images


def _image_row(url: str, dataset: Dataset) -> ImageRow | None:
    """The fake's image behind a storage URL (``/storage/<id>.<ext>``), if it is one."""
    stem = Path(urlsplit(url).path).stem
    return dataset.image_by_id.get(stem)


async def fetch_pictures(
    payload: Mapping[str, Any], dataset: Dataset, session: aiohttp.ClientSession
) -> dict[str, Picture]:
    """Download every embed image (so the URLs are checked too) and size it as Discord would."""
    pictures: dict[str, Picture] = {}
    for embed in payload.get("embeds") or []:
        url = (embed.get("image") or {}).get("url")
        if not url or url in pictures:
            continue
        async with session.get(url) as response:
            if response.status != 200:
                raise ScreenshotError(f"embed image {url} answered HTTP {response.status}")
            data = await response.read()
            mime = response.content_type
        row = _image_row(url, dataset)
        if row is None:
            raise ScreenshotError(f"embed image {url} is not one of the fake dataset's images")
        width, height = display_size(row.width, row.height)
        pictures[url] = Picture(
            data_uri=f"data:{mime};base64,{base64.b64encode(data).decode()}",
            width=width,
            height=height,
            label=f"{row.width}×{row.height} image",
        )
    return pictures


# --------------------------------------------------------------------------- Chromium


def find_chromium(explicit: str | None) -> str:
    """The Chromium executable to use, or a :class:`ScreenshotError` saying how to install it."""
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise ScreenshotError(f"--chromium {explicit}: no executable there")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ScreenshotError(
        "Chromium is not installed (looked for "
        + ", ".join(CHROMIUM_NAMES)
        + "). On Debian: apt-get update && apt-get install -y chromium fonts-noto-color-emoji; "
        "or pass --chromium PATH."
    )


class Chromium:
    """Headless Chromium run once per capture, each time with a fresh profile directory."""

    def __init__(self, executable: str, scale: float, workdir: Path) -> None:
        self.executable = executable
        self.scale = scale
        self.workdir = workdir
        self._runs = 0

    async def _run(self, *args: str) -> bytes:
        self._runs += 1
        profile = self.workdir / f"profile-{self._runs}"
        command = [
            self.executable,
            "--headless",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--force-device-scale-factor={self.scale}",
            f"--user-data-dir={profile}",
            *args,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(2, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise ScreenshotError("Chromium did not finish within 120 s") from exc
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-800:]
            raise ScreenshotError(f"Chromium exited with {process.returncode}: {tail}")
        return stdout

    async def content_height(self, page: Path) -> int:
        """The page's content height in CSS pixels, as its measuring script reported it."""
        dom = await self._run(f"--window-size={PAGE_WIDTH},2000", "--dump-dom", page.as_uri())
        match = re.search(rb'data-height="(\d+)"', dom)
        if match is None:
            raise ScreenshotError(f"Chromium did not report the height of {page.name}")
        return int(match.group(1))

    async def screenshot(self, page: Path, out: Path, height: int) -> None:
        """Capture ``page`` at ``PAGE_WIDTH`` x ``height`` CSS pixels into ``out``."""
        await self._run(
            f"--window-size={PAGE_WIDTH},{height}", f"--screenshot={out}", page.as_uri()
        )
        if not await asyncio.to_thread(out.is_file):
            raise ScreenshotError(f"Chromium wrote no screenshot for {page.name}")


# --------------------------------------------------------------------------- main


async def generate(out_dir: Path, chromium: Chromium, workdir: Path) -> list[Path]:
    """Start the fake API, preview every planned command and photograph it; the PNGs written."""
    dataset = generate_dataset()
    written: list[Path] = []
    async with FakeNekosAPI(dataset, rate_limit=None) as fake, aiohttp.ClientSession() as session:
        for shot in plan(dataset):
            payload = await run_preview(fake.base_url, shot.args)
            pictures = await fetch_pictures(payload, dataset, session)
            page = workdir / f"{shot.name}.html"
            page.write_text(render_page(payload, shot.command, pictures), encoding="utf-8")
            height = await chromium.content_height(page) + BOTTOM_MARGIN
            target = out_dir / f"{shot.name}.png"
            await chromium.screenshot(page, target, height)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.screenshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument("--chromium", help="Chromium executable (default: found on PATH)")
    parser.add_argument("--scale", type=float, default=2.0, help="device pixel ratio (default 2)")
    parser.add_argument("--keep-html", action="store_true", help="keep the HTML pages (printed)")
    args = parser.parse_args(argv)
    try:
        executable = find_chromium(args.chromium)
    except ScreenshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING_CHROMIUM
    out_dir: Path = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="nekos-screenshots-"))
    try:
        written = asyncio.run(generate(out_dir, Chromium(executable, args.scale, workdir), workdir))
    except ScreenshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if args.keep_html:
            print(f"HTML pages kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for path in written:
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        print(f"{shown}  ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
