"""The store's Ed25519 signing key: it signs audit checkpoints and attestations.

Layout::

    .runlock/keys/
      store.ed25519   private key, PEM (PKCS#8), readable by its owner only (0600)
      store.pub       public key, PEM (SubjectPublicKeyInfo): hand this out to verifiers

The key lives in files beside the store, never in the metadata database, so someone who can
rewrite the database still cannot forge a checkpoint or an attestation. It is created the first
time the store needs to sign (``ensure``), atomically, so two processes never make two keys.
A key id is ``sha256:`` over the 32 raw public-key bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runlock.errors import InvalidInput, StoreError
from runlock.hashing import digest_bytes
from runlock.store import Store

PRIVATE_FILE = "store.ed25519"
PUBLIC_FILE = "store.pub"

__all__ = ["PublicKey", "SigningKey", "ensure", "load", "public_key", "load_public", "export_public"]


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def keyid(self) -> str:
        return digest_bytes(self.raw)

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def keys_dir(store: Store) -> Path:
    return store.root / "keys"


def load(store: Store) -> SigningKey | None:
    """The store's private key, or None when it has none (or this user cannot read it)."""
    path = keys_dir(store) / PRIVATE_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, PermissionError):
        return None
    except OSError as e:
        raise StoreError(f"Cannot read the store's signing key {path}: {e.strerror}.") from e
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"{path} is not an Ed25519 private key.",
                         hint="Move it away; runlock creates a new key on the next signature.")
    return SigningKey(key)


def ensure(store: Store) -> SigningKey:
    """The store's private key, created on first use (atomically: the first writer wins)."""
    existing = load(store)
    if existing is not None:
        return existing
    folder = keys_dir(store)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        tmp = folder / f".{PRIVATE_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, folder / PRIVATE_FILE)   # fails if another process made one first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except OSError as e:
        raise StoreError(f"Cannot create the store's signing key in {folder}: {e.strerror}.",
                         hint="Make the store folder writable, or sign from the account that owns it.") from e
    signing = load(store)
    assert signing is not None
    _write_public(folder / PUBLIC_FILE, signing.public)
    return signing


def public_key(store: Store) -> PublicKey:
    """The store's public key (creating the key pair if the store has none yet)."""
    return ensure(store).public


def export_public(store: Store, path: str | Path) -> PublicKey:
    """Write the store's public key (PEM) to ``path`` for verifiers."""
    pub = public_key(store)
    _write_public(Path(path), pub)
    return pub


def load_public(path: str | Path) -> PublicKey:
    """A public key from a PEM file written by ``export_public`` (or any Ed25519 SPKI PEM)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read the public key {p}: {e.strerror}.",
                           hint="Export it with `runlock keys export-public -o store.pub`.") from e
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise InvalidInput(f"{p} is not a PEM public key.",
                           hint="Export it with `runlock keys export-public -o store.pub`.") from e
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{p} is not an Ed25519 public key.")
    return PublicKey(key)


def _write_public(path: Path, pub: PublicKey) -> None:
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pub.pem())
        os.replace(tmp, path)
    except OSError as e:
        raise InvalidInput(f"Cannot write the public key to {path}: {e.strerror}.") from e
