"""What the fake Nekos APIs (v1 and v4) share: a loopback aiohttp server with a per-IP rate
limiter, queued faults, a request log and tiny valid image files.

A version's fake subclasses :class:`LimitedFakeServer` and supplies its routes, its error body
(:meth:`~LimitedFakeServer._error`), its 404 for unknown paths and, for v1, authentication
before the limiter (:meth:`~LimitedFakeServer._admit`).

Rate limit per client IP (``X-Forwarded-For`` first entry if present, else the peer address):
a sliding window of arrivals, rejected ones included; over the limit -> 429 with ``Retry-After``
and ``X-RateLimit-Reset`` (integer ceiling seconds); every counted response carries
``X-RateLimit-Limit/-Remaining/-Reset``. ``strikes_before_block`` 429s within ``strike_window``
seconds -> the IP is blocked for ``block_seconds``. ``rate_limit=None`` switches the default limit
off (v1's token scopes and forced blocks still apply).

Faults (API requests only; queued faults fire in order, one per request, and each faulted request
still counts as an arrival for the rate limiter): ``fail_next`` (the version's JSON error body),
``malformed_json_next`` (``200 application/json``, truncated), ``html_error_next`` (a proxy's
HTML page), ``empty_error_next`` (an empty body), ``drop_next`` (the connection is closed without
a response; aiohttp's client resends an idempotent request once on a dropped connection, so use
``n >= 2`` to make a plain ``ClientSession`` see the failure), ``raw_next`` (exactly the status
and body given), ``latency`` (seconds added before
every API response; the limiter decides on arrival).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import math
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from aiohttp import web

__all__ = [
    "FakeReply",
    "LimitedFakeServer",
    "RequestRecord",
    "json_response",
    "solid_jpeg",
    "solid_png",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Compact, raw UTF-8, as JSON.stringify (v1) and FastAPI (v4) send it.
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


class FakeReply(Exception):
    """Raised inside a handler to answer with the version's JSON error body."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- image bytes


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


