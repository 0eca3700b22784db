"""Compile the kernels ahead of time into an extension module that runs without numba.

    python -m batchalert.kernels.build [--out DIR]

A run that finds the module imports neither numba nor LLVM, which saves about 100 MB of
memory (measured on a run over 1,000,000 records) and the compilation at start-up. The
module's name carries a digest of the kernel sources, so a module built from other sources is
never loaded. Without `--out` the module goes into the first writable directory of
`batchalert.kernels.search_dirs()`.
On x86-64 a second module is built for x86-64-v3 (AVX2 and BMI2), which `load()` prefers on
a CPU that has those instructions. Building takes about a minute per module and needs a C
compiler and Python's headers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path
from typing import Any

from batchalert.kernels import (
    build_cpus,
    find_module,
    module_name,
    search_dirs,
    writable,
)

logger = logging.getLogger(__name__)


def _signatures() -> dict[str, Any]:
    types: Any = importlib.import_module("numba.types")

    def array(dtype: Any, dims: int = 1, readonly: bool = False) -> Any:
        return types.Array(dtype, dims, "C", readonly=readonly)

    data = array(types.uint8, readonly=True)
    offsets = array(types.int64, readonly=True)
    return {
        "count_batches": types.UniTuple(types.int64, 3)(data),
        "scan_headers": array(types.int64, 2)(data, types.int64),
        "decode_batches": types.Tuple((types.int64, array(types.int64, 2), types.int64,
                                       types.int64))(
            data, data, array(types.int64, 2, readonly=True), types.int64, types.int64,
            types.int64),
        "gather": types.Tuple((array(types.int32), array(types.uint8)))(
            data, data, offsets, offsets),
        "mark_invalid_utf8": types.void(offsets, data, array(types.boolean)),
        "mark_status_codes": types.void(offsets, data, offsets,
                                        array(types.boolean, readonly=True),
                                        array(types.boolean)),
        "locate_fields": types.void(
            offsets, data, data, offsets, offsets, offsets, array(types.int8, 2),
            array(types.int64, 2), array(types.int64, 2), array(types.boolean)),
        "copy_fields": types.void(data, array(types.int8, readonly=True), offsets, offsets,
                                  array(types.int64), array(types.uint8)),
        "screen_values": types.void(
            offsets, data, array(types.boolean, readonly=True), types.int64, data, offsets,
            array(types.int8, readonly=True), types.int64, array(types.boolean)),
        "classify_values": types.void(
            offsets, data, array(types.boolean, readonly=True), types.int64, data, offsets,
            array(types.int8, readonly=True), types.int64, array(types.boolean, readonly=True),
            types.int64, types.int64, array(types.boolean), array(types.boolean)),
    }


def _release_gil_in_wrappers() -> None:
    """Make the exported functions release the GIL while they run, as the JIT kernels do.

    pycc has no option for it: it compiles each export with a fresh `Flags()` of its compiler
    module, and the Python wrapper that numba generates releases the GIL when the flags ask.
    Replacing that class for the build lets a reader thread decode while another thread
    screens or parses. The kernels touch no Python object, so releasing is safe.
    """
    compiler: Any = importlib.import_module("numba.pycc.compiler")
    base = importlib.import_module("numba.core.compiler").Flags
    if getattr(compiler.Flags, "_batchalert_releases_gil", False):
        return

    class ReleasingFlags(base):  # type: ignore[misc, valid-type]
        _batchalert_releases_gil = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    compiler.Flags = ReleasingFlags


def build(directory: Path) -> list[Path]:
    """Compile the kernels into `directory`, for the portable baseline and for each level of
    `build_cpus()`; return the modules' paths."""
    from batchalert.kernels import bitmasks, fields, recordsets, text

    pycc: Any = importlib.import_module("numba.pycc")
    _release_gil_in_wrappers()

    sources = {"count_batches": recordsets.count_batches,
               "scan_headers": recordsets.scan_headers,
               "decode_batches": recordsets.decode_batches, "gather": recordsets.gather,
               "mark_invalid_utf8": text.mark_invalid_utf8,
               "mark_status_codes": text.mark_status_codes,
               "screen_values": text.screen_values,
               "classify_values": bitmasks.classify_values,
               "locate_fields": fields.locate_fields, "copy_fields": fields.copy_fields}
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    paths = []
    for cpu in ["", *build_cpus()]:
        name = module_name(cpu)
        names.append(name)
        # Built in a temporary directory and moved in place, so that a process that loads
        # the kernels meanwhile never reads half a file.
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
            compiler = pycc.CC(name)
            compiler.output_dir = scratch
            compiler.verbose = False
            if cpu:
                compiler.target_cpu = cpu
            for export, signature in _signatures().items():
                compiler.export(export, signature)(sources[export])
            with warnings.catch_warnings():
                # numba.pycc announces its deprecation; it still builds with numba 0.68.
                warnings.simplefilter("ignore")
                compiler.compile()
            built = next(Path(scratch).glob(name + ".*"))
            target = directory / built.name
            shutil.move(built, target)
        paths.append(target)
    # Modules built from earlier sources are never loaded again.
    for stale in directory.glob("_batchalert_kernels_*"):
        if stale.is_file() and not any(stale.name.startswith(name + ".") for name in names):
            stale.unlink(missing_ok=True)
    return paths


def c_compiler() -> str:
    """Return the C compiler command that the build would run: $CC, else Python's own."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return str(configured).split()[0]


def main(argv: list[str] | None = None) -> int:
    """Build the kernels as the arguments request; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m batchalert.kernels.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the module (default: the first writable of "
                             + ", ".join(str(d) for d in search_dirs()) + ")")
    parser.add_argument("--force", action="store_true",
                        help="build again even if a module for these sources exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    existing = find_module()
    if existing is not None and not args.force and args.out is None:
        built = [path for cpu in ["", *build_cpus()]
                 for path in sorted(existing.parent.glob(module_name(cpu) + ".*"))]
        if len(built) == 1 + len(build_cpus()):
            logger.info("kernels already built: %s", ", ".join(str(path) for path in built))
            return 0

    directory = args.out
    if directory is None:
        directory = next((d for d in search_dirs() if writable(d)), None)
    if directory is None:
        logger.error("no writable directory among %s; pass --out DIR and set "
                      "BATCHALERT_KERNELS_DIR=DIR for the runs", search_dirs())
        return 2

    compiler = c_compiler()
    if shutil.which(compiler) is None:
        logger.error("C compiler %r not found, so the kernels cannot be built; install it "
                     "(Debian: apt-get install gcc libc6-dev) or set CC, then build again. "
                     "Until then runs compile the kernels with numba at run time", compiler)
        return 1

    try:
        paths = build(directory)
    except Exception as exc:  # the compiler's errors have no common base class
        logger.error("building the kernels failed: %s: %s; runs compile them with numba at "
                     "run time instead", type(exc).__name__, exc)
        return 1
    logger.info("kernels built: %s", ", ".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
