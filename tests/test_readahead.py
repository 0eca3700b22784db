"""ReadAhead: a generator and a step run in a thread, with errors and early exits handled."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from batchalert.readahead import ReadAhead


def test_results_in_order_and_computed_in_another_thread() -> None:
    threads: set[str] = set()

    def step(item: int) -> int:
        threads.add(threading.current_thread().name)
        return item * 10

    with ReadAhead(iter(range(100)), step, depth=3) as results:
        collected = list(results)

    assert collected == [item * 10 for item in range(100)]
    assert threads == {"batchalert-read-ahead"}


def test_items_error_raised_in_order() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("broker gone")

    collected = []
    with pytest.raises(OSError, match="broker gone"), \
            ReadAhead(items(), lambda item: item) as results:
        for result in results:
            collected.append(result)

    assert collected == [1, 2]


def test_error_of_the_step_raised() -> None:
    def step(item: int) -> int:
        if item == 3:
            raise ValueError("bad batch")
        return item

    with pytest.raises(ValueError, match="bad batch"), \
            ReadAhead(iter(range(10)), step) as results:
        list(results)


def test_early_exit_stops_thread() -> None:
    produced = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for item in range(1_000_000):
                produced.append(item)
                yield item
        finally:
            closed.set()

    read_ahead = ReadAhead(items(), lambda item: item, depth=2)
    with pytest.raises(RuntimeError, match="consumer failed"), read_ahead as results:
        next(results)
        raise RuntimeError("consumer failed")

    assert closed.is_set()
    assert not read_ahead._thread.is_alive()
    assert len(produced) < 10


def test_byte_budget_holds_the_thread_back() -> None:
    # Each result claims 10 bytes against a budget of 25: two may wait, never three.
    waiting_counts = []
    read_ahead = ReadAhead(iter(range(20)), lambda item: item, depth=100, max_bytes=25,
                           size_of=lambda result: 10)

    with read_ahead as results:
        for _ in results:
            time.sleep(0.01)
            waiting_counts.append(read_ahead._waiting_bytes // 10)

    assert max(waiting_counts) == 2


def test_one_result_larger_than_the_budget_still_passes() -> None:
    with ReadAhead(iter([1, 2]), lambda item: item, max_bytes=5,
                   size_of=lambda result: 100) as results:
        collected = list(results)

    assert collected == [1, 2]


def test_workers_keep_item_order() -> None:
    threads: set[str] = set()

    def step(item: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.001 * (item % 3))  # later items often finish first
        return item * 10

    with ReadAhead(iter(range(60)), step, depth=3, workers=2) as results:
        collected = list(results)

    assert collected == [item * 10 for item in range(60)]
    assert len(threads) == 2
    assert all(name.startswith("batchalert-step") for name in threads)


def test_workers_raise_step_error_in_order() -> None:
    def step(item: int) -> int:
        if item == 5:
            time.sleep(0.02)  # the items after it finish first
            raise ValueError("bad batch")
        return item

    collected = []
    with pytest.raises(ValueError, match="bad batch"), \
            ReadAhead(iter(range(20)), step, workers=2) as results:
        for result in results:
            collected.append(result)

    assert collected == [0, 1, 2, 3, 4]


def test_workers_results_before_items_error() -> None:
    def items() -> Iterator[int]:
        yield from range(4)
        raise OSError("broker gone")

    def step(item: int) -> int:
        time.sleep(0.01)
        return item

    collected = []
    with pytest.raises(OSError, match="broker gone"), \
            ReadAhead(items(), step, workers=2) as results:
        for result in results:
            collected.append(result)

    assert collected == [0, 1, 2, 3]


def test_workers_stop_on_early_exit() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    read_ahead = ReadAhead(items(), lambda item: item, depth=2, workers=2)
    with pytest.raises(RuntimeError, match="consumer failed"), read_ahead as results:
        next(results)
        raise RuntimeError("consumer failed")

    assert closed.is_set()
    assert not read_ahead._thread.is_alive()
