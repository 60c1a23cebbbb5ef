"""What the code was: git commit, dirty flag, and the uncommitted work (``capture``, for the
lock); and where it sat: branch, remote, untracked files (``context``, for the run record).

The uncommitted diff (``git diff HEAD --binary``, staged and unstaged) is stored as an object, so a run can be rebuilt from its commit plus that diff. Outside a
git repository the lock says so instead of guessing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runlock import canonical
from runlock.store.objects import ObjectStore

MAX_UNTRACKED_LISTED = 10_000


def _git_bytes(cwd: Path, *args: str) -> bytes | None:
    """git's standard output, or None when git fails or is not there."""
    try:
        p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 else None


def _git(cwd: Path, *args: str) -> str | None:
    out = _git_bytes(cwd, *args)
    return None if out is None else out.decode("utf-8", "surrogateescape")


def capture(objects: ObjectStore, cwd: str | Path | None = None) -> dict:
    """The code part of a lock for the repository containing ``cwd``."""
    cwd = Path(cwd or Path.cwd())
    if shutil.which("git") is None:
        return {"git": None, "reason": "git is not installed"}
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        return {"git": None, "reason": "not inside a git repository"}
    root = Path(top.strip())
    commit = (_git(root, "rev-parse", "--verify", "-q", "HEAD") or "").strip() or None
    diff = _git_bytes(root, "diff", "HEAD", "--binary") if commit else _git_bytes(root, "diff", "--cached", "--binary")
    return {
        "git": {
            "commit": commit,
            "dirty": bool(diff),
            "diff": objects.put_bytes(diff) if diff else None,
            "subdir": str(cwd.resolve().relative_to(root.resolve())) if cwd.resolve().is_relative_to(root.resolve()) else None,
        }
    }


def context(objects: ObjectStore, cwd: str | Path | None = None) -> dict:
    """Where the code sat, for a person: branch, remote and untracked files. None of it decides
    the result, so it goes in the run record, not the lock: a rerun from a detached worktree or
    another clone keeps the recipe id."""
    cwd = Path(cwd or Path.cwd())
    git = None
    if shutil.which("git") is not None and _git(cwd, "rev-parse", "--show-toplevel") is not None:
        branch = (_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
        git = {"branch": branch if branch != "HEAD" else None,
               "remote": (_git(cwd, "config", "--get", "remote.origin.url") or "").strip() or None}
    return {"git": git, **untracked(objects, cwd)}


def untracked(objects: ObjectStore, cwd: str | Path | None = None) -> dict:
    """Untracked, unignored files: context for a person, not part of the recipe (a run that
    writes its outputs into the work tree must not change its own recipe id)."""
    cwd = Path(cwd or Path.cwd())
    listing = _git(cwd, "ls-files", "--others", "--exclude-standard", "-z")
    files = sorted(f for f in (listing or "").split("\0") if f)
    return {"untracked": objects.put_bytes(canonical.dumps(files[:MAX_UNTRACKED_LISTED])) if files else None,
            "untracked_count": len(files)}
