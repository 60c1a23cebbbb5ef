"""The public Python API as a surface: where ``store=None`` means "open the store of this folder".

``runlock.start_run(...)``, ``runlock.snapshot(...)``, … are these functions (``runlock/__init__``
maps the names here). Each opens the store at most once, through ``runlock.workspace``, and hands
it to the domain function, which takes a ``Store`` and never opens one. Opening never writes: a
function that writes (a run, a snapshot, a split, a registration) first tidies the store it opened
(``workspace.tidy``: crashed runs reaped, pending checkpoints signed); a function that only reads
(``runs``, ``load_split``, ``input_path``) leaves the store's bytes as they were.

Given a ``Store``, every function uses it as it is (the caller opened it, the caller tidies it).
With ``RUNLOCK_SERVER`` set and no store given, ``start_run``, ``snapshot``, ``split`` and
``register_model`` act on the team server, through ``remote.http.HttpService`` (the CLI's own
client interface, ``remote.interface.Service``), whose ``httpx`` is loaded only then."""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from runlock.data import snapshot as snapshots
from runlock.data import split as splits
from runlock.data import transform as transforms
from runlock.data.checkout import checkout
from runlock.errors import InvalidInput
from runlock.probe import active as probing
from runlock.registry import register_model as _register_model
from runlock.remote import credentials as remote_credentials
from runlock.store import Store
from runlock.tracking import query
from runlock.tracking import resume as resumes
from runlock.tracking import run as runs_
from runlock.verify import inputs
from runlock.workspace import init, open_store, tidy

__all__ = ["open_store", "init", "snapshot", "transform", "split", "load_split", "register_model", "runs",
           "start_run", "join_run", "current_run", "seed_everything", "resume", "input_path"]

T = TypeVar("T")
StoreArg = Store | str | Path | None


def open_for_writing(store: str | Path | None = None) -> Store:
    """Open the store at ``store`` (else this folder's) for a function that writes: tidied first."""
    opened = open_store(store)
    try:
        tidy(opened)
    except BaseException:
        opened.close()
        raise
    return opened


def _on_server(store: object) -> bool:
    """Does a call given ``store`` go to the team server (``RUNLOCK_SERVER`` set, no store given)?"""
    return store is None and bool(remote_credentials.server_url())


def _served(fn: Callable[[Any], T], client: Any = None) -> T:
    """``fn(service)`` with an ``HttpService`` of ``RUNLOCK_SERVER`` (or of ``client``), closed after."""
    http = importlib.import_module("runlock.remote.http")       # the server extra: loaded when used
    if client is not None:
        return fn(http.HttpService(client))
    svc = http.HttpService(importlib.import_module("runlock.remote.client").connect())
    try:
        return fn(svc)
    finally:
        svc.close()


def _client() -> Any:
    """A client of ``RUNLOCK_SERVER`` that outlives the call (a split reads its records through it)."""
    return importlib.import_module("runlock.remote.client").connect()


def _with(store: StoreArg, fn: Callable[[Store], T], *, writes: bool) -> T:
    """``fn(store)``; a store opened here (for ``None`` or a path) is closed afterwards."""
    if isinstance(store, Store):
        return fn(store)
    opened = open_for_writing(store) if writes else open_store(store)
    try:
        return fn(opened)
    finally:
        opened.close()


# -- data ----------------------------------------------------------------------------------------
def snapshot(path: str | Path, name: str | None = None, *, id_column: str | None = None,
             store: Store | None = None, on_progress: snapshots.ProgressFn | None = None) -> snapshots.Snapshot:
    """Snapshot a file, folder or table as ``ds:NAME@vN`` (see ``data.snapshot.create_snapshot``)."""
    if _on_server(store):
        return _served(lambda svc: svc.snapshot(path, name, id_column=id_column, on_progress=on_progress))
    return _with(store, lambda s: snapshots.create_snapshot(s, path, name, id_column=id_column,
                                                            on_progress=on_progress), writes=True)


def transform(snapshot: str | snapshots.Snapshot, fn: Callable, params: dict | None = None,
              name: str | None = None, *, store: Store | None = None) -> snapshots.Snapshot:
    """Apply ``fn`` to a snapshot and record the result as a derived snapshot (``data.transform``);
    with ``RUNLOCK_SERVER`` set and no store, the parent is read from the team server and the
    result recorded there (``fn`` runs here)."""
    if _on_server(store):
        return _served(lambda svc: svc.transform(snapshot, fn, params, name))
    return _with(store, lambda s: transforms.derive(s, snapshot, fn, params, name), writes=True)


