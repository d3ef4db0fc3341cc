"""Package version (independent of the payload format version, see edge_sdk.payload)."""

__version__ = "0.3.0"
