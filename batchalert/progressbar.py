"""The rich progress bar of `batchalert.progress.RunProgress`, for runs on a terminal."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RecordsColumn(ProgressColumn):
    """Records read, and the planned offsets that bound them once the plan is known."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(f"{done:,} records")
        return Text(f"{done:,} of at most {int(task.total):,} records")


class _RateColumn(ProgressColumn):
    """Records per second over rich's speed-estimate window."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} records/s")


def new_bar(console: Console | None, clock: Callable[[], float]) -> Progress:
    """Return a bar with the records, bytes, rate and time left; standard error by default."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _RecordsColumn(),
        TextColumn("{task.fields[size]}"),
        _RateColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        get_time=clock,
    )
