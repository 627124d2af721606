"""Settings from the environment and ``.env``, validated once at start-up.

This is the only module that reads ``os.environ``. Everything else receives a :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .database_url import parse_database_url

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_NEKOS_API_BASE_URL",
    "SETTING_NAMES",
    "ConfigError",
    "NekosApiVersion",
    "Secret",
    "Settings",
    "api_version_for",
    "load_settings",
    "parse_shard_ids",
    "shard_label",
]

DEFAULT_NEKOS_API_BASE_URL = "https://api.nekosapi.com/v4"
DEFAULT_DATABASE_URL = "sqlite:///data/nekos-bot.db"
SETTING_NAMES = (
    "DISCORD_TOKEN",
    "NEKOS_API_TOKEN",
    "NEKOS_API_BASE_URL",
    "NEKOS_API_VERSION",
    "NEKOS_API_RATE",
    "NEKOS_V4_ALLOW_ABOVE_SFW",
    "NEKOS_V4_DENY_TAGS",
    "DISCORD_API_BASE_URL",
    "DATABASE_URL",
    "LOG_LEVEL",
    "IMAGE_DELIVERY",
    "NEKOS_API_TIMEOUT",
    "POOL_EXPIRY_MARGIN",
    "NO_REPEAT_WINDOW",
    "RARE_REQUEST_ATTEMPTS",
    "REUSE_AFTER",
    "COOLDOWN_USES",
    "COOLDOWN_SECONDS",
    "AUTOPOST_MIN_INTERVAL",
    "AUTOPOST_MAX_PER_GUILD",
    "HEALTH_FILE",
    "DATA_DIR",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "NEKOS_API_SOURCE_ADDRESS",
    "METRICS_PORT",
    "METRICS_HOST",
    "SHARD_COUNT",
    "SHARD_IDS",
)
"""Every variable the bot reads (tools that start it use this to keep their own out)."""

# Discord bot tokens are three base64url parts joined by dots.
_DISCORD_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")
# The Nekos API checks `^Bearer [0-9a-zA-Z]{100}$`.
_NEKOS_TOKEN_RE = re.compile(r"^[0-9a-zA-Z]{100}$")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and never shows a secret."""


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


