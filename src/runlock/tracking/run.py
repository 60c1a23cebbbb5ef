"""The live run: what a training script holds while it trains.

``start_run`` creates a run, captures its lock, and starts the metric writer; leaving the
``with`` block seals it as ``finished`` (or ``failed``, with the traceback). A process started by
``runlock run`` finds its run through ``RUNLOCK_RUN_ID`` and joins it instead of starting another;
``current_run()`` returns the run this process is logging to.
"""

from __future__ import annotations

import atexit
import numbers
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from ulid import ULID

from runlock import artifacts, audit, canonical, code, lineage, refs, registry, seeding
from runlock.config import ResolvedConfig
from runlock.errors import InvalidInput, RunlockError, SealedError
from runlock.probe import activate as activate_probe
from runlock.probe import active as probing
from runlock.probe import ProbeRun, record_step
from runlock.refs import check_name
from runlock.store import Store
from runlock.store.schema import metrics, runs
from runlock.tracking import fields, records
from runlock.tracking import lock as locks
from runlock.tracking.writer import MetricWriter, WriterSettings
from runlock.workspace import open_store

ENV_RUN_ID = "RUNLOCK_RUN_ID"
ENV_RANK = "RUNLOCK_RANK"
MAX_KEY_LENGTH = 250
MAX_STEP = 2**63 - 1

_stack: list["Run"] = []
_stack_lock = threading.Lock()


