"""The compiled loops of batchalert, ahead-of-time built when possible, else numba-compiled.

Four loops run per byte or per record and must be compiled: the record-batch decoder
(`recordsets`), the UTF-8 check, the status-code search and the envelope screen (`text`).
`load()` returns them from an extension module built by `python -m batchalert.kernels.build`,
which needs neither numba nor LLVM at run time. Without such a module it falls back to
numba's just-in-time compiler (`jitted`), which costs about 100 MB of memory more and compiles
for seconds when its cache is cold.

The extension module does not check its arguments' types (a wrong dtype can crash the
process), so every call goes through the wrappers of `Kernels`, which pass contiguous arrays
of the declared dtypes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import platform
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# Files whose contents decide the compiled code.
_SOURCES = ("layout.py", "recordsets.py", "text.py", "bitmasks.py", "fields.py", "build.py")
_DIR_VARIABLE = "BATCHALERT_KERNELS_DIR"


# CPU levels the build compiles for, besides the portable baseline. x86-64-v3 (AVX2, BMI1
# and 2, FMA, MOVBE, LZCNT, F16C) compares 32 bytes at a time where the baseline compares 16.
# That cut the envelope screen's CPU time by about a fifth in bench.parse_only.
_X86_64_V3 = "x86-64-v3"
_X86_64_V3_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2", "fma", "movbe", "abm", "f16c"})


def module_name(cpu: str = "") -> str:
    """Return the extension module's name, with a digest of the kernel sources, for the
    portable baseline or for `cpu` (a name of `build_cpus()`)."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_PACKAGE_DIR / name).read_bytes())
    suffix = "_" + cpu.replace("-", "_") if cpu else ""
    return "_batchalert_kernels_" + digest.hexdigest()[:12] + suffix


def build_cpus() -> list[str]:
    """Return the CPU levels to build for besides the baseline, on this architecture."""
    return [_X86_64_V3] if platform.machine().lower() in ("x86_64", "amd64") else []


@functools.cache
def usable_cpus() -> list[str]:
    """Return the CPU levels of `build_cpus()` that this machine runs, best first."""
    if not build_cpus():
        return []
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith("flags")), [])
    except OSError:
        return []
    return [_X86_64_V3] if set(flags) >= _X86_64_V3_FLAGS else []


def search_dirs() -> list[Path]:
    """Return where the extension module is looked for: $BATCHALERT_KERNELS_DIR, the package
    directory, then the temporary directory."""
    dirs = [Path(os.environ[_DIR_VARIABLE])] if os.environ.get(_DIR_VARIABLE) else []
    return [*dirs, _PACKAGE_DIR, Path(tempfile.gettempdir()) / "batchalert-kernels"]


