"""Settings: every variable parsed and validated, secrets never shown, ``.env`` under the env."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_NEKOS_API_BASE_URL,
    SETTING_NAMES,
    ConfigError,
    Secret,
    Settings,
    load_settings,
    settings_from_mapping,
)

DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
NEKOS_TOKEN = "aB3" * 33 + "z"  # 100 letters and digits


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---------------------------------------------------------------------------------- defaults


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = settings_from_mapping({})
    assert settings == Settings()
    assert settings.discord_token is None
    assert settings.nekos_api_token is None
    # A fresh install talks to the API that is served today.
    assert (
        settings.nekos_api_base_url == DEFAULT_NEKOS_API_BASE_URL == "https://api.nekosapi.com/v4"
    )
    assert settings.nekos_api_version == "v4"
    assert settings.v4_allow_above_sfw is False
    assert settings.v4_deny_tags == frozenset()
    assert settings.nekos_api_rate == 1.0
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.discord_api_base_url is None
    assert settings.log_level == "INFO"
    assert settings.image_delivery == "link"
    assert settings.api_timeout == 10.0
    assert settings.pool_expiry_margin == 600.0
    assert settings.no_repeat_window == 100
    assert settings.rare_request_attempts == 3
    assert settings.reuse_after == 5.0
    assert settings.cooldown_uses == 5
    assert settings.cooldown_seconds == 10.0
    assert settings.autopost_min_interval == 300
    assert settings.autopost_max_per_guild == 10
    assert settings.health_file == Path("data/heartbeat")
    assert settings.data_dir == Path("data")
    assert settings.redis_url is None
    assert settings.redis_key_prefix == "nekos:"
    assert settings.source_address is None
    assert settings.metrics_port is None  # metrics are off unless asked for
    assert settings.metrics_host == "127.0.0.1"
    assert settings.shard_count is None
    assert settings.shard_ids is None


def test_missing_discord_token_only_fails_when_required() -> None:
    settings = settings_from_mapping({"LOG_LEVEL": "debug"})
    assert settings.discord_token is None
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        settings.require_discord_token()


def test_require_discord_token_returns_the_secret() -> None:
    settings = settings_from_mapping({"DISCORD_TOKEN": DISCORD_TOKEN})
    assert settings.require_discord_token().reveal() == DISCORD_TOKEN


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_values_count_as_unset(blank: str) -> None:
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": blank, "LOG_LEVEL": blank, "NEKOS_API_TIMEOUT": blank}
    )
    assert settings.discord_token is None
    assert settings.log_level == "INFO"
    assert settings.api_timeout == 10.0


def test_none_values_count_as_unset() -> None:
    # python-dotenv gives None for a bare `NAME` line.
    assert settings_from_mapping({"DISCORD_TOKEN": None, "LOG_LEVEL": None}) == Settings()


# ---------------------------------------------------------------------------------- parsing

VALID: list[tuple[str, str, str, Any]] = [
    ("DISCORD_TOKEN", f"  {DISCORD_TOKEN}  ", "discord_token", Secret(DISCORD_TOKEN)),
    ("NEKOS_API_TOKEN", NEKOS_TOKEN, "nekos_api_token", Secret(NEKOS_TOKEN)),
    ("NEKOS_API_BASE_URL", "http://127.0.0.1:8080/api/", "nekos_api_base_url",
     "http://127.0.0.1:8080/api"),
    ("NEKOS_API_BASE_URL", "https://api.nekosapi.com/v1", "nekos_api_base_url",
     "https://api.nekosapi.com/v1"),
    ("NEKOS_API_VERSION", "V4", "nekos_api_version", "v4"),
    ("NEKOS_API_VERSION", "v1", "nekos_api_version", "v1"),
    ("NEKOS_API_RATE", "2.5", "nekos_api_rate", 2.5),
    ("NEKOS_API_RATE", "0.2", "nekos_api_rate", 0.2),
    ("DISCORD_API_BASE_URL", "http://localhost:9000/api/v10//", "discord_api_base_url",
     "http://localhost:9000/api/v10"),
    ("DATABASE_URL", "sqlite:////var/lib/bot.db", "database_url", "sqlite:////var/lib/bot.db"),
    ("DATABASE_URL", "postgresql://bot:pw@db:5432/bot", "database_url",
     "postgresql://bot:pw@db:5432/bot"),
    ("DATABASE_URL", "postgres://bot@db/bot", "database_url", "postgres://bot@db/bot"),
    ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ("LOG_LEVEL", "CRITICAL", "log_level", "CRITICAL"),
    ("IMAGE_DELIVERY", "ATTACH", "image_delivery", "attach"),
    ("IMAGE_DELIVERY", "link", "image_delivery", "link"),
    ("NEKOS_API_TIMEOUT", "2.5", "api_timeout", 2.5),
    ("NEKOS_API_TIMEOUT", "1", "api_timeout", 1.0),
    ("POOL_EXPIRY_MARGIN", "0", "pool_expiry_margin", 0.0),
    ("POOL_EXPIRY_MARGIN", "120.5", "pool_expiry_margin", 120.5),
    ("REUSE_AFTER", "0", "reuse_after", 0.0),
    ("REUSE_AFTER", "2.5", "reuse_after", 2.5),
    ("NO_REPEAT_WINDOW", "0", "no_repeat_window", 0),
    ("NO_REPEAT_WINDOW", "250", "no_repeat_window", 250),
    ("RARE_REQUEST_ATTEMPTS", "1", "rare_request_attempts", 1),
    ("COOLDOWN_USES", "12", "cooldown_uses", 12),
    ("COOLDOWN_SECONDS", "0", "cooldown_seconds", 0.0),
    ("COOLDOWN_SECONDS", "7.5", "cooldown_seconds", 7.5),
    ("AUTOPOST_MIN_INTERVAL", "5", "autopost_min_interval", 5),
    ("AUTOPOST_MAX_PER_GUILD", "0", "autopost_max_per_guild", 0),
    ("AUTOPOST_MAX_PER_GUILD", "50", "autopost_max_per_guild", 50),
    ("HEALTH_FILE", "/run/bot/alive", "health_file", Path("/run/bot/alive")),
    ("HEALTH_FILE", "", "health_file", None),
    ("DATA_DIR", "/var/lib/nekos-bot", "data_dir", Path("/var/lib/nekos-bot")),
    ("REDIS_URL", "redis://cache:6379/2", "redis_url", Secret("redis://cache:6379/2")),
    ("REDIS_URL", "unix:///run/redis.sock", "redis_url", Secret("unix:///run/redis.sock")),
    ("REDIS_KEY_PREFIX", "bot-a:", "redis_key_prefix", "bot-a:"),
    ("NEKOS_API_SOURCE_ADDRESS", " 192.0.2.10 ", "source_address", "192.0.2.10"),
    ("NEKOS_API_SOURCE_ADDRESS", "2001:DB8::1", "source_address", "2001:db8::1"),
    ("METRICS_PORT", "9100", "metrics_port", 9100),
    ("METRICS_PORT", "65535", "metrics_port", 65535),
    ("METRICS_PORT", "0", "metrics_port", None),
    ("METRICS_PORT", "", "metrics_port", None),
    ("METRICS_HOST", "0.0.0.0", "metrics_host", "0.0.0.0"),
    ("METRICS_HOST", "::", "metrics_host", "::"),
    ("METRICS_HOST", "metrics.internal", "metrics_host", "metrics.internal"),
    ("SHARD_COUNT", "4", "shard_count", 4),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "attribute", "expected"), VALID)
def test_each_setting_is_parsed(name: str, raw: str, attribute: str, expected: Any) -> None:
    settings = settings_from_mapping({name: raw})
    assert getattr(settings, attribute) == expected


@pytest.mark.parametrize(
    ("url", "version"),
    [
        ("https://v1.nekosapi.com/api", "v1"),
        ("https://api.nekosapi.com/v1", "v1"),
        ("https://api.nekosapi.com/v4", "v4"),
        ("https://api.nekosapi.com/V4/", "v4"),
        ("http://127.0.0.1:8081/v4", "v4"),
        ("http://127.0.0.1:8081/v4/images", "v1"),
        ("http://v4.example/api", "v1"),
    ],
)
def test_unset_version_follows_the_base_urls_path(url: str, version: str) -> None:
    assert settings_from_mapping({"NEKOS_API_BASE_URL": url}).nekos_api_version == version


def test_an_explicit_version_wins_over_the_url() -> None:
    settings = settings_from_mapping(
        {"NEKOS_API_BASE_URL": "https://mirror.example/nekos", "NEKOS_API_VERSION": "v4"}
    )
    assert settings.nekos_api_version == "v4"
    v1 = settings_from_mapping({"NEKOS_API_VERSION": "V1"})
    assert v1.nekos_api_version == "v1"
    assert v1.nekos_api_base_url == DEFAULT_NEKOS_API_BASE_URL  # the URL is the operator's call


def test_the_rate_sets_the_interval_between_requests() -> None:
    assert Settings().nekos_api_interval == 1.0
    assert settings_from_mapping({"NEKOS_API_RATE": "4"}).nekos_api_interval == 0.25


def test_integers_are_ints_and_numbers_are_floats() -> None:
    settings = settings_from_mapping({"NO_REPEAT_WINDOW": "5", "NEKOS_API_TIMEOUT": "3"})
    assert type(settings.no_repeat_window) is int
    assert type(settings.api_timeout) is float


INVALID: list[tuple[str, str]] = [
    ("NEKOS_API_BASE_URL", "ftp://example.org/api"),
    ("NEKOS_API_BASE_URL", "v1.nekosapi.com/api"),
    ("NEKOS_API_BASE_URL", "https://"),
    ("NEKOS_API_VERSION", "v3"),
    ("NEKOS_API_VERSION", "4"),
    ("NEKOS_API_RATE", "0"),
    ("NEKOS_API_RATE", "-1"),
    ("NEKOS_API_RATE", "fast"),
    ("NEKOS_API_RATE", "inf"),
    ("DISCORD_API_BASE_URL", "ws://localhost:9000"),
    ("DATABASE_URL", "data/nekos-bot.db"),
    ("DATABASE_URL", "mysql://root@db/bot"),
    ("DATABASE_URL", "sqlite://host/x.db"),
    ("DATABASE_URL", "postgresql://bot@db:port/bot"),
    ("LOG_LEVEL", "verbose"),
    ("LOG_LEVEL", "10"),
    ("IMAGE_DELIVERY", "upload"),
    ("NEKOS_API_TIMEOUT", "ten"),
    ("NEKOS_API_TIMEOUT", "0.5"),
    ("NEKOS_API_TIMEOUT", "nan"),
    ("NEKOS_API_TIMEOUT", "inf"),
    ("POOL_EXPIRY_MARGIN", "-1"),
    ("POOL_EXPIRY_MARGIN", "NaN"),
    ("REUSE_AFTER", "-1"),
    ("NO_REPEAT_WINDOW", "-1"),
    ("NO_REPEAT_WINDOW", "1.5"),
    ("RARE_REQUEST_ATTEMPTS", "0"),
    ("RARE_REQUEST_ATTEMPTS", "three"),
    ("COOLDOWN_USES", "0"),
    ("COOLDOWN_SECONDS", "-0.1"),
    ("COOLDOWN_SECONDS", "-inf"),
    ("AUTOPOST_MIN_INTERVAL", "0"),
    ("AUTOPOST_MIN_INTERVAL", "5m"),
    ("AUTOPOST_MAX_PER_GUILD", "-1"),
    ("REDIS_URL", "127.0.0.1:6379"),
    ("REDIS_URL", "http://cache:6379"),
    ("NEKOS_API_SOURCE_ADDRESS", "eth0"),
    ("NEKOS_API_SOURCE_ADDRESS", "192.0.2.300"),
    ("METRICS_PORT", "65536"),
    ("METRICS_PORT", "-1"),
    ("METRICS_PORT", "http"),
    ("METRICS_HOST", "0.0.0.0:9100"),
    ("METRICS_HOST", "http://localhost"),
    ("SHARD_COUNT", "0"),
    ("SHARD_COUNT", "two"),
    ("SHARD_IDS", "0-1"),  # without SHARD_COUNT
]


@pytest.mark.parametrize(("name", "raw"), INVALID)
def test_invalid_setting_is_rejected_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({name: raw})
    assert name in str(info.value)


# ---------------------------------------------------------------------------------- secrets

MALFORMED_DISCORD = [
    "not-a-token",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe",  # two parts
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA GaBcDe abcdefghijklmnopqrstuvwxyz0123",
    "Bot MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789A=",
]


@pytest.mark.parametrize("token", MALFORMED_DISCORD)
def test_malformed_discord_token_is_rejected_without_echoing_it(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"DISCORD_TOKEN": token})
    error = info.value
    assert "DISCORD_TOKEN" in str(error)
    assert token.strip() not in str(error)
    assert token.strip() not in repr(error)
    for part in token.replace(" ", ".").split("."):
        if len(part) >= 6:
            assert part not in str(error)


@pytest.mark.parametrize(
    "token",
    [
        "short",
        "a" * 99,
        "a" * 101,
        "a" * 99 + "-",
        "Bearer " + "a" * 100,
    ],
)
def test_malformed_nekos_token_is_rejected_without_echoing_it(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"NEKOS_API_TOKEN": token})
    assert "NEKOS_API_TOKEN" in str(info.value)
    assert token not in str(info.value)
    assert token not in repr(info.value)


def test_secret_never_shows_itself() -> None:
    secret = Secret(DISCORD_TOKEN)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", format(secret)):
        assert DISCORD_TOKEN not in shown
        assert "*" in shown
    assert secret.reveal() == DISCORD_TOKEN


def test_secret_compares_by_value() -> None:
    assert Secret("abc") == Secret("abc")
    assert Secret("abc") != Secret("abd")
    assert Secret("abc") != "abc"
    assert hash(Secret("abc")) == hash(Secret("abc"))


def test_a_redis_password_never_shows_in_the_settings() -> None:
    settings = settings_from_mapping({"REDIS_URL": "redis://:hunter2-secret@cache:6379/0"})
    assert "hunter2-secret" not in repr(settings) + str(settings)


def test_settings_repr_hides_both_tokens() -> None:
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": DISCORD_TOKEN, "NEKOS_API_TOKEN": NEKOS_TOKEN}
    )
    text = repr(settings) + str(settings)
    assert DISCORD_TOKEN not in text
    assert NEKOS_TOKEN not in text


def test_settings_repr_hides_the_database_password() -> None:
    settings = settings_from_mapping({"DATABASE_URL": "postgresql://bot:hunter2pw@db/bot"})
    assert "hunter2pw" not in repr(settings) + str(settings)


# ---------------------------------------------------------------------------------- .env


def test_dotenv_file_is_read(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"DISCORD_TOKEN={DISCORD_TOKEN}\n"
        "# a comment\n"
        "LOG_LEVEL=warning\n"
        'NEKOS_API_BASE_URL="http://127.0.0.1:9999/api"\n'
        "COOLDOWN_USES=2\n"
        "HEALTH_FILE=\n",
        encoding="utf-8",
    )
    settings = load_settings(dotenv)
    assert settings.require_discord_token().reveal() == DISCORD_TOKEN
    assert settings.log_level == "WARNING"
    assert settings.nekos_api_base_url == "http://127.0.0.1:9999/api"
    assert settings.cooldown_uses == 2
    assert settings.health_file is None


def test_environment_wins_over_dotenv(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LOG_LEVEL=WARNING\nCOOLDOWN_USES=2\nIMAGE_DELIVERY=attach\n", "utf-8")
    clean_env.setenv("LOG_LEVEL", "DEBUG")
    clean_env.setenv("COOLDOWN_USES", "9")
    settings = load_settings(dotenv)
    assert settings.log_level == "DEBUG"
    assert settings.cooldown_uses == 9
    assert settings.image_delivery == "attach"  # only in .env: still read


def test_empty_environment_value_overrides_dotenv(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DISCORD_TOKEN={DISCORD_TOKEN}\nHEALTH_FILE=/tmp/beat\n", "utf-8")
    clean_env.setenv("HEALTH_FILE", "")
    settings = load_settings(dotenv)
    assert settings.health_file is None
    assert settings.discord_token is not None


def test_missing_dotenv_file_is_fine(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COOLDOWN_SECONDS", "3")
    settings = load_settings(tmp_path / "absent.env")
    assert settings.cooldown_seconds == 3.0
    assert settings.discord_token is None


def test_dotenv_none_reads_only_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n", "utf-8")
    clean_env.chdir(tmp_path)
    assert load_settings(None).log_level == "INFO"
    assert load_settings().log_level == "ERROR"  # the default path is ./.env


def test_malformed_token_in_dotenv_is_not_echoed(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    bad = "x" * 30 + ".yyyy"
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={bad}\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / ".env")
    assert bad not in str(info.value)
    assert "x" * 30 not in str(info.value)


def test_every_setting_the_bot_reads_is_in_env_example_and_nothing_else() -> None:
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]{4,})=", example, re.MULTILINE))
    assert documented == set(SETTING_NAMES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("YES", True), ("1", True), ("on", True), ("false", False), ("0", False)],
)
def test_v4_opt_in_above_sfw_reads_common_spellings(value: str, expected: bool) -> None:
    assert settings_from_mapping({"NEKOS_V4_ALLOW_ABOVE_SFW": value}).v4_allow_above_sfw is expected


def test_v4_opt_in_refuses_other_words() -> None:
    with pytest.raises(ConfigError, match="NEKOS_V4_ALLOW_ABOVE_SFW must be true or false"):
        settings_from_mapping({"NEKOS_V4_ALLOW_ABOVE_SFW": "maybe"})


def test_v4_deny_tags_are_a_lower_cased_comma_list() -> None:
    settings = settings_from_mapping({"NEKOS_V4_DENY_TAGS": " Small, tiny ,, Chibi "})
    assert settings.v4_deny_tags == frozenset({"small", "tiny", "chibi"})


# ---------------------------------------------------------------------------------- shards


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0-3", (0, 1, 2, 3)),
        ("0,2", (0, 2)),
        ("0-1,5", (0, 1, 5)),
        (" 5 , 0 - 1 ", (0, 1, 5)),
        ("3", (3,)),
        ("1-2,2-3", (1, 2, 3)),
    ],
)
def test_shard_ids_take_numbers_and_ranges(raw: str, expected: tuple[int, ...]) -> None:
    settings = settings_from_mapping({"SHARD_COUNT": "8", "SHARD_IDS": raw})
    assert settings.shard_count == 8
    assert settings.shard_ids == expected
    assert not settings.runs_every_shard


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("4", "shard 4 does not exist with SHARD_COUNT=4 (shards are numbered 0 to 3)"),
        ("2-5", "shard 5 does not exist with SHARD_COUNT=4"),
        ("3-1", "the range 3-1 runs backwards"),
        ("-1", "must list shard numbers and ranges like 0-3 or 0,2"),
        ("0,,1", "must list shard numbers and ranges like 0-3 or 0,2"),
        ("0-1-2", "must list shard numbers and ranges like 0-3 or 0,2"),
        ("one", "must list shard numbers and ranges like 0-3 or 0,2"),
        ("٣", "must list shard numbers and ranges like 0-3 or 0,2"),  # an Arabic-Indic 3
    ],
)
def test_bad_shard_ids_are_refused_in_one_line(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"SHARD_COUNT": "4", "SHARD_IDS": raw})
    assert str(info.value).startswith("SHARD_IDS")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_shard_ids_need_the_shard_count() -> None:
    with pytest.raises(ConfigError, match="SHARD_IDS needs SHARD_COUNT"):
        settings_from_mapping({"SHARD_IDS": "0"})


def test_shard_count_alone_runs_every_shard_in_this_process() -> None:
    settings = settings_from_mapping({"SHARD_COUNT": "3"})
    assert settings.shard_ids is None
    assert settings.runs_every_shard
    assert settings.health_file == Path("data/heartbeat")


def test_listing_every_shard_runs_every_shard() -> None:
    assert settings_from_mapping({"SHARD_COUNT": "2", "SHARD_IDS": "0-1"}).runs_every_shard


def test_processes_with_different_shards_get_heartbeats_of_their_own() -> None:
    first = settings_from_mapping({"SHARD_COUNT": "4", "SHARD_IDS": "0-1"})
    second = settings_from_mapping({"SHARD_COUNT": "4", "SHARD_IDS": "2,3"})
    third = settings_from_mapping({"SHARD_COUNT": "8", "SHARD_IDS": "0-2,5"})
    assert first.health_file == Path("data/heartbeat-shards-0-1")
    assert second.health_file == Path("data/heartbeat-shards-2-3")
    assert third.health_file == Path("data/heartbeat-shards-0-2_5")


def test_an_explicit_health_file_wins_over_the_shards_default() -> None:
    env = {"SHARD_COUNT": "4", "SHARD_IDS": "0-1"}
    assert settings_from_mapping({**env, "HEALTH_FILE": "/run/a"}).health_file == Path("/run/a")
    assert settings_from_mapping({**env, "HEALTH_FILE": ""}).health_file is None
