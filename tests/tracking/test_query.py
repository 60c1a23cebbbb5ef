"""Finding and comparing runs: the --where grammar (safe: parsed, never evaluated), sorting,
the DataFrame, compare, metrics CSV and plots, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock.cli import common
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking import query, series

runner = CliRunner()


def cli(store: Store, *args: str):  # noqa: ANN201
    """A command as on a 250-column terminal (the console reads COLUMNS once, when it is made)."""
    old, common.console.width = common.console.width, 250
    try:
        return runner.invoke(app, ["--store", str(store.root), *args], catch_exceptions=False)
    finally:
        common.console.width = old


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs started outside a git checkout: no diff to capture, so many runs stay cheap."""
    monkeypatch.chdir(tmp_path)


def make_runs(store: Store) -> list[str]:
    specs = [
        ({"lr": 1e-5, "lora": {"r": 8}, "optim": "adam", "amp": True}, {"eval/f1": 0.80}, {"team": "nlp"}),
        ({"lr": 3e-4, "lora": {"r": 16}, "optim": "sgd", "amp": False}, {"eval/f1": 0.86}, {}),
        ({"lr": 1e-3, "lora": {"r": 32}, "optim": "adam", "amp": True}, {"eval/f1": 0.92, "eval-f1": 0.1}, {}),
        ({"lr": 2e-3, "lora": {"r": 32}, "optim": None, "layers": [1, 2]}, {}, {}),
    ]
    ids = []
    for i, (cfg, summary, tags) in enumerate(specs):
        with runlock.start_run(project="p", name=f"r{i}", config=cfg, tags=tags, store=store) as run:
            for step in range(5):
                run.log({"train/loss": 1.0 / (i + step + 1)}, step=step)
            run.log({"nan": math.nan}, step=0)
            if summary:
                run.set_summary(summary)
        ids.append(run.id)
    with runlock.start_run(project="other", config={"lr": 1.0}, store=store) as other:
        other.set_summary({"eval/f1": 0.99})
    return ids


def names(store: Store, where: str | None = None, sort: str | None = None, project: str = "p") -> list[str]:
    return [f.record.name for f in query.find_runs(store, project=project, where=where, sort=sort)]


WHERE_CASES = [
    ("config.lr > 1e-4 and summary.eval_f1 >= 0.9", ["r2"]),
    ("config.lr > 1e-4", ["r3", "r2", "r1"]),
    ('config.optim == "adam"', ["r2", "r0"]),
    ("config.optim in ['sgd', 'adam']", ["r2", "r1", "r0"]),
    ("config.optim not in ['sgd']", ["r3", "r2", "r0"]),
    ("not config.optim == 'sgd'", ["r3", "r2", "r0"]),
    ("config.optim == None", ["r3"]),
    ("config.amp == True", ["r2", "r0"]),
    ("config.amp == 1", []),                              # a boolean is not a number
    ("config.lora.r >= 32 or tags.team == 'nlp'", ["r3", "r2", "r0"]),
    ("1e-4 < config.lr < 1.5e-3", ["r2", "r1"]),
    ("0.85 < summary.eval_f1", ["r2", "r1"]),
    ('summary["eval/f1"] > 0.9', ["r2"]),
    ('summary["eval-f1"] < 0.5', ["r2"]),                   # quoted: exactly that key
    ("summary.eval_f1 < 0.5", ["r2"]),                      # slug: eval/f1 or eval-f1
    ("summary.missing > 0", []),
    ("not summary.missing > 0", ["r3", "r2", "r1", "r0"]),  # a missing key never matches
    ("metrics.train_loss < 0.15", ["r3", "r2"]),           # the latest value logged
    ("metric.nan > 0 or metric.nan <= 0", []),             # NaN compares false
    ('status == "finished" and last_step == 4', ["r3", "r2", "r1", "r0"]),
    ("name != 'r1' and config.lr <= 1e-3 and config.lr > -1", ["r2", "r0"]),
]


def test_where_selects_runs(any_store: Store) -> None:
    make_runs(any_store)
    got = {where: names(any_store, where) for where, _ in WHERE_CASES}
    assert got == dict(WHERE_CASES)


def test_sort_orders_with_missing_values_last(any_store: Store) -> None:
    make_runs(any_store)
    assert names(any_store, sort="-summary.eval_f1") == ["r2", "r1", "r0", "r3"]
    assert names(any_store, sort="summary.eval_f1") == ["r0", "r1", "r2", "r3"]
    assert names(any_store, sort="-config.lora.r, name") == ["r2", "r3", "r1", "r0"]
    assert names(any_store, sort="config.optim") == ["r2", "r0", "r1", "r3"]   # ties: newest first
    found = query.find_runs(any_store, project="p", where="config.lr > 1e-4", sort="-summary.eval_f1", limit=1)
    assert found[0].fields == {"config.lr": 1e-3, "summary.eval/f1": 0.92, "summary.eval-f1": 0.1}


