"""Typed errors of the release layer (docs/transfer.md, "Errors"): one class per failure mode.

Every failure on untrusted bytes (a manifest, a channel record, a blob) is a :class:`ReleaseError`; nothing
else escapes the readers. CLI exit code 6.
"""

from __future__ import annotations

from edge_sdk.errors import EdgeSdkError


class ReleaseError(EdgeSdkError):
    """Base of every store / manifest / channel / transfer failure."""

    exit_code = 6


# ------------------------------------------------------------------------------------------ manifest
class ManifestError(ReleaseError):
    """Base of the manifest reader's failures (M-rules of docs/transfer.md)."""


class ManifestBadMagic(ManifestError):
    """The bytes do not start with the manifest magic (not an edge-sdk release manifest)."""


class ManifestUnsupportedVersion(ManifestError):
    """The manifest format version is not one this reader accepts."""


class ManifestTooLarge(ManifestError):
    """The declared body length exceeds ``MANIFEST_MAX_BODY`` (checked before the body is read)."""


class ManifestInvalid(ManifestError):
    """Unknown flags, a body that is not canonical JSON, or a body that breaks the v1 schema or a limit."""


class ManifestTruncated(ManifestError):
    """The manifest ends before the body and trailer it declares."""


class ManifestTrailingBytes(ManifestError):
    """Bytes follow the declared end of the manifest."""


class ManifestDigestMismatch(ManifestError):
    """The SHA-256 content digest in the trailer does not match the content."""


class ManifestBadSignature(ManifestError):
    """The Ed25519 signature does not verify under the trusted key its key id names."""


class ManifestUntrustedKey(ManifestError):
    """The manifest is signed by a key that is not among the trusted public keys."""


class ManifestSignatureRequired(ManifestError):
    """A signature is required (trusted keys were given) but the manifest is unsigned."""


class RuntimeTooOld(ReleaseError):
    """The release needs a newer edge-sdk runtime than this one (``min_runtime``)."""


# ------------------------------------------------------------------------------------------ store / channels
class InvalidDigest(ReleaseError):
    """A blob name that is not ``sha256:`` followed by 64 lowercase hex digits."""


class InvalidChannelName(ReleaseError):
    """A channel name that breaks the channel-name syntax (docs/transfer.md, "Channels")."""


class ChannelInvalid(ReleaseError):
    """A channel record (file in the store or HTTP response) that breaks the channel schema."""


class ChannelNotFound(ReleaseError):
    """No channel of that name in the store."""


class BlobNotFound(ReleaseError):
    """The store (or cache) holds no blob with that digest."""


class BlobCorrupt(ReleaseError):
    """A blob's bytes do not hash to its name, or its size differs from the size a manifest gives."""


class StoreError(ReleaseError):
    """The folder is not an edge-sdk store or device cache (or a newer version of one), or a store operation
    cannot proceed."""


# ------------------------------------------------------------------------------------------ transfer (device fetch)
class TransferError(ReleaseError):
    """Base of the device fetch's failures (F-rules of docs/transfer.md)."""


class AuthError(TransferError):
    """The server answered 401 (no or unknown token) or 403 (the token's scopes do not cover the request)."""


class TransferFailed(TransferError):
    """Retries are exhausted (the server or the link stayed down), or TLS failed."""


class ProtocolError(TransferError):
    """The server's answer breaks the protocol: over a size cap, wrong Content-Range/Length, an encoding, a status."""


class BlobMismatch(TransferError):
    """The server's bytes for a blob do not hash to its name (tampered or corrupt store, or a lying server)."""


class BudgetTooSmall(TransferError):
    """No tier's missing bytes fit the device's byte budget (or the asked-for tier does not)."""


class DowngradeRefused(TransferError):
    """The channel points at a release older than the one this device already took (replay or rollback)."""


class ReleaseMismatch(TransferError):
    """A downloaded payload does not name the tier's graph, or carries another task or model than the release."""


__all__ = [
    "ReleaseError", "ManifestError", "ManifestBadMagic", "ManifestUnsupportedVersion", "ManifestTooLarge",
    "ManifestInvalid", "ManifestTruncated", "ManifestTrailingBytes", "ManifestDigestMismatch",
    "ManifestBadSignature", "ManifestUntrustedKey", "ManifestSignatureRequired", "RuntimeTooOld",
    "InvalidDigest", "InvalidChannelName", "ChannelInvalid", "ChannelNotFound", "BlobNotFound", "BlobCorrupt",
    "StoreError", "TransferError", "AuthError", "TransferFailed", "ProtocolError", "BlobMismatch", "BudgetTooSmall",
    "DowngradeRefused", "ReleaseMismatch",
]
