"""Materialising a run's recorded inputs for a rerun, and telling the rerun where they are.

Every entry of ``lock["inputs"]`` is rebuilt from the object store, verified byte for byte:

    snapshot   its files, checked out into ``DIR``             (runlock.data.checkout)
    split      its manifest as ``DIR/split.json``; the snapshot it names (``"snapshot"``),
               if any, checked out into ``DIR/data``
    artifact   the artifact's file or folder as ``DIR/NAME``
    model      the artifact the model name points at, as for an artifact

The rerun finds them through environment variables, one per input and one more per version::

    RUNLOCK_INPUT_DS_TICKETS=/tmp/…/ds-tickets-v1        ds:tickets@v1 (when only one version is used)
    RUNLOCK_INPUT_DS_TICKETS_V1=/tmp/…/ds-tickets-v1
    RUNLOCK_INPUTS=/tmp/…/inputs.json                    {ref: path} for every input

``input_path("ds:tickets@v1")`` reads them from inside a script: the rebuilt copy under a rerun,
otherwise a fresh checkout of the snapshot, so a script always reads the bytes it declared.

An input whose lock entry records where the run found it (``path``, relative to the project; see
``runlock.tracking.where``) is also rebuilt *there*, in the rerun's work tree (``place``): a
snapshot taken from ``data/tickets.jsonl`` (or a split of it) comes back as
``data/tickets.jsonl`` even when git ignores it, and a model folder used at ``models/base`` as
``models/base``. A script that reads its inputs by path then reruns unchanged, and writes the
same paths into its outputs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runlock import artifacts, canonical
from runlock.data.checkout import checkout
from runlock.data.snapshot import Snapshot, load_snapshot
from runlock.data.verify import verify as verify_snapshot
from runlock.errors import IntegrityError, InvalidInput, NotFound, RunlockError
from runlock.hashing import digest_file, is_digest
from runlock.paths import Dest, check_entry
from runlock.paths import UnsafePath, check_component
from runlock.refs import resolve
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_table
from runlock.tracking.where import input_files

ENV_PREFIX = "RUNLOCK_INPUT_"
ENV_INDEX = "RUNLOCK_INPUTS"
_REF = re.compile(r"^(?P<ns>[a-z]+):(?P<name>[^@]+)(?:@v(?P<version>\d+))?$")


@dataclass(frozen=True)
class Materialized:
    ref: str
    node: str
    id: str
    kind: str
    path: str
    env: tuple[str, ...]


def env_names(ref: str) -> tuple[str, str | None]:
    """(versioned, short) variable names for a reference: ``ds:a-b@v2`` ->
    (``RUNLOCK_INPUT_DS_A_B_V2``, ``RUNLOCK_INPUT_DS_A_B``)."""
    m = _REF.match(ref)
    if not m:  # a bare node like artifact:sha256:…
        kind, _, ident = ref.partition(":")
        return f"{ENV_PREFIX}{_upper(kind)}_{ident.rsplit(':', 1)[-1][:12].upper()}", None
    short = f"{ENV_PREFIX}{_upper(m['ns'])}_{_upper(m['name'])}"
    return (f"{short}_V{m['version']}" if m["version"] else short), short


def _upper(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


def rebuilt_path(ref: str, default: str | os.PathLike | None = None) -> str | None:
    """Where a rerun rebuilt input ``ref`` (its ``RUNLOCK_INPUT_*`` variable); else ``default``;
    else None (the caller checks the snapshot out of a store: ``runlock.input_path``)."""
    versioned, short = env_names(ref)
    found = os.environ.get(versioned) or (short and os.environ.get(short))
    if found or default is not None:
        return found or str(default)
    return None


def input_path(ref: str, default: str | os.PathLike | None = None, *, store: Store) -> str:
    """The files of input ``ref`` (``ds:NAME@vN``): where a rerun rebuilt them; else ``default``;
    else a fresh checkout of the snapshot from ``store`` (into a new temporary folder). Scripts
    call ``runlock.input_path``, which opens the store only when it must check out."""
    found = rebuilt_path(ref, default)
    if found is not None:
        return found
    if not ref.startswith("ds:"):
        raise InvalidInput(f"{ref!r} is not a snapshot reference, so it cannot be checked out here.",
                           hint="Pass the path to use outside a rerun as the default.")
    return checkout(store, ref, Path(tempfile.mkdtemp(prefix="runlock-input-")) / "files").dest


@dataclass(frozen=True)
class Source:
    """What one lock input is rebuilt from, found where the records are (``resolve``). Rebuilding
    it (``build_all``, ``place_all``) needs only objects, so a rerun against a team server does
    it from the sources the server sends (``to_dict``/``from_dict``), every byte hashed here.

    ``snapshot``: a snapshot input, or the snapshot a split names; ``manifest``: a split's own
    manifest bytes; ``artifact``: the artifact an artifact or model input is; ``object``: else
    the bare object it is; ``files``: ``(path in the project, object id)`` of what the run found at
    ``entry["path"]``."""

    entry: dict
    snapshot: Snapshot | None = None
    manifest: bytes | None = None
    artifact: artifacts.Artifact | None = None
    object: str | None = None
    files: tuple[tuple[str, str], ...] | None = None

    @property
    def ref(self) -> str:
        return self.entry.get("ref") or self.entry["node"]

    def to_dict(self) -> dict:
        snap = self.snapshot
        return {"entry": self.entry,
                "snapshot": None if snap is None else {"id": snap.id, "kind": snap.kind, "manifest": snap.manifest,
                                                       "name": snap.name, "version": snap.version},
                "manifest": None if self.manifest is None else base64.b64encode(self.manifest).decode(),
                "artifact": None if self.artifact is None else self.artifact.to_dict(), "object": self.object,
                "files": None if self.files is None else [list(f) for f in self.files]}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        snap, art = d.get("snapshot"), d.get("artifact")
        return cls(d["entry"], Snapshot(**snap) if snap else None,
                   base64.b64decode(d["manifest"]) if d.get("manifest") is not None else None,
                   artifacts.Artifact(**{k: art.get(k) for k in artifacts.Artifact.__dataclass_fields__}) if art else None,
                   d.get("object"),
                   tuple((str(p), str(o)) for p, o in d["files"]) if d.get("files") is not None else None)


def resolve_sources(store: Store, inputs: list[dict]) -> list[Source]:
    """What each input of a lock is rebuilt from (snapshots and artifacts looked up, the files
    at each recorded path listed); an input of a kind no rerun can rebuild is refused here."""
    return [_resolve(store, entry) for entry in inputs]


def _resolve(store: Store, entry: dict) -> Source:
    kind = entry.get("kind")
    files = tuple(_files_at(store, entry)) if entry.get("path") else None
    if kind == "snapshot":
        return Source(entry, _load(store, entry, entry["id"]), files=files)
    if kind == "split":
        data = store.objects.get_bytes(entry["id"])
        try:
            manifest = canonical.loads(data)
        except ValueError:
            manifest = None
        parent = manifest.get("snapshot") if isinstance(manifest, dict) else None
        snap = _load(store, entry, parent) if isinstance(parent, str) and is_digest(parent) else None
        return Source(entry, snap, data, files=files)
    if kind in ("artifact", "model"):
        digest = entry["id"]
        if kind == "model" and not is_digest(digest):
            digest = resolve(store, entry.get("ref") or entry["node"].split(":", 1)[1], "model").target
        with store.db.read() as conn:
            row = conn.execute(sa.select(artifacts_table.c.run_id, artifacts_table.c.name).where(
                artifacts_table.c.digest == digest).limit(1)).first()
        if row is None:
            return Source(entry, object=digest, files=files)
        return Source(entry, artifact=artifacts.get(store, row.run_id, row.name), files=files)
    raise InvalidInput(f"Input {entry.get('ref') or entry['node']} has kind {kind!r}, "
                       "which a rerun cannot rebuild.", hint="Rerun with the input in place (--in-place).")


def _load(store: Store, entry: dict, snap_id: str) -> Snapshot:
    try:
        return load_snapshot(store, snap_id)
    except (NotFound, IntegrityError) as e:
        if isinstance(e, UnsafePath):
            raise
        raise _broken_snapshot(store, entry, e) from None


def materialize(store: Store, inputs: list[dict], dest: Path, *,
                on_progress: Callable[[int, int, str], None] | None = None) -> tuple[list[Materialized], dict[str, str]]:
    """Rebuild every input under ``dest`` from ``store``; see ``build_all``."""
    sources = resolve_sources(store, inputs)
    return build_all(store, sources, dest, on_progress=on_progress,
                     broken=lambda entry, e: _broken_snapshot(store, entry, e))


def build_all(view: Any, sources: list[Source], dest: Path, *,
              on_progress: Callable[[int, int, str], None] | None = None,
              broken: Callable[[dict, Exception], Exception] | None = None) -> tuple[list[Materialized], dict[str, str]]:
    """Rebuild every input under ``dest`` with the objects of ``view`` (a store, or what a team
    server's client reads through); return them and the environment variables naming them.
    ``on_progress(done, total, ref)`` is called before each input is rebuilt; ``broken(entry,
    error)`` words a snapshot that cannot be checked out (default: the error itself)."""
    done: list[Materialized] = []
    for n, src in enumerate(sources):
        if on_progress:
            on_progress(n, len(sources), src.ref)
        target = dest / _upper(src.ref).lower().replace("_", "-")
        path = _build(view, src, target, broken)
        done.append(Materialized(src.ref, src.entry["node"], src.entry["id"], src.entry.get("kind"), str(path),
                                 tuple(n for n in env_names(src.ref) if n)))
    shorts = [m.env[1] for m in done if len(m.env) > 1]
    env = {}
    for m in done:
        env[m.env[0]] = m.path
        if len(m.env) > 1 and shorts.count(m.env[1]) == 1:
            env[m.env[1]] = m.path
    index = dest / "inputs.json"
    dest.mkdir(parents=True, exist_ok=True)  # also for a run that declared no inputs
    index.write_text(json.dumps({m.ref: m.path for m in done}, indent=2, sort_keys=True))
    env[ENV_INDEX] = str(index)
    return done, env


def _build(view: Any, src: Source, target: Path, broken: Callable[[dict, Exception], Exception] | None) -> Path:
    kind = src.entry.get("kind")
    if kind == "snapshot":
        return _checkout(view, src, src.snapshot, target, broken)
    if kind == "split":
        target.mkdir(parents=True)
        (target / "split.json").write_bytes(src.manifest or b"")
        if src.snapshot is not None:
            _checkout(view, src, src.snapshot, target / "data", broken)
        return target
    if src.artifact is None:                    # an object that is no run's artifact
        target.parent.mkdir(parents=True, exist_ok=True)
        view.objects.copy_to(src.object or src.entry["id"], target)
        return target
    art = src.artifact
    return artifacts.materialize(_for(view, art), art, target / check_component(art.name, "artifact name"))


def _checkout(view: Any, src: Source, snap: Snapshot, target: Path,
              broken: Callable[[dict, Exception], Exception] | None) -> Path:
    try:
        checkout(view, snap, target)
    except UnsafePath:
        raise                                   # a crafted manifest: its own message names the entry
    except (NotFound, IntegrityError) as e:
        if broken is None:
            raise IntegrityError(f"Input {src.ref} cannot be rebuilt: {e}") from None
        raise broken(src.entry, e) from None
    return target


def _for(view: Any, art: artifacts.Artifact | None) -> Any:
    """The view to read ``art``'s files through (a team server's client names the folder's file
    list with each download: ``for_artifact``); a store reads them all alike."""
    pick = getattr(view, "for_artifact", None)
    return pick(art) if pick is not None and art is not None else view


def _broken_snapshot(store: Store, entry: dict, cause: Exception) -> IntegrityError:
    try:
        problems = verify_snapshot(store, entry["id"]).problems
    except (NotFound, IntegrityError):
        problems = []
    listed = "; ".join(f"{p.path or 'manifest'} ({p.object}) is {p.problem}" for p in problems[:10])
    more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
    return IntegrityError(
        f"Input {entry.get('ref') or entry['node']} cannot be rebuilt: "
        f"{listed + more if listed else cause}.",
        hint="The store lost objects this snapshot needs; `runlock fsck` and `runlock data verify` "
             "list them. Restore them from a copy of the store.")


# -- inputs rebuilt where the run found them ---------------------------------------------------
@dataclass(frozen=True)
class Placed:
    ref: str
    path: str          # relative to the project
    files: int
    written: int       # files written (the others were already there, byte for byte)


def place(store: Store, inputs: list[dict], root: Path, *, replace: bool) -> list[Placed]:
    """Rebuild every input with a recorded ``path`` at ``root / path`` from ``store``; see ``place_all``."""
    return place_all(store, [Source(e, files=tuple(_files_at(store, e))) for e in inputs if e.get("path")],
                     root, replace=replace)


def place_all(view: Any, sources: list[Source], root: Path, *, replace: bool) -> list[Placed]:
    """Rebuild every input with a recorded ``path`` at ``root / path``. A file already there with
    the recorded bytes is kept; one with other bytes is replaced when ``replace`` (a temporary
    worktree), else refused before anything is written (the user's own checkout)."""
    plans = [(src, list(src.files)) for src in sources if src.entry.get("path") and src.files is not None]
    wrong = [f"{rel} ({src.ref})" for src, files in plans for rel, digest in files if _differs(root / rel, digest)]
    if wrong and not replace:
        listed = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise RunlockError(f"The run read other bytes at {listed} than are there now in {root}.",
                           hint="Rerun without --in-place: the temporary worktree gets the recorded inputs.")
    done = []
    with Dest(root) as dest:
        for src, files in plans:
            objects = _for(view, src.artifact).objects
            written = 0
            for rel, digest in files:
                check_entry(rel, f"input {src.ref}")
                if _differs(root / rel, digest) is not False:
                    with objects.open(digest) as f:
                        dest.write(rel, f, digest)
                    written += 1
            done.append(Placed(src.ref, src.entry["path"], len(files), written))
    return done


def _files_at(store: Store, entry: dict) -> list[tuple[str, str]]:
    """``[(path under the project, object id)]`` of the files an input had at its recorded path."""
    ref = entry.get("ref") or entry["node"]
    rel = check_entry(entry["path"], f"the lock's input {ref}")
    found = input_files(store, entry) or []
    if entry.get("path_kind") == "file":
        if len(found) != 1:
            raise IntegrityError(f"The lock says input {ref} was the file {rel}, but it holds {len(found)} files.")
        return [(rel, found[0][1])]
    return [(check_entry(f"{rel}/{p}", f"input {ref}"), d) for p, d in found]


def _differs(path: Path, digest: str) -> bool | None:
    """None: nothing there; False: the recorded bytes; True: something else (a folder, other bytes)."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file() or path.is_symlink():
        return True
    return digest_file(path)[0] != digest
