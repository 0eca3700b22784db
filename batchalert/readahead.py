"""Running a generator and a step on each of its items in a thread, ahead of the consumer.

A run reads, screens and parses on one core otherwise. The reader's network work, the record
decoder and the envelope screen release the GIL, and so does most of Polars' parsing, so one
thread reading and screening next to one thread parsing keeps both cores of a small node busy.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Items waiting for the consumer, at most. Each holds a reader batch's worth of records (up to
# chunk_records), so this bounds the memory the thread can run ahead by.
DEFAULT_DEPTH = 32


class _Done:
    """Marks the end of the items, with the exception that ended them, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReadAhead(Generic[Item, Result]):
    """Iterate `step(item)` for each item of `items`, computed in a thread up to `depth` ahead.

    Use it as a context manager: leaving the block early (an exception in the consumer) stops
    the thread after its current item and closes `items`. An exception raised by `items` or by
    `step` is raised again in the consumer, at the point where that item would have come.
    """

    def __init__(self, items: Iterator[Item], step: Callable[[Item], Result],
                 depth: int = DEFAULT_DEPTH) -> None:
        self._items = items
        self._step = step
        self._queue: queue.Queue[Result | _Done] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batchalert-read-ahead",
                                        daemon=True)

    def __enter__(self) -> Iterator[Result]:
        self._thread.start()
        return self._results()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        # Unblock a thread waiting for room in the queue.
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _results(self) -> Iterator[Result]:
        while True:
            result = self._queue.get()
            if isinstance(result, _Done):
                if result.error is not None:
                    raise result.error
                return
            yield result

    def _work(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set():
                    break
                if not self._put(self._step(item)):
                    break
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Done(exc))
        else:
            self._put(_Done())
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, result: Result | _Done) -> bool:
        """Put `result` in the queue once there is room; False if the consumer left."""
        while not self._stop.is_set():
            try:
                self._queue.put(result, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
