"""runlock.seeding: derived seeds, seed_everything, the hash seed, knobs, held RNGs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runlock import seeding
from runlock.canonical import dumps
from runlock.errors import InvalidInput

SRC = str(Path(__file__).resolve().parents[1] / "src")

GOLDEN = [
    (0, "init", {}, 926224881038002990),
    (42, "data-order", {"epoch": 0, "rank": 0}, 16409914128541558827),
    (42, "data-order", {"epoch": 1, "rank": 0}, 1990737658166863960),
    (2**64 - 1, "worker", {"epoch": 3, "rank": 1, "worker": 2}, 13842568743171063215),
]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    full["PYTHONPATH"] = os.pathsep.join([SRC, full.get("PYTHONPATH", "")])
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=60, check=True)


@pytest.mark.parametrize(("root", "stream", "coords", "expected"), GOLDEN)
def test_derive_seed_golden_values(root, stream, coords, expected):
    assert seeding.derive_seed(root, stream, **coords) == expected


@pytest.mark.parametrize(("root", "stream", "coords", "expected"), GOLDEN)
def test_derive_seed_follows_the_documented_encoding(root, stream, coords, expected):
    payload = json.dumps({"coords": coords, "root": root, "stream": stream},
                         sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(b"runlock/derive_seed/v1\n" + payload).digest()
    assert int.from_bytes(digest[:8], "big") == expected


def test_derived_seeds_are_independent_of_each_other():
    seeds = {seeding.derive_seed(7, s, epoch=e) for s in ("init", "data-order", "dropout") for e in range(3)}
    assert len(seeds) == 9
    assert seeding.derive_seed(7, "init") != seeding.derive_seed(8, "init") != 8
    assert seeding.derive_seed(7, "init") != seeding.derive_seed(7, "init", epoch=0)
    assert seeding.derive_seed(7, "x", rank=1) != seeding.derive_seed(7, "x", rank="1")


@pytest.mark.parametrize("bad", [
    dict(root=-1, stream="a"), dict(root=2**64, stream="a"), dict(root=True, stream="a"),
    dict(root=1, stream=""), dict(root=1, stream="a", epoch=1.5), dict(root=1, stream="a", epoch=True),
])
def test_derive_seed_rejects_ambiguous_input(bad):
    with pytest.raises(InvalidInput):
        seeding.derive_seed(**bad)


def test_seed_everything_reproduces_every_global_stream():
    import torch

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seeding.seed_everything(11, deterministic=False)
    first = draws()
    seeding.seed_everything(11, deterministic=False)
    assert draws() == first
    seeding.seed_everything(2**40 + 11, deterministic=False)  # > 32 bits still seeds NumPy
    assert draws() != first


def test_seed_everything_report_is_json_and_honest(monkeypatch):
    import torch
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    try:
        report = seeding.seed_everything(3, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)
    data = json.loads(dumps(report.to_dict()))
    assert data["seed"] == 3 and {"python", "numpy", "torch"} <= set(data["seeded"])
    assert data["cublas_workspace_config"] == ":4096:8" == os.environ["CUBLAS_WORKSPACE_CONFIG"]
    # the hash seed is not the seed: unset and not asked for, it is reported, not warned about
    assert data["hashseed"] == {"requested": None, "actual": None, "fixed": False, "effective": False,
                                "detail": data["hashseed"]["detail"]}
    assert "runlock run --hashseed 0" in data["hashseed"]["detail"]
    assert "PYTHONHASHSEED" in {n["source"] for n in data["not_seeded"]}
    assert not any("PYTHONHASHSEED" in w for w in data["warnings"])
    assert data["deterministic"]["intra_op_threads"] == torch.get_num_threads()


def test_cublas_config_is_not_set_once_cuda_is_initialised(monkeypatch):
    import torch
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    try:
        report = seeding.seed_everything(3)
    finally:
        torch.use_deterministic_algorithms(False)
    assert report.cublas_workspace_config is None
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert any("already initialised" in w for w in report.warnings)


def test_hashseed_detection_in_fresh_processes():
    code = ("import json, os, runlock.seeding as s; {pre}"
            "print(json.dumps(s.seed_everything(7, deterministic=False).to_dict()['hashseed']))")
    unset = json.loads(_python(code.format(pre="")).stdout)
    assert unset["actual"] is None and not unset["fixed"] and not unset["effective"]
    good = json.loads(_python(code.format(pre=""), PYTHONHASHSEED="7").stdout)
    assert good["actual"] == 7 and good["effective"]
    other = json.loads(_python(code.format(pre=""), PYTHONHASHSEED="8").stdout)
    assert other["actual"] == 8 and other["fixed"] and other["effective"]   # 8 is in force; nobody asked for 7
    late = json.loads(_python(code.format(pre="os.environ['PYTHONHASHSEED'] = '7'; ")).stdout)
    assert not late["effective"] and "set after" in late["detail"]


def test_hashseed_environ():
    assert seeding.hashseed_environ(5, {"A": "1"}) == {"A": "1", "PYTHONHASHSEED": "5"}
    for bad in (-1, 2**32, "5", True):
        with pytest.raises(InvalidInput):
            seeding.hashseed_environ(bad)


def test_core_imports_and_seeds_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import json, runlock.seeding as s; "
            "r = s.seed_everything(1).to_dict(); k = s.knobs(num_workers=2); "
            "print(json.dumps([r['seeded'], r['not_seeded'][0], k['torch'], k['declared']]))")
    seeded, missing, torch_knobs, declared = json.loads(_python(code).stdout)
    assert seeded == ["python", "numpy"]
    assert missing == {"source": "torch", "reason": "torch is not installed"}
    assert torch_knobs is None and declared == {"num_workers": 2}


def test_knobs_record_flags_env_and_declared(monkeypatch):
    import torch
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        k = seeding.knobs(batch_size=8, grad_accum=4, world_size=1, num_workers=2,
                          autocast_dtype=torch.bfloat16)
    finally:
        torch.set_float32_matmul_precision(before)
    assert k["torch"]["float32_matmul_precision"] == "high"
    assert k["env"]["OMP_NUM_THREADS"] == "3"
    assert k["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert k["declared"]["autocast_dtype"] == "torch.bfloat16"
    assert json.loads(dumps(k)) == k
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert seeding.knobs()["torch"]["autocast"]["cpu"] == {"enabled": True, "dtype": "torch.bfloat16"}
    with pytest.raises(InvalidInput, match="declared.model"):
        seeding.knobs(model=object())


class _Holder:
    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.legacy = np.random.RandomState(0)
        self.py = random.Random(0)
        self.items = [type("T", (), {})()]
        self.items[0].gen = np.random.default_rng(0)


def test_find_and_reseed_held_rngs():
    a, b = _Holder(), _Holder()
    assert set(seeding.find_rngs(a)) == {"rng", "legacy", "py", "items[0].gen"}
    assert seeding.reseed_rngs(a, 5) == ("items[0].gen", "legacy", "py", "rng")
    assert a.rng.random() != b.rng.random() and a.py.random() != b.py.random()
    seeding.reseed_rngs(b, 5)
    c = _Holder()
    seeding.reseed_rngs(c, 5)
    assert [b.rng.random(), b.legacy.rand(), b.items[0].gen.random()] == \
           [c.rng.random(), c.legacy.rand(), c.items[0].gen.random()]


def test_hashseed_warns_only_when_the_hash_seed_asked_for_is_not_in_force():
    code = ("import json, runlock.seeding as s; r = s.seed_everything(42, deterministic=False{arg}).to_dict(); "
            "print(json.dumps({{'w': r['warnings'], 'ns': [n['source'] for n in r['not_seeded']]}}))")
    # runlock run --hashseed 0 + seed_everything(42): the hash seed asked for is in force
    wrapped = json.loads(_python(code.format(arg=""), PYTHONHASHSEED="0", RUNLOCK_HASHSEED="0").stdout)
    assert wrapped["w"] == [] and "PYTHONHASHSEED" not in wrapped["ns"]
    lost = json.loads(_python(code.format(arg=""), PYTHONHASHSEED="5", RUNLOCK_HASHSEED="0").stdout)
    assert any("PYTHONHASHSEED is 5, not the requested 0" in w for w in lost["w"])
    asked = json.loads(_python(code.format(arg=", hashseed=3")).stdout)
    assert any("unset" in w and "--hashseed 3" in w for w in asked["w"]) and "PYTHONHASHSEED" in asked["ns"]
    late = json.loads(_python("import os; os.environ['PYTHONHASHSEED'] = '1'; " + code.format(arg="")).stdout)
    assert any("set after" in w for w in late["w"])
    for bad in (-1, 2**32, "0", True):
        with pytest.raises(InvalidInput, match="hash seed"):
            seeding.seed_everything(1, deterministic=False, hashseed=bad)
