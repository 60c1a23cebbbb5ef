"""The demo's ML parts: deterministic data, tokenizer, base model, and a LoRA fine-tune that gives
the same losses and the same adapter bytes when repeated, in this process and in a fresh one."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

import runlock
from runlock.artifacts import for_run
from runlock.demo.data import CATEGORIES, generate_tickets, read_tickets, write_tickets
from runlock.demo.model import BaseRecipe, LoraRecipe, build_base, format_ticket, train_tokenizer
from runlock.demo.runner import run_demo
from runlock.demo.train import Trained, fine_tune, pretrain_base
from runlock.errors import InvalidInput
from runlock.tracking import lock as locks
from runlock.tracking import records

TINY_BASE = BaseRecipe(vocab_size=400, n_embd=32, n_head=2, seq_len=48, max_steps=12,
                       batch_size=8, warmup_steps=2)
TINY_LORA = LoraRecipe(max_steps=8, batch_size=8, warmup_steps=2)
# Golden: a change to the generator, the templates or the JSONL encoding shows up here.
GOLDEN_200 = "sha256:b88a0aa9ef8f618d22532877edc83909042b115629fa79c04624a6c86cef1add"


def _texts(n: int = 240, *, label: bool = True) -> tuple[list[str], list[str]]:
    tickets = generate_tickets(n, seed=3)
    texts = [format_ticket(t, label=label) for t in tickets]
    return texts[: n * 3 // 4], texts[n * 3 // 4:]


# --- data -------------------------------------------------------------------------------------

def test_tickets_are_a_pure_function_of_n_and_seed(tmp_path: Path) -> None:
    a = write_tickets(tmp_path / "a.jsonl", generate_tickets(200, seed=0))
    b = write_tickets(tmp_path / "sub" / "b.jsonl", generate_tickets(200, seed=0))
    c = write_tickets(tmp_path / "c.jsonl", generate_tickets(200, seed=1))
    assert a.digest == b.digest == GOLDEN_200 != c.digest
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "sub" / "b.jsonl").read_bytes()


def test_tickets_do_not_touch_the_global_random_state() -> None:
    random.seed(7)
    expected = random.random()
    random.seed(7)
    generate_tickets(100, seed=0)
    assert random.random() == expected


def test_tickets_look_like_a_support_queue(tmp_path: Path) -> None:
    tickets = generate_tickets(500, seed=0)
    assert [t.id for t in tickets[:3]] == ["t-00001", "t-00002", "t-00003"]
    assert len({t.id for t in tickets}) == 500
    assert [t.created_at for t in tickets] == sorted(t.created_at for t in tickets)
    assert {t.category for t in tickets} == set(CATEGORIES)
    assert all(t.created_at.endswith("Z") and t.customer_id.startswith("c-") for t in tickets)
    written = write_tickets(tmp_path / "t.jsonl", tickets)
    assert written.count == 500
    assert written.exact_duplicates >= 10 and written.near_duplicates >= 10
    assert read_tickets(written.path) == tickets
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert list(first) == sorted(first) == ["category", "created_at", "customer_id", "id",
                                            "reply", "text"]


def test_planted_exact_duplicates_have_their_own_ids() -> None:
    tickets = generate_tickets(300, seed=5, duplicate_rate=0.05)
    by_text: dict[str, list[str]] = {}
    for t in tickets:
        by_text.setdefault(t.text, []).append(t.id)
    repeated = [ids for ids in by_text.values() if len(ids) > 1]
    assert len(repeated) >= 15
    assert all(len(set(ids)) == len(ids) for ids in repeated)


@pytest.mark.parametrize("kwargs", [{"n": 3}, {"n": 100, "duplicate_rate": 0.6}])
def test_bad_dataset_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        generate_tickets(**kwargs)


# --- tokenizer and base model -------------------------------------------------------------------

def test_tokenizer_is_a_pure_function_of_its_texts() -> None:
    train, _ = _texts()
    a, b = train_tokenizer(train, 400), train_tokenizer(list(train), 400)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    ids = a("[billing] Customer: refund order #123")["input_ids"]
    assert a.decode(ids) == "[billing] Customer: refund order #123"
    with pytest.raises(InvalidInput):
        train_tokenizer([], 400)


def test_base_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    tok = train_tokenizer(_texts()[0], 400)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = build_base(TINY_BASE, tok)
    assert torch.equal(torch.rand(3), expected)
    b = build_base(TINY_BASE, tok)
    c = build_base(BaseRecipe(**{**TINY_BASE.to_config(), "seed": 43}), tok)
    wa, wb, wc = (m.transformer.wte.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


# --- training -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    train, evaluation = _texts(label=False)
    return pretrain_base(TINY_BASE, train, evaluation, tmp_path_factory.mktemp("base"))


def _fine_tune(base: Trained, out: Path) -> Trained:
    train, evaluation = _texts()
    return fine_tune(TINY_LORA, base.model_dir, train, evaluation, out, base_name="tiny-base")


def test_pretraining_learns_and_saves_a_loadable_base(base: Trained) -> None:
    assert [s for s, _ in base.losses] == list(range(1, TINY_BASE.max_steps + 1))
    assert base.losses[-1][1] < base.losses[0][1]
    names = sorted(p.name for p in base.model_dir.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)


def test_same_recipe_twice_gives_the_same_losses_and_adapter_bytes(base: Trained,
                                                                   tmp_path: Path) -> None:
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    random.seed(11)
    a = _fine_tune(base, tmp_path / "a")
    b = _fine_tune(base, tmp_path / "b")
    assert len(a.losses) == TINY_LORA.max_steps
    assert a.losses == b.losses
    assert a.eval_loss == b.eval_loss
    assert a.weights_digest == b.weights_digest
    files = sorted(p.name for p in a.model_dir.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    for name in files:
        assert (a.model_dir / name).read_bytes() == (b.model_dir / name).read_bytes(), name
    # the Trainer's global switches and seeds do not leak out of fine_tune
    assert torch.are_deterministic_algorithms_enabled() == was_deterministic
    random.seed(11)
    assert random.random() == random.Random(11).random()


def test_adapter_folder_names_no_local_path(base: Trained, tmp_path: Path) -> None:
    a = _fine_tune(base, tmp_path / "a")
    config = json.loads((a.model_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-base"
    assert config["r"] == 8 and config["target_modules"] == ["c_attn"]
    for p in a.model_dir.iterdir():
        assert str(tmp_path) not in p.read_bytes().decode("utf-8", "replace"), p.name


def test_a_different_seed_gives_a_different_adapter(base: Trained, tmp_path: Path) -> None:
    train, evaluation = _texts()
    a = _fine_tune(base, tmp_path / "a")
    other = LoraRecipe(**{**TINY_LORA.to_config(), "lora_target": ("c_attn",), "seed": 7})
    b = fine_tune(other, base.model_dir, train, evaluation, tmp_path / "b", base_name="tiny-base")
    assert a.weights_digest != b.weights_digest


_FRESH = """
import sys
from pathlib import Path
from tests.test_demo_model import _fine_tune
from runlock.demo.train import Trained
base = Trained((), 0.0, 1.0, Path(sys.argv[1]), "", 0.0)
print(_fine_tune(base, Path(sys.argv[2])).weights_digest)
"""


@pytest.mark.slow
def test_a_fresh_process_gives_the_same_adapter_bytes(base: Trained, tmp_path: Path) -> None:
    here = _fine_tune(base, tmp_path / "here")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    out = subprocess.run([sys.executable, "-c", _FRESH, str(base.model_dir), str(tmp_path / "there")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == here.weights_digest


# --- the whole demo -----------------------------------------------------------------------------

@pytest.mark.slow
def test_run_demo_reproduces_the_adapter_and_records_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)              # outside any git work tree: a stable code section
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    result = run_demo(tmp_path / "demo", console)
    a, b = result.runs
    assert result.reproduced
    assert (a.name, b.name) == ("lora-r8", "lora-r8-repeat")
    assert a.recipe_id == b.recipe_id and a.id != b.id
    assert len(a.losses) == LoraRecipe().max_steps and a.losses == b.losses
    assert a.losses[-1][1] < a.losses[0][1]
    assert a.weights_sha256 == b.weights_sha256
    store = runlock.open_store(tmp_path / "demo")
    assert [r.status for r in records.list_runs(store, project="support-bot")] == ["finished"] * 3
    for run in (a, b):
        arts = {x.name: x for x in for_run(store, run.id)}
        assert arts["adapter"].kind == "model" and arts["adapter"].digest == run.adapter_digest
        lock = locks.load(store, run.recipe_id)
        assert {i["ref"] for i in lock["inputs"]} >= {result.split_ref}
        assert lock["config"]["base_model"] == result.base_digest
        argv = lock["entrypoint"]["argv"]    # a script `runlock rerun` can replay
        assert Path(argv[0]).name == "finetune.py" and argv[1:] == [
            "--split", result.split_ref, "--base", f"art:{result.base_digest}"]
        assert records.get(store, run.id).summary["eval/perplexity"] == pytest.approx(run.perplexity)
    text = console.file.getvalue()
    assert "Reproduced" in text and f"runlock runs diff {a.id} {b.id}" in text
    for picture in ("loss.png", "lineage.png"):  # the curves and the graph, drawn for a person
        assert (tmp_path / "demo" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"runlock verify {a.id} --in-place" in text
    flat = " ".join(text.split())   # rich wraps long lines at the console's width
    assert "runlock run -p my-project -- python train.py" in flat      # what to try with their own script
    assert "max |difference| between the runs: 0" in flat
    assert [name for name, _ in result.phases] == ["data", "base model", "lora-r8", "lora-r8-repeat", "pictures"]
    assert f"Demo finished in {result.seconds:.1f} s (data " in flat
