"""One stage executed as a recorded run (``runlock.tracking.wrapper.run_command``).

Its outs are removed first, so nothing stale can pass for the new result; the run's config holds
the stage's inputs document (cmd, params, every dep by digest, outs) and its seed; upstream outs
and refs are linked ``used`` and a plain dep's bytes are kept in the object store (so ``verify``
can rebuild it); after the command exits 0 each out is stored by content as an artifact of the
run (``generated_by``). ``repro`` and ``verify`` load this module only when a stage must run: the
run machinery is most of what a no-op ``repro`` would otherwise import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from runlock import artifacts
from runlock.errors import InvalidInput
from runlock.pipeline import outs as outs_mod
from runlock.pipeline.spec import Pipeline, is_ref
from runlock.store import Store
from runlock.tracking.run import Run
from runlock.tracking.wrapper import CommandResult, run_command

SHELL = "/bin/sh"


def execute(store: Store, pipe: Pipeline, name: str, doc: dict, *, project: str, cwd: str | None = None,
            stdout: int | None = None, on_start: Callable[[Run], None] | None = None
            ) -> tuple[CommandResult, dict[str, dict]]:
    """Run stage ``name`` as a recorded run in ``cwd`` (default: the pipeline's folder); return the
    wrapper's result and the outs it stored (``{path: {digest, name}}``)."""
    stage = pipe.stages[name]
    where = pipe.root if cwd is None else Path(cwd)
    for out in stage.outs:
        outs_mod.remove(where / out)
    stored: dict[str, dict] = {}

    def started(run: Run) -> None:
        if on_start:
            on_start(run)
        for dep, info in doc["deps"].items():
            if is_ref(dep):
                run.use(dep)
            elif info["kind"] == "out":   # lineage: this run used the upstream stage's artifact
                run.use(artifacts.find(store, f"art:{info['digest']}"), path=where / dep)
            elif not store.objects.has(info["digest"]):   # keep the bytes, so verify can rebuild this input
                artifacts.store_path(store, where / dep)

    def ended(run: Run, rc: int) -> None:
        if rc != 0:
            return
        for out in stage.outs:
            path = os.path.join(where, out)
            if not os.path.exists(path):
                raise InvalidInput(f"Stage {name!r} exited 0 but did not write its out {out}.")
            art = run.log_artifact(path, outs_mod.artifact_name(out), kind=outs_mod.OUT_KIND,
                                   metadata={"path": out, "stage": name})
            stored[out] = {"digest": art.digest, "name": art.name}

    config = {"pipeline": {"stage": name, "cmd": doc["cmd"], "params": doc["params"],
                           "deps": {d: i["digest"] for d, i in doc["deps"].items()}, "outs": doc["outs"]}}
    env = {"RUNLOCK_STAGE": name}
    if stage.seed is not None:
        env["RUNLOCK_SEED"] = str(stage.seed)
    result = run_command(store, [SHELL, "-c", stage.cmd], project=project, name=name, config=config,
                         seed=stage.seed, extra_env=env, on_start=started, on_exit=ended, stdout=stdout, cwd=where)
    return result, stored


