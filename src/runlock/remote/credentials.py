"""Where a client finds its server and token.

The server: ``RUNLOCK_SERVER``. The token: ``RUNLOCK_TOKEN``, else the one ``runlock login URL``
saved for that URL in ``$XDG_CONFIG_HOME/runlock/credentials.json`` (default ``~/.config``),
a file only its owner may read or write (0600, in a 0700 folder), replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from runlock.errors import InvalidInput

SERVER_ENV = "RUNLOCK_SERVER"
TOKEN_ENV = "RUNLOCK_TOKEN"


def server_url() -> str | None:
    url = os.environ.get(SERVER_ENV, "").strip()
    return normalize_url(url) if url else None


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise InvalidInput(f"{url!r} is not a server URL.", hint="Use http://HOST:PORT or https://HOST.")
    return url


def credentials_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runlock" / "credentials.json"


def saved() -> dict:
    try:
        data = json.loads(credentials_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def token_for(url: str) -> str | None:
    return os.environ.get(TOKEN_ENV) or (saved().get(normalize_url(url)) or {}).get("token")


def save_token(url: str, token: str) -> Path:
    """Remember ``token`` for ``url`` (0600 file); returns the file."""
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {**saved(), normalize_url(url): {"token": token}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
