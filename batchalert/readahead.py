"""Running a generator and a step on each of its items in a thread, ahead of the consumer.

A run reads, screens and parses on one core otherwise. The reader's network work, the record
decoder and the envelope screen release the GIL, and so does most of Polars' parsing, so one
thread reading and screening next to one thread parsing keeps both cores of a small node busy.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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

    With `workers` above 1, the thread takes the items and that many threads run `step` on
    them, while the results still come in the order of the items. At most `depth` results
    wait, and together at most `max_bytes` as `size_of` counts them; one result always fits,
    whatever its size. Use it as a context manager: leaving the block early (an exception in
    the consumer) stops the threads after their current items and closes `items`. An
    exception raised by `items` or by `step` is raised again in the consumer, at the point
    where that item would have come.
    """

    def __init__(self, items: Iterator[Item], step: Callable[[Item], Result],
                 depth: int = DEFAULT_DEPTH, max_bytes: int = DEFAULT_MAX_BYTES,
                 size_of: Callable[[Result], int] | None = None, workers: int = 1) -> None:
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
        self._workers = workers
        self._pool = (ThreadPoolExecutor(workers, thread_name_prefix="batchalert-step")
                      if workers > 1 else None)

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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

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
        started: collections.deque[Future[Result]] = collections.deque()
        try:
            items_error = None
            iterator = iter(self._items)
            while not self._stop:
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                except BaseException as exc:  # raised after the results of earlier items
                    items_error = exc
                    break
                if self._pool is None:
                    if not self._deliver(self._step(item)):
                        return
                    continue
                # One item more than workers is started, so that no worker waits.
                started.append(self._pool.submit(self._step, item))
                while len(started) > self._workers:
                    if not self._deliver(started.popleft().result()):
                        return
            while started and not self._stop:
                if not self._deliver(started.popleft().result()):
                    return
            if items_error is not None:
                raise items_error
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Done(exc), 0)
        else:
            self._put(_Done(), 0)
        finally:
            for future in started:
                future.cancel()
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _deliver(self, result: Result) -> bool:
        size = self._size_of(result) if self._size_of is not None else 0
        return self._put(result, size)

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
