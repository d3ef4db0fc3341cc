"""Releases: content-addressed blobs, the signed release manifest (tiers of payload + graph), channels, and
the store that holds them. Torch-free core shared by ``edge-sdk store``, the server (``edge_sdk.serve``), the
device fetch (``edge_sdk.device.fetch``) and the fleet simulator. Spec: docs/transfer.md.

API (docs/contracts.md, "Releases")::

    from edge_sdk.release import Store, publish, read_manifest, choose_tier
    store = Store("store", create=True)
    res = publish(store, ["runs/36x/payload.epl", "runs/180x/payload.epl"], channel="beam-uma/stable",
                  signing_key=key)                       # -> PublishResult(manifest, channel, ...)
    m = store.manifest(store.channel("beam-uma/stable").manifest.digest, trusted_keys=[pub])
    choice = choose_tier(m.release, budget=8192, cached={"sha256:..."})   # TierChoice(tier, missing, cost, saved)
"""

from edge_sdk.release.channel import ChannelRecord, channel_relpath, check_channel_name, parse_channel_record
from edge_sdk.release.digest import BlobRef, blob_relpath, digest_bytes, hash_file, is_digest, parse_digest
from edge_sdk.release.errors import (
    AuthError,
    BlobCorrupt,
    BlobMismatch,
    BlobNotFound,
    BudgetTooSmall,
    ChannelInvalid,
    ChannelNotFound,
    DowngradeRefused,
    InvalidChannelName,
    InvalidDigest,
    ManifestBadMagic,
    ManifestBadSignature,
    ManifestDigestMismatch,
    ManifestError,
    ManifestInvalid,
    ManifestSignatureRequired,
    ManifestTooLarge,
    ManifestTrailingBytes,
    ManifestTruncated,
    ManifestUnsupportedVersion,
    ManifestUntrustedKey,
    ProtocolError,
    ReleaseError,
    ReleaseMismatch,
    RuntimeTooOld,
    StoreError,
    TransferError,
    TransferFailed,
)
from edge_sdk.release.manifest import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    MAGIC,
    Identity,
    Manifest,
    Release,
    Tier,
    TierChoice,
    build_release,
    check_runtime,
    choose_tier,
    encode_manifest,
    read_manifest,
    task_digest,
    tier_costs,
)
from edge_sdk.release.publish import PublishResult, publish
from edge_sdk.release.store import GcReport, Store, VerifyReport

__all__ = [
    "FORMAT_MAJOR", "FORMAT_MINOR", "MAGIC",
    "BlobRef", "blob_relpath", "digest_bytes", "hash_file", "is_digest", "parse_digest",
    "Identity", "Tier", "Release", "Manifest", "TierChoice", "build_release", "encode_manifest", "read_manifest",
    "check_runtime", "choose_tier", "tier_costs", "task_digest",
    "ChannelRecord", "channel_relpath", "check_channel_name", "parse_channel_record",
    "Store", "VerifyReport", "GcReport", "PublishResult", "publish",
    "ReleaseError", "ManifestError", "ManifestBadMagic", "ManifestUnsupportedVersion", "ManifestTooLarge",
    "ManifestInvalid", "ManifestTruncated", "ManifestTrailingBytes", "ManifestDigestMismatch",
    "ManifestBadSignature", "ManifestUntrustedKey", "ManifestSignatureRequired", "RuntimeTooOld",
    "InvalidDigest", "InvalidChannelName", "ChannelInvalid", "ChannelNotFound", "BlobNotFound", "BlobCorrupt",
    "StoreError", "TransferError", "AuthError", "TransferFailed", "ProtocolError", "BlobMismatch", "BudgetTooSmall",
    "DowngradeRefused", "ReleaseMismatch",
]
