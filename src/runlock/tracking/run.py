"""The live run: what a training script holds while it trains.

``start_run`` creates a run, captures its lock, and starts the metric writer; leaving the
``with`` block seals it as ``finished`` (or ``failed``, with the traceback). A process started by
``runlock run`` finds its run through ``RUNLOCK_RUN_ID`` and joins it instead of starting another;
``current_run()`` returns the run this process is logging to.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from ulid import ULID

from runlock import artifacts, audit, canonical, code, environment, lineage, refs, registry, seeding
from runlock.config import ResolvedConfig
from runlock.errors import InvalidInput, RunlockError, SealedError
from runlock.probe import activate as activate_probe
from runlock.probe import active as probing
from runlock.probe import ProbeRun, record_step
from runlock.refs import check_name
from runlock.store import Store
from runlock.store.schema import metrics, runs
from runlock.tracking import fields, records, where, writers
from runlock.tracking import values as checks
from runlock.tracking import lock as locks
from runlock.tracking.system import SystemSampler, check_interval
from runlock.tracking.values import MAX_KEY_LENGTH, MAX_STEP  # noqa: F401 (public names)
from runlock.tracking.adopt import adopt, config_context
from runlock.tracking.writer import MetricWriter, WriterSettings

ENV_RUN_ID = "RUNLOCK_RUN_ID"
ENV_RANK = "RUNLOCK_RANK"

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
        self._writer_key: str | None = None      # a joined handle's entry in the run's writers
        self._holds = 0                          # start_run calls that returned this joined handle
        self._sampler: SystemSampler | None = None
        self.lost_points = 0                     # after finish: points logged that were not stored

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
            values = checks.as_dict(values)
        if step is None:
            step = self._auto_step + 1
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = checks.as_step(step)
        if step > self._auto_step:
            self._auto_step = step
        known = self._known_keys
        for k, v in values.items():
            if type(v) is not float or k not in known:
                values = checks.checked(values, known)
                break
        else:
            values = values.copy()
        self._writer.append(step, values)
        if self._probing:
            record_step(step, metrics=values)

    def continue_from(self, step: int) -> None:
        """Make ``log``'s default step one past ``step`` (a run resumed from a checkpoint at ``step``)."""
        self._auto_step = max(self._auto_step, checks.as_step(step))

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

    def use(self, thing: Any, *, path: str | Path | None = None) -> None:
        """Declare an input: a snapshot, split, artifact or model (object or reference string).
        ``path``: where the script reads it (a model folder, say); a snapshot this process took
        records its own path (see ``tracking.where``), so a rerun rebuilds it there."""
        entry = input_entry(self.store, thing)
        entry.update(where.found_at(self.store, self.lock, records.get(self.store, self.id).context.get("cwd"),
                                    entry, thing, path))

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
        def write(conn):  # noqa: ANN001, ANN202
            row = records.require_running(conn, self.id, for_update=True)
            lock = self._current_lock(row)
            context, lock["config"] = config_context(dict(row.context or {}), lock["config"], config)
            conn.execute(runs.update().where(runs.c.id == self.id).values(context=context))
            self._store_lock(conn)

        self.store.db.run_write(write)

    def _update_lock(self, change) -> None:  # noqa: ANN001
        def write(conn):  # noqa: ANN001, ANN202
            change(self._current_lock(records.require_running(conn, self.id, for_update=True)))
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

    def _adopt(self, *, project: str, name: str | None, config: Any, seed: int | None, tags: dict | None,
               seeding_report: dict | None) -> None:
        """What a script's ``start_run`` says about the run it joins (see ``join_wrapper`` and
        ``adopt``), in one transaction: one new lock, one recipe id."""
        renamed, self._lock, self.recipe_id = adopt(self.store, self.id, project=project, name=name, config=config,
                                                    seed=seed, tags=tags, seeding_report=seeding_report)
        self.project, self.name = renamed.get("project", self.project), renamed.get("name", self.name)
        if project and project != self.project:
            warnings.warn(f"runlock: start_run(project={project!r}) joined run {self.id} of project "
                          f"{self.project!r}, which the command line chose (runlock run --project).",
                          RuntimeWarning, stacklevel=4)

    def _start_sampler(self, interval: float) -> None:
        if self._sampler is None and not self._ended:
            writer = self._writer
            self._sampler = SystemSampler(lambda v: writer.append_sample(max(self._auto_step, 0), v), interval)

    # -- ending ---------------------------------------------------------------------------
    def finish(self, status: str = "finished", error: str | None = None, *, timeout: float = 60) -> None:
        """Flush (waiting at most ``timeout`` seconds for a failing store) and end this handle.

        A joined handle reports how many of its points the store did not take. The owner ends
        this process's other handles on the run, waits (at most ``timeout`` seconds) for every
        process that joined it to report, and seals the run; a run that lost points, or that a
        process logged to without reporting (killed, ``os._exit``), is sealed ``failed`` with
        ``context["lost_points"]``, never ``finished``."""
        if self._ended:
            return
        if self._holds > 1:   # a nested start_run that joined this same run: only flush
            self._holds -= 1
            self._writer.flush(timeout)
            return
        self._ended = True
        if self._sampler is not None:
            self._sampler.stop()
        self._writer.close(timeout=timeout)
        _pop(self)
        lost, why = max(self._writer.unwritten_points, self._writer.dropped_points), self._writer.loss_reason
        self.lost_points = lost
        if not self.owned:
            if self._writer_key is not None:
                writers.report(self.store, self.id, self._writer_key, lost, why)
            return
        for other in _handles(self.id, besides=self):
            other._holds = 0
            other.finish(timeout=timeout)
        try:
            joined = writers.wait(self.store, self.id, timeout)
        except RunlockError:
            joined = writers.Outcome()
        self.lost_points = lost + joined.lost
        context = None
        if self.lost_points or joined.unflushed:
            note = writers.loss_note(self.lost_points, (why, *joined.reasons), joined.unflushed)
            context = {"lost_points": self.lost_points,
                       **({"unflushed_writers": list(joined.unflushed)} if joined.unflushed else {})}
            status, error = ("failed", note) if status == "finished" else (status, f"{note}\n\n{error or ''}".strip())
            warnings.warn(f"runlock: run {self.id} is sealed {status}: {note}", RuntimeWarning, stacklevel=2)
        records.end(self.store, self.id, status, error=error, context=context)

    def _mark_sealed(self) -> None:
        self._ended = True

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.finish("finished")
        else:
            self.finish("failed", "".join(traceback.format_exception(exc_type, exc, tb)))


