"""Release manifest v1: the small, canonical, signed list of a release's tiers (docs/transfer.md).

Byte layout (all integers little-endian; the spec's byte table is tested against these constants):

====== =========== ============================================================================
offset size        field
====== =========== ============================================================================
0      8           magic ``MAGIC``
8      1           format major version (u8)
9      1           format minor version (u8)
10     2           flags (u16): bit 0 = signed, all other bits 0
12     4           body length ``B`` (u32), ``1 <= B <= MAX_BODY_BYTES``
16     B           body: canonical JSON (UTF-8, sorted keys, separators ``,`` ``:``)
16+B   32          SHA-256 of bytes ``[0, 16+B)`` (content digest)
48+B   32 (signed) key id = SHA-256 of the raw 32-byte Ed25519 public key
80+B   64 (signed) Ed25519 signature of ``SIGNATURE_DOMAIN + content digest``
====== =========== ============================================================================

The manifest is itself a blob: its name is the SHA-256 of the whole file (trailer included), which is what a
channel points to. The envelope is the payload format's (same habits, same keys, a different magic and a
different signature domain, so a payload signature can never be replayed as a manifest signature).

Body (v1.0), keys sorted::

    {"created": "2026-11-29T12:00:00Z", "extra": [blob...], "identity": {"model": {...}, "task": "beam",
     "task_digest": "sha256:..."}, "min_runtime": "0.1.0", "release": "name", "tiers": [tier...]}
    tier = {"compression": 36.0 | null, "extra": [blob...], "graph": {"digest", "size"},
            "kpis": {"top1": 0.66, ...}, "name": "36x", "payload": {"digest", "size"}}
    blob (extra) = {"digest": "sha256:...", "size": int, "type": "task"}
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_sdk.errors import ConfigError
from edge_sdk.release.digest import MAX_BLOB_BYTES, BlobRef, digest_bytes, is_digest
from edge_sdk.release.errors import (
    ManifestBadMagic,
    ManifestBadSignature,
    ManifestDigestMismatch,
    ManifestInvalid,
    ManifestSignatureRequired,
    ManifestTooLarge,
    ManifestTrailingBytes,
    ManifestTruncated,
    ManifestUnsupportedVersion,
    ManifestUntrustedKey,
    RuntimeTooOld,
)

MAGIC = b"\x89ERM\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
#: (major, minor) versions this reader accepts
SUPPORTED_VERSIONS = frozenset({(1, 0)})
PREFIX_SIZE = 16
DIGEST_SIZE = 32
KEY_ID_SIZE = 32
SIGNATURE_SIZE = 64
FLAG_SIGNED = 0x0001
KNOWN_FLAGS = FLAG_SIGNED
SIGNATURE_DOMAIN = b"edge-sdk manifest v1 ed25519\x00"

# ------------------------------------------------------------------------------------------ limits
MAX_BODY_BYTES = 1 << 16  #: 64 KiB cap on the body, checked before it is read
#: the largest manifest file: prefix + body + digest + key id + signature
MAX_MANIFEST_BYTES = PREFIX_SIZE + MAX_BODY_BYTES + DIGEST_SIZE + KEY_ID_SIZE + SIGNATURE_SIZE
MAX_TIERS = 64
MAX_EXTRA_BLOBS = 64  #: per tier, and at release level
MAX_KPIS = 64
MAX_MODEL_BYTES = 4096  #: canonical JSON of the identity's model spec

RELEASE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
TIER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")
BLOB_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}\Z")
KPI_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,63}\Z")
TASK_KIND_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\Z")
CREATED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
#: extra-blob types that name a tier field instead and so may not appear in an ``extra`` list
RESERVED_TYPES = frozenset({"payload", "graph", "manifest"})

BODY_KEYS = frozenset({"created", "extra", "identity", "min_runtime", "release", "tiers"})
TIER_KEYS = frozenset({"compression", "extra", "graph", "kpis", "name", "payload"})
IDENTITY_KEYS = frozenset({"model", "task", "task_digest"})


# ------------------------------------------------------------------------------------------ values
@dataclass(frozen=True)
class Identity:
    """What the release trains: the task kind (``"beam"``), the digest of the task spec (canonical JSON of the
    payload header's task dict without its ``train`` recipe, see :func:`task_digest`) and the model spec."""

    task: str
    task_digest: str
    model: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"model": dict(self.model), "task": self.task, "task_digest": self.task_digest}


