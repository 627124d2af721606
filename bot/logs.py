"""Logging set-up with secrets redacted from every record, whoever logs it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["RedactingFilter", "setup_logging"]

# Signed URLs carry their credential in the query string: the parameters that S3, GCS,
# CloudFront, Azure SAS, Upstash and common token schemes use for it.
_SIGNING_PARAMETERS = (
    "token",
    "access_token",
    "signature",
    "sig",
    "hmac",
    "key",
    "api_key",
    "apikey",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
    "policy",
    "key-pair-id",
)
_SIGNED_QUERY_RE = re.compile(
    rf"([?&](?:{'|'.join(map(re.escape, _SIGNING_PARAMETERS))})=)[^&\s\"'<>]+", re.I
)
_BEARER_RE = re.compile(r"(Bearer\s+)[0-9A-Za-z._-]+")
# "Authorization: Bot <token>" (Discord); long enough not to catch "Bot connected".
_BOT_AUTH_RE = re.compile(r"(Bot\s+)[0-9A-Za-z._-]{20,}")
# An interaction's token is a credential for 15 minutes: discord.py logs it at DEBUG in the
# callback URL and the follow-up webhook URL, and it travels in payloads as "token".
_INTERACTION_URL_RE = re.compile(r"(/(?:interactions|webhooks)/[0-9]+/)[A-Za-z0-9._-]{20,}")
_TOKEN_FIELD_RE = re.compile(r"""(["']token["']\s*:\s*["'])[^"']+""")
_PATTERNS = (_BEARER_RE, _BOT_AUTH_RE, _INTERACTION_URL_RE, _TOKEN_FIELD_RE, _SIGNED_QUERY_RE)
MASK = "********"


class RedactingFilter(logging.Filter):
    """Replaces known secrets, bearer tokens and URL signatures in formatted log messages."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\g<1>{MASK}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Exceptions are formatted later; pre-format and redact them now.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


def setup_logging(level: str, secrets: Iterable[str] = ()) -> RedactingFilter:
    """Configure the root logger once: one line per record, secrets masked on every handler."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py's gateway chatter is noise at INFO.
    logging.getLogger("discord.gateway").setLevel(max(logging.getLevelName(level), logging.INFO))
    return redactor
