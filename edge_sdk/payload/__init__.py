"""Payload format v1: the compact, bit-packed, signed container that carries a training set to devices.

Spec: docs/payload-format.md. API (docs/contracts.md, "Payload v1")::

    from edge_sdk.payload import SampleGroup, write_payload, payload_size, read_payload
"""

from edge_sdk.payload.errors import (
    BadMagic,
    BadOffsets,
    BadSignature,
    ChecksumMismatch,
    DigestMismatch,
    HeaderInvalid,
    HeaderTooLarge,
    InvalidValue,
    LimitExceeded,
    PayloadError,
    SignatureRequired,
    TrailingBytes,
    Truncated,
    UnsupportedVersion,
    UntrustedKey,
)
from edge_sdk.payload.format import FORMAT_MAJOR, FORMAT_MINOR, MAGIC, GroupLayout
from edge_sdk.payload.reader import GroupView, Payload, read_payload
from edge_sdk.payload.signing import (
    KeyFileExists,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)
from edge_sdk.payload.writer import (
    PayloadInfo,
    SampleGroup,
    encode_payload,
    make_provenance,
    payload_size,
    sign_payload,
    write_payload,
)

__all__ = [
    "FORMAT_MAJOR", "FORMAT_MINOR", "MAGIC",
    "SampleGroup", "GroupLayout", "PayloadInfo", "write_payload", "encode_payload", "make_provenance", "payload_size", "sign_payload",
    "read_payload", "Payload", "GroupView",
    "generate_keypair", "key_id", "save_private_key", "save_public_key", "load_private_key", "load_public_key",
    "KeyFileExists",
    "PayloadError", "BadMagic", "UnsupportedVersion", "HeaderTooLarge", "HeaderInvalid", "BadOffsets", "Truncated",
    "TrailingBytes", "ChecksumMismatch", "DigestMismatch", "BadSignature", "UntrustedKey", "SignatureRequired",
    "LimitExceeded", "InvalidValue",
]
