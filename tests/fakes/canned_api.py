"""A loopback HTTP server that answers each path with the JSON a test hands it, whatever it holds.

Where :mod:`tests.fakes.nekos_api` behaves like the real Nekos API over a generated dataset, this
one serves exactly the bodies it is given, so a test can put hostile or malformed data in every
field of any response shape (the v1 reference and live shapes today, another API version later)::

    async with CannedAPI() as api:
        api.routes = {"/stats": {"data": {...}, "success": True}, "/category": Paged([...])}
        ...  # point a client at api.base_url

``routes`` maps a path (below ``/api``, query string ignored) to a JSON body, or to
:class:`Paged` items served as v1 list pages (``limit``/``offset`` honoured, ``meta.pagination``
added). Unknown paths answer the API's JSON 404. ``routes`` may be replaced between requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["CannedAPI", "Paged"]


@dataclass(frozen=True)
class Paged:
    """List items served as ``{"data": [...], "meta": {"pagination": ...}, "success": true}``."""

    items: Sequence[Any]


def _json(body: Any, status: int = 200) -> web.Response:
    # ensure_ascii keeps lone surrogates and other oddities as \\u escapes, as a JSON API would.
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


class CannedAPI:
    """Serves :attr:`routes` on ``127.0.0.1`` at :attr:`base_url` (``http://…/api``)."""

    def __init__(self, routes: Mapping[str, Any] | None = None) -> None:
        self.routes: Mapping[str, Any] = routes or {}
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def __aenter__(self) -> CannedAPI:
        app = web.Application()
        app.router.add_route("GET", "/api{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].rstrip("/") or "/"
        self.requests.append(path)
        body = self.routes.get(path)
        if body is None:
            return _json({"code": 404, "message": "Not found", "success": False}, 404)
        if isinstance(body, Paged):
            limit = max(1, _int(request.query.get("limit"), 25))
            offset = max(0, _int(request.query.get("offset"), 0))
            items = list(body.items[offset : offset + limit])
            pagination = {
                "limit": limit,
                "offset": offset,
                "count": len(items),
                "total": len(body.items),
            }
            return _json({"data": items, "meta": {"pagination": pagination}, "success": True})
        return _json(body)
