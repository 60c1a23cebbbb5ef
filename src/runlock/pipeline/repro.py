"""``repro``: bring a pipeline's stages up to date, in DAG order, independent stages in parallel.

For each selected stage, once every stage it depends on is done: compute its inputs document and
stage key (``inputs``), take the per-stage lock in the database, then either

- restore its outs from the earliest finished execution with the same key (a cache hit: a
  ``cached`` row naming that run, and an audit entry), writing only outs whose bytes differ; or
- run its command as a recorded run (``execute``: outs removed first, the run's lock holds the
  inputs document and its seed, upstream outs and refs linked as ``used``, each out stored by
  content as an artifact of the run, ``generated_by``). ``execute`` and the run machinery it
  imports are loaded only when a stage runs, so a no-op ``repro`` does not pay for them.

A second ``repro`` on the same store waits on the lock of a stage the first is computing, then
finds its result in the cache. A stage left ``running`` by a killed ``repro`` is marked failed
and its run crashed at the next ``repro`` (or ``resume``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

from ulid import ULID

from runlock.errors import InvalidInput, RunlockError
from runlock.pipeline import outs as outs_mod
from runlock.pipeline import state
from runlock.pipeline.digests import Hasher
from runlock.pipeline.inputs import document, stage_key
from runlock.pipeline.params import ParamFiles
from runlock.pipeline.spec import Pipeline
from runlock.refs import check_name
from runlock.store import Store
from runlock.tracking import records


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    action: str                 # ran | cached | failed | not-run | would-run | would-restore
    stage_key: str | None = None
    run_id: str | None = None   # the run that executed it, or (cached) the run whose outs were restored
    restored: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReproResult:
    repro_id: str
    pipeline: str
    stages: list[StageOutcome]

    @property
    def ok(self) -> bool:
        return all(s.action != "failed" for s in self.stages)

    def count(self, action: str) -> int:
        return sum(s.action == action for s in self.stages)

    def to_dict(self) -> dict:
        return {"repro_id": self.repro_id, "pipeline": self.pipeline, "ok": self.ok,
                "stages": [s.to_dict() for s in self.stages]}


class StageFailed(RunlockError):
    pass


def project_name(pipe: Pipeline) -> str:
    try:
        return check_name(pipe.root.name)
    except InvalidInput:
        return "pipeline"


def reap(store: Store, pipe: Pipeline) -> list[str]:
    """Mark stages left ``running`` by a killed ``repro`` failed (and their runs crashed)."""
    names = []
    for row in state.interrupted(store, str(pipe.root)):
        state.mark_failed(store, row.id)
        if row.run_id and records.get(store, row.run_id).status == "running":
            try:
                records.end(store, row.run_id, "crashed", error="The repro that ran this stage was killed.")
            except RunlockError:
                pass
        names.append(row.stage)
    return names


def repro(store: Store, pipe: Pipeline, targets: list[str] | None = None, *, jobs: int = 1, force: bool = False,
          dry: bool = False, project: str | None = None, stdout: int | None = None,
          on_event: Callable[[StageOutcome], None] | None = None) -> ReproResult:
    if jobs < 1:
        raise InvalidInput("--jobs must be at least 1.")
    selected = pipe.closure(targets)
    repro_id = str(ULID())
    if dry:
        return ReproResult(repro_id, str(pipe.root), _plan(store, pipe, selected, force))
    reap(store, pipe)
    ctx = _Context(store, pipe, repro_id, force, project or project_name(pipe), stdout, on_event)
    done: dict[str, StageOutcome] = {}
    running: dict[Future, str] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            if not failed:
                for name in selected:
                    if name in done or name in running.values():
                        continue
                    if all(up in done for up in pipe.upstream[name] if up in selected) and len(running) < jobs:
                        running[pool.submit(ctx.stage, name)] = name
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                try:
                    done[name] = fut.result()
                except RunlockError as e:
                    done[name] = StageOutcome(name, "failed", error=e.message)
                except Exception as e:     # noqa: BLE001  (an unexpected error still ends the stage cleanly)
                    done[name] = StageOutcome(name, "failed", error=f"{type(e).__name__}: {e}")
                if done[name].action == "failed":
                    failed = True
                if on_event:
                    on_event(done[name])
    stages = [done.get(n) or StageOutcome(n, "not-run") for n in selected]
    return ReproResult(repro_id, str(pipe.root), stages)


class _Context:
    def __init__(self, store: Store, pipe: Pipeline, repro_id: str, force: bool, project: str,
                 stdout: int | None, on_event: Callable | None) -> None:
        self.store, self.pipe, self.repro_id, self.force, self.project = store, pipe, repro_id, force, project
        self.stdout = stdout
        self.params = ParamFiles(pipe.root)
        self.hasher = Hasher(store)
        self._lock = threading.Lock()

    def _doc(self, name: str) -> dict:
        with self._lock:       # the hasher (plain deps are hashed once per repro) and params reader are shared
            return document(self.store, self.pipe, name, self.hasher, self.params)

    def stage(self, name: str) -> StageOutcome:
        doc = self._doc(name)
        key = stage_key(doc)
        hit = None if self.force else state.cached(self.store, key)
        if hit is not None:          # the common case takes no lock: restoring is idempotent and atomic
            return self._restore(name, key, doc, hit)
        state.acquire(self.store, key)
        try:
            hit = None if self.force else state.cached(self.store, key)   # computed while we waited?
            if hit is not None:
                return self._restore(name, key, doc, hit)
            return self._execute(name, key, doc)
        finally:
            state.release(self.store, key)

    def _restore(self, name: str, key: str, doc: dict, hit: state.StageRow) -> StageOutcome:
        written = outs_mod.restore(self.store, self.pipe.root, hit.outs, hit.run_id, Hasher(self.store))
        state.record_hit(self.store, pipeline=str(self.pipe.root), stage=name, stage_key=key,
                         repro_id=self.repro_id, inputs=doc, hit=hit, restored=written)
        return StageOutcome(name, "cached", key, hit.run_id, written)

    def _execute(self, name: str, key: str, doc: dict) -> StageOutcome:
        row = state.begin(self.store, pipeline=str(self.pipe.root), stage=name, stage_key=key,
                          repro_id=self.repro_id, inputs=doc)
        execute = importlib.import_module("runlock.pipeline.execute").execute   # see the module's docstring
        try:
            result, outs = execute(self.store, self.pipe, name, doc, project=self.project, stdout=self.stdout,
                                   on_start=lambda run: state.set_run(self.store, row, run.id))
        except BaseException:
            state.end(self.store, row, "failed")
            raise
        if result.status != "finished":
            state.end(self.store, row, "failed")
            raise StageFailed(f"Stage {name!r} failed (run {result.run_id}): "
                              f"{(result.error or f'exit status {result.returncode}').strip().splitlines()[0]}")
        state.end(self.store, row, "finished", outs=outs)
        return StageOutcome(name, "ran", key, result.run_id)


def _plan(store: Store, pipe: Pipeline, selected: list[str], force: bool) -> list[StageOutcome]:
    """What ``repro`` would do, without doing it."""
    plan: dict[str, StageOutcome] = {}
    params, hasher = ParamFiles(pipe.root), Hasher(store)
    for name in selected:
        if force or any(plan[u].action == "would-run" for u in pipe.upstream[name] if u in plan):
            plan[name] = StageOutcome(name, "would-run")
            continue
        try:
            key = stage_key(document(store, pipe, name, hasher, params))
        except InvalidInput:          # an upstream out is missing: its stage will write it
            plan[name] = StageOutcome(name, "would-run")
            continue
        hit = state.cached(store, key)
        if hit is None:
            plan[name] = StageOutcome(name, "would-run", key)
        else:
            todo = [o for o, i in sorted(hit.outs.items()) if hasher.digest(pipe.root / o) != i["digest"]]
            plan[name] = StageOutcome(name, "would-restore" if todo else "cached", key, hit.run_id, todo)
    return [plan[n] for n in selected]
