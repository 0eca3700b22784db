"""batchalert: grouped alerts from container access logs in Kafka, as a batch job."""

__version__ = "0.1.0"
