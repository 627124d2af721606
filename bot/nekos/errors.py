"""One exception hierarchy for everything the Nekos API adapter can raise.

Every error carries the HTTP ``status`` (``None`` when no response arrived), the API's own
``code`` when the body had one, the server's ``message`` and the ``endpoint`` it concerns.
Callers catch :class:`NekosError` to handle every adapter failure in one place.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "BadRequest",
    "Blocked",
    "DownloadTooLarge",
    "Forbidden",
    "HTTPError",
    "InvalidParameter",
    "NekosError",
    "NotFound",
    "RateLimited",
    "ResponseParseError",
    "ServerError",
    "Unauthorized",
    "Unavailable",
]


class NekosError(Exception):
    """Base class of every error the adapter raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.endpoint = endpoint
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        if self.endpoint:
            parts.append(self.endpoint)
        if self.status is not None:
            parts.append(str(self.status))
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class InvalidParameter(NekosError, ValueError):
    """A parameter failed the adapter's own checks; no request was made."""


class HTTPError(NekosError):
    """The server answered with an error status."""


class BadRequest(HTTPError):
    """400: the server rejected the parameters."""


class Unauthorized(HTTPError):
    """401: the token is missing or not valid."""


class Forbidden(HTTPError):
    """403: the token lacks a scope the request needs."""


class NotFound(HTTPError):
    """404: nothing with that id (or, for random images, nothing sampled this time)."""


class RateLimited(HTTPError):
    """429: too many requests; ``retry_after`` says how long to wait, in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = 429,
        code: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, endpoint=endpoint)


class Blocked(RateLimited):
    """The IP is (or would soon be) blocked; nothing is sent until ``until``.

    Raised both when the server reports the one-hour ban and when the client's own strike
    budget stops it from sending, so that it never earns the ban.
    """

    def __init__(
        self,
        message: str,
        *,
        until: dt.datetime,
        retry_after: float,
        status: int | None = 429,
        code: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.until = until
        super().__init__(
            message, retry_after=retry_after, status=status, code=code, endpoint=endpoint
        )


class ServerError(HTTPError):
    """5xx: the server (or a proxy in front of it) failed."""


class Unavailable(NekosError):
    """No usable response: a timeout, a refused or dropped connection."""


class ResponseParseError(NekosError):
    """The response body could not be understood as the endpoint's documented shape."""


class DownloadTooLarge(NekosError):
    """A downloaded file was bigger than the caller's cap; the transfer was abandoned."""

    def __init__(
        self,
        message: str,
        *,
        max_bytes: int,
        size: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.size = size
        super().__init__(message, endpoint=endpoint)
