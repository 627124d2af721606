"""A faithful local fake of the Nekos API v4, for tests and benchmarks.

It serves what is known of v4 (docs/../shared/nekos-api-v4.md): a FastAPI/Django-Ninja style API
under ``/v4``. Start it on a loopback port::

    async with FakeNekosV4API() as fake:
        ...  # point the client at fake.base_url ("http://127.0.0.1:PORT/v4")

or run it alone: ``python -m tests.fakes.nekos_api_v4 --port 8081 [--seed N] [--images N]
[--rate-limit R/T] [--random-empty 404]``.

Behaviour
---------
- ``GET /v4/images``: ``{"items": [...], "count": N}`` (``count`` = every match), in id order;
  ``limit`` 1-100 (default 100), ``offset`` >= 0.
- ``GET /v4/images/random``: a bare JSON array of up to ``limit`` (1-100, default 10) distinct
  random matches. With no match it answers ``[]``, or (``fake.random_empty = "404"``) a 404
  ``{"detail": "Not Found"}``: v4 does not document which.
- ``GET /v4/images/{id}``: one image; a non-integer id is a 422, an unknown one a 404.
- ``GET /v4/images/random/file`` and ``/v4/images/{id}/file``: ``302`` to the image file.
- Filters on the list, random and random-file routes: ``rating`` (comma list of ``safe``,
  ``suggestive``, ``borderline``, ``explicit``), ``tags`` (comma list; an image must carry all),
  ``without_tags`` (comma list; none of them). Tag matching ignores case and surrounding spaces;
  unknown tags simply match nothing. A repeated key counts once (its last value).
- Validation errors: 422 ``{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`` listing every
  bad parameter, pydantic v2 style. Unknown paths: 404 ``{"detail": "Not Found"}``.
- Image objects: ``id`` (int), ``url``, ``rating``, ``color_dominant`` ``[r, g, b]``,
  ``color_palette``, ``artist_name`` (or null), ``tags``, ``source_url`` (or null).
- Files: plain URLs (no signature, no expiry) on two hosts — the API's own origin and a second
  loopback port — ``/nekos-api/images/original/<uuid>.png|jpg``, tiny valid images of the
  image's dominant colour. ``fake.move_files()`` swaps every image to the other host: URLs
  handed out before then answer 404 (the host has changed), a fresh lookup gives the new one.
  File requests are logged but never limited nor faulted.
- No authentication: an ``Authorization`` header is ignored (and recorded as ``has_token``).
- Rate limit: none by default, as documented. ``rate_limit=(R, T)`` switches on the per-IP
  limiter the v1 fake uses (429 ``{"detail": "Too many requests"}`` with ``Retry-After`` only,
  strikes and a block after ``strikes_before_block`` hits).
- ``fake.image_overrides[id] = {"field": value}`` changes (or, with :data:`REMOVE`, drops)
  fields of one image's JSON, to serve drift; faults as in :mod:`tests.fakes.fake_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from aiohttp import web

from .dataset_v4 import RATINGS, V4Dataset, V4ImageRow, generate_v4_dataset
from .fake_server import (
    FakeReply,
    Handler,
    LimitedFakeServer,
    json_response,
    solid_jpeg,
    solid_png,
)

__all__ = ["REMOVE", "FakeNekosV4API"]

log = logging.getLogger(__name__)

REMOVE: Final = object()
"""An ``image_overrides`` value that drops the field from the image's JSON."""

_INT = re.compile(r"[+-]?[0-9]+")
_FILES = "/nekos-api/images/original"
_RATING_CHOICES = "'safe', 'suggestive', 'borderline' or 'explicit'"


def _error_item(
    kind: str, loc: Sequence[str | int], msg: str, raw: object, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "loc": list(loc), "msg": msg, "input": raw}
    if ctx is not None:
        item["ctx"] = ctx
    return item


def _names(raw: str | None) -> list[str]:
    if raw is None:
        return []
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


