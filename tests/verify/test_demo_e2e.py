"""End to end on the demo (issue 9): a LoRA fine-tune started through its script entry point
(``python -m runlock.demo.finetune``, as ``runlock demo`` starts it) is rerun from its lock in a
fresh process and compares ``bitwise``; one edited byte of training data makes the comparison
``different`` and the diagnosis names the split input; another learning rate names the config key.

The demo is scaled down (200 tickets, a tiny base model, one epoch of fine-tuning, so every
training ticket is seen); every fine-tune and the rerun are real subprocesses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import runlock
from runlock.demo.model import BaseRecipe, LoraRecipe
from runlock.demo.runner import SPLIT_SEED, DemoRun, make_data, pretrain, run_finetune
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.verify import compare, rerun

pytestmark = pytest.mark.slow

TINY_BASE = BaseRecipe(vocab_size=400, n_embd=32, n_head=2, seq_len=48, max_steps=12,
                       batch_size=8, warmup_steps=2)


@dataclass
class Demo:
    workdir: Path
    store: Store
    data: Path
    split: runlock.Split
    base_ref: str
    steps: tuple[str, str]
    original: DemoRun

    def fine_tune(self, name: str, *args: str, split: str | None = None) -> DemoRun:
        return run_finetune(self.store, self.workdir, name, split or self.split.ref, self.base_ref,
                            [*self.steps, *args])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")      # outside any git work tree
    store = runlock.init(workdir)
    data, _, split = make_data(store, workdir, n=200)
    _, base, _ = pretrain(store, split, data.path, workdir, TINY_BASE)
    steps = ("--steps", str(math.ceil(len(split.ids("train")) / LoraRecipe().batch_size)))  # 1 epoch
    original = run_finetune(store, workdir, "lora", split.ref, base.ref, steps)
    yield Demo(workdir, store, data.path, split, base.ref, steps, original)
    store.close()


def _lock(store: Store, run_id: str) -> dict:
    return locks.load(store, records.get(store, run_id).recipe_id)


def test_the_lock_records_the_script_as_its_entry_point(demo: Demo) -> None:
    argv = _lock(demo.store, demo.original.id)["entrypoint"]["argv"]
    assert Path(argv[0]).name == "finetune.py" and Path(argv[0]).is_file()
    assert argv[1:] == ["--split", demo.split.ref, "--base", demo.base_ref, *demo.steps]
    assert len(demo.original.losses) == int(demo.steps[1])


def test_a_rerun_of_the_demo_fine_tune_is_bitwise_equal(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo.workdir)   # --in-place: the demo's folder is not a git checkout
    done = rerun(demo.store, demo.original.id, isolated=False)
    assert done.status == "finished" and done.returncode == 0 and done.run_id != demo.original.id
    found = compare(demo.store, demo.original.id, done.run_id)
    assert found.tier == "bitwise", [o for o in found.outputs if o.tier != "bitwise"]
    assert found.diagnosis == [] and found.first_divergence is None
    assert records.get(demo.store, done.run_id).recipe_id == demo.original.recipe_id
    names = {o.name for o in found.outputs}
    assert {"metric:loss", "artifact:adapter", "summary:adapter_sha256"} <= names


def test_one_edited_byte_of_training_data_is_different_and_names_the_split(demo: Demo) -> None:
    train_id = demo.split.ids("train")[0]
    raw = demo.data.read_bytes()
    line = raw.index(f'"id": "{train_id}"'.encode())
    at = raw.index(b'"text": "', line) + len(b'"text": "')  # the message's first letter
    edited = bytearray(raw)
    edited[at] = ord("Q") if raw[at] != ord("Q") else ord("Z")
    demo.data.write_bytes(bytes(edited))
    snap = runlock.snapshot(demo.data, name="tickets", id_column="id", store=demo.store)
    split = runlock.split(snap, name="tickets-split", ratios=(0.8, 0.1, 0.1), seed=SPLIT_SEED,
                          store=demo.store)
    assert (snap.ref, split.ref) == ("ds:tickets@v2", "split:tickets-split@v2")
    assert split.ids("train") == demo.split.ids("train")
    changed = demo.fine_tune("lora-edited", split=split.ref)
    found = compare(demo.store, demo.original.id, changed.id)
    assert found.tier == "different"
    data = [d for d in found.diagnosis if d["kind"] in ("data", "split")]
    assert data == [{"field": "inputs.split:tickets-split", "a": demo.split.id, "b": split.id,
                     "kind": "split"}]
    assert found.diagnosis[0] == data[0]     # nothing in the config changed, the data leads
    assert found.first_divergence["metric"] in {"loss", "grad_norm"}


def test_another_learning_rate_is_different_and_names_the_config_key(demo: Demo) -> None:
    changed = demo.fine_tune("lora-lr", "--lr", "0.001")
    found = compare(demo.store, demo.original.id, changed.id)
    assert found.tier == "different"
    first = found.diagnosis[0]
    assert (first["field"], first["kind"], first["a"], first["b"]) == (
        "config.learning_rate", "config", 0.005, 0.001)
    assert not [d for d in found.diagnosis if d["kind"] in ("data", "split", "model")]
    assert found.first_divergence["step"] <= 2
