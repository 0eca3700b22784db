"""Logging set-up for the command line: JSON lines off a terminal, readable lines on one."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

# Secret values read by this process; every log line and error message is scrubbed of them.
_SECRETS: set[str] = set()
# Shorter values would mask ordinary words; such a secret is too weak to matter here anyway.
_MIN_SECRET_CHARS = 4
MASK = "***"


def register_secret(value: str) -> None:
    """Remember a secret value so that `redact` and the log handlers mask it."""
    if len(value) >= _MIN_SECRET_CHARS:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret value in `text` with `***`."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and masks registered secrets in what it produces.

    Third-party libraries log their own settings at debug level (kafka-python logs its whole
    configuration, SASL password included), so masking happens on the final text.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


# Attributes every LogRecord has; anything else was passed through `extra=` and is kept.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Let each distinct kafka-python message through at most once per `interval` seconds.

    While a broker is unreachable, kafka-python logs the same four lines at every reconnect
    attempt (about 3 lines a second measured here), before batchalert's own error names the
    brokers and the fix. Messages are compared with their digits masked (backoff times, ports,
    node ids). A message let through after others like it were held back says how many.
    Records of other loggers pass untouched.
    """

    def __init__(self, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        # Per message: when it last went through, and how many were held back since.
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "kafka" and not record.name.startswith("kafka."):
            return True
        key = (record.name, record.levelno, re.sub(r"\d+", "#", record.getMessage()))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._interval:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        held_back = seen[1] if seen is not None else 0
        self._seen[key] = (now, 0)
        if held_back:
            record.msg = (f"{record.getMessage()} ({held_back} more like it held back in the last "
                          f"{self._interval:g} s)")
            record.args = None
        return True


def setup_logging(verbose: bool = False, quiet: bool = False, json_lines: bool | None = None
                  ) -> None:
    """Configure the root logger; only the command-line entry point calls this."""
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                      datefmt="%H:%M:%S")
    handler.setFormatter(RedactingFormatter(formatter))
    if not verbose:
        handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs connection chatter at INFO; keep it to warnings unless debugging.
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # kafka-python's event loop warns when one step takes over 0.1 s, which decoding an 8 MiB
    # Fetch response can. That is a note for its developers, not a fault of the run.
    logging.getLogger("kafka.net.selector").setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
