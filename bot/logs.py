"""Logging set-up with secrets redacted from every record, whoever logs it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["RedactingFilter", "setup_logging"]

# Signed storage URLs carry their signature in the query string; it is a credential too.
_SIGNED_QUERY_RE = re.compile(r"([?&](?:token|signature|sig|X-Amz-Signature)=)[^&\s\"']+", re.I)
_BEARER_RE = re.compile(r"(Bearer\s+)[0-9A-Za-z._-]+")
MASK = "********"


class RedactingFilter(logging.Filter):
    """Replaces known secrets, bearer tokens and URL signatures in formatted log messages."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _BEARER_RE.sub(rf"\g<1>{MASK}", text)
        return _SIGNED_QUERY_RE.sub(rf"\g<1>{MASK}", text)

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
