"""The demo: a local broker loaded with sample logs, the job, and the alerts it sends.

1. start a real Kafka broker on 127.0.0.1 and create topic `logs` with 10 partitions;
2. load realistic Fluent Bit records (many namespaces and pods, some 404s among them the
   article's WordPress request, a few broken records);
3. start a local server that responds as KubeSphere Notification Manager does;
4. run the article's job (`jobs/wordpress-404.yaml`), then a job over every pod, then the first
   job again to show that committed offsets leave nothing to repeat;
5. print what the receiver got, and stop everything.

    python -m scripts.demo [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.fake_receivers import NotificationManagerServer
from scripts.kafka_local import LocalKafka
from scripts.sample_logs import generate

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "logs"
PARTITIONS = 10


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _run_batchalert(args: list[str], env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "batchalert.cli", "run", *args]
    print("$ batchalert run " + " ".join(args), flush=True)
    completed = subprocess.run(command, env=env, cwd=ROOT, check=False)
    print(f"(exit code {completed.returncode})", flush=True)
    return completed.returncode


# Alerts listed one by one per run; the rest are counted, so the output stays readable.
ALERTS_SHOWN = 8


def _show_received(server: NotificationManagerServer, since: int) -> None:
    payloads = server.received[since:]
    alerts = [alert for payload in payloads for alert in payload["alerts"]]
    print(f"Notification Manager accepted {len(payloads)} POST(s) with {len(alerts)} alert(s)")
    ordered = sorted(alerts, key=lambda a: -int(a["annotations"]["count"]))
    for alert in ordered[:ALERTS_SHOWN]:
        labels = alert["labels"]
        target = " ".join(labels[k] for k in ("workload", "method", "path") if k in labels)
        print(f"- {labels['alertname']} [{labels['namespace']}] {target}: "
              f"count {alert['annotations']['count']}")
        print(f"  message: {alert['annotations']['message']}")
    if len(ordered) > ALERTS_SHOWN:
        print(f"... and {len(ordered) - ALERTS_SHOWN} more alert(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the batchalert demo on this machine.")
    parser.add_argument("--records", type=int, default=20_000, help="sample records to load")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="batchalert-demo-") as state, \
            LocalKafka(state_dir=Path(state) / "kafka") as kafka, \
            NotificationManagerServer() as receiver:
        _banner(f"Kafka broker at {kafka.bootstrap}; loading {args.records} records")
        kafka.create_topic(TOPIC, partitions=PARTITIONS)
        kafka.produce(TOPIC, list(generate(args.records)))
        print(f"topic {TOPIC!r}: {PARTITIONS} partitions, {args.records} records")

        env = dict(os.environ, BATCHALERT_BROKERS=kafka.bootstrap,
                   BATCHALERT_RECEIVER_URL=receiver.url, PYTHONPATH=str(ROOT))

        _banner("The article's job: WordPress 404s in demo-project")
        _run_batchalert(["--job", "jobs/wordpress-404.yaml"], env)
        _show_received(receiver, 0)

        _banner("Every 404 in every namespace and pod (job from options)")
        seen = len(receiver.received)
        _run_batchalert(["--topic", TOPIC, "--group", "batchalert-demo-all",
                         "--cluster", "demo"], env)
        _show_received(receiver, seen)

        _banner("The article's job again: offsets were committed, nothing new to send")
        seen = len(receiver.received)
        _run_batchalert(["--job", "jobs/wordpress-404.yaml"], env)
        _show_received(receiver, seen)

        _banner("The first payload Notification Manager received, in full")
        print(json.dumps(receiver.received[0], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
