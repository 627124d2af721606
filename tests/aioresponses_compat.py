"""aioresponses on aiohttp 3.14+: supply the ``stream_writer`` its ClientResponse now requires.

aioresponses 0.7.x builds ``ClientResponse`` without that argument (pnuckowski/aioresponses#289),
so every mocked request fails with a TypeError. :func:`mocked_http` patches in a response class
that passes a finished-upload stand-in, and is a plain ``aioresponses()`` on older aiohttp.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import aioresponses.core
from aiohttp import ClientResponse
from aioresponses import aioresponses as _aioresponses

__all__ = ["mocked_http"]

_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class _FinishedUpload:
    """Stands in for the request's stream writer once the (empty) upload is done."""

    output_size = 0


class _CompatClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _FinishedUpload())
        super().__init__(method, url, **kwargs)


@contextmanager
def mocked_http() -> Iterator[_aioresponses]:
    """``aioresponses()``, made to work with the installed aiohttp."""
    if not _NEEDS_STREAM_WRITER:
        with _aioresponses() as m:
            yield m
        return
    with (
        mock.patch.object(aioresponses.core, "ClientResponse", _CompatClientResponse),
        _aioresponses() as m,
    ):
        yield m
