"""Typed errors of payload formats v1 and v2: one family, one class per failure mode (docs/payload-format.md,
"Errors"). Every reader failure on untrusted bytes is a :class:`PayloadError`; nothing else escapes."""

from __future__ import annotations

from edge_sdk.errors import EdgeSdkError


class PayloadError(EdgeSdkError):
    """Base of every payload read/verify failure."""

    exit_code = 4


class BadMagic(PayloadError):
    """The file does not start with the payload magic bytes (not an edge-sdk payload)."""


class UnsupportedVersion(PayloadError):
    """The format version is not one this reader accepts (e.g. a newer major version)."""


class HeaderTooLarge(PayloadError):
    """The declared header length exceeds the hard cap (checked before reading the header)."""


class HeaderInvalid(PayloadError):
    """The header is not canonical UTF-8 JSON, or does not follow the v1 schema, or unknown flags are set."""


class BadOffsets(PayloadError):
    """The section table is inconsistent: gaps/overlaps, or a length that does not match its shape."""


class Truncated(PayloadError):
    """The file ends before the header, sections or trailer it declares."""


class TrailingBytes(PayloadError):
    """Bytes follow the declared end of the payload."""


class ChecksumMismatch(PayloadError):
    """A section's CRC32 does not match its bytes."""


class DigestMismatch(PayloadError):
    """The SHA-256 content digest in the trailer does not match the content."""


class BadSignature(PayloadError):
    """The Ed25519 signature does not verify under the trusted key its key id names."""


class UntrustedKey(PayloadError):
    """The payload is signed by a key that is not among the trusted public keys."""


class SignatureRequired(PayloadError):
    """A signature is required but the payload is unsigned."""


class LimitExceeded(PayloadError):
    """A declared size or count exceeds a reader limit (checked before any allocation)."""


class InvalidValue(PayloadError):
    """Decoded data breaks a rule of the format (e.g. a hard label >= num_classes)."""


class TaskBlobMissing(PayloadError):
    """A v2 payload's task blob (named by digest) was not given and not found next to the payload."""


class TaskMismatch(PayloadError):
    """The task blob given for a v2 payload does not have the SHA-256 the payload names."""


__all__ = [
    "PayloadError",
    "BadMagic",
    "UnsupportedVersion",
    "HeaderTooLarge",
    "HeaderInvalid",
    "BadOffsets",
    "Truncated",
    "TrailingBytes",
    "ChecksumMismatch",
    "DigestMismatch",
    "BadSignature",
    "UntrustedKey",
    "SignatureRequired",
    "LimitExceeded",
    "InvalidValue",
    "TaskBlobMissing",
    "TaskMismatch",
]
