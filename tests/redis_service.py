"""Redis for the tests: the machine's server with a key prefix per test, or a private server.

* ``redis_url`` — the shared server (``TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).
* ``redis_prefix`` — a random key prefix for one test; its keys are deleted afterwards.
* ``private_redis`` — a ``redis-server`` of the test's own on a free port, which the test may
  kill and start again (other tests and helpers share the machine's server, so it is never
  restarted).

Without Redis (or without ``redis-server`` for the private one) the tests that need it are
skipped with one line saying why; with ``CI=true`` that is a failure instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.pg_service import require_service

__all__ = [
    "PrivateRedis",
    "answers",
    "delete_prefix",
    "free_port",
    "private_redis",
    "redis_prefix",
    "redis_url",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 10.0


async def answers(url: str) -> bool:
    """Whether a Redis server answers at ``url``."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


@pytest.fixture
async def redis_url() -> str:
    """The shared Redis server's URL; skips (fails under CI) when it does not answer."""
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_URL)
    if not await answers(url):
        require_service(f"Redis is not reachable at {url}: start it to run the Redis tests")
    return url


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared server; every key under it is deleted."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    await delete_prefix(redis_url, prefix)


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (a test's or a benchmark's own)."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of one test's own, keeping nothing on disk; stop and start it at will."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._workdir = workdir
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the server on its port and wait until it answers."""
        if self.running:
            return
        with (self._workdir / "redis.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not await answers(self.url):
            exited = self._process is None or self._process.returncode is not None
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """``kill -9`` the server: everything it held is gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A started private Redis; killed after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server is not installed: the Redis restart tests need their own")
        raise AssertionError("unreachable")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = PrivateRedis(binary, workdir)
    try:
        await server.start()
        yield server
    finally:
        await server.kill()