class Run:
    """A handle on one run. Owned (this process seals it) or joined (another process does)."""

    def __init__(self, store: Store, record: records.RunRecord, lock: dict | None, *, owned: bool,
                 rank: int = 0, start_seq: int = 0, settings: WriterSettings | None = None) -> None:
        self.store = store
        self.id = record.id
        self.project = record.project
        self.name = record.name
        self.recipe_id = record.recipe_id
        self.owned = owned
        self.rank = rank
        self._lock = lock
        self._ended = False
        self._auto_step = -1
        self._probing = probing()  # under `runlock probe`, each logged step is fingerprinted
        self._known_keys: set[str] = set()
        self._writer = MetricWriter(store, self.id, rank=rank, start_seq=start_seq,
                                    settings=settings, on_sealed=self._mark_sealed)

    # -- identity -------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    @property
    def lineage_node(self) -> str:
        return f"run:{self.id}"

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.project}/{self.name}>"

    # -- logging --------------------------------------------------------------------------
    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        """Record scalar metrics at ``step`` (default: one past the highest step logged here).
        Returns at once; the points are written in the background (see ``flush``)."""
        if self._ended:
            raise SealedError(self.id, "ended")
        if type(values) is not dict:
            values = _as_dict(values)
        if step is None:
            step = self._auto_step + 1
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = _as_step(step)
        if step > self._auto_step:
            self._auto_step = step
        known = self._known_keys
        for k, v in values.items():
            if type(v) is not float or k not in known:
                values = _checked(values, known)
                break
        else:
            values = values.copy()
        self._writer.append(step, values)
        if self._probing:
            record_step(step, metrics=values)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is in the store."""
        if not self._writer.flush(timeout):
            if self._writer.dropped_points:
                raise RunlockError(f"{self._writer.dropped_points} metric points of run {self.id} were "
                                   "dropped instead of written (see the warnings above).")
            raise RunlockError(f"Metrics of run {self.id} could not be written in time "
                               f"({self._writer.failing or 'the store is slow'}).",
                               hint="Check the store (disk space, database server) and call flush() again.")

    @property
    def ended(self) -> bool:
        """True once the run is finished here, or sealed by the process that owns it."""
        return self._ended

    @property
    def dropped_points(self) -> int:
        """Points given up on (the store refused them past the buffer bound, or the run was sealed)."""
        return self._writer.dropped_points

    def set_summary(self, values: dict[str, Any]) -> None:
        """Merge final values (evaluation results) into the run's summary."""
        summary = canonical.normalize(values)

        def write(conn):  # noqa: ANN001, ANN202
            row = records.require_running(conn, self.id)
            merged = {**(row.summary or {}), **summary}
            conn.execute(runs.update().where(runs.c.id == self.id).values(summary=merged))
            fields.replace_section(conn, self.id, "summary", merged)

        self.store.db.run_write(write)

    def use(self, thing: Any) -> None:
        """Declare an input: a snapshot, split, artifact or model (object or reference string)."""
        entry = _input_entry(self.store, thing)

        def write(conn):  # noqa: ANN001, ANN202
            row = records.require_running(conn, self.id)
            if locks.add_input(self._current_lock(row), entry):
                self._store_lock(conn)
            lineage.record_edge(conn, "used", self.lineage_node, entry["node"])

        self.store.db.run_write(write)

    def log_artifact(self, path: str | Path, name: str, kind: str = "artifact",
                     metadata: dict | None = None) -> artifacts.Artifact:
        """Store a file or folder by content as an output of this run."""
        check_name(name, "artifact name")
        stored = artifacts.store_path(self.store, path)

        def write(conn):  # noqa: ANN001, ANN202
            records.require_running(conn, self.id)
            return artifacts.record(conn, self.store, self.id, name, stored, kind, metadata or {})

        return self.store.db.run_write(write)

    # -- the lock -------------------------------------------------------------------------
    @property
    def lock(self) -> dict:
        return locks.load(self.store, self.recipe_id) if self._lock is None else self._lock

    def record_seeding(self, report: dict, seed: int | None = None) -> None:
        """Put a seeding report (and the seed) into the lock."""
        self._update_lock(lambda lk: lk.update(seeding=canonical.normalize(report),
                                               seed=lk["seed"] if seed is None else seed))

    def record_knobs(self, **declared: Any) -> None:
        """Record result-affecting settings the script knows (batch size, workers, ...)."""
        self._update_lock(lambda lk: lk.update(knobs=canonical.normalize(seeding.knobs(**declared))))

    def record_config(self, config: Any) -> None:
        """Put the resolved config into the lock (a ``ResolvedConfig`` also records where each
        value came from, for ``runlock config explain``)."""
        context = records.get(self.store, self.id).context
        if isinstance(config, ResolvedConfig):
            context["config"] = config.provenance()
            config = config.values
        elif context.get("config"):   # keys whose value changes here no longer come from a file
            old, new = fields.flatten(self.lock["config"]), fields.flatten(canonical.normalize(config))
            origins = context["config"]["origins"]
            context["config"]["origins"] = {k: o for k, o in origins.items() if old.get(k) == new.get(k, old)}
        records.update(self.store, self.id, context=context)
        self._update_lock(lambda lk: lk.update(config=canonical.normalize(config)))

    def _update_lock(self, change) -> None:  # noqa: ANN001
        def write(conn):  # noqa: ANN001, ANN202
            change(self._current_lock(records.require_running(conn, self.id)))
            self._store_lock(conn)

        self.store.db.run_write(write)

    def _current_lock(self, row: sa.Row) -> dict:
        """The lock as the store holds it now. A joined run (or one whose owner changed the lock
        since) reloads it, so its change applies on top of everyone else's."""
        if self._lock is None or row.recipe_id != self.recipe_id:
            self.recipe_id = row.recipe_id
            self._lock = locks.load(self.store, row.recipe_id)
        return self._lock

    def _store_lock(self, conn) -> None:  # noqa: ANN001
        before = self.recipe_id
        self.recipe_id = locks.store_lock(self.store, self._lock)
        if before != self.recipe_id:
            conn.execute(runs.update().where(runs.c.id == self.id).values(recipe_id=self.recipe_id))
            fields.replace_section(conn, self.id, "config", self._lock["config"])
            audit.append(conn, self.store.actor, "run.lock", self.ref, before=before, after=self.recipe_id)

    # -- ending ---------------------------------------------------------------------------
    def finish(self, status: str = "finished", error: str | None = None, *, timeout: float = 60) -> None:
        """Flush (waiting at most ``timeout`` seconds for a failing store) and seal the run
        (only the owning process seals)."""
        if self._ended:
            return
        self._ended = True
        self._writer.close(timeout=timeout)
        _pop(self)
        if self.owned:
            records.end(self.store, self.id, status, error=error)

    def _mark_sealed(self) -> None:
        self._ended = True

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.finish("finished")
        else:
            self.finish("failed", "".join(traceback.format_exception(exc_type, exc, tb)))


