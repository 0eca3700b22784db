"""Exceptions raised by batchalert, and the process exit code each one maps to.

    BatchalertError                 root; exit code 1
    ├── ConfigError                 invalid job file, option or environment variable; exit 2
    ├── SourceError                 Kafka unreachable, topic missing, read or commit failed; exit 3
    ├── SinkError                   a required receiver did not accept the alerts; exit 4
    ├── ConcurrentRunError          another run of the same job and group is active; exit 5
    └── GroupConflictError          another application uses the consumer group; exit 6

Every message names the value involved (topic, partition, URL, field) and what to do next.
"""

from __future__ import annotations


class BatchalertError(Exception):
    """Base class of every error batchalert raises on purpose."""

    exit_code: int = 1


class ConfigError(BatchalertError):
    """A job file, command-line option or environment variable is invalid."""

    exit_code = 2


class SourceError(BatchalertError):
    """Reading from or committing to Kafka failed."""

    exit_code = 3


class SinkError(BatchalertError):
    """A required receiver rejected the alerts or could not be reached."""

    exit_code = 4


class ConcurrentRunError(BatchalertError):
    """Another run of the same job and consumer group holds the run lock."""

    exit_code = 5


class GroupConflictError(BatchalertError):
    """The consumer group is used by another application as well."""

    exit_code = 6
