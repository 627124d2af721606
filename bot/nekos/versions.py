"""One way to build the client for the configured API version (used by the bot, ``preview`` and
``check``)."""

from __future__ import annotations

import logging
from typing import TypeAlias, Unpack

import aiohttp

from .capabilities import ApiVersion
from .client import NekosClient
from .transport import ClientOptions
from .v4 import NekosV4Client

__all__ = ["NekosApi", "make_client"]

log = logging.getLogger(__name__)

NekosApi: TypeAlias = NekosClient | NekosV4Client
"""Either client; ``capabilities`` says what the one at hand can do."""


def make_client(
    version: ApiVersion,
    base_url: str,
    token: str | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    **options: Unpack[ClientOptions],
) -> NekosApi:
    """The client for ``version`` at ``base_url``.

    v4 has no authentication: a ``token`` given with it is not sent anywhere (and said so once
    in the log); ``python -m bot check`` reports it too.
    """
    if version == "v4":
        if token:
            log.info("NEKOS_API_TOKEN is set but the Nekos API v4 has no authentication; not sent")
        return NekosV4Client(base_url, session, **options)
    return NekosClient(base_url, token, session, **options)
