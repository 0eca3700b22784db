"""The allocator defaults reach the `batchalert` command before Polars and pyarrow load."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from batchalert import allocators
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


class FakeLibrary:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_malloc_thresholds_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    library = FakeLibrary()
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: library)
    for variable in allocators.MALLOPT_DEFAULTS:
        monkeypatch.delenv(variable, raising=False)

    allocators._set_malloc_options()

    assert sorted(library.calls) == sorted(allocators.MALLOPT_DEFAULTS.values())
    assert (-3, 16 * 1024 * 1024) in library.calls


def test_malloc_threshold_from_environment_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    library = FakeLibrary()
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: library)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    allocators._set_malloc_options()

    assert library.calls == [allocators.MALLOPT_DEFAULTS["MALLOC_TRIM_THRESHOLD_"]]
