"""numba set-up shared by the compiled parts of batchalert.

The record-batch decoder and the UTF-8 validator are compiled with numba. Compiled code is
cached on disk so that later processes load it in a fraction of a second instead of compiling
for a few seconds. This module finds a writable cache directory, also on a read-only root file
system.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numba

logger = logging.getLogger(__name__)


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _configure_numba_cache() -> bool:
    """Find a writable directory for numba's compiled-code cache; False when there is none.

    NUMBA_CACHE_DIR wins when set and writable. Without it numba writes next to this file. When
    neither is writable, as in a container with a read-only root file system, the cache moves to
    the temporary directory. A read-only NUMBA_CACHE_DIR is copied there first, because numba
    uses no cache directory it cannot write: the copy makes a cache built into an image usable.
    """
    config: Any = numba.config
    configured = Path(config.CACHE_DIR) if os.environ.get("NUMBA_CACHE_DIR") else None
    if configured is not None and _writable_dir(configured):
        return True
    if configured is None and _writable_dir(Path(__file__).resolve().parent / "__pycache__"):
        return True
    fallback = Path(tempfile.gettempdir()) / "batchalert-numba"
    if not _writable_dir(fallback):
        logger.warning("no writable directory for numba's cache: the record decoder is "
                       "compiled again in every process; set NUMBA_CACHE_DIR to a writable "
                       "directory")
        return False
    if configured is not None and configured.is_dir():
        shutil.copytree(configured, fallback, dirs_exist_ok=True)
    # numba reads config.CACHE_DIR when it locates a cache, so setting it here is enough.
    config.CACHE_DIR = str(fallback)
    return True


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Return the CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota.

    In a pod with a CPU limit the affinity still lists every core of the node, so the limit
    (`cpu.max`, "quota period", or "max" for none) decides; 1.5 CPUs round up to 2 threads.
    """
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max" or int(period) <= 0:
        return cpus
    return max(1, min(cpus, -(-int(quota) // int(period))))


def limit_threads() -> None:
    """Let compiled parallel loops use at most the usable CPUs (see `usable_cpus`)."""
    config: Any = numba.config
    wanted = min(usable_cpus(), config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)


CACHE = _configure_numba_cache()
# Decorator for compiled functions: cached on disk, and releasing the GIL while they run.
jit = numba.njit(cache=CACHE, nogil=True)
# The same for small helpers, which numba inlines into the compiled functions that call them.
inline_jit = numba.njit(cache=CACHE, nogil=True, inline="always")
