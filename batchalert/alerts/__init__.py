"""Alerts: identity labels, annotations rendered from templates, and receiver payloads."""

from batchalert.alerts.model import Alert, build_alerts, format_time
from batchalert.alerts.render import AlertRenderer

__all__ = ["Alert", "AlertRenderer", "build_alerts", "format_time"]