# -- value checks (the slow path of run.log: only for keys not seen yet and non-float values) ---
def _as_dict(values: Any) -> dict:
    if isinstance(values, Mapping):
        return dict(values)
    raise InvalidInput(f"run.log takes a dict of metric name -> number, not {type(values).__name__}.")


def _checked(values: dict, known: set[str]) -> dict:
    out = {}
    for k, v in values.items():
        if k not in known:
            known.add(_check_key(k))
        out[k] = v if type(v) is float else _as_float(k, v)
    return out


def _check_key(key: Any) -> str:
    if type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH:
        return key
    if not isinstance(key, str):
        raise InvalidInput(f"Metric name {key!r} is not a string.")
    if not key:
        raise InvalidInput("A metric name is empty.", hint="Name every metric, e.g. 'train/loss'.")
    raise InvalidInput(f"Metric name {key[:40]!r}… is longer than {MAX_KEY_LENGTH} characters.")


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            raise InvalidInput(f"Metric {key!r} got {value}, too large for a 64-bit float.") from None
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None and len(tuple(shape)) == 0:
        v = item()  # a NumPy 0-d array or a 0-d torch tensor
        if isinstance(v, numbers.Real):
            return float(v)
    raise InvalidInput(f"Metric {key!r} got {type(value).__name__}; metrics take one number "
                       "(int, float, NumPy scalar or 0-d tensor).",
                       hint="Log each element under its own name, or store arrays with log_artifact().")


def _as_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"Step {step!r} is not an integer.")
    if int(step) < 0:
        raise InvalidInput(f"Step {step} is negative; steps count from 0.")
    if int(step) > MAX_STEP:
        raise InvalidInput(f"Step {step} is larger than {MAX_STEP}.")
    return int(step)


def _input_entry(store: Store, thing: Any) -> dict:
    if isinstance(thing, str):
        return _resolve_ref(store, thing)
    node = getattr(thing, "lineage_node", None)
    ident = getattr(thing, "id", None)
    if not node or not ident:
        raise InvalidInput(f"run.use() takes a snapshot, split, artifact or model, or a reference "
                           f"string; got {type(thing).__name__}.")
    return {"node": node, "id": ident, "ref": getattr(thing, "ref", None) or node,
            "kind": node.split(":", 1)[0]}


def _resolve_ref(store: Store, text: str) -> dict:
    """An input named by reference, through the resolver that owns each kind of name: the
    registry for models (versions and aliases), the catalog for artifacts, refs for data."""
    ns = text.split(":", 1)[0]
    if ns == "model":
        return _input_entry(store, registry.resolve(store, text))
    if ns == "art":
        return _input_entry(store, artifacts.find(store, text))
    if ns in _DATA_NODES:
        r = refs.resolve(store, text, ns)
        return {"node": f"{_DATA_NODES[ns]}:{r.target}", "id": r.target, "ref": r.ref, "kind": _DATA_NODES[ns]}
    raise InvalidInput(f"{text!r} is not a reference run.use() understands; expected ds:NAME@vN, "
                       "split:NAME@vN, model:NAME@vN (or @ALIAS) or art:sha256:….")


_DATA_NODES = {"ds": "snapshot", "split": "split"}


# -- the active run -----------------------------------------------------------------------
def _push(run: Run) -> None:
    with _stack_lock:
        _stack.append(run)


def _pop(run: Run) -> None:
    with _stack_lock:
        if run in _stack:
            _stack.remove(run)


def current_run() -> Run | None:
    """The run this process logs to: the innermost started or joined one, else the run named
    by ``RUNLOCK_RUN_ID`` (set by ``runlock run``), joined on first use."""
    with _stack_lock:
        if _stack:
            return _stack[-1]
    if os.environ.get(ENV_RUN_ID):
        return join_run(os.environ[ENV_RUN_ID])
    return None


def join_run(run_id: str, *, store: Store | str | Path | None = None, rank: int | None = None,
             settings: WriterSettings | None = None) -> Run:
    """Attach to a running run owned by another process (a wrapper, or rank 0 of a distributed
    job); points logged here carry ``rank`` (default: ``RUNLOCK_RANK``, else 0)."""
    store = _as_store(store)
    rec = records.get(store, run_id)
    if rec.sealed:
        raise SealedError(rec.id, rec.status)
    rank = _as_rank(os.environ.get(ENV_RANK, "0") if rank is None else rank)
    run = Run(store, rec, None, owned=False, rank=rank, start_seq=_next_seq(store, rec.id, rank),
              settings=settings)
    _push(run)
    return run


