"""Structured logging: JSON lines by default, plain text on request.

Log records carry context as ``extra`` fields (``taskset``, ``node``, ``scope`` ...),
which the JSON formatter emits as top-level keys. Secret header values and
``Authorization`` never reach a record in the first place (the executor keeps them out of
messages); :func:`redact` is a last line of defence for free text.

Third-party protocol loggers stay at WARNING whatever ``--log-level`` says
(:data:`PINNED_LOGGERS`): at DEBUG they write what goes on the wire (hpack logs every
header it encodes, ``Adding b'x-api-key'=b'<value>'``; httpcore and h11/h2 repeat errors
that quote header values), which would put secret header values in the log. The agent's
own debug lines never carry header values.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["PINNED_LOGGERS", "configure_logging", "redact"]

#: Loggers kept at WARNING at every level: the HTTP protocol stacks (they log header values
#: at DEBUG), the Kubernetes client (it logs request bodies and tokens at DEBUG) and the
#: access logs (a line per request at INFO).
PINNED_LOGGERS: tuple[str, ...] = (
    "hpack",
    "h2",
    "h11",
    "httpcore",
    "httpx",
    "aiohttp",
    "kubernetes_asyncio",
    "urllib3",
    "uvicorn.access",
)

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}
_BEARER = re.compile(r"(?i)(authorization|bearer|token|password|secret)([\"']?\s*[:=]\s*)(\S+)")


def redact(text: str) -> str:
    """Mask values that follow credential-looking keys in free text."""
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{self.formatTime(record)} {record.levelname:<7} {redact(record.getMessage())}"
        if context:
            line += f" [{context}]"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class _Context(logging.Filter):
    """Adds fixed fields to every record of the process (a worker's number)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__()
        self._fields = dict(fields)

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._fields.items():
            setattr(record, key, value)
        return True


def configure_logging(
    *, fmt: str = "json", level: str = "info", context: Mapping[str, str] | None = None
) -> None:
    """Send the process's logs to stderr in the chosen format, ``context`` on every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    if context:
        handler.addFilter(_Context(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries are chatty at INFO (every request) and leak header values at DEBUG; their
    # warnings still come through.
    for name in PINNED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
