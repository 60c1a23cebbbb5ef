"""End to end on the script a new user writes from the README (issue 13): a Hugging Face Trainer
fine-tuning a PEFT LoRA adapter on a tiny GPT-2 built here (nothing downloaded), with

- the data in a gitignored ``data/`` folder, snapshotted and split inside the script;
- the base model loaded from a local, gitignored folder (``models/base``), snapshotted too;
- the README quickstart order: ``seed_everything(42)`` before ``start_run``;
- the adapter saved with ``save_pretrained`` (PEFT writes the base model's path into it);
- the script started with ``runlock run``.

It must give one run that passes ``runlock check``; an isolated ``runlock verify`` of it is
``bitwise``; a planted unseeded ``np.random.default_rng()`` draw gives ``different`` with the
"nothing recorded differs" diagnosis, and ``runlock probe`` blames numpy; a run killed with
SIGKILL and resumed from its checkpoint compares ``bitwise`` with the uninterrupted run.

Every training is a real process (``runlock run -- python train.py``) on two threads at most."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

import runlock
from runlock.demo.model import BaseRecipe, build_base, save_base, train_tokenizer
from runlock.store import Store
from runlock.store.schema import edges
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import metric_series
from runlock.verify import compare
from tests.verify.conftest import git

pytestmark = pytest.mark.slow

TRAIN = textwrap.dedent('''
    """Fine-tune a LoRA adapter on our support tickets (a new user's script, from the README)."""
    import os
    import sys

    import numpy as np
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling,
                              Trainer, TrainerCallback, TrainingArguments)

    import runlock
    from runlock.integrations.hf import RunlockCallback

    cfg = {"lr": 5e-3, "lora_r": 4, "steps": 8, "batch_size": 8, "seq_len": 32}

    runlock.seed_everything(42)
    snap = runlock.snapshot("data/tickets.jsonl", name="tickets", id_column="id")
    split = runlock.split(snap, name="tickets", ratios=(0.8, 0.1, 0.1), seed=42)
    base = runlock.snapshot("models/base", name="base-model")


    class Crash(TrainerCallback):
        """Test hook: the machine dies (SIGKILL, whole process group) after step CRASH_AT."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(os.environ.get("CRASH_AT", "0")):
                runlock.current_run().flush()
                os.killpg(os.getpgid(0), 9)


    with runlock.start_run(project="support-bot", name="lora-r8", config=cfg, seed=42) as run:
        run.use(split)
        run.use(base)
        tok = AutoTokenizer.from_pretrained("models/base")
        model = AutoModelForCausalLM.from_pretrained("models/base")
        model = get_peft_model(model, LoraConfig(r=cfg["lora_r"], lora_alpha=8, target_modules=["c_attn"],
                                                 fan_in_fan_out=True, task_type="CAUSAL_LM"))
        records = split.to_pandas("train").sort_values("id")
        texts = [f"[{r.category}] Customer: {r.text}\\nAgent: {r.reply}" for r in records.itertuples()]
        # PLANT
        enc = tok(texts, max_length=cfg["seq_len"], truncation=True, padding="max_length")
        train = [{"input_ids": i, "attention_mask": m} for i, m in zip(enc["input_ids"], enc["attention_mask"])]
        args = TrainingArguments(output_dir="out", max_steps=cfg["steps"], per_device_train_batch_size=cfg["batch_size"],
                                 learning_rate=cfg["lr"], logging_steps=1, save_steps=4, report_to=[],
                                 seed=42, use_cpu=True, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                          callbacks=[RunlockCallback(), Crash()])
        trainer.train(resume_from_checkpoint="--resume" in sys.argv)
        model.save_pretrained("out/adapter")
        run.log_artifact("out/adapter", name="adapter", kind="model")
        tests = split.to_pandas("test").sort_values("id")
        enc = tok([f"[{r.category}] Customer: {r.text}\\nAgent: {r.reply}" for r in tests.itertuples()],
                  max_length=cfg["seq_len"], truncation=True, padding="max_length")
        trainer.evaluate([{"input_ids": i, "attention_mask": m} for i, m in zip(enc["input_ids"], enc["attention_mask"])],
                         metric_key_prefix="test")
''')

PLANTED = "    texts = [texts[i] for i in np.random.default_rng().permutation(len(texts))]\n"
TINY = BaseRecipe(vocab_size=300, n_layer=1, n_embd=16, n_head=2, seq_len=32)


WORDS = ("account billing card charge delivery email invoice login order package password payment plan "
         "refund reset shipping subscription tracking update address bank cancel code confirm credit "
         "damaged discount error expired failed help invalid item late lost missing mobile month "
         "number online phone price receipt request return sent service status support transfer "
         "unable upgrade user wrong yesterday today again please thanks urgent week").split()


def write_tickets(path: Path, n: int) -> list[dict]:
    """``n`` support tickets of random words (no two alike, so the split has no leakage)."""
    rng = random.Random(7)
    tickets = [{"id": f"t-{i:04d}", "category": rng.choice(["account", "billing", "shipping"]),
                "text": " ".join(rng.choices(WORDS, k=14)), "reply": " ".join(rng.choices(WORDS, k=10))}
               for i in range(n)]
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in tickets))
    return tickets


@dataclass
class Project:
    root: Path
    store: Store

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
        return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}

    def runlock(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(Path(sys.executable).parent / "runlock"), *args], cwd=self.root,
                              env=self.env(**extra), capture_output=True, text=True, timeout=600,
                              start_new_session=True)
        if check:
            assert done.returncode == 0, f"runlock {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
        return done

    def train(self, *args: str, **extra: str) -> list[str]:
        """``runlock run -p support-bot -- python train.py ARGS``; the ids of the runs it made."""
        before = {r.id for r in records.list_runs(self.store)}
        done = self.runlock("run", "-p", "support-bot", "--", sys.executable, "train.py", *args,
                            check=False, **extra)
        if "CRASH_AT" not in extra:
            assert done.returncode == 0, done.stderr[-4000:]
        return [r.id for r in records.list_runs(self.store) if r.id not in before]

    def commit(self, message: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("support-bot")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "new@example.com")
    git(root, "config", "user.name", "new user")
    (root / ".gitignore").write_text("data/\nmodels/\nout/\n.runlock/\n__pycache__/\n")
    (root / "train.py").write_text(TRAIN)
    tickets = write_tickets(root / "data" / "tickets.jsonl", 60)
    tokenizer = train_tokenizer([f"{t['text']} {t['reply']}" for t in tickets], TINY.vocab_size)
    save_base(build_base(TINY, tokenizer), tokenizer, root / "models" / "base")
    store = runlock.init(root)
    p = Project(root, store)
    p.commit("fine-tune script")
    yield p
    store.close()


@pytest.fixture(scope="module")
def original(project: Project) -> str:
    made = project.train()
    assert len(made) == 1, f"runlock run recorded {len(made)} runs: {made}"
    return made[0]


def _json(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout)


def test_the_quickstart_order_under_runlock_run_gives_one_run(project: Project, original: str) -> None:
    rec = records.get(project.store, original)
    assert rec.status == "finished" and rec.name == "lora-r8"
    lock = locks.load(project.store, rec.recipe_id)
    assert lock["seeding"] is not None and lock["seed"] == 42
    inputs = {i["ref"].split("@")[0]: i for i in lock["inputs"]}
    assert inputs["split:tickets"]["path"] == "data/tickets.jsonl"
    assert inputs["ds:base-model"]["path"] == "models/base"


def test_runlock_check_passes(project: Project, original: str) -> None:
    done = project.runlock("check", original, "--json", check=False)
    report = _json(done)
    failed = [r for r in report["results"] if not r["passed"] and r["rule"] != "verified"]
    assert failed == [], failed


def test_isolated_verify_is_bitwise(project: Project, original: str) -> None:
    found = _json(project.runlock("verify", original, "--json"))
    assert found["tier"] == "bitwise", json.dumps(found["report"], indent=1)[:4000]
    assert found["report"]["diagnosis"] == [], found["report"]["diagnosis"]
    new = records.get(project.store, found["rerun_id"])
    assert new.recipe_id == records.get(project.store, original).recipe_id
    assert _json(project.runlock("check", original, "--json"))["ok"]


def test_a_run_killed_and_resumed_compares_bitwise_with_the_uninterrupted_run(project: Project,
                                                                             original: str) -> None:
    shutil.rmtree(project.root / "out")      # a fresh output folder: the Trainer resumes from its latest checkpoint
    crashed = project.train(CRASH_AT="6")
    assert len(crashed) == 1
    resumed = project.train("--resume")
    assert len(resumed) == 1
    store = project.store
    assert records.get(store, crashed[0]).status == "crashed"
    with store.db.read() as conn:
        edge = conn.execute(sa.select(edges).where(edges.c.kind == "resumes")).first()
    assert (edge.src, edge.dst) == (f"run:{resumed[0]}", f"run:{crashed[0]}")
    rec = records.get(store, resumed[0])
    assert rec.context["resumes"]["step"] == 4
    assert rec.context["resumes"]["checkpoint"].startswith("artifact:sha256:")
    found = compare(store, resumed[0], original)
    assert found.tier == "bitwise", [o for o in found.outputs if o.tier != "bitwise"]
    steps = [s for s, _ in metric_series(store, resumed[0])["loss"]]
    assert steps == [5, 6, 7, 8]   # the resumed run continues the original's steps


def test_an_unseeded_numpy_draw_is_different_nothing_recorded_differs_and_probe_blames_numpy(
        project: Project) -> None:
    script = project.root / "train.py"
    script.write_text(script.read_text().replace("    # PLANT\n", PLANTED))
    project.commit("shuffle the tickets")
    made = project.train()
    assert len(made) == 1
    found = _json(project.runlock("verify", made[0], "--json", check=False))
    assert found["tier"] == "different"
    diagnosis = found["report"]["diagnosis"]
    assert len(diagnosis) == 1 and diagnosis[0]["kind"] == "unrecorded", diagnosis
    assert "nothing recorded differs" in diagnosis[0]["message"]
    assert f"step {found['report']['first_divergence']['step']}" in diagnosis[0]["message"]
    probe = project.runlock("probe", "--json", "--", sys.executable, "train.py", check=False)
    report = _json(probe)
    assert not report["reproducible"]
    assert report["first_divergence"]["kind"] == "rng" and "numpy" in report["first_divergence"]["name"].lower()
