"""Command line: ``python -m bot [run|sync|check|preview|health|migrate-store]``.

Every failure an operator can cause (a missing token, a bad setting, an unreachable API) ends in
one clear line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from . import __version__
from .config import ConfigError, Settings, load_settings
from .database_url import parse_database_url
from .logs import setup_logging

log = logging.getLogger("bot")

EXIT_CONFIG = 2
DISCORD_TOKEN_REJECTED = (
    "DISCORD_TOKEN was rejected by Discord: reset it in the Developer Portal "
    "(Bot → Reset Token) and update .env"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description=f"Nekos API bot for Discord, version {__version__}."
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sync = sub.add_parser("sync", help="register slash commands with Discord if they changed")
    sync.add_argument("--guild", type=int, help="sync to one server only (instant, for testing)")
    sync.add_argument("--force", action="store_true", help="sync even if nothing changed")
    sync.add_argument(
        "--clear", action="store_true", help="with --guild: remove that server's copies instead"
    )
    sub.add_parser("check", help="validate settings, the store and the Nekos API, then exit")
    sub.add_parser("health", help="exit 0 when the running bot is connected (Docker HEALTHCHECK)")
    migrate = sub.add_parser(
        "migrate-store",
        help="copy every setting and the audit trail from one database to another",
        description="Copy guild defaults, channel overrides and the whole audit trail (ids, "
        "times and actors kept) from one settings database to another, in one transaction on "
        "the target, then read them back and compare. Stop the bot first.",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="URL", help="copy from")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL", help="copy to")
    migrate.add_argument(
        "--replace",
        action="store_true",
        help="delete what the target already holds first (by default a non-empty target is "
        "refused and nothing is written)",
    )

    preview = sub.add_parser(
        "preview", help="print the message a command would send, without Discord"
    )
    preview.add_argument(
        "kind", choices=["random", "artist", "character", "image", "category", "stats"]
    )
    preview.add_argument(
        "--categories",
        "--tags",
        dest="categories",
        default="",
        help="random: comma-separated categories (v1) or tags (v4)",
    )
    preview.add_argument("--count", type=int, default=1, help="random: number of images (1-10)")
    preview.add_argument(
        "--rating", choices=["sfw", "questionable", "nsfw"], help="random: exactly this rating"
    )
    preview.add_argument("--name", default="", help="artist / character: name to look up")
    preview.add_argument("--id", default="", help="image: the image's id (v1 UUID, v4 number)")
    preview.add_argument("--search", default="", help="category: filter the list")
    preview.add_argument("--page", type=int, default=1, help="artist / category: page number")
    preview.add_argument(
        "--max-rating",
        choices=["sfw", "questionable", "nsfw"],
        default="sfw",
        help="the channel's allowed maximum (default sfw)",
    )
    preview.add_argument("--json", action="store_true", help="print Discord JSON (the default)")
    return parser


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _secrets(settings: Settings, database_urls: Sequence[str]) -> list[str]:
    secrets = [s.reveal() for s in (settings.discord_token, settings.nekos_api_token) if s]
    for url in database_urls:
        try:
            secrets.extend(parse_database_url(url).secrets)
        except ValueError:
            continue  # refused with its own message later; nothing to mask in it
    if settings.redis_url is not None:
        password = urlsplit(settings.redis_url.reveal()).password
        if password:
            secrets.append(password)
    return secrets


async def _run_bot(settings: Settings) -> int:
    import discord

    from .core import NekosBot

    token = settings.require_discord_token()
    bot = NekosBot(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(bot.start(token.reveal()), name="bot")
    waiter = asyncio.create_task(stop.wait(), name="signal")
    done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        log.info("Shutting down")
    await bot.close()
    waiter.cancel()
    error = runner.exception() if runner in done else None
    runner.cancel()
    if isinstance(error, discord.LoginFailure):
        raise ConfigError(DISCORD_TOKEN_REJECTED) from None
    if error is not None:
        raise error
    return 0


async def _sync(settings: Settings, guild_id: int | None, force: bool, clear: bool) -> int:
    import discord

    from .core import NekosBot

    token = settings.require_discord_token()
    bot = NekosBot(settings, background=False)
    try:
        try:
            await bot.login(token.reveal())
        except discord.LoginFailure:
            raise ConfigError(DISCORD_TOKEN_REJECTED) from None
        changed = await bot.sync_commands(guild_id=guild_id, force=force, clear=clear)
    finally:
        await bot.close()
    where = f"server {guild_id}" if guild_id is not None else "every server (global)"
    if not changed:
        print(f"unchanged: the commands of {where} are already up to date")
    elif clear:
        print(f"removed the command copies from {where}")
    else:
        print(f"synced the commands to {where}")
    return 0


async def _check(settings: Settings) -> int:
    from .checks import run_checks

    results = await run_checks(settings)
    ok = True
    for result in results:
        print(f"[{'ok' if result.ok else 'FAIL'}] {result.name}: {result.detail}")
        ok = ok and result.ok
    return 0 if ok else 1


async def _preview(settings: Settings, args: argparse.Namespace) -> int:
    from .nekos import NekosError, Unauthorized
    from .preview import PreviewOptions, render_preview

    options = PreviewOptions(
        kind=args.kind,
        categories=args.categories,
        count=args.count,
        rating=args.rating,
        name=args.name,
        image_id=args.id,
        search=args.search,
        page=args.page,
        max_rating=args.max_rating,
    )
    try:
        payload = await render_preview(settings, options)
    except Unauthorized:
        return _fail("NEKOS_API_TOKEN was rejected by the Nekos API: fix or remove it", 1)
    except NekosError as exc:
        return _fail(f"the Nekos API could not be used: {exc}", 1)
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return 0 if not payload.get("flags") else 1


async def _migrate_store(args: argparse.Namespace) -> int:
    from .store import StoreError, StoreNotEmptyError
    from .store.migrate import copy_store

    try:
        report = await copy_store(args.source, args.target, replace=args.replace)
    except ValueError as exc:
        return _fail(str(exc))
    except StoreNotEmptyError as exc:
        return _fail(f"{exc}; nothing was copied. Pass --replace to overwrite it", 1)
    except StoreError as exc:
        return _fail(f"{exc}; nothing was copied", 1)
    print(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(args.env_file)
    except ConfigError as exc:
        return _fail(str(exc))

    if command == "health":
        from .health import check_heartbeat, check_services

        if settings.health_file is None:
            return _fail("HEALTH_FILE is empty: the heartbeat is disabled", 1)
        ok, reason = check_heartbeat(settings.health_file)
        print(reason)
        # Reported, not counted: the bot keeps serving safely while a shared service is away,
        # and restarting it would not bring the service back.
        for service in asyncio.run(check_services(settings)):
            print(service.line)
        return 0 if ok else 1

    database_urls = [settings.database_url]
    if command == "migrate-store":
        database_urls += [args.source, args.target]
    setup_logging(
        settings.log_level if command in ("run", "sync") else "WARNING",
        _secrets(settings, database_urls),
    )
    try:
        if command == "run":
            return asyncio.run(_run_bot(settings))
        if command == "sync":
            if args.clear and args.guild is None:
                return _fail("--clear needs --guild ID: global commands are removed per server")
            return asyncio.run(_sync(settings, args.guild, args.force, args.clear))
        if command == "check":
            return asyncio.run(_check(settings))
        if command == "migrate-store":
            return asyncio.run(_migrate_store(args))
        return asyncio.run(_preview(settings, args))
    except ConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:  # aiohttp's connection errors are OSErrors too
        return _fail(f"network error ({type(exc).__name__}): check the connection and try again", 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .store import StoreError  # imported late: `health` never loads the store

        if isinstance(exc, StoreError):  # messages name the database, never its password
            return _fail(f"settings store: {exc}", 1)
        # Through logging, so the traceback is masked like every other record.
        log.exception("Unexpected failure in 'python -m bot %s'", command)
        return _fail("unexpected failure (details above); please report it", 1)


if __name__ == "__main__":
    sys.exit(main())
