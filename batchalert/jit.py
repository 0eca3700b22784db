"""numba set-up for the kernels in `batchalert.kernels`.

Runs use the kernels built ahead of time when they find them; otherwise numba compiles them
at run time (`batchalert.kernels.jitted`). Compiled code is cached on disk so that later
processes load it in a fraction of a second instead of compiling for a few seconds. This
module finds a writable cache directory, also on a read-only root file system.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numba

from batchalert.kernels import writable as _writable_dir

logger = logging.getLogger(__name__)


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


CACHE = _configure_numba_cache()
# Decorator for compiled functions: cached on disk, and releasing the GIL while they run.
jit = numba.njit(cache=CACHE, nogil=True)
# The same for small helpers, which numba inlines into the compiled functions that call them.
inline_jit = numba.njit(cache=CACHE, nogil=True, inline="always")
