"""System metrics (issue 18): ``start_run(system_metrics=True)`` samples CPU, memory and (with torch
and CUDA) GPU use in the background under ``system/*`` keys, stops at finish, and stays out of
``compare``."""

from __future__ import annotations

import sys
import time

import pytest
import sqlalchemy as sa

import runlock
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import series, system
from runlock.verify.compare import compare

CPU_KEYS = {"system/cpu_percent", "system/memory_percent", "system/process_cpu_percent", "system/process_rss_mb"}


def keys_of(store: Store, run_id: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in series.points(store, run_id):
        out.setdefault(p.key, []).append(p)
    return out


def test_samples_cpu_and_memory_every_interval_at_the_training_step_and_stop_at_finish(store: Store) -> None:
    with runlock.start_run(project="p", store=store, system_metrics=True, system_interval=0.05) as run:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            time.sleep(0.12)
        assert run._sampler is not None and run._sampler.samples >= 3
    got = keys_of(store, run.id)
    assert CPU_KEYS <= set(got) and not any(k.startswith("system/gpu") for k in got)  # no CUDA here
    n = len(got["system/process_rss_mb"])
    assert n >= 3 and all(len(got[k]) == n for k in CPU_KEYS)
    assert all(p.value > 1.0 for p in got["system/process_rss_mb"])            # MB, this interpreter
    assert all(0.0 <= p.value <= 100.0 for k in ("system/cpu_percent", "system/memory_percent") for p in got[k])
    assert {p.step for p in got["system/cpu_percent"]} <= set(range(5))          # the training step
    assert not run._sampler._thread.is_alive()
    with store.db.read() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(metrics)).scalar()
    time.sleep(0.3)
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(metrics)).scalar() == before


def test_off_by_default_and_a_bad_interval_is_refused(store: Store) -> None:
    with runlock.start_run(project="p", store=store) as run:
        run.log({"loss": 1.0}, step=0)
        assert run._sampler is None
    assert set(keys_of(store, run.id)) == {"loss"}
    for bad in (0, -1, "10", float("nan"), float("inf"), True):
        with pytest.raises(InvalidInput, match="system_interval"):
            runlock.start_run(project="p", store=store, system_metrics=True, system_interval=bad)


def test_gpu_is_read_only_when_the_program_initialised_cuda_itself() -> None:
    assert system.gpu_sample(None) == {}
    torch = sys.modules.get("torch")
    if torch is not None and not torch.cuda.is_available():
        assert system.gpu_sample(torch) == {}


def test_system_metrics_do_not_make_two_identical_runs_differ(store: Store) -> None:
    made = []
    for _ in range(2):
        with runlock.start_run(project="p", store=store, system_metrics=True, system_interval=0.02) as run:
            for step in range(3):
                run.log({"loss": 0.5 + step}, step=step)
                time.sleep(0.06)
        made.append(run.id)
    assert any(k.startswith("system/") for k in keys_of(store, made[0]))
    assert compare(store, made[0], made[1]).tier == "bitwise"
