"""The store's Ed25519 signing key: it signs audit checkpoints and attestations.

Layout::

    .runlock/keys/
      store.ed25519   private key, PEM (PKCS#8), readable by its owner only (0600)
      store.pub       public key, PEM (SubjectPublicKeyInfo): hand this out to verifiers

The private key lives in files beside the store, never in the metadata database, so someone
who can rewrite the database still cannot forge a checkpoint or an attestation. ``runlock init``
creates it (``setup``), atomically, so two processes never make two keys, and records its id and
public key in the database (``store_info``: ``signing_key_id``, ``signing_public_key``). A second
client of the same PostgreSQL database (another machine's ``.runlock``) then finds the key
recorded and does not mint its own: it verifies with the recorded public key, and signs only with
a copy of the private key. A key id is ``sha256:`` over the 32 raw public-key bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runlock.errors import InvalidInput, StoreError
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.perms import KEY_DIR_MODE, KEY_MODE
from runlock.store.schema import store_info

PRIVATE_FILE = "store.ed25519"
PUBLIC_FILE = "store.pub"
KEY_ID_INFO = "signing_key_id"
PUBLIC_INFO = "signing_public_key"

__all__ = ["PublicKey", "SigningKey", "ensure", "load", "public_key", "load_public", "export_public",
           "public_from_pem", "recorded", "setup", "signer", "trusted", "write_public"]


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


def recorded(store: Store) -> PublicKey | None:
    """The public key the database records as the store's signing key (None: none recorded yet)."""
    with store.db.read() as conn:
        rows = dict(conn.execute(sa.select(store_info.c.key, store_info.c.value)
                                 .where(store_info.c.key.in_((KEY_ID_INFO, PUBLIC_INFO)))).all())
    if KEY_ID_INFO not in rows:
        return None
    try:
        pub = serialization.load_pem_public_key(rows.get(PUBLIC_INFO, "").encode())
    except ValueError:
        pub = None
    if not isinstance(pub, Ed25519PublicKey) or PublicKey(pub).keyid != rows[KEY_ID_INFO]:
        raise StoreError(f"The database records signing key {rows[KEY_ID_INFO]}, but not its matching public key.",
                         hint="The store_info table was altered; restore it from a backup.")
    return PublicKey(pub)


def _record(store: Store, pub: PublicKey) -> PublicKey:
    """Record ``pub`` as the store's signing key unless one is recorded; return the recorded one."""
    def write(conn: sa.Connection) -> None:
        have = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == KEY_ID_INFO)).scalar()
        if have is None:
            conn.execute(store_info.insert(), [{"key": KEY_ID_INFO, "value": pub.keyid},
                                               {"key": PUBLIC_INFO, "value": pub.pem().decode()}])

    try:
        store.db.run_write(write)
    except sa.exc.IntegrityError:
        pass                        # another client recorded its key at the same instant
    found = recorded(store)
    assert found is not None
    return found


def setup(store: Store) -> PublicKey:
    """At ``runlock init``: the store's key. Mint one only when the database records none; a
    client that finds another client's key recorded keeps its public key in ``keys/store.pub``."""
    rec = recorded(store)
    if rec is not None and load(store) is None:
        _write_public(_own_keys_dir(store) / PUBLIC_FILE, rec, store.modes.file)
        return rec
    return ensure(store).public


def ensure(store: Store) -> SigningKey:
    """The store's private key, created on first use (atomically: the first writer wins) and
    recorded in the database. Raises StoreError where this client may not sign: the database
    records a key of which it holds no copy, or another one."""
    rec = recorded(store)
    existing = load(store)
    if existing is None and rec is not None:
        raise StoreError(f"This store signs with key {rec.keyid}, which is kept by the client that created it; "
                         f"{keys_dir(store)} holds no copy.",
                         hint="Sign (audit checkpoint, attest) from that client, or copy its "
                              ".runlock/keys/store.ed25519 here with mode 0600.")
    signing = existing if existing is not None else _mint(store)
    rec = rec or _record(store, signing.public)
    if rec.keyid != signing.keyid:
        raise StoreError(f"{keys_dir(store) / PRIVATE_FILE} is key {signing.keyid}, but the database records "
                         f"{rec.keyid} as the store's signing key.",
                         hint="Copy the recorded key from the client that created the store, or move this one away.")
    return signing


def signer(store: Store) -> SigningKey | None:
    """The key this process may sign with: the recorded key, if it holds a copy (never mints)."""
    try:
        own = load(store)
        rec = recorded(store)
    except StoreError:
        return None
    if own is None or (rec is not None and rec.keyid != own.keyid):
        return None
    return own


def trusted(store: Store) -> PublicKey | None:
    """The key to verify this store's signatures with: the recorded one, else the local one."""
    rec = recorded(store)
    if rec is not None:
        return rec
    own = load(store)
    return own.public if own else None


def _own_keys_dir(store: Store) -> Path:
    folder = keys_dir(store)
    if not folder.is_dir():
        folder.mkdir(mode=KEY_DIR_MODE, exist_ok=True)
    os.chmod(folder, KEY_DIR_MODE)
    return folder


def _mint(store: Store) -> SigningKey:
    folder = keys_dir(store)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        _own_keys_dir(store)
        tmp = folder / f".{PRIVATE_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_MODE)
        os.fchmod(fd, KEY_MODE)
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
    _write_public(folder / PUBLIC_FILE, signing.public, store.modes.file)
    return signing


def public_key(store: Store) -> PublicKey:
    """The store's public key: the recorded one (creating the key pair if the store has none)."""
    return recorded(store) or ensure(store).public


def export_public(store: Store, path: str | Path) -> PublicKey:
    """Write the store's public key (PEM) to ``path`` for verifiers."""
    return write_public(path, public_key(store))


def write_public(path: str | Path, pub: PublicKey) -> PublicKey:
    """Write ``pub`` (PEM) to ``path``, atomically (a team server's client writes the key it got)."""
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
    return public_from_pem(data, str(p))


def public_from_pem(data: bytes, where: str) -> PublicKey:
    """An Ed25519 public key from PEM bytes; ``where`` names them in the error."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise InvalidInput(f"{where} is not a PEM public key.",
                           hint="Export it with `runlock keys export-public -o store.pub`.") from e
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{where} is not an Ed25519 public key.")
    return PublicKey(key)


def _write_public(path: Path, pub: PublicKey, mode: int = 0o644) -> None:
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(pub.pem())
        os.replace(tmp, path)
    except OSError as e:
        raise InvalidInput(f"Cannot write the public key to {path}: {e.strerror}.") from e
