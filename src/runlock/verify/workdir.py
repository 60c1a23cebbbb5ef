"""The code a rerun runs: the recorded commit with the recorded uncommitted diff on top.

``isolated`` (the default) makes a temporary ``git worktree`` of the repository at the recorded
commit (detached, so no branch moves) and applies the recorded diff to it with ``git apply
--index``, so ``git diff HEAD`` there gives back the very bytes that were recorded. ``in_place``
runs in the current checkout instead, and refuses unless its HEAD and its uncommitted diff are
exactly the recorded ones. Either way the command starts in the recorded sub-folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runlock.errors import RunlockError
from runlock.hashing import digest_bytes
from runlock.store import Store

STORE_REPO = "code.git"   # in the store's folder: commits that imported bundles carried (runlock.bundle)


@dataclass(frozen=True)
class CodeCheckout:
    root: Path            # the work tree the command sees
    cwd: Path             # where it starts (root / recorded sub-folder)
    repo: Path | None     # the repository the worktree belongs to (None: in place, or no git)
    commit: str | None
    diff: str | None
    isolated: bool


def git(cwd: Path, *args: str, check: bool = True, data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, timeout=300)
    except FileNotFoundError:
        raise RunlockError("git is not installed, and a rerun needs it to check out the code.",
                           hint="Install git, or rerun with --in-place.") from None
    if check and p.returncode != 0:
        raise RunlockError(f"`git {' '.join(args)}` failed in {cwd}: "
                           f"{p.stderr.decode(errors='replace').strip()}.")
    return p


def find_repo(start: Path) -> Path | None:
    p = git(start, "rev-parse", "--show-toplevel", check=False)
    return Path(p.stdout.decode().strip()) if p.returncode == 0 else None


def store_repo(store: Store, commit: str | None) -> Path | None:
    """The store's own repository (``.runlock/code.git``), if it holds ``commit``."""
    repo = store.root / STORE_REPO
    if not commit or not repo.is_dir():
        return None
    return repo if git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0 else None


def recorded_git(lock: dict, run_id: str) -> dict:
    info = (lock.get("code") or {}).get("git")
    if not info or not info.get("commit"):
        reason = (lock.get("code") or {}).get("reason") or "no commit was recorded"
        raise RunlockError(f"Run {run_id} recorded no git commit ({reason}), so its code cannot be checked out.",
                           hint="Rerun it with --in-place from the folder it ran in.")
    return info


def isolated(patch_of: Callable[[str], bytes], lock: dict, run_id: str, repo: Path, dest: Path) -> CodeCheckout:
    """A temporary worktree of ``repo`` at the recorded commit, recorded diff applied, in ``dest``
    (``patch_of(id)``: the diff's bytes, from the store or a team server)."""
    info = recorded_git(lock, run_id)
    commit = info["commit"]
    if git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        raise RunlockError(
            f"Commit {commit} recorded by run {run_id} is not in the repository at {repo}.",
            hint=f"Fetch it (`git fetch origin {commit}`), or pass --repo with a clone that has it.")
    git(repo, "worktree", "add", "--detach", "--quiet", str(dest), commit)
    if info.get("diff"):
        patch = patch_of(info["diff"])
        applied = git(dest, "apply", "--index", "--binary", "--whitespace=nowarn", "-", data=patch, check=False)
        if applied.returncode != 0:
            remove(CodeCheckout(dest, dest, repo, commit, info["diff"], True))
            raise RunlockError(f"The uncommitted diff {info['diff']} recorded by run {run_id} does not apply "
                               f"to commit {commit}: {applied.stderr.decode(errors='replace').strip()}.")
    return CodeCheckout(dest, dest / (info.get("subdir") or "."), repo, commit, info.get("diff"), True)


def in_place(lock: dict, run_id: str, repo: Path | None, here: Path) -> CodeCheckout:
    """The current checkout, if it is exactly the recorded code."""
    info = (lock.get("code") or {}).get("git")
    if not info or repo is None:
        return CodeCheckout(here, here, None, None, None, False)
    head = git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).stdout.decode().strip() or None
    diff = git(repo, "diff", "HEAD", "--binary").stdout
    diff_id = digest_bytes(diff) if diff else None
    wrong = []
    if head != info.get("commit"):
        wrong.append(f"HEAD is {head}, the run recorded {info.get('commit')}")
    if diff_id != info.get("diff"):
        wrong.append(f"the uncommitted diff is {diff_id or 'empty'}, the run recorded {info.get('diff') or 'none'}")
    if wrong:
        raise RunlockError(f"The checkout at {repo} is not the code run {run_id} ran: {'; '.join(wrong)}.",
                           hint="Rerun without --in-place to use a temporary worktree of the exact code.")
    return CodeCheckout(repo, repo / (info.get("subdir") or "."), None, head, diff_id, False)


def remove(checkout: CodeCheckout) -> None:
    """Remove a temporary worktree (never the user's own checkout)."""
    if checkout.isolated and checkout.repo is not None:
        git(checkout.repo, "worktree", "remove", "--force", str(checkout.root), check=False)
        git(checkout.repo, "worktree", "prune", check=False)
