"""Parts every sink shares: the delivery report, HTTP clients and error text."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from batchalert.alerts.model import Alert
from batchalert.alerts.render import AlertRenderer
from batchalert.config import ReceiverConfig, resolve_secret
from batchalert.errors import ConfigError
from batchalert.events import mask_url

logger = logging.getLogger(__name__)

# Characters of a receiver's error body kept in messages: enough for its reason, not a page.
ERROR_BODY_CHARS = 300


@dataclass
class Delivery:
    """Delivery report: how many of a run's alerts one receiver accepted, and its errors."""

    receiver: str
    required: bool
    attempted: int = 0
    delivered: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.delivered == self.attempted

    @property
    def undelivered(self) -> int:
        return self.attempted - self.delivered


class Sink(Protocol):
    """A receiver of alerts."""

    name: str
    required: bool

    def send(self, alerts: list[Alert]) -> Delivery: ...

    def close(self) -> None: ...


def http_client(config: ReceiverConfig) -> httpx.Client:
    """Build an HTTP client with the receiver's timeouts, CA bundle and credentials."""
    timeout = httpx.Timeout(config.timeout.read, connect=config.timeout.connect)
    headers = dict(config.headers)
    auth: httpx.Auth | None = None
    if config.auth is not None and config.auth.type == "bearer":
        token = resolve_secret(config.auth.token, f"receivers.{config.name}.auth.token")
        assert token is not None
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    elif config.auth is not None:
        user = resolve_secret(config.auth.username, f"receivers.{config.name}.auth.username",
                              redacted=False)
        password = resolve_secret(config.auth.password, f"receivers.{config.name}.auth.password")
        assert user is not None and password is not None
        auth = httpx.BasicAuth(user.get_secret_value(), password.get_secret_value())
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"receivers.{config.name}.ca_file: cannot load CA bundle "
                              f"{config.ca_file}: {exc}") from exc
    return httpx.Client(timeout=timeout, headers=headers, auth=auth, verify=verify,
                        follow_redirects=False)


def describe_http_error(url: str, exc: httpx.HTTPError) -> str:
    """Name what went wrong on the way to `url` in the words an operator searches for.

    The URL is masked: a webhook URL is often a credential in itself.
    """
    url = mask_url(url)
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connecting to {url} timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"{url} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return (f"cannot connect to {url}: {exc}; check the receiver's URL and that the "
                f"receiver is running")
    return f"request to {url} failed: {exc}"


def describe_status(url: str, response: httpx.Response) -> str:
    url = mask_url(url)
    body = response.text[:ERROR_BODY_CHARS].strip()
    message = f"{url} answered HTTP {response.status_code}" + (f": {body}" if body else "")
    if response.status_code == 404:
        # Messages mask the path when it may contain a credential, so name it as the suspect.
        message += "; check the path of the receiver's URL"
    return message


def build_sinks(
    receivers: list[ReceiverConfig],
    clients: dict[str, httpx.Client] | None = None,
    renderer: AlertRenderer | None = None,
) -> list[Sink]:
    """Create one sink per configured receiver; `renderer` carries the job's language."""
    from batchalert.sinks.registry import create_sink

    clients = clients or {}
    return [create_sink(config, clients.get(config.name), renderer) for config in receivers]
