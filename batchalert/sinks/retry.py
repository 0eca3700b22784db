"""Retrying POST requests within a bounded time budget per run.

A sink creates one RetryBudget when `send` starts and passes it to every `post_with_retries`
call of that run. A request is retried after HTTP 429 (waiting `Retry-After` when the receiver
sends it), after HTTP 5xx and after transport errors (refused connection, reset, timeout), with
exponential backoff between attempts. A retry starts only when its wait ends within the budget,
so a run spends at most the budget waiting, plus the request timeouts of its last attempts.
Other statuses are final. Retrying a request that timed out may deliver it twice; receivers that
notify people may then show a message twice, which is better than none.

URLs appear in messages and logs only through `batchalert.events.mask_url`, because a webhook
URL is often a credential in itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from batchalert.events import log_post, mask_url
from batchalert.sinks.base import describe_http_error, describe_status

logger = logging.getLogger(__name__)

# Wait before the second attempt, in seconds; each further attempt waits twice as long.
FIRST_BACKOFF_SECONDS = 1.0
# Maximum wait between two attempts, in seconds, unless the receiver's Retry-After requests more.
MAX_BACKOFF_SECONDS = 30.0
# Attempts per request, whatever the budget: bounds the count when Retry-After is 0.
MAX_ATTEMPTS = 8


class Clock(Protocol):
    """Wall time, monotonic time and sleeping; tests pass a clock that only pretends to wait."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RetryBudget:
    """Seconds that one run of a sink may still spend waiting to retry requests."""

    def __init__(self, seconds: float, clock: Clock | None = None) -> None:
        self.seconds = seconds
        self._clock = clock or SystemClock()
        self._deadline = self._clock.monotonic() + seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self._deadline - self._clock.monotonic())

    def allows(self, delay: float) -> bool:
        """Return whether a wait of `delay` seconds ends before the budget runs out."""
        return delay <= self.remaining

    def wait(self, delay: float) -> None:
        self._clock.sleep(delay)


@dataclass(frozen=True)
class PostResult:
    """The outcome of a POST and its retries: the last response, and the failure if any."""

    response: httpx.Response | None
    failure: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.failure is None


def backoff_seconds(failed_attempts: int) -> float:
    """Return the wait after `failed_attempts` failures: 1 s, 2 s, 4 s, ... up to 30 s."""
    return min(FIRST_BACKOFF_SECONDS * 2.0 ** (failed_attempts - 1), MAX_BACKOFF_SECONDS)


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Read `Retry-After` as seconds or as an HTTP date; None when missing or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def is_retryable(response: httpx.Response) -> bool:
    return response.status_code == httpx.codes.TOO_MANY_REQUESTS or response.status_code >= 500


@dataclass(frozen=True)
class _Request:
    client: httpx.Client
    url: str
    display: str  # the masked URL
    payload: Any
    receiver: str
    count: int
    describe: Callable[[str, httpx.Response], str]


def post_with_retries(
    client: httpx.Client,
    url: str,
    payload: Any,
    budget: RetryBudget,
    *,
    receiver: str,
    count: int,
    describe: Callable[[str, httpx.Response], str] = describe_status,
) -> PostResult:
    """POST `payload` (`count` alerts for `receiver`) as JSON to `url`, retrying within `budget`.

    `describe` turns a final error response into the failure message. It gets the masked URL,
    which is also the only form of `url` in messages and log lines.
    """
    display = mask_url(url)
    request = _Request(client, url, display, payload, receiver, count, describe)
    attempt = 0
    while True:
        attempt += 1
        response, problem, delay = _attempt(request, attempt)
        if problem is None:
            return PostResult(response, None, attempt)
        obstacle = "" if delay is None else _retry_obstacle(budget, delay, attempt)
        if delay is None or obstacle:
            failure = f"{problem}; {obstacle}" if obstacle else problem
            logger.warning("POST %s failed: %s", display, failure)
            return PostResult(response, failure, attempt)
        logger.warning("POST %s failed (%s); retrying in %.1f s, attempt %d of %d",
                       display, problem, delay, attempt + 1, MAX_ATTEMPTS)
        budget.wait(delay)


def _attempt(request: _Request, attempt: int
             ) -> tuple[httpx.Response | None, str | None, float | None]:
    """Send one request; return the response, the problem if any, and the wait before a retry.

    The wait is None when the problem is final.
    """
    try:
        response = request.client.post(request.url, json=request.payload)
    except httpx.HTTPError as exc:
        log_post(request.receiver, request.display, None, request.count)
        # Transport errors (refused, reset, timed out) may pass; other request errors will not.
        retry = backoff_seconds(attempt) if isinstance(exc, httpx.TransportError) else None
        return None, _scrub(describe_http_error(request.display, exc), request), retry
    log_post(request.receiver, request.display, response.status_code, request.count)
    if response.is_success:
        return response, None, None
    problem = _scrub(request.describe(request.display, response), request)
    if not is_retryable(response):
        return response, problem, None
    delay = retry_after_seconds(response) if response.status_code == 429 else None
    if delay is None:
        delay = backoff_seconds(attempt)
    return response, problem, delay


def _retry_obstacle(budget: RetryBudget, delay: float, attempt: int) -> str:
    """Return why the request may not be retried after `delay` seconds, or "" if it may."""
    if budget.seconds <= 0:
        return "retries are off (retry_budget_seconds: 0)"
    attempts = f"{attempt} attempt" if attempt == 1 else f"{attempt} attempts"
    if attempt >= MAX_ATTEMPTS:
        return f"gave up after {attempts}"
    if not budget.allows(delay):
        # Two decimals, so that a wait and a remaining time that differ little do not print
        # as the same number.
        return (f"gave up after {attempts}, because waiting {delay:.2f} s more would exceed "
                f"the retry budget of {budget.seconds:g} s ({budget.remaining:.2f} s left); "
                f"raise retry_budget_seconds to wait longer")
    return ""


def _scrub(message: str, request: _Request) -> str:
    """Replace the full URL, and its path alone, with their masked forms in `message`."""
    message = message.replace(request.url, request.display)
    path = urlsplit(request.url).path
    return message.replace(path, urlsplit(request.display).path) if len(path) > 1 else message
