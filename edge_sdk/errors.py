"""The package's exception families. Every error a user can cause is one of these, with a message that
says what is wrong and how to fix it. The CLI prints ``error: <Class>: <message>`` and exits with
``exit_code`` (no traceback)."""

from __future__ import annotations


class EdgeSdkError(Exception):
    """Base of every typed edge-sdk error."""

    exit_code = 1


class ConfigError(EdgeSdkError, ValueError):
    """An invalid configuration or argument (bad budget string, unknown method, impossible layout)."""

    exit_code = 2


class DatasetError(EdgeSdkError):
    """A beam dataset file that is not HDF5 schema v1 (or is a newer version), or is inconsistent."""

    exit_code = 3


class DeviceError(EdgeSdkError):
    """A device-runtime failure (graph/payload mismatch, checkpoint problem)."""

    exit_code = 5


class SchemaError(ConfigError):
    """Input the device reads beside the payload structure (task spec, training recipe, model spec, graph
    metadata, checkpoint header) breaks its schema: a missing or unknown key, a wrong type, a value out of
    range. The message names the field by its path (``task.train.batch_size``)."""


class ResourceLimitError(ConfigError):
    """A model, a training run or an input file would need more memory than the device's bound allows; the
    message gives the estimate, the bound and the option that raises it (for devices that have the memory)."""


class CheckpointError(DeviceError):
    """A checkpoint is corrupt, truncated, of another format version, or does not fit the payload and graph;
    the message says how to start over."""
