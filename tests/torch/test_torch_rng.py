"""runlock.torch.rng: seeded blocks and RNG checkpoints, including a fresh-process resume."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torch

from runlock.errors import InvalidInput  # noqa: E402
from runlock.seeding import seed_everything  # noqa: E402
from runlock.torch import restore_rng_state, rng_state, seeded  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


class _Sampler:
    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch


def _draws(gen):
    return (random.random(), float(np.random.randn()), torch.rand(2).tolist(),
            torch.rand(1, generator=gen).tolist())


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_roundtrips_through_weights_only_load():
    seed_everything(4, deterministic=False)
    np.random.randn()  # leaves a cached Gaussian in the legacy state
    gen, sampler = torch.Generator().manual_seed(9), _Sampler()
    sampler.set_epoch(3)
    state = _roundtrip(rng_state(sampler=sampler, generators={"data": gen}))
    expected = _draws(gen)
    sampler.set_epoch(0)
    other = torch.Generator()
    restore_rng_state(state, sampler=sampler, generators={"data": other})
    assert _draws(other) == expected
    assert sampler.epoch == 3


@pytest.mark.parametrize("case", ["format", "sampler-missing", "sampler-extra", "generators", "cuda"])
def test_restore_fails_loudly_and_changes_nothing(case, monkeypatch):
    state = rng_state(sampler=_Sampler() if case == "sampler-missing" else None,
                      generators={"data": torch.Generator()})
    kwargs = {"generators": {"data": torch.Generator()}}
    if case == "format":
        state = {**state, "format": "other/1"}
    elif case == "sampler-extra":
        kwargs["sampler"] = _Sampler()
    elif case == "generators":
        kwargs["generators"] = {"loader": torch.Generator()}
    elif case == "cuda":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    before = torch.get_rng_state()
    torch.rand(1)
    after = torch.get_rng_state()
    with pytest.raises(InvalidInput):
        restore_rng_state(state, **kwargs)
    assert torch.equal(torch.get_rng_state(), after) and not torch.equal(before, after)


def test_seeded_block_is_stable_and_leaves_outer_stream_alone():
    seed_everything(1, deterministic=False)
    with seeded("init") as s1:
        a = torch.rand(3)
    outer = torch.rand(3)
    seed_everything(1, deterministic=False)
    torch.rand(5)  # consume the outer stream differently: the block does not care
    with seeded("init") as s2:
        b = torch.rand(3)
    assert s1 == s2 and torch.equal(a, b)
    seed_everything(1, deterministic=False)
    assert torch.equal(torch.rand(3), outer)
    with seeded("init", root=2) as s3, seeded("init", epoch=1) as s4:
        assert len({s1, s3, s4}) == 3


TRAIN = r'''
import random, sys
import numpy as np, torch
from runlock.seeding import seed_everything
from runlock.torch import loader_kwargs, rng_state, restore_rng_state

mode, path, N, K = sys.argv[1], sys.argv[2], 8, 4
seed_everything(5)
torch.set_num_threads(1)
xs = torch.randn(24, 6)
ys = xs @ torch.randn(6, 1)
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
kw = loader_kwargs(5)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys), batch_size=6,
                                     shuffle=True, **kw)
step = 0
if mode.startswith("resume"):
    ck = torch.load(path, weights_only=True)
    model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
    if mode == "resume":
        restore_rng_state(ck["rng"], generators={"data": kw["generator"]})
    step = ck["step"]
while step < N:
    for x, y in loader:
        noise = float(np.random.randn()) * 0.01 + random.random() * 0.01
        loss = ((model(x + noise) - y) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        step += 1
    if mode == "first" and step == K:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "rng": rng_state(generators={"data": kw["generator"]})}, path)
        sys.exit(0)
torch.save(model.state_dict(), path + "." + mode)
'''


@pytest.mark.slow
def test_resume_in_a_fresh_process_is_bitwise_equal(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}

    def run(mode, path):
        subprocess.run([sys.executable, str(script), mode, str(path)], env=env, check=True, timeout=120)

    run("straight", tmp_path / "a")
    run("first", tmp_path / "b")
    run("resume", tmp_path / "b")
    run("resume-bare", tmp_path / "b")  # the same resume without restore_rng_state
    straight = torch.load(tmp_path / "a.straight", weights_only=True)
    resumed = torch.load(tmp_path / "b.resume", weights_only=True)
    bare = torch.load(tmp_path / "b.resume-bare", weights_only=True)
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert not torch.equal(straight["0.weight"], bare["0.weight"])