@dataclass(frozen=True)
class Tier:
    """One way to receive the release: a payload, the training graph it names, typed extra blobs, the
    compression ratio and the KPIs the server measured for it (means over its evaluation seeds)."""

    name: str
    payload: BlobRef
    graph: BlobRef
    compression: float | None = None
    kpis: Mapping[str, float] = field(default_factory=dict)
    extra: tuple[BlobRef, ...] = ()

    def blobs(self) -> list[BlobRef]:
        """payload, graph, then the tier's extra blobs."""
        return [self.payload, self.graph, *self.extra]

    def to_json(self) -> dict[str, Any]:
        return {
            "compression": self.compression,
            "extra": [b.to_json() for b in self.extra],
            "graph": {"digest": self.graph.digest, "size": self.graph.size},
            "kpis": dict(self.kpis),
            "name": self.name,
            "payload": {"digest": self.payload.digest, "size": self.payload.size},
        }


@dataclass(frozen=True)
class Release:
    """The content of a manifest (its body). Tiers are listed best first: a device takes the first tier
    whose missing bytes fit its budget (:func:`choose_tier`)."""

    release: str
    created: str
    min_runtime: str
    identity: Identity
    tiers: tuple[Tier, ...]
    extra: tuple[BlobRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "extra": [b.to_json() for b in self.extra],
            "identity": self.identity.to_json(),
            "min_runtime": self.min_runtime,
            "release": self.release,
            "tiers": [t.to_json() for t in self.tiers],
        }

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise ConfigError(f"release {self.release!r} has no tier {name!r}; tiers: {[t.name for t in self.tiers]}")

    def blobs(self) -> list[BlobRef]:
        """Every blob the release names (release extras, then each tier's), each digest once."""
        seen: dict[str, BlobRef] = {}
        for b in [*self.extra, *(b for t in self.tiers for b in t.blobs())]:
            seen.setdefault(b.digest, b)
        return list(seen.values())


@dataclass(frozen=True)
class Manifest:
    """A parsed, verified manifest file: its :class:`Release` plus the envelope facts."""

    release: Release
    data: bytes
    digest: str  #: blob name of the whole file (what channels point to)
    content_sha256: str  #: hex SHA-256 of prefix + body (what the signature covers)
    version: tuple[int, int]
    signed: bool
    key_id: str | None
    signature_status: str  #: "unsigned" | "unverified" (signed, no trusted keys given) | "verified"

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.release.tiers

    @property
    def ref(self) -> BlobRef:
        return BlobRef(self.digest, len(self.data))


# ------------------------------------------------------------------------------------------ helpers
def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding of the body (same as the payload header): sorted keys, no whitespace, UTF-8."""
    from edge_sdk.payload.format import canonical_json as _canonical

    return _canonical(obj)


def task_digest(task: Mapping[str, Any]) -> str:
    """Blob name of the canonical JSON of ``task`` without its ``train`` recipe: the task's identity (tiers may
    carry different recipes; they must agree on everything else)."""
    return digest_bytes(canonical_json({k: v for k, v in task.items() if k != "train"}))


def utc_now() -> str:
    """Now, as the manifest's ``created`` string (UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.1.0"`` -> (0, 1, 0). A runtime version with a suffix (``0.2.0.dev1``, ``0.2.0rc1``) compares by its
    leading three numbers."""
    m = re.match(r"([0-9]+)\.([0-9]+)\.([0-9]+)", str(text))
    if m is None:
        raise ConfigError(f"not a MAJOR.MINOR.PATCH version: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


#: the first edge-sdk runtime that reads each payload format (major version): a release's ``min_runtime`` is never
#: below the entry of any of its tiers' formats, so a runtime that cannot read a tier is refused by the manifest
#: check (:func:`check_runtime`, typed ``RuntimeTooOld``) before it downloads anything
FORMAT_MIN_RUNTIME: dict[int, str] = {1: "0.1.0", 2: "0.2.0"}
#: the first runtime that trains a payload using each recipe feature (``label_smoothing``: a recipe with
#: ``label_smoothing > 0``, which older runtimes refuse as an unknown recipe key / v2 flag bit)
FEATURE_MIN_RUNTIME: dict[str, str] = {"label_smoothing": "0.3.0"}


def recipe_features(recipe: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The :data:`FEATURE_MIN_RUNTIME` features a payload's recipe (``task["train"]`` / decoded v2 recipe) uses."""
    if not isinstance(recipe, Mapping):
        return ()
    ls = recipe.get("label_smoothing", 0.0)
    return ("label_smoothing",) if isinstance(ls, (int, float)) and not isinstance(ls, bool) and ls > 0 else ()


