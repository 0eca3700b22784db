"""Log levels that the command line sets for the libraries batchalert uses."""

from __future__ import annotations

import logging

from batchalert.logs import setup_logging


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