def writable(directory: Path) -> bool:
    """Return whether files can be created in `directory`, creating it if needed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def find_module() -> Path | None:
    """Return the path of an extension module built from the current sources, or None.

    In each directory of `search_dirs()`, a module for a CPU level this machine runs comes
    before the baseline one.
    """
    names = [module_name(cpu) for cpu in usable_cpus()] + [module_name()]
    for directory in search_dirs():
        for name in names:
            found = sorted(directory.glob(name + ".*"))
            if found:
                return found[0]
    return None


def import_path(path: Path) -> ModuleType:
    """Import the extension module at `path`."""
    spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Kernels:
    """The compiled loops, with arguments converted to the types they were compiled for."""

    def __init__(self, backend: Any, ahead_of_time: bool) -> None:
        self._backend = backend
        self.ahead_of_time = ahead_of_time

    def count_batches(self, buf: npt.NDArray[np.uint8]) -> tuple[int, int, int]:
        """Count the complete batches; return (count, status, position of the bad batch)."""
        count, status, position = self._backend.count_batches(_bytes(buf))
        return int(count), int(status), int(position)

    def scan_headers(self, buf: npt.NDArray[np.uint8], count: int) -> npt.NDArray[np.int64]:
        """Return the header table of the first `count` batches (see layout.COL_*)."""
        table: npt.NDArray[np.int64] = self._backend.scan_headers(_bytes(buf), int(count))
        return table

    def decode_batches(self, raw: npt.NDArray[np.uint8], side: npt.NDArray[np.uint8],
                       batches: npt.NDArray[np.int64], min_offset: int, max_offset: int,
                       capacity: int) -> tuple[int, npt.NDArray[np.int64], int, int]:
        """Decode the records of `batches` in [min_offset, max_offset); see recordsets."""
        count, out, status, bad = self._backend.decode_batches(
            _bytes(raw), _bytes(side), _int64(batches), int(min_offset), int(max_offset),
            int(capacity))
        return int(count), out, int(status), int(bad)

    def gather(self, raw: npt.NDArray[np.uint8], side: npt.NDArray[np.uint8],
               positions: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
               ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
        """Copy fields into one buffer; return Arrow's 32-bit offsets and the data."""
        offsets, data = self._backend.gather(_bytes(raw), _bytes(side), _int64(positions),
                                             _int64(lengths))
        return offsets, data

    def mark_invalid_utf8(self, offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                          invalid: npt.NDArray[np.bool_]) -> None:
        """Set `invalid[row]` for each value that is not well-formed UTF-8."""
        self._backend.mark_invalid_utf8(_int64(offsets), _bytes(data), _output(invalid))

    def mark_status_codes(self, offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                          rows: npt.NDArray[np.int64], codes: npt.NDArray[np.bool_],
                          found: npt.NDArray[np.bool_]) -> None:
        """Set `found[i]` when value `rows[i]` contains one of `codes` as three digits."""
        if codes.shape != (1000,) or len(found) != len(rows):
            raise ValueError("codes needs 1000 entries and found one per row")
        self._backend.mark_status_codes(_int64(offsets), _bytes(data), _int64(rows),
                                        np.ascontiguousarray(codes, np.bool_), _output(found))

    def screen_values(self, offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                      excluded: npt.NDArray[np.bool_], max_bytes: int,
                      names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                      roles: npt.NDArray[np.int8], docker_line: int,
                      passed: npt.NDArray[np.bool_]) -> None:
        """Set `passed[row]` for each value the envelope screen passes; see parse.screen."""
        self._backend.screen_values(
            _int64(offsets), _bytes(data), np.ascontiguousarray(excluded, np.bool_),
            int(max_bytes), _bytes(names), _int64(name_offsets),
            np.ascontiguousarray(roles, np.int8), int(docker_line), _output(passed))

    def classify_values(self, offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                        nulls: npt.NDArray[np.bool_], max_bytes: int,
                        names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                        roles: npt.NDArray[np.int8], docker_line: int,
                        codes: npt.NDArray[np.bool_], candidates: npt.NDArray[np.bool_],
                        passed: npt.NDArray[np.bool_]) -> None:
        """Set `candidates[row]` as `mark_status_codes` does, and `passed[row]` for each other
        non-null value the envelope screen passes; see parse.screen."""
        if codes.shape != (1000,):
            raise ValueError("codes needs 1000 entries")
        if len(candidates) != len(passed) or len(nulls) != len(passed):
            raise ValueError("nulls, candidates and passed need one entry per row")
        marked = np.flatnonzero(codes)
        # First digits of the lowest and highest code; with no code, an empty range.
        first_digit, last_digit = 1, 0
        if len(marked):
            first_digit, last_digit = int(marked[0]) // 100, int(marked[-1]) // 100
        self._backend.classify_values(
            _int64(offsets), _bytes(data), np.ascontiguousarray(nulls, np.bool_),
            int(max_bytes), _bytes(names), _int64(name_offsets),
            np.ascontiguousarray(roles, np.int8), int(docker_line),
            np.ascontiguousarray(codes, np.bool_), first_digit, last_digit,
            _output(candidates), _output(passed))

    def locate_fields(self, offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                      names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                      parents: npt.NDArray[np.int64], columns: npt.NDArray[np.int64],
                      kinds: npt.NDArray[np.int8], starts: npt.NDArray[np.int64],
                      ends: npt.NDArray[np.int64], read: npt.NDArray[np.bool_]) -> None:
        """Find the tracked fields of each value; see parse.fields."""
        rows = len(read)
        shape = (rows, int(columns.max(initial=-1)) + 1)
        for output, dtype in ((kinds, np.int8), (starts, np.int64), (ends, np.int64)):
            if output.shape != shape or output.dtype != dtype or not output.flags.c_contiguous:
                raise ValueError(f"field outputs need shape {shape}, C order and {dtype}")
        if len(offsets) != rows + 1:
            raise ValueError("offsets need one entry more than rows")
        self._backend.locate_fields(_int64(offsets), _bytes(data), _bytes(names),
                                    _int64(name_offsets), _int64(parents), _int64(columns),
                                    kinds, starts, ends, _output(read))

    def copy_fields(self, data: npt.NDArray[np.uint8], kinds: npt.NDArray[np.int8],
                    starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        """Return the 64-bit offsets and the bytes of one field column; see parse.fields."""
        kinds = np.ascontiguousarray(kinds, np.int8)
        starts, ends = _int64(starts), _int64(ends)
        present = kinds != 0
        capacity = int((ends[present] - starts[present]).sum())
        offsets = np.empty(len(kinds) + 1, dtype=np.int64)
        out = np.empty(max(capacity, 1), dtype=np.uint8)
        self._backend.copy_fields(_bytes(data), kinds, starts, ends, offsets, out)
        return offsets, out[:int(offsets[-1])]


def _bytes(array: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(array, np.uint8)


def _int64(array: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    return np.ascontiguousarray(array, np.int64)


def _output(array: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    if array.dtype != np.bool_ or not array.flags.c_contiguous or not array.flags.writeable:
        raise TypeError("kernel output arrays must be writable, contiguous and Boolean")
    return array


@functools.cache
def load() -> Kernels:
    """Return the kernels: the ahead-of-time module if one is built, else numba's JIT."""
    path = find_module()
    if path is not None:
        try:
            return Kernels(import_path(path), ahead_of_time=True)
        except ImportError as exc:
            logger.warning("cannot load the compiled kernels %s (%s); compiling them with "
                           "numba instead", path, exc)
    else:
        logger.info("no ahead-of-time kernels for these sources in %s; compiling them with "
                    "numba, which takes more memory (run `python -m batchalert.kernels.build` "
                    "once to build them)", ", ".join(str(d) for d in search_dirs()))
    from batchalert.kernels import jitted

    return Kernels(jitted, ahead_of_time=False)
