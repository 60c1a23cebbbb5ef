"""Content identifiers: ``sha256:<64 hex>`` over exact bytes, streamed for files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO

from runlock.errors import InvalidInput

ALGORITHM = "sha256"
CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def digest_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def digest_stream(stream: BinaryIO, sink: BinaryIO | None = None) -> tuple[str, int]:
    """Hash a binary stream to its end, copying every chunk to ``sink`` when one is given, so
    the copy is exactly the bytes that were hashed; return (content id, byte count)."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += len(chunk)
    return f"{ALGORITHM}:{h.hexdigest()}", size


def digest_file(path: str | Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return digest_stream(f)


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed content id, else raise InvalidInput."""
    if not isinstance(value, str) or not is_digest(value):
        raise InvalidInput(f"{value!r} is not a content id; expected 'sha256:' and 64 hex digits.")
    return value


def hex_of(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]
