"""Reading Kafka: plan offset ranges, read them into Arrow record batches, commit the ends.

The package itself imports nothing, so that `batchalert.source.client` can open a consumer
before pyarrow loads.
"""