def split(snapshot_or_ref: snapshots.Snapshot | str, name: str | None = None,
          ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, strategy: str = "random",
          by: str | None = None, names: Sequence[str] | None = None, store: Store | None = None,
          **options: Any) -> splits.Split:
    """Split a snapshot and name the result ``split:NAME@vN`` (see ``data.split.create_split``).
    The split keeps the store it was made in (``Split.store``), so it stays open; one made on a
    team server keeps a client of it, and reads its records from the server's objects."""
    if _on_server(store):     # the split keeps a client of the server open, to read its records
        return _served(lambda svc: svc.bind(svc.split(_split_request(
            snapshot_or_ref, name, ratios, seed, strategy, by, names, options), options.get("on_progress"))),
            client=_client())
    st = store if store is not None else open_for_writing()
    return splits.create_split(st, snapshot_or_ref, name=name, ratios=ratios, seed=seed, strategy=strategy,
                               by=by, names=names, **options)


def _split_request(snapshot_or_ref: Any, name: str | None, ratios: Sequence[float], seed: int, strategy: str,
                   by: str | None, names: Sequence[str] | None, options: dict) -> Any:
    interface = importlib.import_module("runlock.remote.interface")
    unknown = set(options) - {"group", "dedup", "check", "text_columns", "settings", "on_progress"}
    if unknown:
        raise InvalidInput(f"split() got unexpected options: {', '.join(sorted(unknown))}.")
    settings = options.get("settings")
    return interface.SplitRequest(
        snapshot_or_ref if isinstance(snapshot_or_ref, str) else snapshot_or_ref.id, name,
        tuple(ratios), seed, strategy, by, options.get("group"), tuple(names) if names is not None else None,
        options.get("dedup", False), options.get("check", True),
        tuple(options["text_columns"]) if options.get("text_columns") is not None else None,
        dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings)


def load_split(ref_or_split: splits.Split | str, store: Store | None = None) -> splits.Split:
    """The split a reference names (``split:NAME@v1``, ``split:NAME``, an id, or a Split); with
    ``RUNLOCK_SERVER`` set and no store, from the team server (its records read from there)."""
    if _on_server(store):
        ref = ref_or_split if isinstance(ref_or_split, str) else ref_or_split.id
        return _served(lambda svc: svc.bind(svc.load_split(ref)), client=_client())
    return splits.load(store if store is not None else open_store(), ref_or_split)


def input_path(ref: str, default: str | os.PathLike | None = None, *, store: Store | None = None) -> str:
    """The files of input ``ref`` (``ds:NAME@vN``): where a rerun rebuilt them; else ``default``;
    else a fresh checkout of the snapshot from the store, or from ``RUNLOCK_SERVER`` when no store
    is given (into a new temporary folder, every byte hash-checked)."""
    found = inputs.rebuilt_path(ref, default)
    if found is not None:
        return found
    if not ref.startswith("ds:"):
        raise InvalidInput(f"{ref!r} is not a snapshot reference, so it cannot be checked out here.",
                           hint="Pass the path to use outside a rerun as the default.")
    dest = Path(tempfile.mkdtemp(prefix="runlock-input-")) / "files"
    if _on_server(store):
        return _served(lambda svc: svc.checkout(ref, dest).dest)
    return _with(store, lambda s: checkout(s, ref, dest).dest, writes=False)


# -- models and runs -----------------------------------------------------------------------------
def register_model(run: Any, artifact: str = "model", name: str | None = None, *,
                   store: StoreArg = None, license: str | None = None, description: str | None = None,
                   limitations: str | None = None, meta: dict | None = None) -> Any:
    """Register a finished run's artifact as the next version of ``model:NAME`` (``registry``);
    without ``store``, the run's own store (or server), else this folder's (or ``RUNLOCK_SERVER``)."""
    given = store if store is not None else getattr(run, "store", None)
    if _on_server(given) or (store is None and getattr(run, "client", None) is not None):
        if name is None:
            raise InvalidInput("register_model needs a name, e.g. name=\"support-bot\".")
        run_id = getattr(run, "id", run)
        if not isinstance(run_id, str):
            raise InvalidInput(f"register_model takes a run, a run record or a run id, not {type(run).__name__}.")
        extra = {k: v for k, v in (("license", license), ("description", description),
                                    ("limitations", limitations)) if v is not None}
        return _served(lambda svc: svc.register_model(run_id, artifact, name, {**(meta or {}), **extra}),
                       getattr(run, "client", None))
    return _with(given, lambda s: _register_model(run, artifact, name, store=s, license=license,
                                                  description=description, limitations=limitations,
                                                  meta=meta), writes=True)


def runs(project: str | None = None, *, where: str | None = None, sort: str | None = None,
         status: str | None = None, limit: int | None = None, store: StoreArg = None):  # noqa: ANN201
    """``runlock.runs(project="bot", where="config.lr > 1e-4")``: matching runs as a DataFrame
    (see ``tracking.query.frame``); only reads. With ``RUNLOCK_SERVER`` set and no store, the
    runs of the team server that the token may read."""
    if _on_server(store):
        return _served(lambda svc: svc.run_frame(project=project, status=status, where=where, sort=sort, limit=limit))
    return _with(store, lambda s: query.frame(s, project=project, status=status, where=where, sort=sort,
                                              limit=limit), writes=False)