ImageDelivery = Literal["link", "attach"]
NekosApiVersion = Literal["v1", "v4"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the bot. See ``.env.example`` for what each one means."""

    discord_token: Secret | None = None
    nekos_api_base_url: str = DEFAULT_NEKOS_API_BASE_URL
    nekos_api_version: NekosApiVersion = "v4"
    """Resolved: ``NEKOS_API_VERSION`` if set, else what the base URL's path says."""
    nekos_api_rate: float = 1.0
    """Requests per second the bot allows itself (both versions)."""
    nekos_api_token: Secret | None = None
    v4_allow_above_sfw: bool = False
    """Show v4 images above sfw at all (v4 has no ages, so minors can't be ruled out by data)."""
    v4_deny_tags: frozenset[str] = frozenset()
    """Tags added to the shipped youth deny-list: never shown above sfw."""
    # Not in repr: a postgresql:// URL may carry a password.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    discord_api_base_url: str | None = None
    log_level: str = "INFO"
    image_delivery: ImageDelivery = "link"
    api_timeout: float = 10.0
    pool_expiry_margin: float = 600.0
    no_repeat_window: int = 100
    rare_request_attempts: int = 3
    reuse_after: float = 5.0
    """Seconds a member waits for fresh images before getting ones other servers saw (0: never)."""
    cooldown_uses: int = 5
    cooldown_seconds: float = 10.0
    autopost_min_interval: int = 300
    """Shortest cadence of a scheduled post, in seconds."""
    autopost_max_per_guild: int = 10
    """Schedules a server may have (0: scheduled posts are off)."""
    health_file: Path | None = field(default=Path("data/heartbeat"))
    data_dir: Path = field(default=Path("data"))
    """Where the bot keeps its working files: the shared request budget, the command-sync state."""
    redis_url: Secret | None = None
    """Redis shared by every process (the request budget); ``None``: the data folder only."""
    redis_key_prefix: str = "nekos:"
    source_address: str | None = None
    """Local IP address the API connections leave from; also names the request budget."""
    metrics_port: int | None = None
    """Port of the Prometheus endpoint (``/metrics``); ``None``: metrics are off."""
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint listens on (``0.0.0.0`` in a container)."""
    shard_count: int | None = None
    """Shards of the whole bot (the same on every process); ``None``: Discord's recommendation."""
    shard_ids: tuple[int, ...] | None = None
    """The shards this process runs, ascending; ``None``: every shard."""

    @property
    def runs_every_shard(self) -> bool:
        """Whether this process runs every shard (so sees every guild and DM)."""
        return self.shard_ids is None or len(self.shard_ids) == self.shard_count

    @property
    def nekos_api_interval(self) -> float:
        """Seconds between API request starts (the pacer adds its safety margin)."""
        return 1.0 / self.nekos_api_rate

    @property
    def redis_location(self) -> str | None:
        """Where Redis is, for reports: ``host:port`` or the socket path, never the password."""
        if self.redis_url is None:
            return None
        parts = urlsplit(self.redis_url.reveal())
        address = parts.hostname or parts.path
        return f"{address}:{parts.port}" if parts.port else address

    def require_discord_token(self) -> Secret:
        """The Discord token, or a ConfigError saying how to provide it."""
        if self.discord_token is None:
            raise ConfigError(
                "DISCORD_TOKEN is not set: put your bot token in .env "
                "(copy .env.example) or in the environment"
            )
        return self.discord_token


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def api_version_for(base_url: str) -> NekosApiVersion:
    """The version a base URL names: a path ending in ``/v4`` is v4, anything else v1."""
    return "v4" if urlsplit(base_url).path.rstrip("/").lower().endswith("/v4") else "v1"


def _number(name: str, value: str, *, minimum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        # float() accepts "nan" and "inf"; neither is a usable timeout or interval.
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}")
    return number


def _boolean(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _integer(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return number


def _listen_host(name: str, value: str) -> str:
    """An address to listen on: an IP address (``0.0.0.0``, ``::``) or a host name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(value):
        raise ConfigError(f"{name} must be an IP address or a host name, e.g. 0.0.0.0")
    return value


def parse_shard_ids(text: str, shard_count: int) -> tuple[int, ...]:
    """``0-3``, ``0,2`` or ``0-1,5`` → the shard numbers, ascending; each below ``shard_count``."""
    ids: set[int] = set()
    for part in text.split(","):
        bounds = [bound.strip() for bound in part.split("-")]
        if len(bounds) > 2 or not all(b.isascii() and b.isdigit() for b in bounds):
            raise ConfigError(
                f"SHARD_IDS must list shard numbers and ranges like 0-3 or 0,2, got {text!r}"
            )
        first, last = int(bounds[0]), int(bounds[-1])
        if first > last:
            raise ConfigError(f"SHARD_IDS: the range {part.strip()} runs backwards")
        if last >= shard_count:
            raise ConfigError(
                f"SHARD_IDS: shard {last} does not exist with SHARD_COUNT={shard_count} "
                f"(shards are numbered 0 to {shard_count - 1})"
            )
        ids.update(range(first, last + 1))
    return tuple(sorted(ids))


def shard_label(shard_ids: tuple[int, ...]) -> str:
    """Shard numbers written as ranges, e.g. ``(0, 1, 2, 5)`` → ``0-2,5``."""
    runs: list[list[int]] = []
    for shard in shard_ids:
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def settings_from_mapping(env: Mapping[str, str | None]) -> Settings:
    """Build and validate :class:`Settings` from a mapping of variables (pure; for tests)."""

    def get(name: str) -> str | None:
        if name not in SETTING_NAMES:
            raise ValueError(f"{name} is read but missing from SETTING_NAMES")
        value = env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    kwargs: dict[str, object] = {}
    token = get("DISCORD_TOKEN")
    if token is not None:
        if not _DISCORD_TOKEN_RE.match(token):
            raise ConfigError(
                "DISCORD_TOKEN is malformed: copy the bot token from the Developer Portal "
                "(Bot → Reset Token); it has three parts separated by dots"
            )
        kwargs["discord_token"] = Secret(token)
    api_token = get("NEKOS_API_TOKEN")
    if api_token is not None:
        if not _NEKOS_TOKEN_RE.match(api_token):
            raise ConfigError("NEKOS_API_TOKEN is malformed: it must be 100 letters and digits")
        kwargs["nekos_api_token"] = Secret(api_token)
    base_url = DEFAULT_NEKOS_API_BASE_URL
    if (value := get("NEKOS_API_BASE_URL")) is not None:
        base_url = kwargs["nekos_api_base_url"] = _url("NEKOS_API_BASE_URL", value)
    kwargs["nekos_api_version"] = api_version_for(base_url)
    if (value := get("NEKOS_API_VERSION")) is not None:
        version = value.lower()
        if version not in ("v1", "v4"):
            raise ConfigError("NEKOS_API_VERSION must be v1 or v4 (or unset to follow the URL)")
        kwargs["nekos_api_version"] = version
    if (value := get("NEKOS_API_RATE")) is not None:
        rate = _number("NEKOS_API_RATE", value, minimum=0)
        if rate <= 0:
            raise ConfigError("NEKOS_API_RATE must be more than 0 requests per second")
        kwargs["nekos_api_rate"] = rate
    if (value := get("NEKOS_V4_ALLOW_ABOVE_SFW")) is not None:
        kwargs["v4_allow_above_sfw"] = _boolean("NEKOS_V4_ALLOW_ABOVE_SFW", value)
    if (value := get("NEKOS_V4_DENY_TAGS")) is not None:
        tags = frozenset(t.strip().lower() for t in value.split(",") if t.strip())
        if any(len(t) > 100 for t in tags):
            raise ConfigError("NEKOS_V4_DENY_TAGS: each tag must be at most 100 characters")
        kwargs["v4_deny_tags"] = tags
    if (value := get("DISCORD_API_BASE_URL")) is not None:
        kwargs["discord_api_base_url"] = _url("DISCORD_API_BASE_URL", value)
    if (value := get("DATABASE_URL")) is not None:
        try:
            parse_database_url(value)
        except ValueError as exc:
            raise ConfigError(f"DATABASE_URL is not usable: {exc}") from None
        kwargs["database_url"] = value
    if (value := get("LOG_LEVEL")) is not None:
        level = value.upper()
        if level not in _LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        kwargs["log_level"] = level
    if (value := get("IMAGE_DELIVERY")) is not None:
        delivery = value.lower()
        if delivery not in ("link", "attach"):
            raise ConfigError("IMAGE_DELIVERY must be 'link' or 'attach'")
        kwargs["image_delivery"] = delivery
    if (value := get("NEKOS_API_TIMEOUT")) is not None:
        kwargs["api_timeout"] = _number("NEKOS_API_TIMEOUT", value, minimum=1)
    if (value := get("POOL_EXPIRY_MARGIN")) is not None:
        kwargs["pool_expiry_margin"] = _number("POOL_EXPIRY_MARGIN", value, minimum=0)
    if (value := get("NO_REPEAT_WINDOW")) is not None:
        kwargs["no_repeat_window"] = _integer("NO_REPEAT_WINDOW", value, minimum=0)
    if (value := get("RARE_REQUEST_ATTEMPTS")) is not None:
        kwargs["rare_request_attempts"] = _integer("RARE_REQUEST_ATTEMPTS", value, minimum=1)
    if (value := get("REUSE_AFTER")) is not None:
        kwargs["reuse_after"] = _number("REUSE_AFTER", value, minimum=0)
    if (value := get("COOLDOWN_USES")) is not None:
        kwargs["cooldown_uses"] = _integer("COOLDOWN_USES", value, minimum=1)
    if (value := get("COOLDOWN_SECONDS")) is not None:
        kwargs["cooldown_seconds"] = _number("COOLDOWN_SECONDS", value, minimum=0)
    if (value := get("AUTOPOST_MIN_INTERVAL")) is not None:
        kwargs["autopost_min_interval"] = _integer("AUTOPOST_MIN_INTERVAL", value, minimum=1)
    if (value := get("AUTOPOST_MAX_PER_GUILD")) is not None:
        kwargs["autopost_max_per_guild"] = _integer("AUTOPOST_MAX_PER_GUILD", value, minimum=0)
    if (value := get("DATA_DIR")) is not None:
        kwargs["data_dir"] = Path(value)
    if (value := get("REDIS_URL")) is not None:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("REDIS_URL must look like redis://host:6379/0")
        # The URL may carry a password: kept secret like the tokens.
        kwargs["redis_url"] = Secret(value)
    if (value := get("REDIS_KEY_PREFIX")) is not None:
        kwargs["redis_key_prefix"] = value
    if (value := get("NEKOS_API_SOURCE_ADDRESS")) is not None:
        try:
            kwargs["source_address"] = str(ipaddress.ip_address(value))
        except ValueError:
            raise ConfigError(
                "NEKOS_API_SOURCE_ADDRESS must be an IP address of this host, e.g. 192.0.2.10"
            ) from None
    if (value := get("METRICS_PORT")) is not None:
        port = _integer("METRICS_PORT", value, minimum=0)
        if port > 65535:
            raise ConfigError("METRICS_PORT must be a port number from 1 to 65535 (0: off)")
        kwargs["metrics_port"] = port or None
    if (value := get("METRICS_HOST")) is not None:
        kwargs["metrics_host"] = _listen_host("METRICS_HOST", value)
    if (value := get("SHARD_COUNT")) is not None:
        kwargs["shard_count"] = _integer("SHARD_COUNT", value, minimum=1)
    if (value := get("SHARD_IDS")) is not None:
        count = kwargs.get("shard_count")
        if not isinstance(count, int):
            raise ConfigError(
                "SHARD_IDS needs SHARD_COUNT: the total number of shards, the same on every process"
            )
        shard_ids = kwargs["shard_ids"] = parse_shard_ids(value, count)
        # Processes on one host must not share a heartbeat: each reports its own shards.
        label = shard_label(shard_ids).replace(",", "_")
        kwargs["health_file"] = Path(f"data/heartbeat-shards-{label}")
    if "HEALTH_FILE" in env:
        value = get("HEALTH_FILE")
        kwargs["health_file"] = Path(value) if value else None
    return Settings(**kwargs)  # type: ignore[arg-type]


def load_settings(dotenv_path: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read ``.env`` (if present) under the process environment, which wins, and validate."""
    merged: dict[str, str | None] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update(dotenv_values(dotenv_path))
    merged.update(os.environ)
    return settings_from_mapping(merged)
