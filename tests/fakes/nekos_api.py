"""A faithful local fake of the Nekos API v1 server, for tests and benchmarks.

It behaves like the *live* server (the Next.js handlers of Nekidev/Nekos-API), drift and bugs
included, not like the published reference. Start it on a loopback port::

    async with FakeNekosAPI(dataset=generate_dataset(), rate_limit=None) as fake:
        token = fake.add_token(["image:list", "image:custom-expiry:86400"])
        ...  # point the client at fake.base_url ("http://127.0.0.1:PORT/api")

or run it alone: ``python -m tests.fakes.nekos_api --port 8080 [--seed N] [--images N]
[--no-rate-limit] [--token image:list,...]``.

Live behaviour reproduced
-------------------------
- Both shapes of an image's ``artist``: the live object ``{id, name, url}`` and, for a stable
  ``bare_artist_share`` of the images (half by default), the bare id the API reference shows.
- Endpoints under ``/api``: ``/``, ``/stats``, ``/token``, ``/image``, ``/image/random``,
  ``/image/{id}``, ``/artist``, ``/artist/{id}``, ``/artist/{id}/images``, ``/character``,
  ``/character/{id}``, ``/category``, ``/category/{id}``; ``/set`` (always empty) and
  ``/set/{id}`` (always 404) exist too, as ``GET /`` lists them. Unknown paths get Next.js'
  HTML 404.
- Success ``{"data": ..., "success": true}``; list endpoints (image, artist, character, category,
  artist images) add ``meta.pagination {limit, offset, count, total}`` where ``total`` ignores
  ``search`` (counts every row). ``/image/random`` and ``/set`` have no ``meta``.
- Errors ``{"code", "message", "success": false}`` with the live messages. The live server's own
  crashes (search longer than 20 on /artist and /character or 50 on /category, counted in UTF-16
  units as JavaScript does; a pattern the database rejects: unbalanced ``(``/``[``, trailing ``\\``)
  answer ``500`` with Next.js' ``text/plain`` body ``Internal Server Error``.
- Limits: 1-25, except ``/image`` and ``/artist`` which accept 1-50 (``/artist``'s message still
  says 25). ``/artist/{id}/images`` answers 404 "Could not find artist" when the page is empty.
- Validation order per endpoint is the live one; for ``expiry`` (any image endpoint): the literal
  ``3600`` is always accepted; otherwise no token -> 401, no ``image:custom-expiry[:max]`` scope ->
  403, not an integer > 30 -> 400, above ``max`` -> 403.
- ``search`` is ``LOWER(col) SIMILAR TO LOWER(search)`` over artist ``name``; character ``name``,
  ``description`` or ``source``; category ``name`` or ``description`` (whole value, see
  :func:`similar_to_regex`). ``categories`` on ``/image/random`` is lower-cased, split on ``,``
  (no trimming), each part an ``ILIKE`` pattern; the count of matching categories must equal the
  count of parts or it is a 400 naming the parts that are no category's exact name; an image must
  carry *every* matching category. Random: Bernoulli sample of ``sample_percent`` % of the images,
  then filter, shuffle, cut to ``limit``; nothing left -> 404.
- Auth: ``Authorization`` must match ``^Bearer [0-9a-zA-Z]{100}$`` (401 otherwise), the token must
  be known (401). Auth is checked before the rate limiter, so those 401s are not counted and carry
  no rate-limit headers (as live).
- Rate limit per client IP (``X-Forwarded-For`` first entry if present, else the peer address):
  a sliding window of arrivals, rejected ones included; over the limit -> 429 with ``Retry-After``
  and ``X-RateLimit-Reset`` (integer ceiling seconds); every counted response carries
  ``X-RateLimit-Limit/-Remaining/-Reset``. ``strikes_before_block`` 429s within ``strike_window``
  seconds -> the IP is blocked for ``block_seconds`` (429, message "You have exceeded the rate limit
  too many times. ..."). A token scope ``api:ratelimit:R-T-L`` sets R requests per T seconds (T may
  be fractional here) and L strikes; ``api:ratelimit:disabled`` bypasses the limiter and blocks.
  ``rate_limit=None`` removes the default limit only: scope limits and forced blocks still apply.
- Image ``url`` is signed and served by the fake itself:
  ``http://127.0.0.1:PORT/storage/<id>.<png|jpg>?token=<hmac>&expires=<unix>``; a tampered or
  expired (per ``wall_clock``) signature gets 403. The bytes are a tiny valid PNG or JPEG; the
  ``meta.size`` is synthetic. Storage requests are logged but never rate limited nor faulted.

Fault switches (API requests only; queued faults fire in order, one per request, and each faulted
request still counts as an arrival for the rate limiter)
---------------------------------------------------------------------------------------------
- ``fake.latency = 0.2``: seconds of added delay before every API response.
- ``fake.fail_next(n, status=500, message=...)``: JSON error bodies.
- ``fake.malformed_json_next(n)``: ``200 application/json`` with a truncated body.
- ``fake.html_error_next(n, status=502)``: a proxy's ``text/html`` error page.
- ``fake.empty_error_next(n, status=503)``: an empty body.
- ``fake.drop_next(n)``: the connection is closed without any response. Note that aiohttp's
  client retries an idempotent request once on a dropped connection, so use ``n >= 2`` to make a
  plain ``ClientSession`` see the failure.
- ``fake.clear_faults()``; ``fake.block_ip(ip="127.0.0.1", seconds=None)`` /
  ``fake.unblock_ip(ip)``; assign ``fake.rate_limit = (R, T)`` (or ``None``),
  ``fake.strikes_before_block``, ``fake.strike_window``, ``fake.block_seconds``,
  ``fake.sample_percent``, ``fake.default_expiry`` at run time; ``fake.rng`` is the sampling RNG.

Observation: ``fake.requests`` (every :class:`RequestRecord` in arrival order, storage included;
status -1 = in flight, 0 = dropped), ``fake.api_requests``, ``fake.count_429`` (every 429),
``fake.blocked_ips`` (every IP blocked so far), ``fake.is_blocked(ip)``, ``fake.strikes(ip)``,
``fake.pending_faults``. The limiter decides on arrival; ``latency`` only delays the answer.

Deliberately not reproduced: the live ``expiry`` check crashes (500) when the token's first scope
is not a custom-expiry one, and answers its "no permission" 403 with ``success: true``; here the
intended behaviour (403, ``success: false``) holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import logging
import random
import re
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from .dataset import ArtistRow, CategoryRow, CharacterRow, Dataset, ImageRow, generate_dataset
from .fake_server import (
    FakeReply as _Reply,
)
from .fake_server import (
    Handler,
    Limit,
    LimitedFakeServer,
    RequestRecord,
    json_response,
    solid_jpeg,
    solid_png,
)

__all__ = [
    "API_VERSION",
    "ENDPOINTS",
    "FakeNekosAPI",
    "FakeToken",
    "PatternError",
    "RequestRecord",
    "ilike_regex",
    "similar_to_regex",
    "solid_jpeg",
    "solid_png",
]

log = logging.getLogger(__name__)

API_VERSION = "v1.6.0"
#: What the live ``GET /api`` lists, in its order and spelling.
ENDPOINTS: tuple[str, ...] = (
    "/",
    "/stats",
    "/token",
    "/image",
    "/image/:id",
    "/image/random",
    "/set",
    "/set/:id",
    "/character",
    "/character/:id",
    "/category",
    "/category/:id",
    "/artist",
    "/artist/:id",
    "/artist/:id/images",
)

_TOKEN_ALPHABET = string.ascii_letters + string.digits
_BEARER = re.compile(r"Bearer ([0-9a-zA-Z]{100})")
_DIGITS = re.compile(r"[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EXPIRY_SCOPE = re.compile(r"image:custom-expiry(:[0-9]+)?")
_RATELIMIT_SCOPE = re.compile(r"api:ratelimit:([0-9]+)-([0-9]+(?:\.[0-9]+)?)-([0-9]+)")
_AUTH_REQUIRED = frozenset({"/api/image", "/api/token"})
_LIVE_DEFAULT_EXPIRY = "3600"

_LIMIT_25 = "Invalid value for `limit` parameter. Expected a number between 1 and 25."
_LIMIT_50 = "Invalid value for `limit` parameter. Expected a number between 1 and 50."
_OFFSET = "Invalid value for `offset` parameter. Expected a number greater than 0."
_RATE_LIMITED = "You have exceeded the rate limit. Please try again later."
_BLOCKED = "You have exceeded the rate limit too many times. Please try again later."
_NEXT_404_HTML = (
    "<!DOCTYPE html><html><head><title>404: This page could not be found</title></head>"
    "<body><h1>404</h1><h2>This page could not be found.</h2></body></html>"
)


# --------------------------------------------------------------------------- control flow


class _Crash(Exception):
    """Raised where the live server throws an unhandled error (Next.js then answers 500)."""


class PatternError(ValueError):
    """The database would reject this SIMILAR TO / ILIKE pattern (the live server answers 500)."""


# --------------------------------------------------------------------------- SQL patterns

_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\s",
    "xdigit": "0-9A-Fa-f",
    "punct": re.escape(string.punctuation),
}
_BOUND = re.compile(r"\{([0-9]+)(?:(,)([0-9]*))?\}")


def _bracket_expression(pattern: str, start: int) -> tuple[str, int]:
    """Translate the bracket expression opening at ``pattern[start]``; return it and the end."""
    parts = ["["]
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        parts.append("^")
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading ']' is a literal member
        parts.append(r"\]")
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end != -1 else ""
            if name not in _POSIX_CLASSES:
                raise PatternError(f"invalid character class {name!r}")
            parts.append(_POSIX_CLASSES[name])
            i = end + 2
            continue
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append("-" if char == "-" else re.escape(char))
        i += 1
    if i >= len(pattern):
        raise PatternError("brackets [] not balanced")
    parts.append("]")
    return "".join(parts), i + 1


@functools.lru_cache(maxsize=1024)
def similar_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a SQL ``SIMILAR TO`` pattern to a case-insensitive Python regex (use fullmatch).

    ``%`` -> ``.*``, ``_`` -> ``.``; ``| * + ? {m} {m,} {m,n} ( ) [...]`` are operators;
    a backslash makes the next character literal; everything else (``.``, ``^``, ``$``...) is
    literal. Raises :class:`PatternError` where PostgreSQL raises an error.
    """
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise PatternError("pattern must not end with the escape character")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "[":
            translated, i = _bracket_expression(pattern, i)
            out.append(translated)
            continue
        if char == "{":
            bound = _BOUND.match(pattern, i)
            if bound is not None:
                low, comma, high = bound.group(1), bound.group(2), bound.group(3)
                if high and int(high) < int(low):
                    raise PatternError("invalid repetition count(s)")
                out.append(f"{{{low}{comma or ''}{high or ''}}}")
                i = bound.end()
                continue
            if i + 1 < len(pattern) and pattern[i + 1].isdigit():
                raise PatternError("invalid repetition count(s)")
            out.append(re.escape(char))  # '{' not starting a bound is an ordinary character
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char in "|*+?":
            out.append(char)
        elif char == "(":
            depth += 1
            out.append("(?:")
        elif char == ")":
            if depth == 0:
                raise PatternError("parentheses () not balanced")
            depth -= 1
            out.append(")")
        else:
            out.append(re.escape(char))
        i += 1
    if depth:
        raise PatternError("parentheses () not balanced")
    try:
        return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
    except re.error as exc:  # e.g. "quantifier operand invalid" in PostgreSQL
        raise PatternError(str(exc)) from None


