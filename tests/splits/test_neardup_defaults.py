"""The defaults of the duplicate checks fit real tables: only free-text columns are compared
(chosen from the data, and said so), and a ticket of 12+ words with one word changed is found
with recall and precision of at least 0.95."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.data.split import create_split
from runlock.data.split_ops import check_split

GREETINGS = ["hi team", "hello support", "good morning", "dear support team", "hey there"]
CLOSINGS = ["thanks in advance", "please help asap", "kind regards", "thank you", "cheers"]


def tickets(n: int, copies: int, seed: int = 0) -> tuple[list[dict], set[frozenset[str]]]:
    """``n`` support tickets of 12-30 words (a greeting, a body of Zipf-distributed words, a
    closing), a label, a customer code and a timestamp; then ``copies`` tickets that repeat
    another one with one word of it replaced (the planted pairs, each source used once)."""
    rng = random.Random(seed)
    vocab = [f"word{i}" for i in range(4000)]
    weights = [1 / (i + 1) ** 1.1 for i in range(len(vocab))]
    rows = []
    for i in range(n):
        greet, close = rng.choice(GREETINGS).split(), rng.choice(CLOSINGS).split()
        body = rng.choices(vocab, weights, k=rng.randint(12, 30) - len(greet) - len(close))
        rows.append({"id": f"t{i:05d}", "text": " ".join(greet + body + close),
                     "label": rng.choice(["billing", "shipping", "login", "refund"]),
                     "customer": f"C-{rng.randrange(40):04d}",
                     "created": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00"})
    planted = set()
    for k, src in enumerate(rng.sample(range(n), copies)):
        words = rows[src]["text"].split()
        words[rng.randrange(len(words))] = f"edit{k}"
        rows.append({**rows[src], "id": f"c{k:05d}", "text": " ".join(words),
                     "customer": f"C-{rng.randrange(40):04d}", "label": rng.choice(["billing", "login"])})
        planted.add(frozenset((rows[src]["id"], f"c{k:05d}")))
    return rows, planted


def test_default_check_compares_only_the_text_and_finds_one_word_edits(store, make_snapshot):
    rows, planted = tickets(3000, 600)
    sp = create_split(store, make_snapshot(store, rows), name="tickets", seed=5)
    where = {rid: p for p in sp.partitions for rid in sp.ids(p)}
    leaking = {pair for pair in planted if len({where[r] for r in pair}) == 2}
    assert len(leaking) > 150
    report = check_split(store, sp.ref).report
    assert report.settings["text_columns"] == ["text"]
    assert any("free-text column(s) text" in n and "label" in n and "customer" in n for n in report.notes)
    found = {frozenset((p.a, p.b)) for p in report.pairs}
    recall = len(found & leaking) / len(leaking)
    precision = len(found & leaking) / max(1, len(found))
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    short = [p for p in leaking if min(len(r["text"].split()) for r in rows if r["id"] in p) <= 13]
    assert short and all(p in found for p in short)  # the shortest tickets too


def test_a_table_without_free_text_skips_duplicate_checks_and_says_how_to_choose(store, make_snapshot):
    rows = [{"id": f"r{i}", "label": ["a", "b"][i % 2], "who": f"C-{i % 9}", "when": f"2024-01-{1 + i % 28:02d} 10:00:00"}
            for i in range(60)]
    sp = create_split(store, make_snapshot(store, rows), name="codes", seed=1)
    assert sp.leakage.passed and sp.leakage.settings["text_columns"] == []
    assert "No free-text column found" in sp.leakage.notes[0] and "--text" in sp.leakage.notes[0]


def test_split_check_prints_the_columns_it_compared(tmp_path):
    rows, _ = tickets(200, 20, seed=2)
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    base = ["--store", str(tmp_path)]
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, [*base, "data", "snapshot", str(path), "--name", "t", "--id-column", "id"]).exit_code == 0
    assert runner.invoke(app, [*base, "split", "create", "t", "--name", "t", "--no-check"]).exit_code == 0
    result = runner.invoke(app, [*base, "split", "check", "t"])
    assert "free-text column(s) text" in result.output and "left out: " in result.output
    chosen = runner.invoke(app, [*base, "split", "check", "t", "--text", "label", "--json"])
    assert json.loads(chosen.output)["settings"]["text_columns"] == ["label"]