def input_entry(store: Store, thing: Any) -> dict:
    """The lock's entry for an input (``{"node", "id", "ref", "kind"}``): an object as it is, a
    reference resolved in ``store`` (``run.use`` here, and the team server's ``/inputs`` route)."""
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
        return input_entry(store, registry.resolve(store, text))
    if ns == "art":
        return input_entry(store, artifacts.find(store, text))
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


def _handles(run_id: str, besides: Any = None) -> list[Run]:
    """This process's open handles on ``run_id``, innermost first."""
    with _stack_lock:
        return [r for r in reversed(_stack) if isinstance(r, Run) and r.id == run_id and r is not besides
                and not r.ended]


def current_run() -> Run | None:
    """The innermost run this process started or joined (``runlock.current_run`` also joins the run
    ``runlock run`` started, named by ``RUNLOCK_RUN_ID``)."""
    with _stack_lock:
        if _stack:
            return _stack[-1]
    return None  # a run named by RUNLOCK_RUN_ID is joined by the surface (runlock.api.current_run)


def join_run(run_id: str, *, store: Store, rank: int | None = None,
             settings: WriterSettings | None = None) -> Run:
    """Attach to a running run owned by another process (a wrapper, or rank 0 of a distributed
    job); points logged here carry ``rank`` (default: ``RUNLOCK_RANK``, else 0). The handle
    registers its writer in the run's record, and at its end (``finish``, or the interpreter's
    exit) flushes and reports what it could not store, so the owner never seals a run
    ``finished`` while points logged here are missing (see ``runlock.tracking.writers``)."""
    rec = records.get(store, run_id)
    if rec.sealed:
        raise SealedError(rec.id, rec.status)
    rank = env_rank() if rank is None else _as_rank(rank)
    run = Run(store, rec, None, owned=False, rank=rank, start_seq=next_seq(store, rec.id, rank),
              settings=settings)
    key = str(ULID())
    if writers.register(store, rec.id, key, rank):
        run._writer_key = key
    _push(run)
    _seal_at_exit()
    return run


