"""The real PostgreSQL server for tests: a fresh database per test, and a proxy that can cut it off.

The development and CI machines run PostgreSQL at 127.0.0.1:5432 (trust auth, user ``postgres``,
database ``test``). Tests that need it take the :func:`pg_database` fixture, which creates a
database with a random name and drops it afterwards, so tests (and other projects' tests on the
same server) never see each other's data. Without the server those tests are skipped with one
line saying why (the :func:`pytest_runtest_setup` hook, imported into ``tests/conftest.py``);
with ``CI=true`` its absence fails them instead (``.ci/run`` starts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

__all__ = [
    "PG_HOST",
    "PG_PORT",
    "PgDatabase",
    "TcpProxy",
    "fresh_database",
    "pg_database",
    "pytest_runtest_setup",
    "require_service",
    "tcp_proxy",
    "wait_until",
]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/test"

_probe: list[str | None] = []  # [] = not probed yet; [None] = reachable; [reason] = not
_port_probe: list[str | None] = []


def require_service(reason: str) -> None:
    """Skip the test because a service is missing, or fail it when ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it (.ci/run starts it)", pytrace=False)
    pytest.skip(reason)


def _needs_postgres(item: pytest.Item) -> bool:
    """Tests that take a database, or run once per backend with ``postgres`` as the backend."""
    if "pg_database" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgres" in callspec.params.values()


def _port_closed_reason() -> str | None:
    if not _port_probe:
        try:
            socket.create_connection((PG_HOST, PG_PORT), timeout=2).close()
        except OSError as exc:
            _port_probe.append(
                f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({type(exc).__name__})"
            )
        else:
            _port_probe.append(None)
    return _port_probe[0]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or with CI=true fail) a test needing PostgreSQL before its fixtures run.

    Raised here, every such skip has the same location and reason, so pytest's summary folds
    them into one line.
    """
    if _needs_postgres(item) and (reason := _port_closed_reason()) is not None:
        require_service(reason)


async def _unreachable_reason() -> str | None:
    if not _probe:
        try:
            conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            _probe.append(
                f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({type(exc).__name__})"
            )
        else:
            await conn.close()
            _probe.append(None)
    return _probe[0]


@dataclass
class PgDatabase:
    """One test's own database on the shared server."""

    name: str
    port: int = PG_PORT

    @property
    def url(self) -> str:
        """A ``DATABASE_URL`` for this database (trust auth: no password needed)."""
        return self.url_via(self.port)

    def url_via(self, port: int, password: str | None = None) -> str:
        """The URL through another port (a :class:`TcpProxy`), optionally with a password."""
        user = PG_USER if password is None else f"{PG_USER}:{password}"
        return f"postgresql://{user}@{PG_HOST}:{port}/{self.name}"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """A plain connection to this database, behind the store's back."""
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            yield conn
        finally:
            await conn.close()

    async def allow_connections(self, allowed: bool) -> None:
        """Let new connections in, or refuse them (those already open keep working)."""
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await conn.execute(
                f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}'
            )
        finally:
            await conn.close()

    async def terminate_backends(self, application_name: str | None = None) -> int:
        """Kill this database's server connections (all, or one application's); how many."""
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()"
                " AND ($2::text IS NULL OR application_name = $2)",
                self.name,
                application_name,
            )
        finally:
            await conn.close()
        return int(killed)


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[PgDatabase]:
    """A new, empty database on the real server, dropped on exit (skips or fails without it)."""
    reason = await _unreachable_reason()
    if reason is not None:
        require_service(reason)
    name = f"nekos_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield PgDatabase(name)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_database() -> AsyncIterator[PgDatabase]:
    """A new, empty database on the real server, dropped after the test."""
    async with fresh_database() as database:
        yield database


@dataclass
class TcpProxy:
    """A loopback TCP proxy to the server that a test can stop (the database is down: refused),
    start again on the same port, or pause (the network drops packets: nothing answers)."""

    target_port: int = PG_PORT
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, PG_HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and reset every open one."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    def pause(self) -> None:
        """Keep connections open but forward nothing (a silent network)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(PG_HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@contextlib.asynccontextmanager
async def tcp_proxy(target_port: int = PG_PORT) -> AsyncIterator[TcpProxy]:
    """A started :class:`TcpProxy`, stopped afterwards."""
    proxy = TcpProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> None:
    """Poll ``check`` (sync or async) until it holds; the bound is for correctness, not timing."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)