@pytest.mark.parametrize("where, message", [
    ("__import__('os').system('true')", "not a comparison"),
    ("config.lr > __import__('os')", "not a literal"),
    ("config.lr > config.x", "not a literal"),
    ("(lambda: 1)() == 1", "field name"),
    ("config.lr + 1 > 2", "field name"),
    ("config.lr > ", "Cannot parse"),
    ("secret.x > 1", "Unknown section"),
    ("pid > 1", "Unknown field"),
    ("config.lr", "not a comparison"),
    ("config.lr in 3", "needs a list"),
    ("config.lr is None", "not supported"),
    ("config.lr < None", "None can only"),
    ("1 < 2", "field name"),
    ("config.x == [1]", "only follow `in`"),
])
def test_where_rejects_anything_but_comparisons(store: Store, where: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        query.find_runs(store, where=where)


def test_runs_dataframe(store: Store) -> None:
    ids = make_runs(store)
    df = runlock.runs("p", where="config.lr > 1e-4", sort="-summary.eval_f1", store=store.root)
    assert list(df["id"]) == [ids[2], ids[1], ids[3]]
    assert list(df.columns[:4]) == ["id", "project", "name", "status"]
    assert df.loc[0, "config.lora.r"] == 32 and df.loc[0, "summary.eval/f1"] == 0.92
    assert df.loc[2, "config.layers"] == [1, 2] and math.isnan(df.loc[2, "summary.eval/f1"])
    assert df.loc[0, "metrics.train/loss"] == pytest.approx(1 / 7)


def test_compare_side_by_side(any_store: Store) -> None:
    ids = make_runs(any_store)
    c = series.compare(any_store, ids[:3])
    rows = {(r.section, r.key): r for r in c.rows}
    assert rows[("config", "lr")].values == [1e-5, 3e-4, 1e-3] and rows[("config", "lr")].differs
    assert rows[("config", "amp")].values == [True, False, True]
    assert rows[("summary", "eval-f1")].values == [None, None, 0.1]
    assert not rows[("run", "status")].differs and not rows[("metrics", "nan")].differs   # nan == nan
    only = series.compare(any_store, ids[:3], only_differences=True)
    assert ("metrics", "nan") not in {(r.section, r.key) for r in only.rows}
    out = cli(any_store, "runs", "compare", *ids[:2], "--json")
    assert out.exit_code == 0 and json.loads(out.output)["runs"] == ids[:2]


def test_cli_list_where_sort_and_errors(store: Store) -> None:
    make_runs(store)
    out = cli(store, "runs", "list", "--project", "p", "--where", "config.lr > 1e-4 and summary.eval_f1 >= 0.85",
              "--sort", "-summary.eval_f1", "--json")
    got = json.loads(out.output)
    assert [r["name"] for r in got] == ["r2", "r1"] and got[0]["fields"]["config.lr"] == 1e-3
    table = cli(store, "runs", "list", "-p", "p", "-w", "summary.eval_f1 > 0.9")
    assert "summary.eval/f1" in table.output and "0.92" in table.output
    bad = cli(store, "runs", "list", "--where", "open('x')")
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "not a comparison" in bad.output


def test_metrics_csv_has_a_row_per_step(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="p", store=store) as run:
        for step in range(100):
            run.log({"train/loss": 1.0 / (step + 1), "other": 0.0}, step=step)
        run.log({"train/loss": math.inf}, step=100)
    out = cli(store, "metrics", run.id, "--key", "train/loss", "--csv")
    rows = list(csv.reader(io.StringIO(out.output)))
    assert rows[0] == ["step", "value", "key", "rank", "time"]
    assert [int(r[0]) for r in rows[1:]] == list(range(101))
    assert [float(r[1]) for r in rows[1:101]] == [1.0 / (s + 1) for s in range(100)] and rows[-1][1] == "inf"
    assert cli(store, "metrics", run.id, "--csv", "-o", str(tmp_path / "m.csv")).exit_code == 0
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 1 + 201
    keys = json.loads(cli(store, "metrics", run.id, "--json").output)
    assert [(k["key"], k["points"], k["last_step"], k["latest"]) for k in keys] == [
        ("other", 100, 99, 0.0), ("train/loss", 101, 100, math.inf)]


def test_plot_writes_a_png_with_a_curve_per_run_and_key(store: Store, tmp_path: Path) -> None:
    ids = make_runs(store)
    png = tmp_path / "plots" / "loss.png"
    png.parent.mkdir()   # -o names a file in an existing folder (the CLI does not create folders)
    out = cli(store, "plot", *ids[:3], "--key", "train/loss", "--key", "nan", "-o", str(png), "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert [(c["key"], c["points"]) for c in result["curves"]] == [("train/loss", 5)] * 3 + [("nan", 1)] * 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    missing = cli(store, "plot", ids[0], "--key", "nope", "-o", str(png), "--force")
    assert missing.exit_code == 1 and "No metric 'nope'" in missing.output
    assert cli(store, "plot", ids[0], "--key", "nan", "-o", str(tmp_path / "x.jpg")).exit_code == 2