@functools.lru_cache(maxsize=1024)
def ilike_regex(pattern: str) -> re.Pattern[str]:
    """Translate a SQL ``ILIKE`` pattern (``%``, ``_``, backslash escape) to a regex (fullmatch)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise PatternError("LIKE pattern must not end with escape character")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _js_length(text: str) -> int:
    """``String.prototype.length``: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- image bytes


def _image_bytes(image: ImageRow) -> bytes:
    color = image.color or "#808080"
    rgb = (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
    if image.mimetype == "image/jpeg":
        return solid_jpeg(round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]))
    return solid_png(rgb)


# --------------------------------------------------------------------------- JSON shapes


def _iso(moment: dt.datetime) -> str:
    """JavaScript's ``Date.toJSON()``: UTC with milliseconds and ``Z``."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _artist_json(artist: ArtistRow, images: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": artist.id, "name": artist.name, "url": artist.url}
    if images is not None:  # JSON.stringify drops the undefined count elsewhere
        data["images"] = images
    return data


def _category_json(category: CategoryRow, images: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": category.id,
        "name": category.name,
        "description": category.description,
        "nsfw": category.nsfw,
        "type": category.type,
    }
    if images is not None:
        data["images"] = images
    data["createdAt"] = _iso(category.created_at)
    return data


def _character_json(character: CharacterRow, images: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": character.id,
        "name": character.name,
        "description": character.description,
        "source": character.source,
        "gender": character.gender,
        "ages": list(character.ages) if character.ages is not None else None,
        "birth_date": character.birth_date,
        "nationality": character.nationality,
        "occupations": list(character.occupations),
        "createdAt": _iso(character.created_at),
    }
    if images is not None:
        data["images"] = images
    return data


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class FakeToken:
    """An access token the fake accepts. Its ``repr`` never shows the secret."""

    token: str = field(repr=False)
    scopes: list[str]
    owner: str
    purpose: str
    issued_by: str
    created_at: dt.datetime
    expires: dt.datetime | None


# --------------------------------------------------------------------------- the server

_TOKEN_KEY: web.RequestKey[FakeToken | None] = web.RequestKey("nekos_fake_token")


class FakeNekosAPI(LimitedFakeServer):
    """The fake server: an aiohttp application on ``host:port`` (port 0 picks a free one).

    ``seed`` seeds the random endpoint's sampling (``fake.rng``) and token generation, so a run
    with the same seed and the same requests gives the same answers. ``clock`` (monotonic
    seconds) drives the rate limiter and the request log; ``wall_clock`` (Unix seconds) drives
    ``meta.expires`` and the storage URLs' signatures. See the module docstring for behaviour.
    """

    api_prefix = "/api"
    rate_limited_message = _RATE_LIMITED
    blocked_message = _BLOCKED
    malformed_body = '{"data": [{"id": "'
    name = "fake Nekos API"

    def __init__(
        self,
        dataset: Dataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        rate_limit: tuple[int, float] | None = (1, 1.0),
        strikes_before_block: int = 10,
        strike_window: float = 3600.0,
        block_seconds: float = 3600.0,
        default_expiry: int = 3600,
        sample_percent: float = 20.0,
        latency: float = 0.0,
        bare_artist_share: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
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
        self.dataset = dataset if dataset is not None else generate_dataset()
        self.bare_artist_share = bare_artist_share
        self.default_expiry = default_expiry
        self.sample_percent = sample_percent
        self.wall_clock = wall_clock
        self.rng = random.Random(seed)
        self._token_rng = random.Random(f"tokens-{seed}")
        self._secret = hashlib.sha256(f"nekos-fake-{seed}".encode()).digest()
        self._tokens: dict[str, FakeToken] = {}
        self._images_by_file = {image.file_name: image for image in self.dataset.images}
        self._stats = self._compute_stats()

    def _routes(self) -> list[tuple[str, Handler]]:
        return [
            ("/api", self._h_index),
            ("/api/", self._h_index),
            ("/api/stats", self._h_stats),
            ("/api/token", self._h_token),
            ("/api/image", self._h_images),
            ("/api/image/random", self._h_random),
            ("/api/image/{id}", self._h_image),
            ("/api/artist", self._h_artists),
            ("/api/artist/{id}", self._h_artist),
            ("/api/artist/{id}/images", self._h_artist_images),
            ("/api/character", self._h_characters),
            ("/api/character/{id}", self._h_character),
            ("/api/category", self._h_categories),
            ("/api/category/{id}", self._h_category),
            ("/api/set", self._h_sets),
            ("/api/set/{id}", self._h_set),
            ("/storage/{file}", self._h_storage),
        ]

    # ------------------------------------------------------------------ tokens

    def add_token(
        self,
        scopes: Iterable[str] = (),
        *,
        owner: str = "tester (Discord ID: 100000000000000001)",
        purpose: str = "tests",
        issued_by: str = "Nekidev (Discord ID: 100000000000000000)",
        expires: dt.datetime | None = None,
    ) -> str:
        """Register a token with these scopes; return it (100 ASCII letters and digits)."""
        while True:
            token = "".join(self._token_rng.choice(_TOKEN_ALPHABET) for _ in range(100))
            if token not in self._tokens:
                break
        created = dt.datetime.fromtimestamp(self.wall_clock(), dt.UTC)
        self._tokens[token] = FakeToken(
            token=token,
            scopes=list(scopes),
            owner=owner,
            purpose=purpose,
            issued_by=issued_by,
            created_at=created,
            expires=expires if expires is not None else created + dt.timedelta(days=365),
        )
        return token

    def revoke_token(self, token: str) -> None:
        """Forget a token: it answers 401 from now on."""
        self._tokens.pop(token, None)

    # ------------------------------------------------------------------ storage

    def signed_url(self, image: ImageRow, expiry: int | None = None) -> tuple[str, float]:
        """A storage URL for ``image`` valid for ``expiry`` seconds, and its Unix expiry time."""
        lifetime = self.default_expiry if expiry is None else expiry
        expires_at = self.wall_clock() + lifetime
        stamp = int(expires_at)
        signature = self._sign(image.file_name, stamp)
        return f"{self.origin}/storage/{image.file_name}?token={signature}&expires={stamp}", (
            expires_at
        )

    def _sign(self, file_name: str, expires: int) -> str:
        message = f"{file_name}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ internals: the version

    def _error(self, status: int, message: str) -> web.Response:
        return json_response({"code": status, "message": message, "success": False}, status=status)

    def _unmatched(self, status: int) -> web.Response:
        # Next.js answers unknown API paths with its HTML 404 page, before any handler runs.
        return web.Response(status=status, text=_NEXT_404_HTML, content_type="text/html")

    def _admit(self, request: web.Request) -> Sequence[str]:
        # Auth is checked before the limiter, so its 401s are not counted (as live).
        token = self._resolve_token(request, required=request.path in _AUTH_REQUIRED)
        request[_TOKEN_KEY] = token
        return token.scopes if token else []

    def _resolve_token(self, request: web.Request, *, required: bool) -> FakeToken | None:
        header = request.headers.get("Authorization", "")
        if not header:
            if required:
                raise _Reply(401, "You need an access token to access this resource.")
            return None
        match = _BEARER.fullmatch(header)
        if match is None:
            raise _Reply(
                401,
                "The authentication token is invalid. It should match `^Bearer [0-9a-zA-Z]{100}$`.",
            )
        token = self._tokens.get(match.group(1))
        if token is None:
            raise _Reply(401, "The authentication token is invalid.")
        return token

    def _limit_for(self, scopes: Sequence[str]) -> Limit | Literal["bypass"] | None:
        if any(scope.lower() == "api:ratelimit:disabled" for scope in scopes):
            return "bypass"
        for scope in scopes:
            match = _RATELIMIT_SCOPE.match(scope)
            if match is not None:
                requests, per, strikes = match.groups()
                return Limit(int(requests), float(per), int(strikes))
        return super()._limit_for(scopes)

    # ------------------------------------------------------------------ internals: parameters

    @staticmethod
    def _param(request: web.Request, name: str, default: str) -> str:
        values = request.query.getall(name, [])
        return ",".join(values) if values else default

    @staticmethod
    def _limit(raw: str, maximum: int, message: str) -> int:
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
            raise _Reply(400, message)
        return int(raw)

    @staticmethod
    def _offset(raw: str, message: str = _OFFSET) -> int:
        if not _DIGITS.fullmatch(raw):
            raise _Reply(400, message)
        return int(raw)

    @staticmethod
    def _uuid(raw: str, name: str) -> str:
        if not _UUID.fullmatch(raw):
            raise _Reply(400, f"Invalid value for `{name}` parameter. Expected a UUID.")
        return raw.lower()

    def _expiry(self, request: web.Request) -> int:
        """The link lifetime for this request, checked in the live server's order."""
        if "expiry" not in request.query:
            return self.default_expiry
        raw = self._param(request, "expiry", "")
        if raw == _LIVE_DEFAULT_EXPIRY:
            return int(raw)
        token = request.get(_TOKEN_KEY)
        scopes = token.scopes if token else []
        if not scopes:
            raise _Reply(
                401, "You need to be authorized to set a custom expire time for image links."
            )
        allowing = [scope for scope in scopes if _EXPIRY_SCOPE.fullmatch(scope)]
        if not allowing:
            raise _Reply(
                403,
                "Your access token does not have permission to set a custom expiry time "
                "for image links.",
            )
        if not _DIGITS.fullmatch(raw) or int(raw) <= 30:
            raise _Reply(
                400,
                "The expiry parameter must represent a time in seconds equal or greater than 30.",
            )
        parts = allowing[0].split(":")
        maximum = int(parts[2]) if len(parts) == 3 else None
        if maximum is not None and int(raw) > maximum:
            raise _Reply(
                403, f"You are not permitted to set an expiry time greater than {maximum} seconds."
            )
        return int(raw)

    def _search(self, request: web.Request, max_length: int) -> re.Pattern[str] | None:
        search = self._param(request, "search", "")
        if _js_length(search) > max_length:
            # Live: `req.status(400)` on the request object throws, so Next.js answers 500.
            raise _Crash(f"search longer than {max_length}")
        if not search:
            return None
        try:
            return similar_to_regex(search.lower())
        except PatternError as exc:
            raise _Crash(str(exc)) from None

    # ------------------------------------------------------------------ internals: shapes

    def artist_is_bare_id(self, image: ImageRow) -> bool:
        """Whether ``image`` names its artist by id only, as the API reference shows (a stable
        ``bare_artist_share`` of the images), rather than as the live server's object."""
        return int(image.id[:8], 16) % 1000 < self.bare_artist_share * 1000

    def _image_json(self, image: ImageRow, expiry: int) -> dict[str, Any]:
        url, expires_at = self.signed_url(image, expiry)
        artist = self.dataset.artist_by_id.get(image.artist_id) if image.artist_id else None
        dimens: dict[str, Any] = {"height": image.height, "width": image.width}
        if image.aspect_ratio is not None:
            dimens["aspectRatio"] = image.aspect_ratio
        dimens["orientation"] = image.orientation
        return {
            "id": image.id,
            "url": url,
            "artist": (
                None
                if artist is None
                else artist.id
                if self.artist_is_bare_id(image)
                else _artist_json(artist)
            ),
            "source": {"name": image.source_name, "url": image.source_url},
            "original": image.original,
            "nsfw": image.nsfw,
            "categories": [
                _category_json(self.dataset.category_by_id[c]) for c in image.category_ids
            ],
            "characters": [
                _character_json(self.dataset.character_by_id[c]) for c in image.character_ids
            ],
            "createdAt": _iso(image.created_at),
            "meta": {
                "eTag": image.etag,
                "size": image.size,
                "mimetype": image.mimetype,
                "color": image.color,
                "expires": _iso(dt.datetime.fromtimestamp(expires_at, dt.UTC)),
                "dimens": dimens,
            },
        }

    @staticmethod
    def _ok(data: Any, pagination: dict[str, int] | None = None) -> web.Response:
        body: dict[str, Any] = {"data": data}
        if pagination is not None:
            body["meta"] = {"pagination": pagination}
        body["success"] = True
        return json_response(body)

    @staticmethod
    def _page(limit: int, offset: int, count: int, total: int) -> dict[str, int]:
        return {"limit": limit, "offset": offset, "count": count, "total": total}

    def _compute_stats(self) -> dict[str, Any]:
        images = self.dataset.images
        ratings = self.dataset.rating_counts()

        def box(i: ImageRow, w: int, h: int) -> bool:
            return (i.height >= h and i.width >= w) or (i.height >= w and i.width >= h)

        def band(low: tuple[int, int], high: tuple[int, int] | None) -> int:
            return sum(1 for i in images if box(i, *low) and (high is None or not box(i, *high)))

        portrait = sum(1 for i in images if i.height > i.width)
        landscape = sum(1 for i in images if i.height < i.width)
        categories = self.dataset.categories
        nsfw_categories = sum(1 for c in categories if c.nsfw)
        originals = [i.original for i in images]
        return {
            "images": {
                "count": len(images),
                "nsfw": ratings,
                "original": {
                    "yes": originals.count(True),
                    "no": originals.count(False),
                    "unknown": originals.count(None),
                },
                "resolution": {
                    "sd": band((640, 480), (1280, 720)),
                    "hd": band((1280, 720), (1920, 1080)),
                    "fhd": band((1920, 1080), (3840, 2160)),
                    "uhd": band((3840, 2160), None),
                },
                "orientation": {
                    "portrait": portrait,
                    "landscape": landscape,
                    "square": len(images) - portrait - landscape,
                },
            },
            "categories": {
                "type": {
                    "settings": sum(1 for c in categories if c.type == "setting"),
                    "character": sum(1 for c in categories if c.type == "character"),
                    "format": sum(1 for c in categories if c.type == "format"),
                },
                "nsfw": {"nsfw": nsfw_categories, "sfw": len(categories) - nsfw_categories},
                "count": len(categories),
            },
            "artists": {"count": len(self.dataset.artists)},
            "characters": {
                "count": len(self.dataset.characters),
                "sources": len({c.source for c in self.dataset.characters if c.source}),
            },
        }

    # ------------------------------------------------------------------ handlers

    async def _h_index(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "data": list(ENDPOINTS),
                "meta": {"version": API_VERSION, "baseApiRoute": "/api"},
                "success": True,
            }
        )

    async def _h_stats(self, request: web.Request) -> web.Response:
        return self._ok(self._stats)

    async def _h_token(self, request: web.Request) -> web.Response:
        token = request[_TOKEN_KEY]
        assert token is not None  # the middleware demands a token on this path
        return self._ok(
            {
                "owner": token.owner,
                "purpose": token.purpose,
                "scopes": list(token.scopes),
                "issuedBy": token.issued_by,
                "createdAt": _iso(token.created_at),
                "expires": _iso(token.expires) if token.expires else None,
            }
        )

    async def _h_images(self, request: web.Request) -> web.Response:
        token = request[_TOKEN_KEY]
        if token is None or "image:list" not in token.scopes:
            raise _Reply(403, "You don't have permission to access this resource.")
        expiry = self._expiry(request)
        limit = self._limit(self._param(request, "limit", "10"), 50, _LIMIT_50)
        offset = self._offset(self._param(request, "offset", "0"))
        rows = self.dataset.images[offset : offset + limit]
        data = [self._image_json(image, expiry) for image in rows]
        return self._ok(data, self._page(limit, offset, len(data), len(self.dataset.images)))

    async def _h_random(self, request: web.Request) -> web.Response:
        expiry = self._expiry(request)
        limit = self._limit(self._param(request, "limit", "1"), 25, _LIMIT_25)
        patterns = self._param(request, "categories", "").lower().split(",")
        required: set[str] = set()
        if patterns != [""]:
            try:
                regexes = [ilike_regex(p) for p in patterns]
            except PatternError as exc:
                raise _Crash(str(exc)) from None
            matched = [
                c for c in self.dataset.categories if any(r.fullmatch(c.name) for r in regexes)
            ]
            if len(matched) != len(patterns):
                names = {c.name.lower() for c in matched}
                missing = ", ".join(p for p in patterns if p not in names)
                raise _Reply(
                    400,
                    "Invalid value for `categories` parameter. "
                    f"The following categories do not exist: {missing}",
                )
            required = {c.id for c in matched}
        share = self.sample_percent / 100.0
        sample = [image for image in self.dataset.images if self.rng.random() < share]
        hits = [image for image in sample if required.issubset(image.category_ids)]
        self.rng.shuffle(hits)
        hits = hits[:limit]
        if not hits:
            raise _Reply(404, "Could not find images with the selected categories")
        return self._ok([self._image_json(image, expiry) for image in hits])

    async def _h_image(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        image_id = self._uuid(raw, "imageId")
        expiry = self._expiry(request)
        image = self.dataset.image_by_id.get(image_id)
        if image is None:
            raise _Reply(404, f"Could not find image with ID: {raw}")
        return self._ok(self._image_json(image, expiry))

    async def _h_artists(self, request: web.Request) -> web.Response:
        # Live accepts up to 50 here while its message says 25.
        limit = self._limit(self._param(request, "limit", "10"), 50, _LIMIT_25)
        offset = self._offset(self._param(request, "offset", "0"))
        pattern = self._search(request, 20)
        rows = [a for a in self.dataset.artists if pattern is None or pattern.fullmatch(a.name)]
        data = [_artist_json(a) for a in rows[offset : offset + limit]]
        return self._ok(data, self._page(limit, offset, len(data), len(self.dataset.artists)))

    async def _h_artist(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        artist = self.dataset.artist_by_id.get(self._uuid(raw, "artistId"))
        if artist is None:
            raise _Reply(404, f"Could not find artist with ID: {raw}")
        return self._ok(_artist_json(artist, len(self.dataset.images_by_artist(artist.id))))

    async def _h_artist_images(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        artist_id = self._uuid(raw, "artistId")
        expiry = self._expiry(request)
        limit = self._limit(self._param(request, "limit", "10"), 25, _LIMIT_25)
        offset = self._offset(
            self._param(request, "offset", "0"),
            "Invalid value for `offset` parameter. Expected a number.",
        )
        images = self.dataset.images_by_artist(artist_id)
        rows = images[offset : offset + limit]
        if not rows:  # live: an empty page (or an artist without images) reads as "not found"
            raise _Reply(404, f"Could not find artist with ID: {raw}")
        data = [self._image_json(image, expiry) for image in rows]
        return self._ok(data, self._page(limit, offset, len(data), len(images)))

    async def _h_characters(self, request: web.Request) -> web.Response:
        limit = self._limit(self._param(request, "limit", "10"), 25, _LIMIT_25)
        offset = self._offset(self._param(request, "offset", "0"))
        pattern = self._search(request, 20)

        def hit(c: CharacterRow) -> bool:
            if pattern is None:
                return True
            return any(pattern.fullmatch(v) for v in (c.name, c.description, c.source) if v)

        rows = [c for c in self.dataset.characters if hit(c)]
        data = [_character_json(c) for c in rows[offset : offset + limit]]
        return self._ok(data, self._page(limit, offset, len(data), len(self.dataset.characters)))

    async def _h_character(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        character = self.dataset.character_by_id.get(self._uuid(raw, "characterId"))
        if character is None:
            raise _Reply(404, f"Could not find character with ID: {raw}")
        count = len(self.dataset.images_with_character(character.id))
        return self._ok(_character_json(character, count))

    async def _h_categories(self, request: web.Request) -> web.Response:
        limit = self._limit(self._param(request, "limit", "10"), 25, _LIMIT_25)
        offset = self._offset(self._param(request, "offset", "0"))
        pattern = self._search(request, 50)

        def hit(c: CategoryRow) -> bool:
            if pattern is None:
                return True
            return any(pattern.fullmatch(v) for v in (c.name, c.description))

        rows = [c for c in self.dataset.categories if hit(c)]
        data = [_category_json(c) for c in rows[offset : offset + limit]]
        return self._ok(data, self._page(limit, offset, len(data), len(self.dataset.categories)))

    async def _h_category(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        category = self.dataset.category_by_id.get(self._uuid(raw, "categoryId"))
        if category is None:
            raise _Reply(404, f"Could not find category with ID: {raw}")
        count = len(self.dataset.images_in_category(category.id))
        return self._ok(_category_json(category, count))

    async def _h_sets(self, request: web.Request) -> web.Response:
        self._limit(self._param(request, "limit", "10"), 25, _LIMIT_25)
        self._offset(self._param(request, "offset", "0"))
        return self._ok([])

    async def _h_set(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        self._uuid(raw, "setId")
        raise _Reply(404, f"Could not find set with ID: {raw}")

    async def _h_storage(self, request: web.Request) -> web.Response:
        file_name = request.match_info["file"]
        signature = request.query.get("token", "")
        expires = request.query.get("expires", "")
        valid = _DIGITS.fullmatch(expires) is not None and hmac.compare_digest(
            signature, self._sign(file_name, int(expires) if expires.isdigit() else 0)
        )
        if not valid:
            return self._storage_error("InvalidSignature", "invalid signature")
        if self.wall_clock() >= int(expires):
            return self._storage_error("InvalidJWT", "jwt expired")
        image = self._images_by_file.get(file_name)
        if image is None:
            return json_response(
                {"statusCode": "404", "error": "not_found", "message": "Object not found"},
                status=404,
            )
        return web.Response(
            body=_image_bytes(image),
            content_type=image.mimetype,
            headers={"ETag": image.etag, "Cache-Control": "max-age=3600"},
        )

    @staticmethod
    def _storage_error(error: str, message: str) -> web.Response:
        return json_response({"statusCode": "403", "error": error, "message": message}, status=403)


# --------------------------------------------------------------------------- command line


async def _serve(args: argparse.Namespace) -> None:
    dataset = generate_dataset(seed=args.seed, images=args.images)
    fake = FakeNekosAPI(
        dataset,
        host=args.host,
        port=args.port,
        seed=args.seed,
        rate_limit=None if args.no_rate_limit else (1, 1.0),
    )
    async with fake:
        print(fake.base_url, flush=True)
        for scopes in args.token:
            token = fake.add_token([s for s in scopes.split(",") if s])
            print(f"token ({scopes}): {token}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake until interrupted, printing its base URL (and any requested tokens)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.nekos_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=2900)
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="SCOPES",
        help="create a token with these comma-separated scopes and print it (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
