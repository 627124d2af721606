"""What every Nekos API client shares: the session, the paced request loop, downloads, health.

:class:`PacedClient` owns one :meth:`~PacedClient.request` that waits its turn at the pacer,
sends, retries per :class:`RetryPolicy`, hands 429s and blocks to the pacer and maps error
responses with the version's own ``map_error`` (status first, then whatever the body says).
The v1 and v4 clients subclass it and add only their endpoints, checks and parsers.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypedDict, TypeVar
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

__all__ = [
    "BLOCK_THRESHOLD",
    "ClientHealth",
    "ClientOptions",
    "ErrorMapper",
    "PacedClient",
    "RequestObserver",
    "RetryPolicy",
    "Route",
    "check_limit",
    "check_offset",
    "error_from_status",
    "error_mapper",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

BLOCK_THRESHOLD: Final = 60.0
"""A 429 asking to wait longer than this many seconds is a block, not a plain rate limit."""
MESSAGE_MAX: Final = 300
"""Longest server message kept in an error."""

_URL_QUERY_RE = re.compile(r"\?[^\s'\"<>]*")
_BLOCK_MESSAGE = "too many times"
_MASK = "********"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


class RequestObserver(Protocol):
    """Told of every API request's wait and outcome (the bot's metrics; nothing by default).

    Called on the request path, so an observer must be quick and must not raise.
    """

    def pacer_wait(self, priority: Priority, seconds: float) -> None:
        """A request waited ``seconds`` at the pacer for its turn to start."""
        ...

    def upstream_call(self, endpoint: str, status: str, seconds: float) -> None:
        """One request was sent: ``status`` is the HTTP status ("200", "429"), or "timeout" or
        "connection" when no answer came; ``seconds`` from sending to the answer."""
        ...


class ErrorMapper(Protocol):
    """A version's mapping of an error response to the adapter's exception."""

    def __call__(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        endpoint: str,
        now: dt.datetime | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> HTTPError: ...


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def decode_json(body: bytes) -> object:
    """``body`` as JSON, or ``None`` when it is not JSON (HTML, empty, truncated)."""
    try:
        decoded: object = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded


def clip_message(value: object) -> str | None:
    """A server message worth keeping: stripped, non-empty text, at most :data:`MESSAGE_MAX`."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MESSAGE_MAX]


def error_from_status(
    status: int,
    headers: Mapping[str, str],
    *,
    message: str | None,
    endpoint: str,
    code: int | None = None,
    now: dt.datetime | None = None,
) -> HTTPError:
    """The exception for an error status; ``message`` is the server's (already redacted) text.

    The status alone decides the class. A 429 whose message says the rate limit was exceeded
    "too many times", or whose wait is longer than :data:`BLOCK_THRESHOLD`, is
    :class:`Blocked`; any other 429 is :class:`RateLimited` (one second when it names no wait).
    """
    text = message or _status_phrase(status)
    if status == 429:
        current = now or utcnow()
        retry_after = parse_retry_after(header_value(headers, "Retry-After"), current)
        if retry_after is None:
            reset = header_value(headers, "X-RateLimit-Reset")
            retry_after = parse_rate_limit_reset(reset, current)
        said_blocked = message is not None and _BLOCK_MESSAGE in message.lower()
        if said_blocked or (retry_after is not None and retry_after > BLOCK_THRESHOLD):
            # The v1 server's block lasts an hour; assume that when it does not say.
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
        422: BadRequest,  # FastAPI-style validation errors (v4)
    }
    kind = kinds.get(status) or (ServerError if status >= 500 else HTTPError)
    return kind(text, status=status, code=code, endpoint=endpoint)


