"""Scratch file names that say who writes them, so a garbage collector can tell a leftover.

Objects are written to a scratch file first and renamed into place when complete; a process
killed in between leaves the scratch file behind. Each scratch file's name starts with
``KIND-HOST~PID~`` (``snap-build01~4242~x8f3.tmp``), so ``runlock gc`` (``runlock.gc``) can
remove the ones whose process has ended on this host and keep every one still being written.
"""

from __future__ import annotations

import os
import re
import socket
from typing import NamedTuple

_NAME = re.compile(r"^(?P<kind>put|snap)-(?:(?P<host>[A-Za-z0-9.-]+)~(?P<pid>\d+)~)?.*\.tmp$")


class Owner(NamedTuple):
    host: str | None
    pid: int | None


def host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "localhost"


def prefix(kind: str) -> str:
    """The name prefix of a scratch file this process writes (``kind``: put or snap)."""
    return f"{kind}-{host()}~{os.getpid()}~"


def owner(name: str) -> Owner | None:
    """Who writes the scratch file ``name``: (host, pid), (None, None) for a scratch file of an
    older runlock that did not say, or None when ``name`` is not a runlock scratch file."""
    m = _NAME.match(name)
    if m is None:
        return None
    return Owner(m["host"], int(m["pid"]) if m["pid"] else None)
