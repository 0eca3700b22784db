"""The allocator defaults reach the `batchalert` command before Polars and pyarrow load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from batchalert.allocators import DEFAULTS

PROBE = """
import json, os
import batchalert.cli
import pyarrow
from batchalert import allocators
print(json.dumps({"applied": allocators.APPLIED,
                  "jemalloc": os.environ["_RJEM_MALLOC_CONF"],
                  "arrow_pool": pyarrow.default_memory_pool().backend_name}))
"""


def probe(**environment: str) -> dict[str, object]:
    """Import the command in a new interpreter and return what its allocators look like."""
    env = {k: v for k, v in os.environ.items() if k not in DEFAULTS} | environment
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_command_sets_defaults_first() -> None:
    found = probe()

    assert found["applied"] is True
    assert str(found["jemalloc"]).endswith(DEFAULTS["_RJEM_MALLOC_CONF"])
    assert found["arrow_pool"] == "system"


def test_operator_settings_win() -> None:
    found = probe(_RJEM_MALLOC_CONF="dirty_decay_ms:2000", ARROW_DEFAULT_MEMORY_POOL="jemalloc")

    assert str(found["jemalloc"]).endswith("dirty_decay_ms:2000")
    assert found["arrow_pool"] == "jemalloc"


def test_late_import_reported() -> None:
    code = ("import polars\nfrom batchalert import allocators\n"
            "print(allocators.APPLIED)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)

    assert result.stdout.strip() == "False"
