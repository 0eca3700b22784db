"""Sinks post alerts to receivers and report what each receiver accepted."""

from batchalert.sinks.base import Delivery, Sink, build_sinks, http_client

__all__ = ["Delivery", "Sink", "build_sinks", "http_client"]
