"""Running a generator and a step on each of its items in a thread, ahead of the consumer.

A run reads, screens and parses on one core otherwise. The reader's network work, the record
decoder and the envelope screen release the GIL, and so does most of Polars' parsing, so one
thread reading and screening next to one thread parsing keeps both cores of a small node busy.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Limits of the results waiting for the consumer, by count and by bytes. With the prefilter,
# a screened batch keeps only the records to decode (about a tenth of it), and the consumer
# takes a dozen before it parses. Without it, each result is a whole reader batch, so the
# byte limit stops the thread after two or three.
DEFAULT_DEPTH = 32
DEFAULT_MAX_BYTES = 24 * 1024 * 1024
# How often a waiting thread checks whether the other side has gone.
_POLL_SECONDS = 0.05


class _Done:
    """Marks the end of the items, with the exception that ended them, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReadAhead(Generic[Item, Result]):
    """Iterate `step(item)` for each item of `items`, computed in a thread ahead of time.

    At most `depth` results wait, and together at most `max_bytes` as `size_of` counts them;
    one result always fits, whatever its size. Use it as a context manager: leaving the block
    early (an exception in the consumer) stops the thread after its current item and closes
    `items`. An exception raised by `items` or by `step` is raised again in the consumer, at
    the point where that item would have come.
    """

    def __init__(self, items: Iterator[Item], step: Callable[[Item], Result],
                 depth: int = DEFAULT_DEPTH, max_bytes: int = DEFAULT_MAX_BYTES,
                 size_of: Callable[[Result], int] | None = None) -> None:
        self._items = items
        self._step = step
        self._depth = depth
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._waiting: collections.deque[tuple[Result | _Done, int]] = collections.deque()
        self._waiting_bytes = 0
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="batchalert-read-ahead",
                                        daemon=True)

    def __enter__(self) -> Iterator[Result]:
        self._thread.start()
        return self._results()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        with self._changed:
            self._stop = True
            self._waiting.clear()
            self._waiting_bytes = 0
            self._changed.notify_all()
        self._thread.join()

    def _results(self) -> Iterator[Result]:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait(_POLL_SECONDS)
                result, size = self._waiting.popleft()
                self._waiting_bytes -= size
                self._changed.notify_all()
            if isinstance(result, _Done):
                if result.error is not None:
                    raise result.error
                return
            yield result

    def _work(self) -> None:
        try:
            for item in self._items:
                if self._stop:
                    break
                result = self._step(item)
                size = self._size_of(result) if self._size_of is not None else 0
                if not self._put(result, size):
                    break
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Done(exc), 0)
        else:
            self._put(_Done(), 0)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, result: Result | _Done, size: int) -> bool:
        """Queue `result` once it fits; False if the consumer left."""
        with self._changed:
            while not self._stop and self._waiting and (
                    len(self._waiting) >= self._depth
                    or self._waiting_bytes + size > self._max_bytes):
                self._changed.wait(_POLL_SECONDS)
            if self._stop:
                return False
            self._waiting.append((result, size))
            self._waiting_bytes += size
            self._changed.notify_all()
            return True