def error_mapper(read_body: Callable[[bytes], tuple[int | None, str | None]]) -> ErrorMapper:
    """A version's :class:`ErrorMapper`: ``read_body`` finds the API's ``(code, message)`` in an
    error body (``None`` for what it cannot read); the message is redacted, then
    :func:`error_from_status` decides by the status."""

    def map_error(
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        endpoint: str,
        now: dt.datetime | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> HTTPError:
        code, message = read_body(body)
        if message is not None and redact is not None:
            message = redact(message)
        return error_from_status(
            status, headers, message=message, code=code, endpoint=endpoint, now=now
        )

    return map_error


def strip_query(url: str) -> str:
    """``url`` without its query string: signed storage URLs carry their signature there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def check_limit(limit: int, maximum: int, endpoint: str) -> str:
    """``limit`` as a query value, or :class:`InvalidParameter` unless it is 1..``maximum``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidParameter(
            f"limit must be a whole number from 1 to {maximum}, got {limit!r}",
            endpoint=endpoint,
        )
    return str(limit)


def check_offset(offset: int, endpoint: str) -> str:
    """``offset`` as a query value, or :class:`InvalidParameter` unless it is at least 0."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidParameter(
            f"offset must be a whole number of at least 0, got {offset!r}", endpoint=endpoint
        )
    return str(offset)


class ClientOptions(TypedDict, total=False):
    """Keyword options every client accepts (see :class:`PacedClient`)."""

    pacer: RequestPacer | None
    user_agent: str | None
    timeout: float
    download_timeout: float
    retry: RetryPolicy | None
    clock: Clock
    sleep: Sleep | None
    wall_clock: WallClock
    observer: RequestObserver | None


class PacedClient:
    """The transport under every client version. Use a client as ``async with Client(...)``.

    It owns one :class:`aiohttp.ClientSession`, or borrows ``session`` (and then never closes
    it). All requests wait their turn at ``pacer`` (by default a :class:`Pacer` of its own;
    pass one pacer to several clients to share the IP's rate limit). ``secret`` (an API token)
    never appears in logs or errors; nor do URL query strings.

    API requests carry their own aiohttp middleware that stops aiohttp's silent resend of a
    request whose connection dropped (it would bypass the pacer); per-request middlewares
    replace a borrowed session's own, so those do not run on API requests (downloads keep
    them). A stale kept-alive connection then costs one paced retry instead of none.

    ``observer`` is told of each request's pacer wait and outcome (see :class:`RequestObserver`).
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        map_error: ErrorMapper,
        secret: str | None = None,
        pacer: RequestPacer | None = None,
        user_agent: str | None = None,
        timeout: float = 10.0,
        download_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        wall_clock: WallClock = utcnow,
        observer: RequestObserver | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL")
        if timeout <= 0 or download_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self._base_url = base_url.rstrip("/")
        self._map_error = map_error
        self._secret = secret or None
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
        self._observer = observer
        self._started = False
        self._requests_sent = 0
        self._rate_limited = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None

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
        """Open the session (sends nothing)."""
        self._ensure_session()
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
    def pacer(self) -> RequestPacer:
        return self._pacer

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

    def _request_headers(self) -> dict[str, str]:
        """Headers of every API request (a client adds its authorisation here)."""
        return {"User-Agent": self._user_agent, "Accept": "application/json"}

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
        headers = self._request_headers()
        policy = self._retry
        first_try = self._clock()
        failures = 0
        rate_limit_retries = 0
        observer = self._observer
        while True:
            queued = self._clock()
            try:
                await self._pacer.acquire(priority, endpoint=route.endpoint)
            except Blocked as exc:
                raise self._failed(exc) from None
            sent = self._clock()
            if observer is not None:
                observer.pacer_wait(priority, sent - queued)
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
                if observer is not None:
                    outcome = "timeout" if isinstance(exc, TimeoutError) else "connection"
                    observer.upstream_call(route.endpoint, outcome, self._clock() - sent)
                unavailable = Unavailable(self._describe(exc), endpoint=route.endpoint)
                failures += 1
                if await self._backoff(failures, first_try, unavailable):
                    continue
                raise self._failed(unavailable) from None
            if observer is not None:
                observer.upstream_call(route.endpoint, str(status), self._clock() - sent)
            await self._pacer.observe_headers(response_headers)
            if 200 <= status < 300:
                return self._decode(body, route)
            error = self._map_error(
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
        """``text`` without the secret or any URL query string (signatures live there)."""
        if self._secret:
            text = text.replace(self._secret, _MASK)
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

    def _parsed(self, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ResponseParseError as exc:
            raise self._failed(exc) from None

    # ------------------------------------------------------------------ downloads

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """Fetch an image file from the storage URL the API handed out.

        Not paced (the storage host is not the API), sent without any token and bounded by the
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
        endpoint = f"download {strip_query(url)}"
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
                raise self._map_error(
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
