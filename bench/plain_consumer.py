"""Contender (b): read a whole topic with kafka-python and do nothing with the records.

    python -m bench.plain_consumer --brokers 127.0.0.1:9092 --topic bench-1000000

Prints one JSON object: the records read and the seconds from connecting to the last record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from kafka.consumer.fetcher import ConsumerRecord

from bench.consume import add_source_arguments, open_consumer, read_topic


def ignore(records: list[ConsumerRecord]) -> None:
    """Drop a fetched batch."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_consumer",
                                     description=__doc__.splitlines()[0])
    add_source_arguments(parser)
    args = parser.parse_args(argv)

    started = time.monotonic()
    consumer = open_consumer([args.brokers], args.topic, args.group)
    try:
        records = read_topic(consumer, args.topic, ignore, args.timeout)
    finally:
        consumer.close(autocommit=False)
    print(json.dumps({"records": records, "seconds": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
