r"""Contender (c): the per-message approach that batchalert replaces, written in Python.

The original is an OpenFunction function in Go that Dapr calls once per Kafka message. For each
record value this handler runs the same string tests on the whole value:

- the regular expression ` 404 `;
- `namespace_name":"<namespace>`;
- the pod-name regular expression, whose match becomes the `pod` label;
- `([A-Z]+) (/\S*) HTTP` for the method and path (no match: status 500, nothing sent).

When all of them match, it builds an Alertmanager webhook payload with one alert, as the Go
function does with `template.Data`, and POSTs it to Notification Manager: one request per
matching record, over one keep-alive connection.

Differences from the original, all in its favour except the first:
- The original names one namespace (`demo-project`) and one pod pattern. batchalert alerts on
  every namespace and pod here, so these tests accept any name and capture it for the labels.
- The namespace and pod patterns also accept a space after the colon, because the generated
  records are JSON with `": "` separators.
- The patterns are compiled once; Go's `regexp.MatchString` compiles its pattern on every call.
- The per-match log lines, Dapr's sidecar hop and per-message offset commits are left out.

    python -m bench.per_message --brokers 127.0.0.1:9092 --topic T --url http://127.0.0.1:P/...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from kafka.consumer.fetcher import ConsumerRecord

from bench.consume import add_source_arguments, open_consumer, read_topic

ALERT_NAME = "404 Request"
SEVERITY = "warning"
# Go's zero time.Time, which the original sends as `endsAt`.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

_STATUS_404 = re.compile(rb" 404 ")
_NAMESPACE = re.compile(rb'namespace_name": ?"([a-z0-9][-a-z0-9]*)')
_POD = re.compile(rb'pod_name": ?"([a-z0-9][-a-z0-9.]*)')
_REQUEST = re.compile(rb"([A-Z]+) (/\S*) HTTP")
# Seconds one POST may take; the local receiver responds in about a millisecond.
_POST_TIMEOUT_S = 10.0


def build_payload(namespace: str, pod: str, method: str, path: str, now: datetime) -> bytes:
    """Return the JSON body the Go function sends for one matching record."""
    group_labels = {"alertname": ALERT_NAME, "namespace": namespace}
    common_labels = {**group_labels, "severity": SEVERITY}
    alert = {
        "status": "firing",
        "labels": {**common_labels, "pod": pod, "path": path, "method": method},
        "annotations": {},
        "startsAt": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "endsAt": GO_ZERO_TIME,
        "generatorURL": "",
        "fingerprint": "",
    }
    data = {
        "receiver": "notification_manager",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": {},
        "externalURL": "",
    }
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass
class LogsHandler:
    """The per-record handler with counters of what it did."""

    client: httpx.Client
    url: str
    matches: int = 0
    unparsed: int = 0
    posted: int = 0
    failed: int = 0

    def handle(self, content: bytes | None) -> int:
        """Test one record value and post an alert when it matches; return the HTTP-like code."""
        if content is None:
            return 200
        if _STATUS_404.search(content) is None:
            return 200
        namespace = _NAMESPACE.search(content)
        pod = _POD.search(content)
        if namespace is None or pod is None:
            return 200

        self.matches += 1
        request = _REQUEST.search(content)
        if request is None:
            self.unparsed += 1
            return 500
        body = build_payload(namespace.group(1).decode(), pod.group(1).decode(),
                             request.group(1).decode(), request.group(2).decode(errors="replace"),
                             datetime.now(UTC))
        self._post(body)
        return 200

    def handle_batch(self, records: list[ConsumerRecord]) -> None:
        """Call `handle` for every record of a fetched batch, one at a time."""
        for record in records:
            self.handle(record.value)

    def _post(self, body: bytes) -> None:
        try:
            response = self.client.post(self.url, content=body,
                                        headers={"Content-Type": "application/json"})
        except httpx.HTTPError:
            self.failed += 1
            return
        if response.status_code == 200:
            self.posted += 1
        else:
            self.failed += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.per_message",
                                     description=__doc__.splitlines()[0])
    add_source_arguments(parser)
    parser.add_argument("--url", required=True, help="Notification Manager alerts URL")
    args = parser.parse_args(argv)

    started = time.monotonic()
    consumer = open_consumer([args.brokers], args.topic, args.group)
    try:
        with httpx.Client(timeout=_POST_TIMEOUT_S) as client:
            handler = LogsHandler(client, args.url)
            records = read_topic(consumer, args.topic, handler.handle_batch, args.timeout)
    finally:
        consumer.close(autocommit=False)
    print(json.dumps({"records": records, "matches": handler.matches,
                      "unparsed": handler.unparsed, "posted": handler.posted,
                      "failed": handler.failed, "seconds": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