def env_rank() -> int:
    """This process's rank in a distributed job: ``RUNLOCK_RANK``, else 0."""
    return _as_rank(os.environ.get(ENV_RANK, "0"))


def _as_rank(rank: Any) -> int:
    try:
        value = int(rank)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or isinstance(rank, bool) or (isinstance(rank, float) and not rank.is_integer()):
        raise InvalidInput(f"Rank {rank!r} is not a non-negative integer.")
    return value


def next_seq(store: Store, run_id: str, rank: int) -> int:
    """The last sequence number stored for ``rank`` of the run (a new writer numbers on from it)."""
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.max(metrics.c.seq)).where(
            metrics.c.run_id == run_id, metrics.c.rank == rank)).scalar() or 0


def start_run(project: str, name: str | None = None, *, config: Any = None, seed: int | None = None,
              tags: dict | None = None, store: Store | None,
              argv: list[str] | None = None, settings: WriterSettings | None = None,
              system_metrics: bool = False, system_interval: float = 10.0) -> Run:
    """Start a run, or join the one ``runlock run`` started for this process: one run per
    process (see ``join_wrapper``). A seeding report of ``seed_everything`` called before is
    recorded in the new run's lock. ``system_metrics`` samples CPU, memory and GPU use every
    ``system_interval`` seconds under ``system/`` keys, on a thread of its own
    (``runlock.tracking.system``). ``store`` is required (``None`` only under ``runlock probe``);
    ``runlock.start_run`` (``runlock.api``) opens one, or starts the run on a team server."""
    interval = check_start(project, name, system_metrics, system_interval)
    if probing():  # under `runlock probe` nothing is recorded: a stand-in feeds run.log to the probe
        stand_in = ProbeRun(project, name, config=config, seed=seed, on_end=_pop)
        _push(stand_in)
        return stand_in
    if store is None:
        raise InvalidInput("start_run needs a store here: use runlock.start_run, which opens one.")
    if os.environ.get(ENV_RUN_ID):
        run = join_wrapper(os.environ[ENV_RUN_ID], store, project=project, name=name,
                           config=config, seed=seed, tags=tags)
    else:
        run = create_run(store, project, name, config=config, seed=seed, tags=tags, argv=argv,
                         settings=settings, seeding_report=_take_pending_seeding())
    if interval is not None:
        run._start_sampler(interval)
    return run


def check_start(project: str, name: str | None, system_metrics: bool, system_interval: float) -> float | None:
    """Refuse a bad project or run name or sampling interval before anything starts; the interval."""
    check_name(project, "project name")
    if name:
        check_name(name, "run name")
    return check_interval(system_interval) if system_metrics else None


def create_run(store: Store, project: str, name: str | None = None, *, config: Any = None,
               seed: int | None = None, tags: dict | None = None, argv: list[str] | None = None,
               settings: WriterSettings | None = None, seeding_report: dict | None = None,
               context: dict | None = None) -> Run:
    """Create a run owned by this process (what ``start_run`` does outside ``runlock run``, and
    what the wrapper does for its command)."""
    check_name(project, "project name")
    name = check_name(name, "run name") if name else project
    context = {"cwd": str(Path.cwd()), **code.context(store.objects), **(context or {})}
    if local := environment.local_sources():   # paths on this machine: the record, not the lock
        context["local_sources"] = local
    if isinstance(config, ResolvedConfig):
        context["config"] = config.provenance()
        config = config.values
    if seed is None and seeding_report is not None:
        seed = seeding_report.get("seed")
    lock = locks.build(store, config=config, seed=seed, argv=argv)
    if seeding_report is not None:
        lock["seeding"] = canonical.normalize(seeding_report)
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


