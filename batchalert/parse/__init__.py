"""Parsing Kafka record values: envelopes, access-log lines, and the checks that skip records.

`batchalert.parse.values` turns a batch of values into one row per value. The package itself
imports nothing, so that the job model can use `batchalert.parse.shapes` without loading
pyarrow.
"""
