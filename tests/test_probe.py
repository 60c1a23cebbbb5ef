"""runlock.probe (the module) and runlock.probe_steps (the in-process probe): they must catch the
classic sources of nondeterminism, blame the right one, and stay quiet otherwise."""

from __future__ import annotations

import os
import random
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from runlock.errors import RunlockError
from runlock.probe import probe_command, probe_steps, record_step

import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _training(make_noise=lambda: np.random.default_rng(0), dropout=0.2):
    """A factory for probe_steps(): builds a tiny model, data and an optimiser from scratch."""

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
    report = probe_steps(**_training(), steps=3, min_gap_s=0)
    assert report.reproducible and report.first_divergence is None
    assert report.rng_consumed == (("torch",),) * 3  # randn and dropout; no Python or NumPy draws
    assert report.nondeterministic_kernels == ()
    assert report.to_dict()["hashseed"] == {"tested": False}


def test_catches_an_unseeded_numpy_generator():
    report = probe_steps(**_training(make_noise=np.random.default_rng), steps=3, min_gap_s=0)
    assert not report.reproducible
    first = report.first_divergence
    assert (first.step, first.kind, first.name) == (0, "metric", "loss")
    assert {d.kind for d in report.divergences} >= {"metric", "parameter"}


def test_catches_a_time_based_seed():
    def from_the_clock():
        random.seed(int(time.time()))
        return random  # the steps draw from the global Python RNG

    report = probe_steps(**_training(make_noise=from_the_clock), steps=2)
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
    report = probe_steps(step, steps=2, min_gap_s=0)
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
    report = probe_steps(lambda i: None, steps=1, loaders=[bad], min_gap_s=0)
    (finding,) = report.duplicated_worker_rngs
    assert finding.path == "rng" and sorted(set(finding.workers)) == [0, 1] and not report.reproducible
    good = torch.utils.data.DataLoader(HeldRng(), batch_size=2, num_workers=2, **loader_kwargs(1))
    assert probe_steps(lambda i: None, steps=1, loaders=[good], min_gap_s=0).duplicated_worker_rngs == ()


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
        import numpy as np
        random.seed(0); activate()
        np.random.default_rng().random()  # unseeded and drawn from, but nothing depends on it
        labels = list({"cat", "dog", "emu", "fox", "gnu", "hen", "owl"})  # order follows the hash seed
        weights = [random.random() for _ in labels]
        for step in range(10):
            record_step(step, metrics={"first": labels[step % len(labels)], "w": sum(weights) * step})
    """)
    report = probe_command(argv, steps=3)
    assert report.first_divergence is None and report.steps == 3
    assert report.hashseed["dependent"] is True and not report.reproducible
    assert report.hashseed["first_divergence"]["kind"] == "metric"  # not the unseeded generator
    assert any("not blamed" in n and "default_rng() at train.py:6" in n for n in report.notes)
    # the weights (and the spare generator) are drawn during step 0
    assert report.rng_consumed == (("numpy.random.default_rng() at train.py:6", "python"), (), ())


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
    report = probe_command(unseeded, steps=2, min_gap_s=0)
    first = report.first_divergence  # the cause (by its call site), then what it changed
    assert (first.step, first.kind, first.name) == (0, "rng", "numpy.random.default_rng() at train.py:4")
    assert ("parameter", "w") in {(d.kind, d.name) for d in report.divergences}


def test_command_failures_are_errors(tmp_path):
    with pytest.raises(RunlockError, match="status 3"):
        probe_command(_script(tmp_path, "import sys; sys.exit(3)"), steps=1)
    with pytest.raises(RunlockError, match="recorded no steps"):
        probe_command(_script(tmp_path, "print('hi')"), steps=1)


def test_hooks_do_nothing_outside_a_probe(monkeypatch):
    monkeypatch.delenv("RUNLOCK_PROBE", raising=False)
    record_step(0, metrics={"loss": 1.0})
    import runlock

    # the module and the function have different names: runlock.probe.record_step works as documented
    assert runlock.probe.record_step is record_step and not runlock.probe.active()
    assert runlock.probe_steps is probe_steps


def test_a_planted_default_rng_is_blamed_on_numpy_not_on_the_torch_stream_it_disturbs():
    def setup():
        rows = 8 + int(np.random.default_rng().integers(0, 2**31)) % 977  # planted: the batch size drifts
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
        return {"model": model, "rows": rows}

    def step(ctx, i):
        return {"loss": ctx["model"](torch.randn(ctx["rows"], 4)).pow(2).mean()}

    report = probe_steps(step, setup_fn=setup, state_fn=lambda ctx: ctx["model"], seed=1, steps=2, min_gap_s=0)
    first = report.first_divergence
    assert first.kind == "rng" and first.name.startswith("numpy.random.default_rng() at ")
    assert first.name.endswith(f"test_probe.py:{setup.__code__.co_firstlineno + 1}")
    assert "without a seed" in first.detail
    torch_div = [d for d in report.divergences if d.name == "torch"]
    assert torch_div and "equal before this step" in torch_div[0].detail  # a consequence, listed later
    assert report.divergences.index(torch_div[0]) > report.divergences.index(first)


def test_an_unseeded_generator_that_changes_nothing_is_a_note():
    def setup():
        return {"spare": np.random.default_rng()}  # never drawn from

    report = probe_steps(lambda ctx, i: {"x": 1.0}, setup_fn=setup, steps=2, min_gap_s=0)
    assert report.reproducible and any("Created without a seed" in n for n in report.notes)


def test_dataloaders_iterated_while_probing_are_audited_without_being_named():
    def setup():
        return {"loader": torch.utils.data.DataLoader(HeldRng(), batch_size=2, num_workers=2)}

    def step(ctx, i):
        for _ in ctx["loader"]:
            pass

    report = probe_steps(step, setup_fn=setup, steps=1, min_gap_s=0)
    (finding,) = report.duplicated_worker_rngs
    assert finding.path == "rng" and sorted(set(finding.workers)) == [0, 1] and not report.reproducible


def test_command_blames_a_planted_default_rng_on_numpy(tmp_path):
    argv = _script(tmp_path, """
        import numpy as np, torch, runlock
        from runlock.probe import record_step
        runlock.seed_everything(0)
        rows = 8 + int(np.random.default_rng().integers(0, 2**31)) % 977
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
        for step in range(5):
            loss = model(torch.randn(rows, 4)).pow(2).mean()
            record_step(step, metrics={"loss": loss}, params=model)
    """)
    report = probe_command(argv, steps=2, min_gap_s=0)
    first = report.first_divergence
    assert (first.step, first.kind, first.name) == (0, "rng", "numpy.random.default_rng() at train.py:5")
    assert "torch" in {d.name for d in report.divergences}


@pytest.mark.slow
def test_command_catches_a_worker_duplicated_rng_without_any_change_to_the_script(tmp_path):
    argv = _script(tmp_path, """
        import numpy as np, torch
        from runlock.probe import record_step

        class HeldRng(torch.utils.data.Dataset):
            def __init__(self):
                self.rng = np.random.default_rng(0)
            def __len__(self):
                return 4
            def __getitem__(self, i):
                return float(self.rng.random())

        torch.manual_seed(0)  # the loader draws its workers' base seed from torch
        loader = torch.utils.data.DataLoader(HeldRng(), batch_size=1, num_workers=2)
        step = 0
        for epoch in range(2):
            for batch in loader:
                record_step(step, metrics={"x": batch})
                step += 1
    """)
    report = probe_command(argv, steps=6, min_gap_s=0)
    assert report.first_divergence is None and not report.reproducible
    (finding,) = report.duplicated_worker_rngs
    assert finding.path == "rng" and sorted(set(finding.workers)) == [0, 1]


def test_command_sees_generators_made_whatever_the_import_order(tmp_path):
    argv = _script(tmp_path, """
        import runlock.probe
        import numpy as np
        noise = np.random.default_rng().random()  # numpy imported after runlock, nothing seeded yet
        for step in range(5):
            runlock.probe.record_step(step, metrics={"x": noise * step})
    """)
    report = probe_command(argv, steps=2, min_gap_s=0)
    assert report.first_divergence.name == "numpy.random.default_rng() at train.py:4"
