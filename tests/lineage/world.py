"""A small, real world for lineage tests, built only through the public API.

    ds:tickets@v1 --transform--> ds:tickets-clean@v1 --split--> split:tickets@v1
         run "lora" used split:tickets@v1 -> artifact adapter -> model:support-bot@v1
    ds:faq@v1 <- run "faq" used it -> artifact adapter -> model:faq-bot@v1   (unrelated data)
    run "eval" used model:support-bot@v1 (an evaluation)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runlock import registry
from runlock.data.snapshot import Snapshot, create_snapshot
from runlock.data.split import Split, create_split
from runlock.data.transform import derive
from runlock.store import Store
from runlock.api import start_run
from runlock.tracking.run import Run


@dataclass
class World:
    raw: Snapshot
    clean: Snapshot
    split: Split
    faq: Snapshot
    lora: Run
    faq_run: Run
    eval_run: Run
    model: registry.ModelVersion
    faq_model: registry.ModelVersion


def drop_short(table, min_len):  # noqa: ANN001, ANN201
    return [r for r in table.to_pylist() if len(r["text"]) >= min_len]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def model_folder(path: Path, payload: bytes) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(payload)
    (path / "adapter_config.json").write_text('{"r": 8}')
    (path / "sub" / "tokenizer.json").write_text("{}")
    return path


def train(store: Store, tmp: Path, name: str, inputs: list, payload: bytes, *, config: dict | None = None,
          summary: dict | None = None) -> Run:
    with start_run(project="support-bot", name=name, config=config or {"base_model": "gpt2", "lr": 1e-4},
                   seed=7, store=store, argv=["train.py"]) as run:
        for thing in inputs:
            run.use(thing)
        run.log_artifact(model_folder(tmp / f"{name}-out", payload), "adapter", kind="model",
                         metadata={"format": "peft"})
        run.set_summary(summary or {"eval/f1": 0.8})
    return run


def build(store: Store, tmp: Path) -> World:
    rows = [{"id": f"t{i}", "text": "x" * (i % 7), "label": i % 2} for i in range(40)]
    raw = create_snapshot(store, write_jsonl(tmp / "tickets.jsonl", rows), "tickets", id_column="id")
    clean = derive(store, raw, drop_short, {"min_len": 2}, name="tickets-clean")
    split = create_split(store, clean, name="tickets", ratios=(0.75, 0.25), names=("train", "test"),
                         seed=1, check=False)
    faq = create_snapshot(store, write_jsonl(tmp / "faq.jsonl", rows[:5]), "faq", id_column="id")
    lora = train(store, tmp, "lora", [split], b"weights-v1")
    faq_run = train(store, tmp, "faq", [faq], b"faq-weights")
    model = registry.register(store, lora.id, "adapter", "support-bot", meta={"license": "apache-2.0"})
    faq_model = registry.register(store, faq_run.id, "adapter", "faq-bot")
    with start_run(project="support-bot", name="eval", store=store, argv=["eval.py"]) as eval_run:
        eval_run.use(model.ref)
        eval_run.set_summary({"test/accuracy": 0.9})
    return World(raw, clean, split, faq, lora, faq_run, eval_run, model, faq_model)