def join_wrapper(run_id: str, store: Store, *, project: str, name: str | None, config: Any,
                 seed: int | None, tags: dict | None) -> Run:
    """``start_run`` in a process that ``runlock run`` started: join the wrapper's run (reusing
    this process's handle on it, if ``seed_everything`` or ``current_run`` joined already) and,
    on rank 0, give it what the script says about itself.

    The rule for the lock, which the wrapper captured before the script started: the wrapper's
    lock describes the command (entry point, code, environment, the hash seed it set), and the
    script adds what only it knows, in one change of the lock (one new recipe id, one
    ``run.lock`` audit entry) made before ``start_run`` returns: its config replaces the
    wrapper's, its seed replaces the wrapper's when it gives one, the seeding report of a
    ``seed_everything`` called before is recorded, and the knobs are captured again in this
    process (torch flags, threads), keeping those declared before. The script's name and
    project replace the wrapper's unless the command line gave them (``--name``, ``--project``
    win); its tags are merged in. Other ranks, and a ``start_run`` nested inside another one
    (it returns the same handle; leaving it only flushes), join without changing the lock."""
    handles = _handles(run_id)
    run = handles[0] if handles else join_run(run_id, store=store)
    run._holds += 1
    report = _take_pending_seeding()
    if run.rank == 0 and run._holds == 1:   # a start_run nested in another one changes nothing
        run._adopt(project=project, name=name, config=config, seed=seed, tags=tags, seeding_report=report)
    return run


# -- seeding before a run starts --------------------------------------------------------------
_pending_seeding: list[dict] = []


def _take_pending_seeding() -> dict | None:
    """The report of a ``seed_everything`` called while no run was active, once."""
    return _pending_seeding.pop() if _pending_seeding else None


def seed_everything(seed: int, deterministic: bool = True, warn_only: bool = False,  # noqa: ANN201
                    hashseed: int | None = None):
    """Seed every source of randomness (see ``runlock.seeding``) and record the report in the
    current run's lock; with no run active, the run that starts next records it (the quickstart
    order: ``seed_everything`` first, then ``start_run``). Under ``runlock run`` the wrapper's
    run is the current one; only rank 0 records."""
    report = seeding.seed_everything(seed, deterministic=deterministic, warn_only=warn_only, hashseed=hashseed)
    activate_probe()  # under `runlock probe`: record from the freshly seeded state on
    run = current_run()
    if run is None:
        _pending_seeding[:] = [report.to_dict()]
    elif getattr(run, "rank", 0) == 0:
        run.record_seeding(report.to_dict(), seed=seed)
    return report


# -- a run left open when the interpreter exits ------------------------------------------------
_uncaught: list[tuple] = []
_exit_hooked: list[bool] = []


def _seal_at_exit() -> None:
    """Once per process: at exit, end every run this process still holds: flush each joined one
    (and report what it lost), seal each owned one as ``failed`` with the traceback if an
    exception ended the program, else ``finished`` (a script that never left its ``with``
    block, a Trainer callback whose train() raised, a script that logs through
    ``current_run()`` under ``runlock run`` and never flushes)."""
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
        left = [r for r in _stack if (isinstance(r, Run) or getattr(r, "seal_at_exit", False)) and not r.ended]
    for run in reversed(left):
        run._holds = 0
        try:
            if _uncaught:
                run.finish("failed", "".join(traceback.format_exception(*_uncaught[-1])))
            else:
                run.finish("finished")
        except RunlockError:
            pass  # the store is gone or refuses: the next command that writes marks the run crashed


# for the surface (runlock.api) that starts a run on a team server: the same stack, seeding report
# and end at exit (a remote run says ``seal_at_exit``)
push_run, pop_run, take_pending_seeding, seal_at_exit = _push, _pop, _take_pending_seeding, _seal_at_exit
