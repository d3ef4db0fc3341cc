"""Ed25519 signing of payloads (RFC 8032 via ``cryptography``) and key files.

Key id = SHA-256 of the raw 32-byte public key (hex in APIs, 32 raw bytes in the trailer). The signed
message is ``SIGNATURE_DOMAIN + content_digest`` (domain separation: a signature over a payload digest can
never be replayed as a signature over anything else). Key files are PEM (PKCS#8 / SubjectPublicKeyInfo) or
raw 32-byte keys; :func:`load_private_key` / :func:`load_public_key` detect which.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_sdk.errors import ConfigError
from edge_sdk.payload.errors import BadSignature, UntrustedKey
from edge_sdk.payload.format import SIGNATURE_DOMAIN

PublicKeyLike = Ed25519PublicKey | bytes | str | os.PathLike


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair (private, public)."""
    priv = Ed25519PrivateKey.generate()
    return priv, priv.public_key()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Hex SHA-256 of the raw public key."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return hashlib.sha256(raw_public(key)).hexdigest()


def signing_message(content_digest: bytes) -> bytes:
    return SIGNATURE_DOMAIN + content_digest


class KeyFileExists(ConfigError):
    """A key file is already there and replacing it was not asked for (a lost signing key cannot be recovered)."""


def _write_key_file(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write a key file atomically. Without ``overwrite`` an existing file is never replaced, not even by a
    concurrent writer: the finished temp file is hard-linked to ``path`` (``link`` fails if ``path`` exists)."""
    import secrets

    from edge_sdk.atomic import atomic_write_bytes

    if overwrite:
        atomic_write_bytes(path, data, mode=mode)
        return
    if path.exists():
        raise KeyFileExists(key_exists_message(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    atomic_write_bytes(tmp, data, mode=mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeyFileExists(key_exists_message(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def key_exists_message(path: str | os.PathLike) -> str:
    """The one wording of "this key file exists" (CLI and API)."""
    return (f"{path} already exists: refusing to replace a signing key file (the old key would be lost, and "
            "devices that trust it would reject payloads signed with the new one); pass --force to replace it "
            "(API: overwrite=True), or choose another --out-dir / --name")


def save_private_key(path: str | os.PathLike, key: Ed25519PrivateKey, fmt: str = "pem",
                     overwrite: bool = False) -> Path:
    """Write a private key (``fmt`` "pem" = unencrypted PKCS#8, or "raw" = 32 bytes), mode 0600, atomically.
    An existing file raises :class:`KeyFileExists` unless ``overwrite``."""
    if fmt == "pem":
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    elif fmt == "raw":
        data = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    else:
        raise ConfigError(f"key format must be 'pem' or 'raw', got {fmt!r}")
    p = Path(path)
    _write_key_file(p, data, 0o600, overwrite)
    return p


def save_public_key(path: str | os.PathLike, key: Ed25519PublicKey, fmt: str = "pem",
                    overwrite: bool = True) -> Path:
    """Write a public key (PEM SubjectPublicKeyInfo, or 32 raw bytes) atomically. With ``overwrite=False`` an
    existing file raises :class:`KeyFileExists` (``payload keygen`` does that for the pair)."""
    if fmt == "pem":
        data = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif fmt == "raw":
        data = raw_public(key)
    else:
        raise ConfigError(f"key format must be 'pem' or 'raw', got {fmt!r}")
    p = Path(path)
    _write_key_file(p, data, 0o644, overwrite)
    return p


def _read_small(path: str | os.PathLike) -> bytes:
    p = Path(path)
    if p.stat().st_size > 64 * 1024:
        raise ConfigError(f"{p} is too large to be a key file")
    return p.read_bytes()


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read a PEM or raw (32-byte) Ed25519 private key file."""
    data = _read_small(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        elif len(data) == 32:
            key = Ed25519PrivateKey.from_private_bytes(data)
        else:
            raise ValueError("neither PEM nor 32 raw bytes")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an Ed25519 private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: key is {type(key).__name__}, an Ed25519 private key is needed")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """Read a PEM or raw (32-byte) Ed25519 public key file."""
    data = _read_small(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        elif len(data) == 32:
            key = Ed25519PublicKey.from_public_bytes(data)
        else:
            raise ValueError("neither PEM nor 32 raw bytes")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an Ed25519 public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: key is {type(key).__name__}, an Ed25519 public key is needed")
    return key


def as_public_key(k: Any) -> Ed25519PublicKey:
    """Ed25519PublicKey, private key (its public half), 32 raw bytes, or a key file path -> public key."""
    if isinstance(k, Ed25519PublicKey):
        return k
    if isinstance(k, Ed25519PrivateKey):
        return k.public_key()
    if isinstance(k, (bytes, bytearray)):
        if len(k) != 32:
            raise ConfigError(f"raw public keys are 32 bytes, got {len(k)}")
        return Ed25519PublicKey.from_public_bytes(bytes(k))
    if isinstance(k, (str, os.PathLike)):
        return load_public_key(k)
    raise ConfigError(f"cannot use {type(k).__name__} as an Ed25519 public key")


def trusted_key_map(trusted: Mapping[str, Any] | Iterable[Any]) -> dict[str, Ed25519PublicKey]:
    """Normalise trusted keys (dict key id -> key, or a list of keys) to {key id hex: public key}."""
    out: dict[str, Ed25519PublicKey] = {}
    if isinstance(trusted, Mapping):
        for kid, k in trusted.items():
            pub = as_public_key(k)
            if key_id(pub) != str(kid).lower():
                raise ConfigError(f"trusted key listed under id {kid} has key id {key_id(pub)}")
            out[key_id(pub)] = pub
    else:
        if isinstance(trusted, (str, bytes, os.PathLike, Ed25519PublicKey)):
            trusted = [trusted]
        for k in trusted:
            pub = as_public_key(k)
            out[key_id(pub)] = pub
    return out


def sign_digest(private_key: Ed25519PrivateKey, content_digest: bytes) -> tuple[bytes, bytes]:
    """(raw 32-byte key id, 64-byte signature) for a content digest."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ConfigError(f"signing needs an Ed25519PrivateKey, got {type(private_key).__name__}")
    return bytes.fromhex(key_id(private_key)), private_key.sign(signing_message(content_digest))


def verify_digest(trusted: Mapping[str, Ed25519PublicKey], kid: bytes, sig: bytes, content_digest: bytes) -> str:
    """Check a trailer signature against trusted keys; return the key id hex or raise."""
    kid_hex = kid.hex()
    pub = trusted.get(kid_hex)
    if pub is None:
        raise UntrustedKey(
            f"payload is signed by key {kid_hex}, which is not among the {len(trusted)} trusted key(s); "
            "pass the signer's public key"
        )
    try:
        pub.verify(sig, signing_message(content_digest))
    except InvalidSignature:
        raise BadSignature(f"Ed25519 signature by key {kid_hex} does not verify (payload tampered or re-signed)") from None
    return kid_hex