class FakeNekosV4API(LimitedFakeServer):
    """The fake v4 server on ``host:port`` (port 0 picks a free one) plus a second file host.

    ``seed`` seeds the random endpoint (``fake.rng``): the same seed and requests give the same
    answers. See the module docstring for behaviour.
    """

    api_prefix = "/v4"
    rate_limited_message = "Too many requests"
    blocked_message = "Too many requests; this address is blocked"
    malformed_body = '[{"id": 4399, "url": "'
    rate_limit_headers = False  # v4 documents none
    name = "fake Nekos API v4"

    def __init__(
        self,
        dataset: V4Dataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        rate_limit: tuple[int, float] | None = None,
        strikes_before_block: int = 10,
        strike_window: float = 3600.0,
        block_seconds: float = 3600.0,
        latency: float = 0.0,
        random_empty: Literal["empty", "404"] = "empty",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            host=host,
            port=port,
            rate_limit=rate_limit,
            strikes_before_block=strikes_before_block,
            strike_window=strike_window,
            block_seconds=block_seconds,
            latency=latency,
            clock=clock,
        )
        self.dataset = dataset if dataset is not None else generate_v4_dataset()
        self.random_empty = random_empty
        self.rng = random.Random(seed)
        self.image_overrides: dict[int, dict[str, Any]] = {}
        self.host_shift = 0
        self.files_port = 0

    def _routes(self) -> list[tuple[str, Handler]]:
        # "random" before "{id}": aiohttp matches in registration order.
        return [
            ("/v4/images", self._h_images),
            ("/v4/images/random", self._h_random),
            ("/v4/images/random/file", self._h_random_file),
            ("/v4/images/{id}", self._h_image),
            ("/v4/images/{id}/file", self._h_image_file),
            (_FILES + "/{file}", self._h_file),
        ]

    async def start(self) -> None:
        """Bind the API (and first file host), then the second file host on another port."""
        if self._runner is not None:
            return
        await super().start()
        self.files_port = await self._add_site(self.files_port)

    # ------------------------------------------------------------------ switches and lookups

    def move_files(self) -> None:
        """Move every image file to its other host: URLs handed out before now answer 404."""
        self.host_shift += 1

    def file_origin(self, image: V4ImageRow) -> str:
        """Where ``image``'s file is served now."""
        port = self.port if (image.host + self.host_shift) % 2 == 0 else self.files_port
        return f"http://{self.host}:{port}"

    def file_url(self, image: V4ImageRow) -> str:
        """The plain URL of ``image``'s file as the API hands it out now."""
        return f"{self.file_origin(image)}{_FILES}/{image.file_name}"

    def image_json(self, image: V4ImageRow) -> dict[str, Any]:
        """``image`` as v4 serves it, overrides applied."""
        body: dict[str, Any] = {
            "id": image.id,
            "url": self.file_url(image),
            "rating": image.rating,
            "color_dominant": list(image.color_dominant),
            "color_palette": [list(c) for c in image.color_palette],
            "artist_name": image.artist_name,
            "tags": list(image.tags),
            "source_url": image.source_url,
        }
        for key, value in self.image_overrides.get(image.id, {}).items():
            if value is REMOVE:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    # ------------------------------------------------------------------ internals: the version

    def _error(self, status: int, message: Any) -> web.Response:
        return json_response({"detail": message}, status=status)

    def _unmatched(self, status: int) -> web.Response:
        return self._error(status, "Not Found" if status == 404 else "Method Not Allowed")

    @staticmethod
    def _param(request: web.Request, name: str) -> str | None:
        values = request.query.getall(name, [])
        return values[-1] if values else None

    def _int(
        self,
        request: web.Request,
        name: str,
        default: int,
        errors: list[dict[str, Any]],
        *,
        ge: int,
        le: int | None = None,
    ) -> int:
        raw = self._param(request, name)
        if raw is None:
            return default
        loc = ("query", name)
        if not _INT.fullmatch(raw.strip()):
            errors.append(
                _error_item(
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    raw,
                )
            )
            return default
        value = int(raw)
        if value < ge:
            errors.append(
                _error_item(
                    "greater_than_equal",
                    loc,
                    f"Input should be greater than or equal to {ge}",
                    raw,
                    {"ge": ge},
                )
            )
        elif le is not None and value > le:
            errors.append(
                _error_item(
                    "less_than_equal",
                    loc,
                    f"Input should be less than or equal to {le}",
                    raw,
                    {"le": le},
                )
            )
        return value

    def _filtered(self, request: web.Request, errors: list[dict[str, Any]]) -> list[V4ImageRow]:
        ratings = _names(self._param(request, "rating"))
        for index, label in enumerate(ratings):
            if label not in RATINGS:
                errors.append(
                    _error_item(
                        "literal_error",
                        ("query", "rating", index),
                        f"Input should be {_RATING_CHOICES}",
                        label,
                        {"expected": _RATING_CHOICES},
                    )
                )
        if errors:
            return []
        return list(
            self.dataset.matching(
                ratings=ratings,
                tags=_names(self._param(request, "tags")),
                without_tags=_names(self._param(request, "without_tags")),
            )
        )

    def _image_row(self, request: web.Request) -> V4ImageRow:
        raw = request.match_info["id"]
        if not _INT.fullmatch(raw):
            message = "Input should be a valid integer, unable to parse string as an integer"
            raise FakeReply(422, [_error_item("int_parsing", ("path", "id"), message, raw)])
        image = self.dataset.by_id.get(int(raw))
        if image is None:
            raise FakeReply(404, "Not Found")
        return image

    def _random_rows(self, request: web.Request, default_limit: int) -> list[V4ImageRow]:
        errors: list[dict[str, Any]] = []
        limit = self._int(request, "limit", default_limit, errors, ge=1, le=100)
        rows = self._filtered(request, errors)
        if errors:
            raise FakeReply(422, errors)
        return self.rng.sample(rows, min(limit, len(rows)))

    # ------------------------------------------------------------------ handlers

    async def _h_images(self, request: web.Request) -> web.Response:
        errors: list[dict[str, Any]] = []
        limit = self._int(request, "limit", 100, errors, ge=1, le=100)
        offset = self._int(request, "offset", 0, errors, ge=0)
        rows = self._filtered(request, errors)
        if errors:
            raise FakeReply(422, errors)
        page = rows[offset : offset + limit]
        return json_response({"items": [self.image_json(r) for r in page], "count": len(rows)})

    async def _h_random(self, request: web.Request) -> web.Response:
        rows = self._random_rows(request, 10)
        if not rows and self.random_empty == "404":
            raise FakeReply(404, "Not Found")
        return json_response([self.image_json(r) for r in rows])

    async def _h_random_file(self, request: web.Request) -> web.Response:
        rows = self._random_rows(request, 1)
        if not rows:
            raise FakeReply(404, "Not Found")
        return web.Response(status=302, headers={"Location": self.file_url(rows[0])})

    async def _h_image(self, request: web.Request) -> web.Response:
        return json_response(self.image_json(self._image_row(request)))

    async def _h_image_file(self, request: web.Request) -> web.Response:
        image = self._image_row(request)
        return web.Response(status=302, headers={"Location": self.file_url(image)})

    async def _h_file(self, request: web.Request) -> web.Response:
        image = self.dataset.by_file.get(request.match_info["file"])
        served_here = image is not None and self.file_origin(image).endswith(f":{request.url.port}")
        if image is None or not served_here:
            return web.Response(status=404, text="Not Found")
        if image.mimetype == "image/jpeg":
            red, green, blue = image.color_dominant
            body = solid_jpeg(round(0.299 * red + 0.587 * green + 0.114 * blue))
        else:
            body = solid_png(image.color_dominant)
        return web.Response(body=body, content_type=image.mimetype)


# --------------------------------------------------------------------------- command line


def _rate(text: str) -> tuple[int, float]:
    requests, _, seconds = text.partition("/")
    try:
        return int(requests), float(seconds or "1")
    except ValueError:
        raise argparse.ArgumentTypeError("use R/T, e.g. 1/1 for one request a second") from None


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeNekosV4API(
        generate_v4_dataset(seed=args.seed, images=args.images),
        host=args.host,
        port=args.port,
        seed=args.seed,
        rate_limit=args.rate_limit,
        random_empty=args.random_empty,
    )
    async with fake:
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake until interrupted, printing its base URL."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.nekos_api_v4", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument(
        "--rate-limit", type=_rate, default=None, metavar="R/T", help="limit each IP (off)"
    )
    parser.add_argument(
        "--random-empty",
        choices=["empty", "404"],
        default="empty",
        help="what /images/random answers when nothing matches",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
