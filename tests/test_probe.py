"""runlock.probe: it must catch the classic sources of nondeterminism, and stay quiet otherwise."""

from __future__ import annotations

import importlib
import os
import random
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from runlock.errors import RunlockError
from runlock.probe import probe, probe_command, record_step

import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _training(make_noise=lambda: np.random.default_rng(0), dropout=0.2):
    """A factory for probe(): builds a tiny model, data and an optimiser from scratch."""

    def setup():
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(dropout), torch.nn.Linear(8, 1))
        return {"model": model, "opt": torch.optim.SGD(model.parameters(), lr=0.1), "noise": make_noise()}

    def step(ctx, i):
        x = torch.randn(16, 4) + float(ctx["noise"].random())
        loss = (ctx["model"](x) ** 2).mean()
        ctx["opt"].zero_grad()
        loss.backward()
        ctx["opt"].step()
        return {"loss": loss}

    return {"step_fn": step, "setup_fn": setup, "state_fn": lambda ctx: ctx["model"], "seed": 3}


def test_clean_training_is_reproducible_and_streams_are_named():
    report = probe(**_training(), steps=3, min_gap_s=0)
    assert report.reproducible and report.first_divergence is None
    assert report.rng_consumed == (("torch",),) * 3  # randn and dropout; no Python or NumPy draws
    assert report.nondeterministic_kernels == ()
    assert report.to_dict()["hashseed"] == {"tested": False}


def test_catches_an_unseeded_numpy_generator():
    report = probe(**_training(make_noise=np.random.default_rng), steps=3, min_gap_s=0)
    assert not report.reproducible
    first = report.first_divergence
    assert (first.step, first.kind, first.name) == (0, "metric", "loss")
    assert {d.kind for d in report.divergences} >= {"metric", "parameter"}


def test_catches_a_time_based_seed():
    def from_the_clock():
        random.seed(int(time.time()))
        return random  # the steps draw from the global Python RNG

    report = probe(**_training(make_noise=from_the_clock), steps=2)
    first = report.first_divergence
    assert (first.step, first.kind, first.name) == (0, "rng", "python")
    assert "before step 0" in first.detail


def test_reports_nondeterministic_kernels_that_ran():
    from torch._prims_common import alert_not_deterministic  # the alert CUDA-only kernels raise

    def step(i):
        if i == 1:
            alert_not_deterministic("scatter_add_cuda_kernel")
        return float(i)

    before = torch.are_deterministic_algorithms_enabled()
    report = probe(step, steps=2, min_gap_s=0)
    assert report.nondeterministic_kernels == ("scatter_add_cuda_kernel",)
    assert not report.reproducible and report.first_divergence is None
    assert torch.are_deterministic_algorithms_enabled() == before


class HeldRng(torch.utils.data.Dataset):
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return float(self.rng.random())


def test_catches_a_dataset_rng_duplicated_across_workers():
    from runlock.torch import loader_kwargs

    bad = torch.utils.data.DataLoader(HeldRng(), batch_size=2, num_workers=2)
    report = probe(lambda i: None, steps=1, loaders=[bad], min_gap_s=0)
    (finding,) = report.duplicated_worker_rngs
    assert finding.path == "rng" and sorted(set(finding.workers)) == [0, 1] and not report.reproducible
    good = torch.utils.data.DataLoader(HeldRng(), batch_size=2, num_workers=2, **loader_kwargs(1))
    assert probe(lambda i: None, steps=1, loaders=[good], min_gap_s=0).duplicated_worker_rngs == ()


def _script(tmp_path, body):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


@pytest.fixture(autouse=True)
def _src_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))


def test_command_catches_set_order_depending_on_the_hash_seed(tmp_path):
    argv = _script(tmp_path, """
        import random
        from runlock.probe import activate, record_step
        random.seed(0); activate()
        labels = list({"cat", "dog", "emu", "fox", "gnu", "hen", "owl"})  # order follows the hash seed
        weights = [random.random() for _ in labels]
        for step in range(10):
            record_step(step, metrics={"first": labels[step % len(labels)], "w": sum(weights) * step})
    """)
    report = probe_command(argv, steps=3)
    assert report.first_divergence is None and report.steps == 3
    assert report.hashseed["dependent"] is True and not report.reproducible
    assert report.hashseed["first_divergence"]["kind"] == "metric"
    assert report.rng_consumed == (("python",), (), ())  # the weights are drawn during step 0


def test_command_clean_and_unseeded(tmp_path):
    clean = _script(tmp_path, """
        import numpy as np
        from runlock.probe import activate, record_step
        np.random.seed(1); activate()
        for step in range(5):
            record_step(step, metrics={"x": float(np.random.rand())}, params={"w": np.arange(3) * step})
    """)
    report = probe_command(clean, steps=2, min_gap_s=0)
    assert report.reproducible and report.hashseed["dependent"] is False
    assert "['python'] are not seeded reproducibly" in report.notes[0]  # unseeded but unused
    assert report.rng_consumed == (("numpy",), ("numpy",))
    unseeded = _script(tmp_path, """
        import numpy as np
        from runlock.probe import record_step
        rng = np.random.default_rng()
        for step in range(5):
            record_step(step, params={"w": rng.random(3)})
    """)
    first = probe_command(unseeded, steps=2, min_gap_s=0).first_divergence
    assert (first.step, first.kind, first.name) == (0, "parameter", "w")


def test_command_failures_are_errors(tmp_path):
    with pytest.raises(RunlockError, match="status 3"):
        probe_command(_script(tmp_path, "import sys; sys.exit(3)"), steps=1)
    with pytest.raises(RunlockError, match="recorded no steps"):
        probe_command(_script(tmp_path, "print('hi')"), steps=1)


def test_hooks_do_nothing_outside_a_probe(monkeypatch):
    monkeypatch.delenv("RUNLOCK_PROBE", raising=False)
    record_step(0, metrics={"loss": 1.0})
    # runlock.probe is the public function; the module is reached through importlib
    assert not importlib.import_module("runlock.probe").active()


@pytest.mark.slow
def test_command_catches_a_worker_duplicated_rng_through_watch_loader(tmp_path):
    argv = _script(tmp_path, """
        import numpy as np, torch
        from runlock.probe import record_step, watch_loader

        class HeldRng(torch.utils.data.Dataset):
            def __init__(self):
                self.rng = np.random.default_rng(0)
            def __len__(self):
                return 4
            def __getitem__(self, i):
                return float(self.rng.random())

        loader = watch_loader(torch.utils.data.DataLoader(HeldRng(), batch_size=1, num_workers=2))
        for step, batch in enumerate(loader):
            record_step(step, metrics={"x": batch})
    """)
    report = probe_command(argv, steps=2, min_gap_s=0)
    assert report.first_divergence is None
    (finding,) = report.duplicated_worker_rngs
    assert finding.path == "rng" and sorted(finding.workers) == [0, 1]
