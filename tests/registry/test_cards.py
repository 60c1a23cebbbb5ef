"""Model cards: read by huggingface_hub's own parser, built from the record, byte-stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from runlock import cards, registry
from runlock.errors import Conflict
from runlock.store import Store


def test_card_front_matter_is_what_the_hub_reads(store: Store, make_world, tmp_path: Path) -> None:
    w = make_world(store)
    registry.set_alias(store, w.model.ref, "live", reason="launch")
    written = cards.write_card(store, "model:support-bot@live", tmp_path)
    assert written.path == str(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "gpt2"
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["split:tickets@v1"]
    assert card.data.metrics == ["eval/f1"]
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("eval/f1", 0.8, "split:tickets@v1")
    assert card.data.to_dict()["runlock"] == {"model": w.model.ref, "content_id": w.model.digest,
                                              "run": f"run:{w.lora.id}", "recipe_id": w.lora.recipe_id}


def test_card_body_states_data_seed_environment_evaluation_and_lineage(store: Store, make_world) -> None:
    w = make_world(store)
    text = cards.model_card(store, w.model.ref, limitations="Only English tickets.").text
    for needle in (w.split.id, "split:tickets@v1", "| seed | `7` |", '"lr": 0.0001', "| python | `CPython",
                   f"run:{w.eval_run.id}", "test/accuracy = 0.9", w.raw.id, "derived_from", "Only English tickets.",
                   "## Known limitations", w.lora.recipe_id):
        assert needle in text, needle
    assert "None recorded" in cards.model_card(store, w.model.ref).text


def test_card_is_a_pure_function_of_the_record(store: Store, make_world, tmp_path: Path) -> None:
    w = make_world(store)
    code = ("import sys; from runlock.workspace import open_store; from runlock import cards;"
            "sys.stdout.write(cards.model_card(open_store(sys.argv[1]), sys.argv[2]).text)")
    texts = [subprocess.run([sys.executable, "-c", code, str(store.root), w.model.ref], capture_output=True,
                            check=True, text=True).stdout for _ in range(2)]
    assert texts[0] == texts[1] == cards.model_card(store, w.model.ref).text
    cards.write_card(store, w.model.ref, tmp_path / "card.md")
    with pytest.raises(Conflict):
        cards.write_card(store, w.model.ref, tmp_path / "card.md")
    assert cards.write_card(store, w.model.ref, tmp_path / "card.md", force=True).id == cards.model_card(
        store, w.model.ref).id


def test_a_card_never_invents_what_the_record_lacks(store: Store, make_run) -> None:
    run = make_run(store, config={"lr": 0.1}, summary={"note": "no numbers"})
    mv = registry.register(store, run.id, "adapter", "bare")
    card = cards.model_card(store, mv.ref)
    assert {"base_model", "license", "datasets", "metrics", "model-index"}.isdisjoint(card.front_matter)
    assert "No dataset snapshot or split was declared" in card.text
