"""Reading Kafka: plan offset ranges, read them into Arrow record batches, commit the ends."""

from batchalert.source.client import open_consumer
from batchalert.source.plan import PartitionRange, ReadPlan, plan_ranges
from batchalert.source.reader import RECORD_SCHEMA, RangeReader

__all__ = [
    "RECORD_SCHEMA",
    "PartitionRange",
    "RangeReader",
    "ReadPlan",
    "open_consumer",
    "plan_ranges",
]