@functools.lru_cache(maxsize=256)
def solid_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A valid ``size``x``size`` RGB PNG of one colour."""
    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * size))
        + _png_chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=256)
def solid_jpeg(gray: int) -> bytes:
    """A valid 8x8 baseline greyscale JPEG of one shade.

    Hand-built (no imaging library in the environment): a flat block has only a DC coefficient,
    so one-symbol Huffman tables and a quantisation table of ones describe it exactly.
    """
    dc = 8 * (max(0, min(255, gray)) - 128)  # the FDCT's DC term of a flat, level-shifted block
    category = abs(dc).bit_length()
    bits = "0"  # the DC table's only code, for symbol `category`
    if category:
        bits += format(dc if dc > 0 else dc + (1 << category) - 1, f"0{category}b")
    bits += "0"  # the AC table's only code: end of block
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xDB, b"\x00" + b"\x01" * 64)
        + segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + bytes([category]))
        + segment(0xC4, b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00")
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class RequestRecord:
    """One request the fake received; ``time`` is the injected clock at arrival.

    Records are appended on arrival, so ``fake.requests`` is in arrival order. ``status`` is -1
    while the request is in flight and 0 when the connection was dropped without a response.
    """

    time: float
    method: str
    path: str
    query: dict[str, str]
    status: int
    ip: str
    has_token: bool


@dataclass(frozen=True, slots=True)
class Limit:
    """R requests per T seconds; L strikes within the strike window block the IP."""

    requests: int
    per_seconds: float
    strikes_before_block: int


@dataclass(slots=True)
class _IpState:
    arrivals: collections.deque[float] = field(default_factory=collections.deque)
    strikes: collections.deque[float] = field(default_factory=collections.deque)
    blocked_until: float | None = None


@dataclass(slots=True)
class _Verdict:
    headers: dict[str, str]
    rejection: str | None = None  # the 429 message, when rejected


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: Literal["error", "malformed", "html", "empty", "drop", "raw"]
    status: int = 500
    message: str = "Internal Server Error"
    body: bytes = b""
    content_type: str = "application/json"


def _rejected(limit_header: str, wait: int) -> dict[str, str]:
    """The headers of a 429: nothing remains until ``wait`` seconds from now."""
    return {
        "X-RateLimit-Limit": limit_header,
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(wait),
        "Retry-After": str(wait),
    }


def _ceil_seconds(seconds: float) -> int:
    # A hair of tolerance so that float noise (1.0000000002) does not round a whole second up.
    return max(0, math.ceil(seconds - 1e-9))


# --------------------------------------------------------------------------- the server


class LimitedFakeServer:
    """A loopback fake API: limiter, faults and request log; subclasses add the endpoints.

    ``clock`` (monotonic seconds) drives the limiter and the request log. Assign
    ``rate_limit = (R, T)`` (or ``None``), ``strikes_before_block``, ``strike_window``,
    ``block_seconds`` and ``latency`` at run time.
    """

    api_prefix: ClassVar[str] = "/api"
    """Every API path starts with this; other paths (file storage) are never limited."""
    rate_limited_message: ClassVar[str] = "Too many requests"
    blocked_message: ClassVar[str] = "Too many requests, blocked"
    malformed_body: ClassVar[str] = '{"data": [{"id": "'
    rate_limit_headers: ClassVar[bool] = True
    """Whether responses carry ``X-RateLimit-*`` (a 429 always carries ``Retry-After``)."""
    name: ClassVar[str] = "fake API"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        rate_limit: tuple[int, float] | None,
        strikes_before_block: int,
        strike_window: float,
        block_seconds: float,
        latency: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.rate_limit = rate_limit
        self.strikes_before_block = strikes_before_block
        self.strike_window = strike_window
        self.block_seconds = block_seconds
        self.latency = latency
        self.clock = clock

        self.requests: list[RequestRecord] = []
        self.count_429 = 0
        self.blocked_ips: set[str] = set()

        self._faults: collections.deque[_Fault] = collections.deque()
        self._ips: dict[str, _IpState] = {}
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ what a version supplies

    def _routes(self) -> Sequence[tuple[str, Handler]]:
        """``(path, handler)`` pairs served with GET."""
        raise NotImplementedError

    def _error(self, status: int, message: Any) -> web.Response:
        """The version's JSON error body."""
        raise NotImplementedError

    def _unmatched(self, status: int) -> web.Response:
        """The answer to an unknown path under the API prefix."""
        return self._error(status, "Not Found")

    def _admit(self, request: web.Request) -> Sequence[str]:
        """Checks before the limiter (raise :class:`FakeReply` to answer uncounted); returns the
        caller's token scopes, which may change its limit."""
        return ()

    def _limit_for(self, scopes: Sequence[str]) -> Limit | Literal["bypass"] | None:
        if self.rate_limit is None:
            return None
        requests_default, per_default = self.rate_limit
        return Limit(requests_default, per_default, self.strikes_before_block)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind and start serving; ``base_url`` is valid afterwards."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._middleware])
        for path, handler in self._routes():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.debug("%s listening on %s", self.name, self.base_url)

    async def _add_site(self, port: int) -> int:
        """Serve the same application on another ``port`` too (0: a free one); return it."""
        if self._runner is None:
            raise RuntimeError("the fake is not started")
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        return int(self._runner.addresses[-1][1])

    async def close(self) -> None:
        """Stop serving and drop open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        """``http://host:port`` of the running server."""
        if self._runner is None:
            raise RuntimeError("the fake is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:PORT/api``."""
        return f"{self.origin}{self.api_prefix}"

    def url(self, path: str) -> str:
        """``base_url`` joined with an endpoint path such as ``/image/random``."""
        return self.base_url + path

    # ------------------------------------------------------------------ fault switches

    def fail_next(self, n: int = 1, status: int = 500, message: str | None = None) -> None:
        """The next ``n`` API requests get the version's JSON error body."""
        text = message or ("Internal Server Error" if status >= 500 else "Error")
        self._faults.extend(_Fault("error", status, text) for _ in range(n))

    def malformed_json_next(self, n: int = 1) -> None:
        """The next ``n`` API requests get ``200 application/json`` with a broken body."""
        self._faults.extend(_Fault("malformed", 200) for _ in range(n))

    def html_error_next(self, n: int = 1, status: int = 502) -> None:
        """The next ``n`` API requests get a proxy's HTML error page."""
        self._faults.extend(_Fault("html", status) for _ in range(n))

    def empty_error_next(self, n: int = 1, status: int = 503) -> None:
        """The next ``n`` API requests get ``status`` with an empty body."""
        self._faults.extend(_Fault("empty", status) for _ in range(n))

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` API requests have their connection closed without a response."""
        self._faults.extend(_Fault("drop", 0) for _ in range(n))

    def raw_next(
        self,
        n: int = 1,
        status: int = 500,
        body: bytes | str = b"",
        content_type: str = "application/json",
    ) -> None:
        """The next ``n`` API requests get exactly ``body`` with ``status`` (any shape at all)."""
        data = body.encode() if isinstance(body, str) else body
        self._faults.extend(
            _Fault("raw", status, body=data, content_type=content_type) for _ in range(n)
        )

    def clear_faults(self) -> None:
        """Cancel every queued fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many queued faults have not fired yet."""
        return len(self._faults)

    def block_ip(self, ip: str = "127.0.0.1", seconds: float | None = None) -> None:
        """Block ``ip`` now, for ``seconds`` (default ``block_seconds``), as after too many 429s."""
        state = self._ips.setdefault(ip, _IpState())
        state.blocked_until = self.clock() + (self.block_seconds if seconds is None else seconds)
        self.blocked_ips.add(ip)

    def unblock_ip(self, ip: str = "127.0.0.1") -> None:
        """Lift a block and forget the IP's strikes."""
        state = self._ips.get(ip)
        if state is not None:
            state.blocked_until = None
            state.strikes.clear()

    def is_blocked(self, ip: str = "127.0.0.1") -> bool:
        """Whether ``ip`` is blocked at the current ``clock`` time."""
        state = self._ips.get(ip)
        return bool(
            state and state.blocked_until is not None and self.clock() < state.blocked_until
        )

    def strikes(self, ip: str = "127.0.0.1") -> int:
        """Rate-limit hits of ``ip`` still inside ``strike_window``."""
        state = self._ips.get(ip)
        if state is None:
            return 0
        now = self.clock()
        return sum(1 for t in state.strikes if t > now - self.strike_window)

    # ------------------------------------------------------------------ observation

    @property
    def api_requests(self) -> list[RequestRecord]:
        """``requests`` under the API prefix only (file downloads left out)."""
        return [r for r in self.requests if r.path.startswith(self.api_prefix)]

    # ------------------------------------------------------------------ internals: plumbing

    @staticmethod
    def _client_ip(request: web.Request) -> str:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        return first or request.remote or "unknown"

    def _open_record(self, request: web.Request, arrival: float, ip: str) -> RequestRecord:
        record = RequestRecord(
            time=arrival,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            status=-1,
            ip=ip,
            has_token=bool(request.headers.get("Authorization")),
        )
        self.requests.append(record)
        return record

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        arrival = self.clock()
        ip = self._client_ip(request)
        record = self._open_record(request, arrival, ip)
        if not request.path.startswith(self.api_prefix):
            response = await self._plain(request, handler)
            record.status = response.status
            return response
        # Everything the limiter decides is decided on arrival, before any added latency.
        fault = self._faults.popleft() if self._faults else None
        verdict = _Verdict(headers={})
        early: web.Response | None = None
        unmatched = request.match_info.http_exception
        if fault is not None:
            self._note_arrival(ip, arrival)
        elif unmatched is not None:
            early = self._unmatched(unmatched.status)
        else:
            try:
                scopes = self._admit(request)
            except FakeReply as reply:  # answered before the limiter, so not counted
                early = self._error(reply.status, reply.message)
            else:
                verdict = self._judge(ip, arrival, scopes)
                if verdict.rejection is not None:
                    self.count_429 += 1
                    early = self._error(429, verdict.rejection)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return await self._fault_response(request, fault, record)
        response = early if early is not None else await self._plain(request, handler)
        response.headers.update(
            verdict.headers
            if self.rate_limit_headers
            else {k: v for k, v in verdict.headers.items() if k == "Retry-After"}
        )
        record.status = response.status
        return response

    async def _plain(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run a handler, turning :class:`FakeReply` into the JSON error and crashes into 500."""
        try:
            return await handler(request)
        except FakeReply as reply:
            return self._error(reply.status, reply.message)
        except web.HTTPException:
            raise
        except Exception:  # the server's unhandled errors become a bare 500
            log.debug("%s crashed on %s (as the live server would)", self.name, request.path)
            return web.Response(status=500, text="Internal Server Error")

    async def _fault_response(
        self, request: web.Request, fault: _Fault, record: RequestRecord
    ) -> web.StreamResponse:
        if fault.kind == "drop":
            record.status = 0
            transport = request.transport
            if transport is not None:
                transport.close()
            # Nothing can be sent any more; aiohttp drops this response on the closed transport.
            raise asyncio.CancelledError
        response: web.Response
        if fault.kind == "error":
            response = self._error(fault.status, fault.message)
        elif fault.kind == "malformed":
            response = web.Response(
                status=fault.status, text=self.malformed_body, content_type="application/json"
            )
        elif fault.kind == "html":
            title = (
                f"{fault.status} Bad Gateway" if fault.status == 502 else f"{fault.status} Error"
            )
            page = (
                f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
                "</center><hr><center>cloudflare</center></body></html>"
            )
            response = web.Response(status=fault.status, text=page, content_type="text/html")
        elif fault.kind == "raw":
            response = web.Response(
                status=fault.status, body=fault.body, content_type=fault.content_type
            )
        else:
            response = web.Response(status=fault.status, body=b"")
        record.status = response.status
        return response

    # ------------------------------------------------------------------ internals: the limiter

    def _note_arrival(self, ip: str, arrival: float) -> None:
        limit = self._limit_for([])
        if isinstance(limit, Limit):
            self._ips.setdefault(ip, _IpState()).arrivals.append(arrival)

    def _judge(self, ip: str, now: float, scopes: Sequence[str]) -> _Verdict:
        """Count this arrival and decide: pass (with headers) or a 429 message."""
        limit = self._limit_for(scopes)
        if limit == "bypass":
            return _Verdict(headers={})
        state = self._ips.setdefault(ip, _IpState())
        if isinstance(limit, Limit):
            state.arrivals.append(now)
            while state.arrivals and state.arrivals[0] <= now - limit.per_seconds:
                state.arrivals.popleft()
        limit_header = str(limit.requests if isinstance(limit, Limit) else 0)

        if state.blocked_until is not None:
            if now < state.blocked_until:
                wait = max(1, _ceil_seconds(state.blocked_until - now))
                return _Verdict(_rejected(limit_header, wait), rejection=self.blocked_message)
            state.blocked_until = None
            state.strikes.clear()
        if not isinstance(limit, Limit):
            return _Verdict(headers={})

        count = len(state.arrivals)
        if count > limit.requests:
            state.strikes.append(now)
            while state.strikes and state.strikes[0] <= now - self.strike_window:
                state.strikes.popleft()
            if len(state.strikes) >= limit.strikes_before_block:
                state.blocked_until = now + self.block_seconds
                self.blocked_ips.add(ip)
                log.debug("%s blocks %s", self.name, ip)
            # The next request passes once the R-th most recent arrival has left the window.
            wait = max(1, _ceil_seconds(state.arrivals[-limit.requests] + limit.per_seconds - now))
            return _Verdict(_rejected(limit_header, wait), rejection=self.rate_limited_message)
        reset = _ceil_seconds(state.arrivals[0] + limit.per_seconds - now) if state.arrivals else 0
        return _Verdict(
            headers={
                "X-RateLimit-Limit": limit_header,
                "X-RateLimit-Remaining": str(max(0, limit.requests - count)),
                "X-RateLimit-Reset": str(reset),
            }
        )
