"""Log redaction: configured secrets, Bearer tokens and URL signatures never reach the output."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import MASK, RedactingFilter, setup_logging

SECRET = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
API_TOKEN = "Zq9" * 33 + "k"
SIGNED_URL = "http://127.0.0.1:8080/storage/1f0c.png?token=9a8b7c6d5e4f3a2b1c0d&expires=1767225600"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing through a RedactingFilter'd handler into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter([SECRET, API_TOKEN, ""]))
    logger = logging.getLogger(f"tests.logs.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def test_secret_in_message_is_masked(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    message = "logging in with " + SECRET + " now"
    logger.info(message)
    out = stream.getvalue()
    assert SECRET not in out
    assert f"logging in with {MASK} now" in out


def test_secret_in_args_is_masked(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("token=%s other=%d", API_TOKEN, 42)
    out = stream.getvalue()
    assert API_TOKEN not in out
    assert f"token={MASK} other=42" in out


def test_secret_in_a_mapping_arg_is_masked(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("headers %s", {"Authorization": f"Bot {SECRET}"})
    assert SECRET not in stream.getvalue()


def test_bearer_token_is_masked_even_if_not_configured(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    unknown = "Unconfigured0123456789abcdefABCDEF"
    logger.debug("sent Authorization: Bearer %s to /token", unknown)
    out = stream.getvalue()
    assert unknown not in out
    assert f"Bearer {MASK} to /token" in out


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "signature",
        "sig",
        "X-Amz-Signature",
        "TOKEN",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "GoogleAccessId",
        "Policy",
        "Key-Pair-Id",
        "access_token",
        "api_key",
        "hmac",
    ],
)
def test_signed_url_query_credential_is_masked(
    captured: tuple[logging.Logger, io.StringIO], key: str
) -> None:
    logger, stream = captured
    url = f"https://cdn.example/img.png?size=2&{key}=s3cr3tSIGvalue&expires=99"
    logger.info("fetching %s", url)
    out = stream.getvalue()
    assert "s3cr3tSIGvalue" not in out
    assert f"{key}={MASK}&expires=99" in out
    assert "size=2" in out


INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpGQUtFVE9LRU5fZm9yX3Rlc3Rz-_."


@pytest.mark.parametrize(
    "line",
    [
        # discord.py's DEBUG lines for an interaction callback and a follow-up.
        "POST https://discord.com/api/v10/interactions/1234567890/{t}/callback with {{}} has "
        "returned 204",
        "PATCH https://discord.com/api/v10/webhooks/1000000000000000001/{t}/messages/@original",
        "POST http://127.0.0.1:4444/api/v10/webhooks/1000000000000000001/{t}?wait=true",
        # The token as it travels in a payload, JSON or a Python repr.
        '{{"type": 2, "token": "{t}", "id": "55"}}',
        "{{'type': 2, 'token': '{t}', 'id': '55'}}",
    ],
)
def test_interaction_tokens_are_masked_wherever_they_appear(
    captured: tuple[logging.Logger, io.StringIO], line: str
) -> None:
    logger, stream = captured
    logger.debug(line.format(t=INTERACTION_TOKEN))
    out = stream.getvalue()
    assert INTERACTION_TOKEN not in out
    assert MASK in out


def test_bot_authorization_is_masked_but_ordinary_words_after_bot_are_not(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    unknown = "T3RoZXJCb3RUb2tlbjEyMzQ1Njc4OTA.GaBcDe.zyxwvutsrqponmlkjihgfedcba"
    logger.debug("headers: Authorization: Bot %s", unknown)
    logger.info("Bot connected to 3 servers")
    out = stream.getvalue()
    assert unknown not in out
    assert "Bot connected to 3 servers" in out


def test_fake_storage_url_signature_is_masked(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("download of %s failed", SIGNED_URL)
    out = stream.getvalue()
    assert "9a8b7c6d5e4f3a2b1c0d" not in out
    assert "/storage/1f0c.png?token=" in out
    assert "expires=1767225600" in out


def test_exception_text_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"login failed for {SECRET} via Bearer {API_TOKEN} at {SIGNED_URL}")
    except RuntimeError:
        logger.exception("start-up failed")
    out = stream.getvalue()
    assert "Traceback" in out
    assert "RuntimeError: login failed" in out
    assert SECRET not in out
    assert API_TOKEN not in out
    assert "9a8b7c6d5e4f3a2b1c0d" not in out


def test_plain_records_are_untouched(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("served %d images in %s", 3, "#general")
    logger.info("50% of requests hit the pool")
    out = stream.getvalue()
    assert "served 3 images in #general" in out
    assert "50% of requests hit the pool" in out
    assert MASK not in out


def test_redacted_text_with_percent_is_not_formatted_twice(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("%s", f"50% off {SECRET} %d")
    assert f"50% off {MASK} %d" in stream.getvalue()


def test_empty_secret_is_ignored() -> None:
    redactor = RedactingFilter(["", SECRET])
    assert redactor.redact("nothing secret here") == "nothing secret here"
    assert redactor.redact(f"x{SECRET}y") == f"x{MASK}y"


def test_filter_never_drops_records() -> None:
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "tok %s", (SECRET,), None)
    assert RedactingFilter([SECRET]).filter(record) is True
    assert record.getMessage() == f"tok {MASK}"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    gateway = logging.getLogger("discord.gateway")
    gateway_level = gateway.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    gateway.setLevel(gateway_level)


def test_setup_logging_masks_secrets_on_the_root_handler(
    restore_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    redactor = setup_logging("DEBUG", [SECRET])
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert redactor in root.handlers[0].filters
    assert root.level == logging.DEBUG
    assert logging.getLogger("discord.gateway").level == logging.INFO
    logging.getLogger("bot.some.module").info("token is %s", SECRET)
    err = capsys.readouterr().err
    assert SECRET not in err
    assert f"bot.some.module: token is {MASK}" in err


def test_setup_logging_replaces_earlier_handlers(restore_root: None) -> None:
    setup_logging("INFO")
    first = logging.getLogger().handlers[0]
    setup_logging("WARNING")
    root = logging.getLogger()
    assert first not in root.handlers
    assert len(root.handlers) == 1
    assert root.level == logging.WARNING
    assert logging.getLogger("discord.gateway").level == logging.WARNING


def test_an_unexpected_failure_in_the_cli_is_logged_masked_in_one_place(
    restore_root: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from bot import __main__ as cli
    from bot import checks
    from bot.config import SETTING_NAMES

    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"DISCORD_TOKEN={SECRET}\nHEALTH_FILE=\n", encoding="utf-8")

    async def broken(settings: object) -> list[object]:
        raise RuntimeError(f"exploded while holding {SECRET}")

    monkeypatch.setattr(checks, "run_checks", broken)

    code = cli.main(["--env-file", str(env_file), "check"])

    err = capsys.readouterr().err
    assert code == 1
    assert "RuntimeError: exploded while holding" in err  # the traceback, through logging
    assert SECRET not in err
    assert err.strip().splitlines()[-1].startswith("error: unexpected failure")


def test_the_redis_and_database_passwords_are_masked_in_the_logs() -> None:
    from bot.__main__ import _secrets
    from bot.config import settings_from_mapping

    settings = settings_from_mapping(
        {
            "REDIS_URL": "redis://:r3disPassw0rd@127.0.0.1:6379/0",
            "DATABASE_URL": "postgresql://bot:pgPassw0rd@127.0.0.1:5432/nekos",
        }
    )
    redactor = RedactingFilter(_secrets(settings, [settings.database_url]))
    line = redactor.redact("connect to redis://:r3disPassw0rd@… and pgPassw0rd failed")
    assert "r3disPassw0rd" not in line
    assert "pgPassw0rd" not in line
