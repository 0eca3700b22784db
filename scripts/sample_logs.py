"""Realistic Fluent Bit records for the demo, the tests and the benchmark.

Records look like what KubeSphere's Fluent Bit writes to Kafka: the container's line in `log`
with its trailing newline, Kubernetes metadata, `@timestamp` as epoch seconds and `time` as
RFC 3339. Traffic is mostly 2xx and 3xx with some 404s and 5xx, a share of lines that are not
access lines (application logs, nginx error lines), and a few broken values. The same seed gives
the same records.

    python -m scripts.sample_logs --count 1000 > values.txt
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The article's record: a WordPress pod in demo-project that returned 404 for GET /notfound.
ARTICLE_NAMESPACE = "demo-project"
ARTICLE_POD = "wordpress-v1-f54f697c5-hdn2z"
ARTICLE_LINE = ('203.0.113.9 - - [{time}] "GET /notfound HTTP/1.1" 404 49923 "-" '
                '"curl/7.58.0"\n')

_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_PATHS_OK = ["/", "/index.html", "/api/v1/orders", "/api/v1/orders/{id}", "/static/app.js",
             "/static/style.css", "/login", "/cart", "/products/{id}", "/healthz",
             "/wp-admin/admin-ajax.php", "/search?q=shoes", "/api/v1/users/{id}/profile"]
_PATHS_404 = ["/notfound", "/favicon.ico", "/wp-login.php", "/.env", "/old/report.pdf",
              "/api/v1/orders/{id}/invoice", "/images/banner-2019.png", "/robots.txt"]
_AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:91.0) Gecko/20100101 Firefox/91.0",
           "curl/7.68.0", "kube-probe/1.27", "Go-http-client/1.1",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15"]
_METHODS = ["GET"] * 8 + ["POST", "PUT"]


@dataclass(frozen=True)
class Pod:
    """A pod and what it runs."""

    namespace: str
    name: str
    container: str
    image: str


def _suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_SUFFIX_CHARS) for _ in range(length))


def make_pods(rng: random.Random, namespaces: int, pods_per_namespace: int) -> list[Pod]:
    """Create Deployment- and StatefulSet-style pods across namespaces, plus the article's pod."""
    pods = [Pod(ARTICLE_NAMESPACE, ARTICLE_POD, "container-nrdsp1", "wordpress:4.8-apache")]
    apps = ["web", "api", "shop", "blog", "gateway", "search", "cart", "auth"]
    for n in range(namespaces):
        namespace = f"team-{n:02d}"
        for p in range(pods_per_namespace):
            app = apps[(n + p) % len(apps)]
            if p % 5 == 4:
                name = f"{app}-db-{p % 3}"
                pods.append(Pod(namespace, name, "mysql", "mysql:8.0"))
            else:
                template_hash = _suffix(rng, 9 if p % 2 else 10)
                name = f"{app}-{template_hash}-{_suffix(rng, 5)}"
                pods.append(Pod(namespace, name, "nginx", "nginx:1.25"))
    return pods


def _client(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
    return f"203.0.113.{rng.randrange(1, 255)}" if rng.random() < 0.5 else \
        f"198.51.100.{rng.randrange(1, 255)}"


def _path(rng: random.Random, choices: list[str]) -> str:
    return rng.choice(choices).replace("{id}", str(rng.randrange(1, 5000)))


def access_line(rng: random.Random, moment: datetime, status: int) -> str:
    """Return an nginx combined-format line with the newline Docker keeps."""
    path = _path(rng, _PATHS_404 if status == 404 else _PATHS_OK)
    stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    size = rng.randrange(100, 60000) if status < 400 else rng.randrange(100, 600)
    return (f'{_client(rng)} - - [{stamp}] "{rng.choice(_METHODS)} {path} HTTP/1.1" {status} '
            f'{size} "-" "{rng.choice(_AGENTS)}"\n')


def _status(rng: random.Random, rate_404: float, rate_5xx: float) -> int:
    roll = rng.random()
    if roll < rate_404:
        return 404
    if roll < rate_404 + rate_5xx:
        return rng.choice([500, 502, 503])
    return rng.choice([200] * 12 + [201, 204, 301, 302, 304])


def other_line(rng: random.Random, moment: datetime) -> str:
    """Return an application or nginx error-log line, which is not an access line."""
    if rng.random() < 0.5:
        return (f'{moment:%Y/%m/%d %H:%M:%S} [error] 31#31: *{rng.randrange(1, 99999)} open() '
                f'"/usr/share/nginx/html/missing.png" failed (2: No such file or directory), '
                f'client: 203.0.113.7, server: localhost, request: "GET /missing.png HTTP/1.1"\n')
    return f"{moment.isoformat()} INFO worker {rng.randrange(1, 16)} processed job in 12ms\n"


def envelope(pod: Pod, line: str, moment: datetime, rng: random.Random) -> dict[str, object]:
    """Wrap a line as Fluent Bit's Kafka output writes it."""
    return {
        "@timestamp": round(moment.timestamp(), 6),
        "log": line,
        "stream": "stdout",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        "kubernetes": {
            "pod_name": pod.name,
            "namespace_name": pod.namespace,
            "container_name": pod.container,
            "docker_id": f"{rng.getrandbits(256):064x}",
            "container_image": pod.image,
        },
    }


BROKEN_VALUES = [
    b'{"@timestamp":1629856477.22,"log":"203.0.113.66 - - [25/Aug/2021:01:54:37 +0000] \\"GET',
    b"\xff\xfe not a record \x00",
    b"[1, 2, 3]",
    b'{"kubernetes": {"pod_name": "web-0", "namespace_name": "shop"}}',
]


def generate(
    count: int,
    seed: int = 1,
    start: datetime | None = None,
    span_seconds: float = 3600.0,
    namespaces: int = 20,
    pods_per_namespace: int = 15,
    rate_404: float = 0.05,
    rate_5xx: float = 0.01,
    rate_other: float = 0.05,
    rate_broken: float = 0.001,
) -> Iterator[bytes]:
    """Yield `count` record values; the first record is the article's WordPress 404."""
    rng = random.Random(seed)
    pods = make_pods(rng, namespaces, pods_per_namespace)
    start = start or datetime(2021, 8, 25, 1, 0, 0, tzinfo=UTC)
    step = span_seconds / max(count, 1)
    for index in range(count):
        moment = start + timedelta(seconds=index * step)
        if index == 0:
            line = ARTICLE_LINE.format(time=moment.strftime("%d/%b/%Y:%H:%M:%S +0000"))
            yield json.dumps(envelope(pods[0], line, moment, rng)).encode()
            continue
        roll = rng.random()
        if roll < rate_broken:
            yield BROKEN_VALUES[index % len(BROKEN_VALUES)]
            continue
        pod = rng.choice(pods)
        if roll < rate_broken + rate_other or pod.container == "mysql":
            line = other_line(rng, moment)
        else:
            line = access_line(rng, moment, _status(rng, rate_404, rate_5xx))
        yield json.dumps(envelope(pod, line, moment, rng)).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="records to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args()
    out = sys.stdout.buffer
    for value in generate(args.count, seed=args.seed):
        out.write(value.replace(b"\n", b" ") + b"\n")


if __name__ == "__main__":
    main()
