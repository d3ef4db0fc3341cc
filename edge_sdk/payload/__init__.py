"""Payload formats v1 and v2: the compact, bit-packed, signed container that carries a training set to devices.

Spec: docs/payload-format.md. API (docs/contracts.md, "Payload")::

    from edge_sdk.payload import SampleGroup, write_payload_v2, payload_size_v2, read_payload   # v2 (servers write it)
    from edge_sdk.payload import write_payload, payload_size                                   # v1 (still readable)
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
    TaskBlobMissing,
    TaskMismatch,
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
    Q8Param,
    SampleGroup,
    encode_payload,
    encode_payload_v2,
    make_provenance,
    payload_size,
    payload_size_v2,
    sign_payload,
    write_payload,
    write_payload_v2,
)

__all__ = [
    "FORMAT_MAJOR", "FORMAT_MINOR", "MAGIC",
    "SampleGroup", "GroupLayout", "PayloadInfo", "write_payload", "encode_payload", "make_provenance", "payload_size", "sign_payload",
    "Q8Param", "write_payload_v2", "encode_payload_v2", "payload_size_v2",
    "read_payload", "Payload", "GroupView",
    "generate_keypair", "key_id", "save_private_key", "save_public_key", "load_private_key", "load_public_key",
    "KeyFileExists",
    "PayloadError", "BadMagic", "UnsupportedVersion", "HeaderTooLarge", "HeaderInvalid", "BadOffsets", "Truncated",
    "TrailingBytes", "ChecksumMismatch", "DigestMismatch", "BadSignature", "UntrustedKey", "SignatureRequired",
    "LimitExceeded", "InvalidValue", "TaskBlobMissing", "TaskMismatch",
]