def start_run(project: str, name: str | None = None, *, config: Any = None, seed: int | None = None,
              tags: dict | None = None, store: StoreArg = None, argv: list[str] | None = None,
              settings: Any = None, system_metrics: bool = False, system_interval: float = 10.0) -> Any:
    """Start a run (``tracking.run.start_run``), or join the one ``runlock run`` started for this
    process; with ``RUNLOCK_SERVER`` set and no store given, the run lives on the team server."""
    kw = dict(config=config, seed=seed, tags=tags, argv=argv, settings=settings,
              system_metrics=system_metrics, system_interval=system_interval)
    if not isinstance(store, Store):
        if probing():  # under `runlock probe` nothing is recorded: no store is opened
            return runs_.start_run(project, name, store=None, **kw)
        if store is None and remote_credentials.server_url() and os.environ.get(runs_.ENV_RUN_ID):
            runs_.check_start(project, name, system_metrics, system_interval)
            joined = _join_remote()     # `runlock run` against a team server started it for this process
            joined._holds += 1
            if joined._holds == 1 and joined.rank == 0:     # rank 0 speaks for the run (once)
                joined.adopt(project=project, name=name, config=config, seed=seed, tags=tags,
                             seeding_report=runs_.take_pending_seeding())
            return joined
        if store is None and remote_credentials.server_url():
            runs_.check_start(project, name, system_metrics, system_interval)
            remote_run = importlib.import_module("runlock.remote.run")  # the server extra: loaded when used
            remote = remote_run.start_remote_run(
                remote_run.connect(), project, name, config=config, seed=seed, tags=tags, argv=argv,
                seeding_report=runs_.take_pending_seeding(), on_end=runs_.pop_run)
            runs_.push_run(remote)
            runs_.seal_at_exit()      # a script that never finishes it: its points shipped, then sealed
            return remote
        store = open_for_writing(store)  # the run owns it: closed when the interpreter ends
    return runs_.start_run(project, name, store=store, **kw)


def join_run(run_id: str, *, store: StoreArg = None, rank: int | None = None, settings: Any = None) -> Any:
    """Attach to a running run owned by another process (``tracking.run.join_run``)."""
    return runs_.join_run(run_id, store=store if isinstance(store, Store) else open_for_writing(store),
                          rank=rank, settings=settings)


def current_run() -> Any:
    """The run this process logs to: the innermost started or joined one, else the run named by
    ``RUNLOCK_RUN_ID`` (set by ``runlock run``), joined on first use."""
    found = runs_.current_run()
    if found is None and os.environ.get(runs_.ENV_RUN_ID):
        return _join_remote() if remote_credentials.server_url() else join_run(os.environ[runs_.ENV_RUN_ID])
    return found


_remote_joined: dict[str, Any] = {}


def _join_remote() -> Any:
    """This process's handle on the team server's run that ``runlock run`` started for it (one
    per process: it logs as its rank, ``RUNLOCK_RANK`` else 0, and ships its points; the wrapper
    seals the run)."""
    run_id = os.environ[runs_.ENV_RUN_ID]
    found = _remote_joined.get(run_id)
    if found is not None and not found.ended:
        return found
    remote_run = importlib.import_module("runlock.remote.run")  # the server extra: loaded when used
    run = remote_run.join_remote_run(remote_run.connect(), run_id, on_end=runs_.pop_run,
                                     rank=runs_.env_rank())
    _remote_joined[run_id] = run
    runs_.push_run(run)
    runs_.seal_at_exit()        # at exit its points are shipped (not sealed: the wrapper seals)
    return run


def seed_everything(seed: int, deterministic: bool = True, warn_only: bool = False,  # noqa: ANN201
                    hashseed: int | None = None):
    """Seed every source of randomness and record the report (``tracking.run.seed_everything``);
    under ``runlock run`` the wrapper's run is joined first, so the report goes into its lock."""
    current_run()
    return runs_.seed_everything(seed, deterministic=deterministic, warn_only=warn_only, hashseed=hashseed)


def resume(run_or_checkpoint: str | os.PathLike, *, project: str | None = None, name: str | None = None,
           config: Any = None, seed: int | None = None, step: int | None = None, restore_rng: bool = True,
           store: StoreArg = None) -> Any:
    """Start a run that continues ``run_or_checkpoint`` (``tracking.resume``); with
    ``RUNLOCK_SERVER`` set and no store, of a run on the team server (``remote.resume``)."""
    if _on_server(store):
        remote_resume = importlib.import_module("runlock.remote.resume")
        return _served(lambda svc: remote_resume.resume(
            svc, run_or_checkpoint, lambda p, n, **kw: start_run(p, n, **kw), project=project, name=name,
            config=config, seed=seed, step=step, restore_rng_state=restore_rng))
    return resumes.resume(run_or_checkpoint, project=project, name=name, config=config, seed=seed, step=step,
                          restore_rng=restore_rng,
                          store=store if isinstance(store, Store) else open_for_writing(store))
