"""The Nekos API v1 client: one method per endpoint over one shared aiohttp session.

Every endpoint is a :class:`Route`; :meth:`NekosClient.request` is the one place that sends,
waits its turn at the pacer, retries and maps errors. Parameters are checked before anything
is sent, since every request (rejected ones included) counts against the server's rate limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from .. import __version__
from .errors import (
    BadRequest,
    Blocked,
    DownloadTooLarge,
    Forbidden,
    HTTPError,
    InvalidParameter,
    NekosError,
    NotFound,
    RateLimited,
    ResponseParseError,
    ServerError,
    Unauthorized,
    Unavailable,
)
from .models import (
    ApiInfo,
    Artist,
    Category,
    Character,
    Image,
    Page,
    Stats,
    TokenInfo,
    parse_api_info,
    parse_artist_data,
    parse_category_data,
    parse_character_data,
    parse_image_data,
    parse_one,
    parse_page,
    parse_stats_data,
    parse_token_data,
)
from .pacing import (
    INTERACTIVE,
    Clock,
    Pacer,
    Priority,
    RequestPacer,
    Sleep,
    WallClock,
    header_value,
    parse_rate_limit_reset,
    parse_retry_after,
)
from .search import RawPattern, search_pattern

__all__ = [
    "BLOCK_THRESHOLD",
    "DEFAULT_BASE_URL",
    "MAX_LIMIT",
    "MIN_EXPIRY",
    "SEARCH_MAX_LENGTH",
    "ClientHealth",
    "NekosClient",
    "RetryPolicy",
    "Route",
    "error_from_response",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://v1.nekosapi.com/api"
MAX_LIMIT: Final = 25
"""Largest ``limit`` every list endpoint accepts."""
MIN_EXPIRY: Final = 30
"""``expiry`` must be greater than this many seconds."""
SEARCH_MAX_LENGTH: Final[Mapping[str, int]] = {"artist": 20, "character": 20, "category": 50}
"""The longest ``search`` pattern each searchable endpoint accepts."""
BLOCK_THRESHOLD: Final = 60.0
"""A 429 asking to wait longer than this many seconds is a block, not a plain rate limit."""

_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_URL_QUERY_RE = re.compile(r"\?[^\s'\"<>]*")
_BLOCK_MESSAGE = "too many times"
_MESSAGE_MAX = 300
_MASK = "********"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utf16_length(text: str) -> int:
    """``text.length`` in JavaScript (the server's language): UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _is_text(value: object) -> bool:
    """A ``str`` that can go in a URL: no lone surrogates (a bad decode can leave them)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape_like(name: str) -> str:
    """``name`` with the ``LIKE`` wildcards ``%`` and ``_`` (and the escape ``\\``) escaped."""
    return "".join(f"\\{ch}" if ch in "\\%_" else ch for ch in name)


# Per-request client middlewares exist from aiohttp 3.12 on.
_HAS_REQUEST_MIDDLEWARES: Final = tuple(map(int, aiohttp.__version__.split(".")[:2])) >= (3, 12)


class _ConnectionLost(aiohttp.ClientConnectionError):
    """A connection dropped mid-request, re-raised in a form aiohttp does not resend."""


async def _no_silent_resend(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Client middleware: report a dropped connection instead of letting aiohttp resend.

    aiohttp resends an idempotent request once, at once, when its connection drops. That
    resend would skip the pacer although the server may already have counted the dropped
    request, so the client's own retry (paced and within the retry budget) takes over.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # nothing was sent; aiohttp never resends these either
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise _ConnectionLost(str(exc)) from exc


_API_REQUEST_OPTIONS: Final[Mapping[str, Any]] = (
    {"middlewares": (_no_silent_resend,)} if _HAS_REQUEST_MIDDLEWARES else {}
)


class Route:
    """One API endpoint with its path parameters filled in.

    ``endpoint`` is the stable name used in errors and logs (``GET /artist/{id}``); ``path`` is
    the concrete path with the parameters quoted.
    """

    __slots__ = ("endpoint", "method", "path", "template")

    def __init__(self, method: str, template: str, **parameters: str) -> None:
        self.method = method
        self.template = template
        self.endpoint = f"{method} {template}"
        self.path = template.format(**{k: quote(v, safe="") for k, v in parameters.items()})

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.path}>"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a request is retried.

    Timeouts, connection errors and 5xx are retried up to ``attempts`` tries in all, with
    exponential backoff (``base_delay`` doubling up to ``max_delay``, with jitter); a 429 is
    retried after its ``Retry-After`` up to ``rate_limit_retries`` times. No retry starts once
    ``total_time`` seconds have passed since the first try. Every retry waits at the pacer again.
    """

    attempts: int = 3
    total_time: float = 20.0
    base_delay: float = 0.5
    max_delay: float = 5.0
    rate_limit_retries: int = 2

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), with jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        # Jitter spreads out retries of requests that failed together.
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """A snapshot of the client, for the bot's health and ``stats`` reports."""

    queue_length: int
    estimated_wait: float
    requests_sent: int
    rate_limited: int
    """429 responses received."""
    strikes_in_window: int
    blocked_until: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None


