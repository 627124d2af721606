"""``python -m bot``: exit codes and one-line errors, ``preview`` JSON, ``check``, ``health`` and
``migrate-store``.

Each test runs the real command line in a subprocess against a FakeNekosAPI served from this
test's event loop (hence ``asyncio.create_subprocess_exec``). ``--env-file`` points into
``tmp_path`` so a developer's own ``.env`` is never read.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.health import write_heartbeat
from bot.nekos.models import Rating
from bot.store import open_store
from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI
from tests.pg_service import PgDatabase

REPO = Path(__file__).resolve().parents[1]
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A third of the images per rating, so "never shows a non-sfw image" is tested with many around.
DATASET = generate_dataset(seed=11, images=450, ratings=(1.0, 1.0, 1.0))


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    tmp_path: Path
    env_file: Path

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """``python -m bot --env-file <tmp> args…``."""
        return await self._run(["-m", "bot", "--env-file", str(self.env_file), *args], env)

    async def python(self, code: str, env: dict[str, str] | None = None) -> Result:
        """``python -c code`` in the same environment."""
        return await self._run(["-c", code], env)

    async def _run(self, argv: list[str], env: dict[str, str] | None) -> Result:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp_path),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "HEALTH_FILE": "",
            "DATA_DIR": str(self.tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{self.tmp_path / 'bot.db'}",
        }
        full_env.update(env or {})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            cwd=REPO,
            env=full_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return Result(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "test.env")


@pytest.fixture
async def fake() -> AsyncIterator[FakeNekosAPI]:
    async with FakeNekosAPI(DATASET, rate_limit=None) as server:
        yield server


def api_env(fake: FakeNekosAPI) -> dict[str, str]:
    # The scope lifts the client's own pacing, so no request waits a second.
    return {
        "NEKOS_API_BASE_URL": fake.base_url,
        "NEKOS_API_TOKEN": fake.add_token(["api:ratelimit:disabled"]),
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_clean_failure(result: Result) -> None:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines
    assert lines[-1].startswith("error: ")


def image_ids(payload: dict[str, Any]) -> list[str]:
    ids = []
    for embed in payload["embeds"]:
        footer = embed.get("footer", {}).get("text", "")
        if footer.startswith(("Artist", "Character")):
            continue
        found = UUID_RE.findall(footer)
        if found:
            ids.append(found[-1])
    return ids


def minor_violation(dataset: Dataset, image_id: str) -> bool:
    row = dataset.image_by_id[image_id]
    return row.nsfw != "sfw" and any(
        any(age < 18 for age in dataset.character_by_id[c].ages or ()) for c in row.character_ids
    )


# ------------------------------------------------------------------------------ settings errors


async def test_run_without_a_discord_token_exits_2_with_one_line(cli: Cli) -> None:
    # `run` is also what no subcommand means.
    for result in await asyncio.gather(cli("run"), cli()):
        assert result.code == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: DISCORD_TOKEN is not set")


async def test_malformed_discord_token_exits_2_without_echoing_it(cli: Cli) -> None:
    token = "abcdefghijklmnopqrstuvwxyz.not-a-real-token"
    result = await cli("run", env={"DISCORD_TOKEN": token})
    assert result.code == 2
    assert_clean_failure(result)
    assert "DISCORD_TOKEN is malformed" in result.stderr
    assert token not in result.output
    assert "abcdefghijklmnopqrstuvwxyz" not in result.output


async def test_malformed_token_in_the_env_file_is_not_echoed(cli: Cli) -> None:
    token = "x" * 40 + ".yy"
    cli.env_file.write_text(f"DISCORD_TOKEN={token}\n", encoding="utf-8")
    result = await cli("check")
    assert result.code == 2
    assert_clean_failure(result)
    assert "x" * 40 not in result.output


async def test_invalid_setting_exits_2_naming_it(cli: Cli) -> None:
    result = await cli("preview", "stats", env={"NEKOS_API_TIMEOUT": "soon"})
    assert result.code == 2
    assert_clean_failure(result)
    assert "NEKOS_API_TIMEOUT" in result.stderr


@pytest.fixture
async def rejecting_discord() -> AsyncIterator[str]:
    """A Discord REST stand-in that rejects every token (401), as Discord does a revoked one."""

    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/api/v10"
    await runner.cleanup()


async def test_rejected_discord_token_is_one_clear_line(cli: Cli, rejecting_discord: str) -> None:
    env = {
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_BASE_URL": rejecting_discord,
        "NEKOS_API_BASE_URL": f"http://127.0.0.1:{closed_port()}/api",
    }
    for result in await asyncio.gather(cli("run", env=env), cli("sync", env=env)):
        assert result.code == 2
        assert_clean_failure(result)
        last = result.stderr.strip().splitlines()[-1]
        assert "DISCORD_TOKEN" in last
        assert "rejected" in last
        assert DISCORD_TOKEN not in result.output


# ------------------------------------------------------------------------------ preview


def _kind_args(kind: str) -> list[str]:
    if kind == "random":
        return ["--count", "3"]
    if kind == "artist":
        artist = next(a for a in DATASET.artists if DATASET.images_by_artist(a.id))
        return ["--name", artist.name]
    if kind == "character":
        return ["--name", DATASET.characters[0].name]
    if kind == "image":
        return ["--id", next(i.id for i in DATASET.images if i.nsfw == "sfw")]
    return []


KINDS = ("random", "artist", "character", "image", "category", "stats")


async def test_preview_prints_the_payload_as_json_for_every_kind(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    env = api_env(fake)
    results = await asyncio.gather(
        *(cli("preview", kind, *_kind_args(kind), "--json", env=env) for kind in KINDS)
    )
    payloads = {}
    for kind, result in zip(KINDS, results, strict=True):
        assert result.code == 0, (kind, result.output)
        assert "Traceback" not in result.stderr
        payload = result.json()
        assert "flags" not in payload, kind
        assert payload["allowed_mentions"] == {"parse": []}
        assert 1 <= len(payload["embeds"]) <= 10, kind
        assert isinstance(payload["components"], list)
        payloads[kind] = payload
    assert 1 <= len(image_ids(payloads["random"])) <= 3
    assert image_ids(payloads["image"]) == _kind_args("image")[1:]
    artist = DATASET.artist_named(_kind_args("artist")[1])
    assert artist.id in payloads["artist"]["embeds"][0]["footer"]["text"]
    assert payloads["character"]["embeds"][0]["title"] == DATASET.characters[0].name
    assert payloads["category"]["embeds"][0]["title"] == "Categories"
    stats = {f["name"]: f["value"] for f in payloads["stats"]["embeds"][0]["fields"]}
    assert stats["Images"] == f"{len(DATASET.images):,}"


async def test_preview_reads_settings_from_the_env_file(cli: Cli, fake: FakeNekosAPI) -> None:
    settings = api_env(fake)
    cli.env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in settings.items()), encoding="utf-8"
    )
    result = await cli("preview", "stats")
    assert result.code == 0, result.output
    assert result.json()["embeds"][0]["title"] == "Nekos API statistics"


async def test_preview_with_max_rating_sfw_never_shows_a_non_sfw_image(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    env = api_env(fake)
    variants = ([], ["--rating", "sfw"], ["--max-rating", "sfw", "--rating", "sfw"])
    results = await asyncio.gather(
        *(cli("preview", "random", "--count", "10", *extra, env=env) for extra in variants)
    )
    shown: list[str] = []
    for result in results:
        assert result.code == 0, result.output
        shown += image_ids(result.json())
    assert shown
    assert {DATASET.image_by_id[i].nsfw for i in shown} == {"sfw"}


@pytest.mark.parametrize("rating", ["questionable", "nsfw"])
async def test_preview_rating_above_the_channel_is_a_refusal_in_words(
    cli: Cli, fake: FakeNekosAPI, rating: str
) -> None:
    result = await cli("preview", "random", "--rating", rating, env=api_env(fake))
    assert result.code == 1
    payload = result.json()
    assert payload["flags"] == 64
    assert payload["embeds"] == []
    assert "This channel shows images up to **sfw**" in payload["content"]
    assert "/neko-config channel" in payload["content"]
    assert not [r for r in fake.api_requests if r.path == "/api/image/random"]


@pytest.mark.parametrize("rating", ["sfw", "questionable", "nsfw"])
async def test_preview_rating_is_exact(cli: Cli, fake: FakeNekosAPI, rating: str) -> None:
    env = api_env(fake)
    args = ("preview", "random", "--count", "10", "--max-rating", "nsfw", "--rating", rating)
    result = await cli(*args, env=env)
    assert result.code == 0, result.output
    shown = image_ids(result.json())
    assert len(shown) >= 5
    assert {DATASET.image_by_id[i].nsfw for i in shown} == {rating}


async def test_preview_with_max_rating_nsfw_still_refuses_minors(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    env = api_env(fake)
    args = ("preview", "random", "--count", "10", "--max-rating", "nsfw")
    shown: list[str] = []
    for result in await asyncio.gather(cli(*args, env=env), cli(*args, env=env)):
        assert result.code == 0, result.output
        shown += image_ids(result.json())
    assert shown
    assert not any(minor_violation(DATASET, i) for i in shown)


async def test_preview_of_an_image_above_the_max_is_an_ephemeral_refusal(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    image_id = next(i.id for i in DATASET.images if i.nsfw == "nsfw")
    result = await cli("preview", "image", "--id", image_id, env=api_env(fake))
    assert result.code == 1
    payload = result.json()
    assert payload["flags"] == 64
    assert payload["embeds"] == []
    assert "can't be shown" in payload["content"]


async def test_preview_with_a_rejected_token_fails_cleanly(cli: Cli, fake: FakeNekosAPI) -> None:
    token = "Q" * 100
    result = await cli(
        "preview", "stats", env={"NEKOS_API_BASE_URL": fake.base_url, "NEKOS_API_TOKEN": token}
    )
    assert result.code == 1
    assert_clean_failure(result)
    assert "NEKOS_API_TOKEN was rejected" in result.stderr
    assert token not in result.output


# ------------------------------------------------------------------------------ check


async def test_check_passes_against_the_fake(cli: Cli, fake: FakeNekosAPI) -> None:
    result = await cli("check", env={"DISCORD_TOKEN": DISCORD_TOKEN, **api_env(fake)})
    assert result.code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "[ok] discord token",
        "[ok] store",
        "[ok] content",
        "[ok] nekos api",
        "[ok] nekos api token",
        "[ok] request budget",
    ]
    assert "scopes: api:ratelimit:disabled" in result.stdout
    budget_file = cli.tmp_path / "data" / "request-budget.db"
    assert f"request budget: shared through the data folder ({budget_file}; key " in result.stdout
    assert DISCORD_TOKEN not in result.output
    assert (cli.tmp_path / "bot.db").exists()


async def test_check_fails_cleanly_when_the_api_is_unreachable(cli: Cli) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/api"
    result = await cli(
        "check",
        env={
            "DISCORD_TOKEN": DISCORD_TOKEN,
            "NEKOS_API_BASE_URL": base_url,
            "NEKOS_API_TIMEOUT": "1",
        },
    )
    assert result.code == 1
    assert "Traceback" not in result.output
    assert f"[FAIL] nekos api: unreachable at {base_url}" in result.stdout
    assert "[ok] store" in result.stdout


async def test_check_reports_a_redis_it_cannot_reach(cli: Cli, fake: FakeNekosAPI) -> None:
    redis_url = f"redis://127.0.0.1:{closed_port()}/0"
    result = await cli(
        "check", env={"DISCORD_TOKEN": DISCORD_TOKEN, "REDIS_URL": redis_url, **api_env(fake)}
    )
    assert result.code == 1
    assert "Traceback" not in result.output
    # Never reached, and no host count remembered: nothing is sent until Redis answers.
    assert "[FAIL] request budget: paused: Redis unreachable since " in result.stdout
    assert "[FAIL] nekos api:" in result.stdout
    assert not fake.api_requests


async def test_check_fails_cleanly_with_a_token_the_api_does_not_know(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    token = "Zz9" * 33 + "A"
    result = await cli(
        "check",
        env={
            "DISCORD_TOKEN": DISCORD_TOKEN,
            "NEKOS_API_BASE_URL": fake.base_url,
            "NEKOS_API_TOKEN": token,
        },
    )
    assert result.code != 0
    assert "Traceback" not in result.output
    assert "[FAIL] nekos api token: rejected by the API" in result.stdout
    assert token not in result.output


async def test_check_reports_a_missing_discord_token(cli: Cli, fake: FakeNekosAPI) -> None:
    result = await cli("check", env=api_env(fake))
    assert result.code == 1
    assert "[FAIL] discord token: DISCORD_TOKEN is not set" in result.stdout
    assert "[ok] nekos api:" in result.stdout


async def test_check_reports_an_unreachable_database_without_its_password(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    port = closed_port()
    result = await cli(
        "check",
        env={
            "DISCORD_TOKEN": DISCORD_TOKEN,
            "DATABASE_URL": f"postgresql://bot:hunter2pw@127.0.0.1:{port}/nekos",
            **api_env(fake),
        },
    )
    assert result.code == 1
    assert "Traceback" not in result.output
    assert (
        f"[FAIL] store: cannot connect to PostgreSQL at "
        f"postgresql://bot:********@127.0.0.1:{port}/nekos"
    ) in result.stdout
    assert "hunter2pw" not in result.output


async def test_unsupported_database_url_exits_2_without_echoing_it(cli: Cli) -> None:
    result = await cli("check", env={"DATABASE_URL": "mysql://root:hunter2pw@db/x"})
    assert result.code == 2
    assert_clean_failure(result)
    assert "DATABASE_URL is not usable: unsupported database URL scheme 'mysql'" in result.stderr
    assert "hunter2pw" not in result.output


async def test_check_passes_against_postgres(
    cli: Cli, fake: FakeNekosAPI, pg_database: PgDatabase
) -> None:
    url = pg_database.url_via(pg_database.port, password="hunter2pw")  # trust auth ignores it
    result = await cli(
        "check", env={"DISCORD_TOKEN": DISCORD_TOKEN, "DATABASE_URL": url, **api_env(fake)}
    )
    assert result.code == 0, result.output
    assert (
        f"[ok] store: postgresql://postgres:********@127.0.0.1:5432/{pg_database.name}: "
        "schema v2, 0 guild defaults, 0 channel overrides, 0 audit entries"
    ) in result.stdout
    assert "hunter2pw" not in result.output


# ------------------------------------------------------------------------------ migrate-store


async def test_migrate_store_copies_and_says_what_it_copied(
    cli: Cli, pg_database: PgDatabase
) -> None:
    source = f"sqlite:///{cli.tmp_path / 'old.db'}"
    async with open_store(source) as store:
        await store.set_guild_default(1, Rating.NSFW, 5)
        await store.set_channel_override(1, 2, Rating.QUESTIONABLE, 5)
        await store.set_channel_override(1, 3, Rating.SFW, 6)
    target = pg_database.url_via(pg_database.port, password="hunter2pw")

    result = await cli("migrate-store", "--from", source, "--to", target)

    assert result.code == 0, result.output
    assert result.stdout.strip() == (
        f"copied 1 guild default, 2 channel overrides, 3 audit entries from {source} to "
        f"postgresql://postgres:********@127.0.0.1:5432/{pg_database.name} "
        "(read back from the target and verified)"
    )
    assert "hunter2pw" not in result.output
    async with open_store(pg_database.url) as copied:
        settings = await copied.get_guild_settings(1)
    assert settings.default is Rating.NSFW
    assert dict(settings.overrides) == {2: Rating.QUESTIONABLE, 3: Rating.SFW}

    again = await cli("migrate-store", "--from", source, "--to", target)
    assert again.code == 1
    assert_clean_failure(again)
    assert again.stderr.strip().endswith(
        "already holds 1 guild default, 2 channel overrides, 3 audit entries; "
        "nothing was copied. Pass --replace to overwrite it"
    )
    replaced = await cli("migrate-store", "--from", source, "--to", target, "--replace")
    assert replaced.code == 0, replaced.output


async def test_migrate_store_with_a_missing_source_fails_cleanly(cli: Cli) -> None:
    result = await cli(
        "migrate-store",
        "--from",
        f"sqlite:///{cli.tmp_path / 'nope.db'}",
        "--to",
        f"sqlite:///{cli.tmp_path / 'new.db'}",
    )
    assert result.code == 1
    assert_clean_failure(result)
    assert "does not exist; nothing was copied" in result.stderr


# ------------------------------------------------------------------------------ health


async def test_health_with_the_heartbeat_disabled_fails(cli: Cli) -> None:
    result = await cli("health")
    assert result.code == 1
    assert result.stderr.strip() == "error: HEALTH_FILE is empty: the heartbeat is disabled"


async def test_health_exit_codes(cli: Cli) -> None:
    missing = cli.tmp_path / "missing" / "heartbeat"
    fresh = cli.tmp_path / "fresh" / "heartbeat"
    stale = cli.tmp_path / "stale" / "heartbeat"
    write_heartbeat(fresh, connected=True)
    write_heartbeat(stale, connected=True, now=time.time() - 3600)
    # The check reads only the heartbeat: an unreachable API does not make it fail.
    unreachable = f"http://127.0.0.1:{closed_port()}/api"
    results = await asyncio.gather(
        *(
            cli("health", env={"HEALTH_FILE": str(path), "NEKOS_API_BASE_URL": unreachable})
            for path in (missing, fresh, stale)
        )
    )
    by_name = dict(zip(("missing", "fresh", "stale"), results, strict=True))
    assert by_name["missing"].code == 1
    assert "no heartbeat" in by_name["missing"].stdout
    assert by_name["fresh"].code == 0, by_name["fresh"].output
    assert "connected" in by_name["fresh"].stdout
    assert by_name["stale"].code == 1
    assert "connection lost" in by_name["stale"].stdout


async def test_health_reports_the_reachable_shared_services(
    cli: Cli, pg_database: PgDatabase, redis_url: str
) -> None:
    fresh = cli.tmp_path / "fresh" / "heartbeat"
    stale = cli.tmp_path / "stale" / "heartbeat"
    write_heartbeat(fresh, connected=True)
    write_heartbeat(stale, connected=True, now=time.time() - 3600)
    services = {
        "DATABASE_URL": pg_database.url_via(pg_database.port, password="hunter2pw"),
        "REDIS_URL": redis_url,
    }
    ok, lost = await asyncio.gather(
        cli("health", env={"HEALTH_FILE": str(fresh), **services}),
        cli("health", env={"HEALTH_FILE": str(stale), **services}),
    )
    assert ok.code == 0, ok.output
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("connected")
    assert lines[1:] == [
        f"postgresql: reachable at postgresql://postgres:********@127.0.0.1:5432/{pg_database.name}",
        "redis: reachable at 127.0.0.1:6379",
    ]
    assert "hunter2pw" not in ok.output
    # The heartbeat alone decides the exit code.
    assert lost.code == 1
    assert "connection lost" in lost.stdout
    assert "postgresql: reachable" in lost.stdout


async def test_health_says_what_an_unreachable_service_means_without_failing(cli: Cli) -> None:
    fresh = cli.tmp_path / "fresh" / "heartbeat"
    write_heartbeat(fresh, connected=True)
    pg_port, redis_port = closed_port(), closed_port()
    result = await cli(
        "health",
        env={
            "HEALTH_FILE": str(fresh),
            "DATABASE_URL": f"postgresql://bot:hunter2pw@127.0.0.1:{pg_port}/bot",
            "REDIS_URL": f"redis://:hunter2pw@127.0.0.1:{redis_port}/0",
        },
    )
    # The bot keeps serving safely through these outages: reported, not a failed check.
    assert result.code == 0, result.output
    _, postgres, redis = result.stdout.splitlines()
    assert postgres.startswith(
        f"postgresql: unreachable at postgresql://bot:********@127.0.0.1:{pg_port}/bot ("
    )
    assert postgres.endswith("every channel shows sfw only and settings changes are refused")
    assert redis.startswith(f"redis: unreachable at 127.0.0.1:{redis_port} (")
    assert redis.endswith(
        "the request budget is on the data folder or paused, and each process serves from its"
        " own image pool, caches and cooldowns"
    )
    assert "hunter2pw" not in result.output
    assert "Traceback" not in result.output


async def test_health_stays_light(cli: Cli) -> None:
    # Docker runs it every minute: no discord, aiohttp or prometheus_client to import.
    fresh = cli.tmp_path / "heartbeat"
    write_heartbeat(fresh, connected=True)
    code = (
        "import sys; from bot.__main__ import main; "
        f"code = main(['--env-file', {str(cli.env_file)!r}, 'health']); "
        "print(sorted(m for m in ('discord', 'aiohttp', 'prometheus_client') if m in sys.modules))"
        "; sys.exit(code)"
    )
    result = await cli.python(code, env={"HEALTH_FILE": str(fresh)})
    assert result.code == 0, result.output
    assert result.stdout.splitlines()[-1] == "[]"


async def test_preview_names_every_artist_the_api_gives_only_by_id(
    cli: Cli, fake: FakeNekosAPI
) -> None:
    result = await cli("preview", "random", "--count", "10", env=api_env(fake))
    assert result.code == 0, result.output
    payload = result.json()
    rows = [DATASET.image_by_id[i] for i in image_ids(payload)]
    assert any(fake.artist_is_bare_id(r) for r in rows if r.artist_id)
    for row, embed in zip(rows, payload["embeds"], strict=True):
        if row.artist_id is None:
            assert "author" not in embed
        else:
            assert embed["author"]["name"] == f"Artist: {DATASET.artist_by_id[row.artist_id].name}"