def format_min_runtime(formats: Iterable[int], features: Iterable[str] = ()) -> str:
    """The lowest runtime version that reads every payload format (major version) in ``formats`` and trains with
    every recipe feature in ``features`` (:data:`FEATURE_MIN_RUNTIME`)."""
    need = "0.0.0"
    for f in formats:
        if f not in FORMAT_MIN_RUNTIME:
            raise ConfigError(f"no known edge-sdk runtime reads payload format {f}")
        need = max(need, FORMAT_MIN_RUNTIME[f], key=parse_version)
    for feat in features:
        if feat not in FEATURE_MIN_RUNTIME:
            raise ConfigError(f"no known edge-sdk runtime trains with recipe feature {feat!r}")
        need = max(need, FEATURE_MIN_RUNTIME[feat], key=parse_version)
    return need


def check_runtime(release: Release, runtime_version: str | None = None) -> None:
    """Raise :class:`RuntimeTooOld` when ``runtime_version`` (default: this package) is below ``min_runtime``."""
    if runtime_version is None:
        from edge_sdk._version import __version__

        runtime_version = __version__
    if parse_version(runtime_version) < parse_version(release.min_runtime):
        raise RuntimeTooOld(
            f"release {release.release!r} needs edge-sdk >= {release.min_runtime}, this runtime is {runtime_version}; "
            "upgrade the device runtime or ask for a channel built for it"
        )


# ------------------------------------------------------------------------------------------ schema
def _fail(msg: str) -> ManifestInvalid:
    return ManifestInvalid(msg)


