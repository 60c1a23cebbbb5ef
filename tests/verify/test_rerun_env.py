"""A script that changes a result-affecting variable after its run started (as the HF Trainer
does with CUBLAS_WORKSPACE_CONFIG) and records its knobs again is rerun from the environment it
started with, so the rerun has the original's recipe id."""

from __future__ import annotations

import textwrap

from runlock.tracking import records
from runlock.verify import compare, rerun
from tests.verify.conftest import Toy

LATE = textwrap.dedent('''
    import os
    import runlock
    with runlock.start_run(project="toy", name="late-env", config={"x": 1}, seed=0) as run:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"   # what a trainer does after start-up
        run.record_knobs(batch_size=8)
        run.log({"loss": 1.0}, step=0)
''')


def test_rerun_replays_the_start_environment_not_the_later_knobs(toy: Toy) -> None:
    (toy.repo / "train.py").write_text(LATE)
    toy.commit("a script that sets a variable after start_run")
    original = toy.train()
    lock_env = records.get(toy.store, original)
    again = rerun(toy.store, original)
    assert again.status == "finished"
    assert records.get(toy.store, again.run_id).recipe_id == lock_env.recipe_id
    assert compare(toy.store, original, again.run_id).tier == "bitwise"
