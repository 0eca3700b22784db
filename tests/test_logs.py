"""Log levels that the command line sets for the libraries batchalert uses."""

from __future__ import annotations

import logging

from batchalert.logs import RepeatFilter, setup_logging


def test_library_chatter_kept_to_warnings() -> None:
    setup_logging(quiet=True, json_lines=True)

    assert logging.getLogger("kafka").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("kafka.conn").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("kafka.net.selector").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_verbose_shows_library_debug() -> None:
    setup_logging(verbose=True, json_lines=True)

    assert logging.getLogger("kafka").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("kafka.net.selector").getEffectiveLevel() == logging.DEBUG


def record(name: str, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_repeated_kafka_messages_held_back() -> None:
    now = [0.0]
    repeats = RepeatFilter(interval=30, clock=lambda: now[0])
    backoffs = [0.11, 0.47, 1.84, 2.0]

    passed = []
    for backoff in backoffs:
        now[0] += 1
        line = record("kafka.net.manager", "connection failed (backoff %s secs)", backoff)
        passed.append(repeats.filter(line))
    now[0] += 30
    later = record("kafka.net.manager", "connection failed (backoff %s secs)", 2.0)

    assert passed == [True, False, False, False]
    assert repeats.filter(later)
    assert later.getMessage() == ("connection failed (backoff 2.0 secs) (3 more like it held "
                                  "back in the last 30 s)")


def test_other_messages_and_loggers_pass() -> None:
    repeats = RepeatFilter(interval=30, clock=lambda: 0.0)

    assert repeats.filter(record("kafka.net.manager", "connection failed"))
    assert repeats.filter(record("kafka.net.manager", "metadata refreshed"))
    assert repeats.filter(record("kafka.net.connection", "connection failed"))
    assert all(repeats.filter(record("batchalert.source", "connection failed"))
               for _ in range(3))
    assert all(repeats.filter(record("kafkaesque", "same")) for _ in range(3))


def test_filter_installed_unless_verbose() -> None:
    setup_logging(json_lines=True)
    quiet_handler = logging.getLogger().handlers[0]
    setup_logging(verbose=True, json_lines=True)
    verbose_handler = logging.getLogger().handlers[0]

    assert any(isinstance(f, RepeatFilter) for f in quiet_handler.filters)
    assert not verbose_handler.filters
