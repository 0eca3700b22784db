"""Measure parse speed on generated Fluent Bit records: `python -m batchalert.parse.benchmark`.

The records imitate KubeSphere's Fluent Bit output (the envelope of its kubernetes filter, a
line in `log` with its newline): 60% combined access lines, 15% ingress-nginx lines, 3% JSON
access lines, 20% application lines and 2% nginx error lines. The script also times the
alternatives for reading the envelope: `str.json_decode` with a narrow struct type,
`str.json_path_match` per field, and `read_ndjson` as `parse_values` uses it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import polars as pl

from batchalert.parse.values import parse_values

_STATUSES = (200, 200, 200, 200, 301, 304, 404, 500)
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/8.5.0",
    "kube-probe/1.28",
)


def _combined(rng: random.Random, index: int) -> str:
    return (
        f"203.0.113.{index % 250} - - [02/Jan/2024:03:{index % 60:02d}:05 +0000] "
        f'"GET /shop/item/{index}?ref=home HTTP/1.1" {rng.choice(_STATUSES)} {index % 9000} '
        f'"https://shop.example.com/" "{rng.choice(_AGENTS)}"'
    )


def _ingress(rng: random.Random, index: int) -> str:
    status = rng.choice(_STATUSES)
    return (
        _combined(rng, index)
        + f" 412 0.004 [shop-web-80] [] 10.244.1.{index % 200}:8080 {index % 9000} 0.004 "
        f"{status} {index:032x}"
    )


def _json_access(rng: random.Random, index: int) -> str:
    return json.dumps({
        "time_iso8601": "2024-01-02T03:04:05+00:00", "remote_addr": "198.51.100.4",
        "request_method": "GET", "request_uri": f"/api/{index}", "status": rng.choice(_STATUSES),
        "body_bytes_sent": index % 900, "http_user_agent": rng.choice(_AGENTS),
    })


def _application(rng: random.Random, index: int) -> str:
    return (
        f"2024-01-02T03:04:05.{index % 1000:03d}Z INFO  [worker-{index % 8}] "
        f"order {index} processed in {rng.randint(1, 900)} ms"
    )


def _error(rng: random.Random, index: int) -> str:
    return (
        f'2024/01/02 03:04:05 [error] 29#29: *{index} open() "/usr/share/nginx/html/x{index}" '
        'failed (2: No such file or directory), client: 203.0.113.9, server: _, '
        f'request: "GET /x{index} HTTP/1.1", host: "shop.example.com"'
    )


_KINDS: tuple[tuple[float, Callable[[random.Random, int], str]], ...] = (
    (0.60, _combined), (0.15, _ingress), (0.03, _json_access), (0.20, _application),
    (0.02, _error),
)


def realistic_values(count: int, seed: int = 1) -> list[bytes]:
    """Return `count` Fluent Bit record values with a realistic mix of lines."""
    rng = random.Random(seed)
    makers = [maker for _, maker in _KINDS]
    weights = [weight for weight, _ in _KINDS]
    values = []
    for index in range(count):
        line = rng.choices(makers, weights)[0](rng, index)
        record = {
            "@timestamp": 1704164645.25 + index / 1000,
            "log": line + "\n",
            "time": "2024-01-02T03:04:05.250757612Z",
            "kubernetes": {
                "pod_name": f"shop-web-5c7f9d8b6-{index % 40:05d}",
                "namespace_name": "shop",
                "container_name": "nginx",
                "docker_id": f"{index:064x}",
                "container_image": "nginx:1.25",
            },
        }
        values.append(json.dumps(record, separators=(",", ":")).encode())
    return values


def _timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the best wall-clock and CPU seconds of `repeat` runs."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def _envelope_alternatives(text: pl.Series) -> dict[str, Callable[[], object]]:
    narrow = pl.Struct({
        "log": pl.String, "@timestamp": pl.Float64, "time": pl.String,
        "kubernetes": pl.Struct({"pod_name": pl.String, "namespace_name": pl.String,
                                 "container_name": pl.String}),
    })
    paths = ["$.log", "$['@timestamp']", "$.kubernetes.pod_name",
             "$.kubernetes.namespace_name", "$.kubernetes.container_name"]
    ndjson = b"\n".join(text.cast(pl.Binary).to_list())
    schema = {"log": pl.String, "@timestamp": pl.String, "time": pl.String,
              "kubernetes": narrow.to_schema()["kubernetes"]}
    return {
        "json_decode, narrow struct": lambda: text.str.json_decode(narrow),
        "json_path_match, 5 fields": lambda: [text.str.json_path_match(p) for p in paths],
        "read_ndjson, same fields": lambda: pl.read_ndjson(ndjson, schema=schema,
                                                           ignore_errors=True),
    }


def main() -> None:
    """Print records per second for parse_values and for each envelope reader."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--records", type=int, default=200_000, help="records per run")
    options.add_argument("--repeat", type=int, default=3, help="runs; the best one counts")
    options.add_argument("--alternatives", action="store_true",
                         help="also time the envelope readers compared above")
    args = options.parse_args()

    generated = realistic_values(args.records)
    size = sum(map(len, generated)) / max(len(generated), 1)
    values = pl.Series("value", generated, dtype=pl.Binary)
    print(f"{args.records} records, {size:.0f} bytes each on average, "
          f"{pl.thread_pool_size()} Polars threads")
    wall, cpu = _timed(lambda: parse_values(values), args.repeat)
    print(f"parse_values: {wall:.3f} s wall ({args.records / wall:,.0f} records/s), "
          f"{cpu:.3f} s CPU ({args.records / cpu:,.0f} records per CPU-second)")
    if args.alternatives:
        text = values.cast(pl.String)
        for name, action in _envelope_alternatives(text).items():
            wall, cpu = _timed(action, args.repeat)
            print(f"{name}: {wall:.3f} s wall, {cpu:.3f} s CPU "
                  f"({args.records / wall:,.0f} records/s)")


if __name__ == "__main__":
    main()