def _obj(v: Any, keys: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(f"{where} must be a JSON object")
    if set(v) != keys:
        missing, unknown = sorted(keys - set(v)), sorted(set(v) - keys)
        raise _fail(f"{where}: keys must be exactly {sorted(keys)} (missing {missing}, unknown {unknown})")
    return v


def _int(v: Any, lo: int, hi: int, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _fail(f"{where} must be an integer in [{lo}, {hi}], got {str(v)[:40]}")
    return v


def _number(v: Any, where: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise _fail(f"{where} must be a finite number, got {str(v)[:40]}")
    return float(v)


def _name(v: Any, rx: re.Pattern[str], where: str) -> str:
    if not isinstance(v, str) or rx.match(v) is None:
        raise _fail(f"{where} must match {rx.pattern[:-2]}, got {str(v)[:80]!r}")
    return v


def _blob(v: Any, where: str, typed: bool) -> BlobRef:
    keys = frozenset({"digest", "size", "type"}) if typed else frozenset({"digest", "size"})
    d = _obj(v, keys, where)
    if not is_digest(d["digest"]):
        raise _fail(f"{where}.digest must be 'sha256:' + 64 lowercase hex digits")
    size = _int(d["size"], 0, MAX_BLOB_BYTES, f"{where}.size")
    btype = None
    if typed:
        btype = _name(d["type"], BLOB_TYPE_RE, f"{where}.type")
        if btype in RESERVED_TYPES:
            raise _fail(f"{where}.type {btype!r} is reserved (payload and graph have their own tier fields)")
    return BlobRef(d["digest"], size, btype)


def _extras(v: Any, where: str) -> tuple[BlobRef, ...]:
    if not isinstance(v, list) or len(v) > MAX_EXTRA_BLOBS:
        raise _fail(f"{where} must be a list of at most {MAX_EXTRA_BLOBS} blobs")
    out = tuple(_blob(b, f"{where}[{i}]", typed=True) for i, b in enumerate(v))
    if len({b.digest for b in out}) != len(out):
        raise _fail(f"{where} names a blob twice")
    return out


def _tier(v: Any, where: str) -> Tier:
    d = _obj(v, TIER_KEYS, where)
    name = _name(d["name"], TIER_NAME_RE, f"{where}.name")
    comp = None if d["compression"] is None else _number(d["compression"], f"{where}.compression")
    if comp is not None and comp <= 0:
        raise _fail(f"{where}.compression must be > 0 or null")
    kp = d["kpis"]
    if not isinstance(kp, dict) or len(kp) > MAX_KPIS:
        raise _fail(f"{where}.kpis must be an object with at most {MAX_KPIS} entries")
    kpis = {_name(k, KPI_NAME_RE, f"{where}.kpis key"): _number(x, f"{where}.kpis.{k}") for k, x in kp.items()}
    tier = Tier(name=name, payload=_blob(d["payload"], f"{where}.payload", typed=False),
                graph=_blob(d["graph"], f"{where}.graph", typed=False), compression=comp, kpis=kpis,
                extra=_extras(d["extra"], f"{where}.extra"))
    digests = [b.digest for b in tier.blobs()]
    if len(set(digests)) != len(digests):
        raise _fail(f"{where}: payload, graph and extra blobs must be distinct blobs")
    return tier


def parse_body(obj: Any) -> Release:
    """Validate a decoded body against the v1 schema (M06) and return the :class:`Release`."""
    d = _obj(obj, BODY_KEYS, "body")
    release = _name(d["release"], RELEASE_NAME_RE, "release")
    created = d["created"]
    if not isinstance(created, str) or CREATED_RE.match(created) is None:
        raise _fail(f"created must be a UTC time 'YYYY-MM-DDTHH:MM:SSZ', got {str(created)[:40]!r}")
    try:
        datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise _fail(f"created is not a valid date-time: {created!r}") from None
    min_runtime = d["min_runtime"]
    if not isinstance(min_runtime, str) or VERSION_RE.match(min_runtime) is None:
        raise _fail(f"min_runtime must be MAJOR.MINOR.PATCH, got {str(min_runtime)[:40]!r}")
    ident = _obj(d["identity"], IDENTITY_KEYS, "identity")
    task = _name(ident["task"], TASK_KIND_RE, "identity.task")
    if not is_digest(ident["task_digest"]):
        raise _fail("identity.task_digest must be 'sha256:' + 64 lowercase hex digits")
    model = ident["model"]
    if not isinstance(model, dict) or len(canonical_json(model)) > MAX_MODEL_BYTES:
        raise _fail(f"identity.model must be a JSON object of at most {MAX_MODEL_BYTES} bytes")
    tiers_raw = d["tiers"]
    if not isinstance(tiers_raw, list) or not 1 <= len(tiers_raw) <= MAX_TIERS:
        raise _fail(f"tiers must be a list of 1..{MAX_TIERS} tiers")
    tiers = tuple(_tier(t, f"tiers[{i}]") for i, t in enumerate(tiers_raw))
    if len({t.name for t in tiers}) != len(tiers):
        raise _fail("tier names must be unique")
    rel = Release(release=release, created=created, min_runtime=min_runtime,
                  identity=Identity(task, ident["task_digest"], model), tiers=tiers,
                  extra=_extras(d["extra"], "extra"))
    sizes: dict[str, int] = {}
    for b in [*rel.extra, *(b for t in rel.tiers for b in t.blobs())]:
        if sizes.setdefault(b.digest, b.size) != b.size:
            raise _fail(f"blob {b.digest[:19]}... is given two different sizes")
    return rel


# ------------------------------------------------------------------------------------------ writing
def _prefix(signed: bool, body_len: int) -> bytes:
    return (MAGIC + bytes([FORMAT_MAJOR, FORMAT_MINOR]) + (FLAG_SIGNED if signed else 0).to_bytes(2, "little")
            + body_len.to_bytes(4, "little"))


def encode_manifest(release: Release, signing_key: Ed25519PrivateKey | None = None) -> bytes:
    """The manifest file bytes of ``release`` (signed when ``signing_key`` is given). The body goes through the
    reader's schema check first, so a writer can never produce a manifest a reader refuses."""
    from edge_sdk.payload.signing import key_id

    try:
        body = canonical_json(release.to_json())
        parse_body(_decode_body(body))
    except ManifestInvalid as exc:
        raise ConfigError(f"invalid release: {exc}") from exc
    if len(body) > MAX_BODY_BYTES:
        raise ConfigError(f"manifest body is {len(body)} bytes, the limit is {MAX_BODY_BYTES}: fewer tiers/blobs")
    if signing_key is not None and not isinstance(signing_key, Ed25519PrivateKey):
        raise ConfigError(f"signing needs an Ed25519PrivateKey, got {type(signing_key).__name__}")
    content = _prefix(signing_key is not None, len(body)) + body
    digest = hashlib.sha256(content).digest()
    if signing_key is None:
        return content + digest
    return content + digest + bytes.fromhex(key_id(signing_key)) + signing_key.sign(SIGNATURE_DOMAIN + digest)


# ------------------------------------------------------------------------------------------ reading
def _decode_body(body: bytes, what: str = "manifest body") -> Any:
    """The payload header's strict decoder (nesting depth checked first, UTF-8, no duplicate keys, canonical),
    with its errors turned into :class:`ManifestInvalid` that name ``what`` was being read."""
    from edge_sdk.payload.errors import PayloadError
    from edge_sdk.payload.reader import decode_header

    try:
        return decode_header(body)
    except PayloadError as exc:
        raise ManifestInvalid(str(exc).replace("header", what)) from None


def read_manifest(data: bytes | bytearray | memoryview, trusted_keys: Any = None,
                  require_signature: bool = False) -> Manifest:
    """Parse and verify manifest bytes (M01-M09 of docs/transfer.md).

    ``trusted_keys``: Ed25519 public keys (objects, 32 raw bytes, key files, or {key id: key}); given any, a
    signed manifest must verify under one of them. ``require_signature`` refuses unsigned manifests. Every
    failure is a :class:`~edge_sdk.release.errors.ManifestError`."""
    from edge_sdk.payload.signing import trusted_key_map

    n = memoryview(data).nbytes
    if n > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"manifest is {n} bytes, larger than any valid manifest ({MAX_MANIFEST_BYTES})")
    buf = bytes(data)
    if len(buf) < PREFIX_SIZE:
        if not MAGIC.startswith(buf[:8]):
            raise ManifestBadMagic("not an edge-sdk release manifest (bad magic bytes)")
        raise ManifestTruncated(f"manifest is {len(buf)} bytes, shorter than its {PREFIX_SIZE}-byte prefix")
    if buf[:8] != MAGIC:
        raise ManifestBadMagic("not an edge-sdk release manifest (bad magic bytes)")
    version = (buf[8], buf[9])
    if version not in SUPPORTED_VERSIONS:
        raise ManifestUnsupportedVersion(
            f"manifest format {version[0]}.{version[1]} is not supported by this runtime (reads "
            f"{sorted(SUPPORTED_VERSIONS)}); upgrade edge-sdk on the device")
    flags = int.from_bytes(buf[10:12], "little")
    if flags & ~KNOWN_FLAGS:
        raise ManifestInvalid(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:04x} are set")
    body_len = int.from_bytes(buf[12:16], "little")
    if body_len > MAX_BODY_BYTES:
        raise ManifestTooLarge(f"declared body length {body_len} exceeds the cap {MAX_BODY_BYTES}")
    if body_len < 1:
        raise ManifestInvalid("body length is 0")
    signed = bool(flags & FLAG_SIGNED)
    total = PREFIX_SIZE + body_len + DIGEST_SIZE + (KEY_ID_SIZE + SIGNATURE_SIZE if signed else 0)
    if len(buf) < total:
        raise ManifestTruncated(f"manifest is {len(buf)} bytes but declares {total}")
    if len(buf) > total:
        raise ManifestTrailingBytes(f"{len(buf) - total} bytes follow the declared end ({total} bytes)")
    body_end = PREFIX_SIZE + body_len
    release = parse_body(_decode_body(buf[PREFIX_SIZE:body_end]))
    content_digest = hashlib.sha256(buf[:body_end]).digest()
    if content_digest != buf[body_end:body_end + DIGEST_SIZE]:
        raise ManifestDigestMismatch("manifest content digest does not match (corrupted or edited manifest)")
    kid = None
    status = "unsigned"
    keys = trusted_key_map(trusted_keys) if trusted_keys else {}
    if signed:
        kid_b = buf[body_end + DIGEST_SIZE:body_end + DIGEST_SIZE + KEY_ID_SIZE]
        sig = buf[body_end + DIGEST_SIZE + KEY_ID_SIZE:total]
        kid = kid_b.hex()
        status = "unverified"
        if keys:
            pub = keys.get(kid)
            if pub is None:
                raise ManifestUntrustedKey(
                    f"manifest is signed by key {kid[:16]}..., which is not among the {len(keys)} trusted key(s); "
                    "pass the publisher's public key")
            try:
                pub.verify(sig, SIGNATURE_DOMAIN + content_digest)
            except InvalidSignature:
                raise ManifestBadSignature(
                    f"manifest signature by key {kid[:16]}... does not verify (manifest tampered or re-signed)") from None
            status = "verified"
    elif keys or require_signature:
        raise ManifestSignatureRequired("the manifest is unsigned but a signature is required (trusted keys given); "
                                        "publish it with `edge-sdk store add --sign KEY`")
    return Manifest(release=release, data=buf, digest=digest_bytes(buf), content_sha256=content_digest.hex(),
                    version=version, signed=signed, key_id=kid, signature_status=status)


# ------------------------------------------------------------------------------------------ tier choice
@dataclass(frozen=True)
class TierChoice:
    """The tier a device takes and what it costs: ``missing`` blobs (to download), ``cost`` = their bytes,
    ``saved`` = bytes of the tier's blobs already cached."""

    tier: Tier
    missing: tuple[BlobRef, ...]
    cost: int
    saved: int


def tier_costs(release: Release, cached: Container[str]) -> list[TierChoice]:
    """For every tier (in manifest order): the blobs a device holding ``cached`` digests must still fetch —
    the tier's payload, graph and extras plus the release-level extras — and their byte cost."""
    out = []
    for t in release.tiers:
        need: dict[str, BlobRef] = {}
        for b in [*t.blobs(), *release.extra]:
            need.setdefault(b.digest, b)
        missing = tuple(b for b in need.values() if b.digest not in cached)
        cost = sum(b.size for b in missing)
        out.append(TierChoice(t, missing, cost, sum(b.size for b in need.values()) - cost))
    return out


def choose_tier(release: Release, budget: int | None, cached: Container[str] = frozenset()) -> TierChoice | None:
    """The first (= best) tier whose missing bytes fit ``budget`` (None = no limit), or None when none fits.
    A blob already cached costs nothing: the training graph shared by all tiers is paid once."""
    for c in tier_costs(release, cached):
        if budget is None or c.cost <= budget:
            return c
    return None


def build_release(*, release: str, tiers: Sequence[Tier], identity: Identity, created: str | None = None,
                  min_runtime: str | None = None, extra: Iterable[BlobRef] = ()) -> Release:
    """A :class:`Release` with defaults (``created`` = now, ``min_runtime`` = this package's version), checked
    against the schema (raises ConfigError)."""
    from edge_sdk._version import __version__

    rel = Release(release=release, created=created or utc_now(),
                  min_runtime=min_runtime or ".".join(str(v) for v in parse_version(__version__)),
                  identity=identity, tiers=tuple(tiers), extra=tuple(extra))
    try:
        parse_body(_decode_body(canonical_json(rel.to_json())))
    except ManifestInvalid as exc:
        raise ConfigError(f"invalid release: {exc}") from exc
    return rel