def _as_rank(rank: Any) -> int:
    try:
        value = int(rank)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or isinstance(rank, bool) or (isinstance(rank, float) and not rank.is_integer()):
        raise InvalidInput(f"Rank {rank!r} is not a non-negative integer.")
    return value


def _next_seq(store: Store, run_id: str, rank: int) -> int:
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.max(metrics.c.seq)).where(
            metrics.c.run_id == run_id, metrics.c.rank == rank)).scalar() or 0


def start_run(project: str, name: str | None = None, *, config: Any = None, seed: int | None = None,
              tags: dict | None = None, store: Store | str | Path | None = None,
              argv: list[str] | None = None, settings: WriterSettings | None = None) -> Run:
    """Start a run (or join the one ``runlock run`` started for this process)."""
    check_name(project, "project name")
    if probing():  # under `runlock probe` nothing is recorded: a stand-in feeds run.log to the probe
        stand_in = ProbeRun(project, name, config=config, seed=seed, on_end=_pop)
        _push(stand_in)
        return stand_in
    if os.environ.get(ENV_RUN_ID) and not _stack:
        run = join_run(os.environ[ENV_RUN_ID], store=_as_store(store))
        if config is not None:
            run.record_config(config)
        if seed is not None:
            run._update_lock(lambda lk: lk.update(seed=seed))
        return run
    store = _as_store(store)
    name = check_name(name, "run name") if name else project
    context = {"cwd": str(Path.cwd()), **code.context(store.objects)}
    if isinstance(config, ResolvedConfig):
        context["config"] = config.provenance()
        config = config.values
    lock = locks.build(store, config=config, seed=seed, argv=argv)
    tags = canonical.normalize(tags or {})
    run_id = str(ULID())

    def write(conn):  # noqa: ANN001, ANN202
        records.create(conn, store, run_id=run_id, project=project, name=name, pid=os.getpid(),
                       tags=tags, context=context)
        recipe = locks.store_lock(store, lock)
        conn.execute(runs.update().where(runs.c.id == run_id).values(recipe_id=recipe))
        fields.replace_section(conn, run_id, "config", lock["config"])
        fields.replace_section(conn, run_id, "tags", tags)

    store.db.run_write(write)
    run = Run(store, records.get(store, run_id), lock, owned=True, settings=settings)
    _push(run)
    _seal_at_exit()
    return run


# -- a run left open when the interpreter exits ------------------------------------------------
_uncaught: list[tuple] = []
_exit_hooked: list[bool] = []


def _seal_at_exit() -> None:
    """Once per process: at exit, seal every run this process still owns, as ``failed`` with the
    traceback if an exception ended the program, else ``finished`` (a script that never left its
    ``with`` block, or a Trainer callback whose train() raised)."""
    if _exit_hooked:
        return
    _exit_hooked.append(True)
    previous = sys.excepthook

    def hook(exc_type, exc, tb):  # noqa: ANN001, ANN202
        _uncaught.append((exc_type, exc, tb))
        previous(exc_type, exc, tb)

    sys.excepthook = hook
    atexit.register(_finish_open_runs)


def _finish_open_runs() -> None:
    with _stack_lock:
        owned = [r for r in _stack if r.owned and not r.ended]
    for run in reversed(owned):
        try:
            if _uncaught:
                run.finish("failed", "".join(traceback.format_exception(*_uncaught[-1])))
            else:
                run.finish("finished")
        except RunlockError:
            pass  # the store is gone or refuses: the next open marks the run crashed


def _as_store(store: Store | str | Path | None) -> Store:
    return store if isinstance(store, Store) else open_store(store)


def seed_everything(seed: int, deterministic: bool = True, warn_only: bool = False):  # noqa: ANN201
    """Seed every source of randomness (see ``runlock.seeding``) and record the report in the
    current run's lock, if a run is active."""
    report = seeding.seed_everything(seed, deterministic=deterministic, warn_only=warn_only)
    activate_probe()  # under `runlock probe`: record from the freshly seeded state on
    run = current_run()
    if run is not None:
        run.record_seeding(report.to_dict(), seed=seed)
    return report