def _error_fields(body: bytes) -> tuple[int | None, str | None]:
    """The API's ``code`` and ``message`` from an error body, if it is the API's JSON."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(decoded, dict):
        return None, None
    code = decoded.get("code")
    message = decoded.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message.strip()[:_MESSAGE_MAX] if isinstance(message, str) and message.strip() else None,
    )


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    now: dt.datetime | None = None,
    redact: Callable[[str], str] | None = None,
) -> HTTPError:
    """The exception for an error response, from its status and ``{code, message}`` body.

    HTML, empty and other non-JSON bodies are tolerated: the status alone decides the class.
    A 429 whose message says the rate limit was exceeded "too many times", or whose wait is
    longer than :data:`BLOCK_THRESHOLD`, is :class:`Blocked`; any other 429 is
    :class:`RateLimited`. ``redact`` cleans the server's message before it is kept.
    """
    code, message = _error_fields(body)
    if message is not None and redact is not None:
        message = redact(message)
    text = message or _status_phrase(status)
    if status == 429:
        current = now or _utcnow()
        retry_after = parse_retry_after(header_value(headers, "Retry-After"), current)
        if retry_after is None:
            reset = header_value(headers, "X-RateLimit-Reset")
            retry_after = parse_rate_limit_reset(reset, current)
        said_blocked = message is not None and _BLOCK_MESSAGE in message.lower()
        if said_blocked or (retry_after is not None and retry_after > BLOCK_THRESHOLD):
            # The server's block lasts an hour; assume that when it does not say.
            seconds = retry_after if retry_after else 3600.0
            return Blocked(
                text,
                until=current + dt.timedelta(seconds=seconds),
                retry_after=seconds,
                status=status,
                code=code,
                endpoint=endpoint,
            )
        return RateLimited(
            text,
            retry_after=1.0 if retry_after is None else retry_after,
            status=status,
            code=code,
            endpoint=endpoint,
        )
    kinds: dict[int, type[HTTPError]] = {
        400: BadRequest,
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
    }
    kind = kinds.get(status) or (ServerError if status >= 500 else HTTPError)
    return kind(text, status=status, code=code, endpoint=endpoint)


def _strip_query(url: str) -> str:
    """``url`` without its query string: signed storage URLs carry their signature there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class NekosClient:
    """An async client for the Nekos API v1. Use it as ``async with NekosClient(...) as api:``.

    It owns one :class:`aiohttp.ClientSession`, or borrows ``session`` (and then never closes
    it). All requests wait their turn at ``pacer`` (by default a :class:`Pacer` of its own;
    pass one pacer to several clients to share the IP's rate limit). ``token`` is sent as
    ``Authorization: Bearer``; it never appears in ``repr``, logs or errors.

    API requests carry their own aiohttp middleware that stops aiohttp's silent resend of a
    request whose connection dropped (it would bypass the pacer); per-request middlewares
    replace a borrowed session's own, so those do not run on API requests (downloads keep
    them). A stale kept-alive connection then costs one paced retry instead of none.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        pacer: RequestPacer | None = None,
        user_agent: str | None = None,
        timeout: float = 10.0,
        download_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        wall_clock: WallClock = _utcnow,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL")
        if timeout <= 0 or download_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self._base_url = base_url.rstrip("/")
        self._token = token or None
        self._session = session
        self._owns_session = session is None
        self._pacer: RequestPacer = pacer if pacer is not None else Pacer()
        self._user_agent = user_agent or f"nekos-bot/{__version__} aiohttp/{aiohttp.__version__}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._download_timeout = download_timeout
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._wall_clock = wall_clock
        self._started = False
        self._token_details: TokenInfo | None = None
        self._requests_sent = 0
        self._rate_limited = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        return f"<NekosClient base_url={self._base_url!r} token={token}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the session and, with a token, adopt the rate limit its scopes grant.

        Raises :class:`Unauthorized` (or :class:`Forbidden`) if the server rejects the token.
        Other failures to read ``GET /token`` are logged and the default limit is kept.
        """
        self._ensure_session()
        if self._started or self._token is None:
            self._started = True
            return
        try:
            details = await self.token_info()
        except Unauthorized as exc:
            raise Unauthorized(
                f"the Nekos API rejected the configured token: {exc.message}",
                status=exc.status,
                code=exc.code,
                endpoint=exc.endpoint,
            ) from None
        except Forbidden:
            raise
        except NekosError as exc:
            log.warning("Could not read the Nekos API token's scopes (%s); keeping defaults", exc)
            self._started = True
            return
        self._token_details = details
        await self._pacer.adopt_token(details)
        self._started = True

    async def close(self) -> None:
        """Close the session if this client opened it; a borrowed session is left open."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            if not session.closed:
                await session.close()
        self._started = False

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    # ------------------------------------------------------------------ inspection

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def pacer(self) -> RequestPacer:
        return self._pacer

    @property
    def token_details(self) -> TokenInfo | None:
        """The token's details as read by :meth:`start` (``None`` before, or without a token)."""
        return self._token_details

    @property
    def health(self) -> ClientHealth:
        """A snapshot of the queue, counters, block state and the last error."""
        state = self._pacer.state()
        return ClientHealth(
            queue_length=state.queue_length,
            estimated_wait=state.estimated_wait,
            requests_sent=self._requests_sent,
            rate_limited=self._rate_limited,
            strikes_in_window=state.strikes_in_window,
            blocked_until=state.blocked_until,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    # ------------------------------------------------------------------ the request path

    async def request(
        self,
        route: Route,
        *,
        params: Mapping[str, str] | None = None,
        priority: Priority = INTERACTIVE,
    ) -> Any:
        """Send ``route`` with ``params`` through the pacer and return the decoded JSON body.

        Retries per the :class:`RetryPolicy`; raises the adapter's errors.
        """
        session = self._ensure_session()
        url = self._base_url + route.path
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        policy = self._retry
        first_try = self._clock()
        failures = 0
        rate_limit_retries = 0
        while True:
            try:
                await self._pacer.acquire(priority, endpoint=route.endpoint)
            except Blocked as exc:
                raise self._failed(exc) from None
            self._requests_sent += 1
            try:
                async with session.request(
                    route.method,
                    url,
                    params=params,
                    headers=headers,
                    timeout=self._timeout,
                    **_API_REQUEST_OPTIONS,
                ) as response:
                    status = response.status
                    body = await response.read()
                    response_headers = response.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                unavailable = Unavailable(self._describe(exc), endpoint=route.endpoint)
                failures += 1
                if await self._backoff(failures, first_try, unavailable):
                    continue
                raise self._failed(unavailable) from None
            await self._pacer.observe_headers(response_headers)
            if 200 <= status < 300:
                return self._decode(body, route)
            error = error_from_response(
                status,
                body,
                response_headers,
                endpoint=route.endpoint,
                now=self._wall_clock(),
                redact=self._redact,
            )
            if isinstance(error, Blocked):
                self._rate_limited += 1
                await self._pacer.block(error.retry_after, endpoint=route.endpoint)
                raise self._failed(error)
            if isinstance(error, RateLimited):
                self._rate_limited += 1
                try:
                    await self._pacer.strike(error.retry_after, endpoint=route.endpoint)
                except Blocked as blocked:
                    raise self._failed(blocked) from None
                elapsed = self._clock() - first_try
                if (
                    rate_limit_retries < policy.rate_limit_retries
                    and elapsed + error.retry_after <= policy.total_time
                ):
                    rate_limit_retries += 1
                    continue
                raise self._failed(error)
            if isinstance(error, ServerError):
                failures += 1
                if await self._backoff(failures, first_try, error):
                    continue
            raise self._failed(error)

    async def _backoff(self, failures: int, first_try: float, error: NekosError) -> bool:
        """Sleep before the next try and return True, or False when retries are used up."""
        policy = self._retry
        if failures >= policy.attempts:
            return False
        delay = policy.backoff(failures)
        if self._clock() - first_try + delay > policy.total_time:
            return False
        log.debug("Retrying %s in %.2fs after: %s", error.endpoint, delay, error)
        if delay > 0:
            await self._sleep(delay)
        return True

    def _decode(self, body: bytes, route: Route) -> Any:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise self._failed(
                ResponseParseError("response is not JSON", endpoint=route.endpoint)
            ) from None

    def _redact(self, text: str) -> str:
        """``text`` without the token or any URL query string (signatures live there)."""
        if self._token:
            text = text.replace(self._token, _MASK)
        return _URL_QUERY_RE.sub("?…", text)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, _ConnectionLost) and exc.__cause__ is not None:
            exc = exc.__cause__
        if isinstance(exc, TimeoutError):
            return "the request timed out"
        detail = self._redact(str(exc))
        return (
            f"connection failed ({type(exc).__name__}: {detail})"
            if detail
            else (f"connection failed ({type(exc).__name__})")
        )

    def _failed(self, error: NekosError) -> NekosError:
        """Record ``error`` as the last error, log it once, and return it for raising."""
        self._last_error = str(error)
        self._last_error_at = self._wall_clock()
        if isinstance(error, NotFound | BadRequest | Blocked):
            # Answers to user input, or a block the pacer already logged when it began.
            log.debug("Nekos API request failed: %s", error)
        elif isinstance(error, RateLimited):
            # The pacer logged the 429 itself; this is only the give-up.
            log.info("Nekos API request failed: %s", error)
        else:
            log.warning("Nekos API request failed: %s", error)
        return error

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check_limit(limit: int, endpoint: str) -> str:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidParameter(
                f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}",
                endpoint=endpoint,
            )
        return str(limit)

    @staticmethod
    def _check_offset(offset: int, endpoint: str) -> str:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidParameter(
                f"offset must be a whole number of at least 0, got {offset!r}", endpoint=endpoint
            )
        return str(offset)

    @staticmethod
    def _check_id(value: str | uuid.UUID, what: str, endpoint: str) -> str:
        text = str(value) if isinstance(value, uuid.UUID) else value
        if not isinstance(text, str) or not _UUID_RE.match(text):
            raise InvalidParameter(
                f"{what} id must be a UUID like 3fa85f64-5717-4562-b3fc-2c963f66afa6, "
                f"got {value!r}",
                endpoint=endpoint,
            )
        return text.lower()

    def _check_expiry(self, expiry: int, endpoint: str) -> str:
        if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry <= MIN_EXPIRY:
            raise InvalidParameter(
                f"expiry must be a whole number of seconds greater than {MIN_EXPIRY}, "
                f"got {expiry!r}",
                endpoint=endpoint,
            )
        if self._token is None:
            raise InvalidParameter(
                "expiry needs an API token with the image:custom-expiry scope", endpoint=endpoint
            )
        return str(expiry)

    @staticmethod
    def _check_search(search: str, kind: str, endpoint: str) -> str:
        if not _is_text(search):
            raise InvalidParameter(f"search must be text, got {search!r}", endpoint=endpoint)
        pattern = search_pattern(search)
        longest = SEARCH_MAX_LENGTH[kind]
        # The server counts UTF-16 units: an emoji counts twice.
        length = _utf16_length(pattern)
        if length > longest:
            raise InvalidParameter(
                f"search is too long: the server accepts patterns of at most {longest} "
                f"characters for {kind}s and {search!r} becomes {pattern!r} "
                f"({length}); the pattern adds % at both ends and a backslash before "
                f"each of % _ | * + ? {{ }} ( ) [ ] \\, so use shorter text",
                endpoint=endpoint,
            )
        return pattern

    def _require_token(self, endpoint: str, what: str) -> None:
        if self._token is None:
            raise Unauthorized(f"{what} needs an API token; none is configured", endpoint=endpoint)

    def _list_params(
        self, limit: int, offset: int, endpoint: str, *, expiry: int | None = None
    ) -> dict[str, str]:
        params = {"limit": self._check_limit(limit, endpoint)}
        checked_offset = self._check_offset(offset, endpoint)
        # The server's check reads "greater than 0" in places: leave the default out.
        if offset:
            params["offset"] = checked_offset
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, endpoint)
        return params

    # ------------------------------------------------------------------ endpoints

    async def api_info(self, *, priority: Priority = INTERACTIVE) -> ApiInfo:
        """``GET /``: the API's endpoints and version."""
        route = Route("GET", "/")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_api_info(body, route.endpoint))

    async def stats(self, *, priority: Priority = INTERACTIVE) -> Stats:
        """``GET /stats``: image counts by rating, and artist/character/category counts."""
        route = Route("GET", "/stats")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_stats_data, route.endpoint))

    async def token_info(self, *, priority: Priority = INTERACTIVE) -> TokenInfo:
        """``GET /token``: the configured token's owner, scopes and expiry."""
        route = Route("GET", "/token")
        self._require_token(route.endpoint, "reading token information")
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_token_data, route.endpoint))

    async def images(
        self,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /image``: every image, paginated (needs a token with ``image:list``)."""
        route = Route("GET", "/image")
        self._require_token(route.endpoint, "listing all images")
        params = self._list_params(limit, offset, route.endpoint, expiry=expiry)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    async def random_images(
        self,
        categories: Iterable[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /image/random``: random images having *all* the named categories.

        The server matches names case-insensitively with ``ILIKE``; ``%`` and ``_`` in names
        are escaped so they match literally (pass :class:`~bot.nekos.search.RawPattern` names
        to send wildcards). A string is read as comma-separated names. It can return fewer
        images than ``limit``, and a 404 for a category that has images: retry before
        concluding there are none.
        """
        route = Route("GET", "/image/random")
        params = {"limit": self._check_limit(limit, route.endpoint)}
        names = self._check_categories(categories, route.endpoint)
        if names:
            params["categories"] = ",".join(names)
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    @staticmethod
    def _check_categories(categories: Iterable[str], endpoint: str) -> list[str]:
        all_raw = isinstance(categories, RawPattern)
        items = categories.split(",") if isinstance(categories, str) else list(categories)
        names: list[str] = []
        for item in items:
            if not _is_text(item):
                raise InvalidParameter(
                    f"category names must be text, got {item!r}", endpoint=endpoint
                )
            name = item.strip()
            if "," in name:
                raise InvalidParameter(
                    f"category name {name!r} contains a comma", endpoint=endpoint
                )
            if name:
                raw = all_raw or isinstance(item, RawPattern)
                names.append(name if raw else _escape_like(name))
        return names

    async def image(
        self,
        id: str | uuid.UUID,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Image:
        """``GET /image/{id}``: one image."""
        template = "/image/{id}"
        image_id = self._check_id(id, "image", f"GET {template}")
        route = Route("GET", template, id=image_id)
        params = {}
        if expiry is not None:
            params["expiry"] = self._check_expiry(expiry, route.endpoint)
        body = await self.request(route, params=params or None, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_image_data, route.endpoint))

    async def artists(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Artist]:
        """``GET /artist``: artists, optionally those whose name contains ``search``.

        Plain text is escaped and wrapped as ``%text%``; pass a
        :class:`~bot.nekos.search.RawPattern` to send a ``SIMILAR TO`` pattern as is.
        """
        route = Route("GET", "/artist")
        params = self._search_params(search, "artist", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_artist_data, route.endpoint))

    async def artist(self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE) -> Artist:
        """``GET /artist/{id}``: one artist, with its image count."""
        template = "/artist/{id}"
        route = Route("GET", template, id=self._check_id(id, "artist", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_artist_data, route.endpoint))

    async def artist_images(
        self,
        id: str | uuid.UUID,
        limit: int = 25,
        offset: int = 0,
        expiry: int | None = None,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Image]:
        """``GET /artist/{id}/images``: an artist's images, paginated."""
        template = "/artist/{id}/images"
        route = Route("GET", template, id=self._check_id(id, "artist", f"GET {template}"))
        params = self._list_params(limit, offset, route.endpoint, expiry=expiry)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_image_data, route.endpoint))

    async def characters(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Character]:
        """``GET /character``: characters, optionally those whose name contains ``search``."""
        route = Route("GET", "/character")
        params = self._search_params(search, "character", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_character_data, route.endpoint))

    async def character(
        self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE
    ) -> Character:
        """``GET /character/{id}``: one character, with its image count."""
        template = "/character/{id}"
        route = Route("GET", template, id=self._check_id(id, "character", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_character_data, route.endpoint))

    async def categories(
        self,
        search: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        priority: Priority = INTERACTIVE,
    ) -> Page[Category]:
        """``GET /category``: categories, optionally those whose name contains ``search``."""
        route = Route("GET", "/category")
        params = self._search_params(search, "category", limit, offset, route.endpoint)
        body = await self.request(route, params=params, priority=priority)
        return self._parsed(lambda: parse_page(body, parse_category_data, route.endpoint))

    async def category(self, id: str | uuid.UUID, *, priority: Priority = INTERACTIVE) -> Category:
        """``GET /category/{id}``: one category, with its image count."""
        template = "/category/{id}"
        route = Route("GET", template, id=self._check_id(id, "category", f"GET {template}"))
        body = await self.request(route, priority=priority)
        return self._parsed(lambda: parse_one(body, parse_category_data, route.endpoint))

    def _search_params(
        self, search: str | None, kind: str, limit: int, offset: int, endpoint: str
    ) -> dict[str, str]:
        params = self._list_params(limit, offset, endpoint)
        if search is not None:
            params["search"] = self._check_search(search, kind, endpoint)
        return params

    def _parsed(self, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ResponseParseError as exc:
            raise self._failed(exc) from None

    # ------------------------------------------------------------------ downloads

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """Fetch an image file from the storage URL the API handed out.

        Not paced (the storage host is not the API), sent without the token and bounded by the
        client's ``download_timeout``. The transfer is abandoned with :class:`DownloadTooLarge`
        as soon as ``Content-Length`` or the bytes received exceed ``max_bytes``. Timeouts,
        connection errors and 5xx are retried per the :class:`RetryPolicy`; other statuses
        raise the mapped error (an expired signed URL is typically :class:`Forbidden`).
        """
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidParameter("download needs an http(s) URL", endpoint="download")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidParameter(
                f"max_bytes must be a positive whole number, got {max_bytes!r}",
                endpoint="download",
            )
        endpoint = f"download {_strip_query(url)}"
        session = self._ensure_session()
        client_timeout = aiohttp.ClientTimeout(total=self._download_timeout)
        first_try = self._clock()
        failures = 0
        while True:
            try:
                return await self._download_once(session, url, max_bytes, client_timeout, endpoint)
            except (TimeoutError, aiohttp.ClientError) as exc:
                error: NekosError = Unavailable(self._describe(exc), endpoint=endpoint)
            except ServerError as exc:
                error = exc
            except NekosError as exc:
                raise self._failed(exc) from None
            failures += 1
            if not await self._backoff(failures, first_try, error):
                raise self._failed(error) from None

    async def _download_once(
        self,
        session: aiohttp.ClientSession,
        url: str,
        max_bytes: int,
        client_timeout: aiohttp.ClientTimeout,
        endpoint: str,
    ) -> bytes:
        headers = {"User-Agent": self._user_agent}
        async with session.get(url, headers=headers, timeout=client_timeout) as response:
            if response.status >= 400:
                # Enough of the body for an error message, no more.
                peek = await response.content.read(4096)
                raise error_from_response(
                    response.status,
                    peek,
                    response.headers,
                    endpoint=endpoint,
                    now=self._wall_clock(),
                    redact=self._redact,
                )
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise DownloadTooLarge(
                    f"file is {declared} bytes, more than the {max_bytes} allowed",
                    max_bytes=max_bytes,
                    size=declared,
                    endpoint=endpoint,
                )
            received = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                received += chunk
                if len(received) > max_bytes:
                    raise DownloadTooLarge(
                        f"file is larger than the {max_bytes} bytes allowed",
                        max_bytes=max_bytes,
                        endpoint=endpoint,
                    )
            return bytes(received)
