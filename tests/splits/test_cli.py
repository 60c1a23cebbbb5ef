"""``runlock split`` in process: every command, JSON output, exit codes, clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from runlock.cli.main import app
from tests.splits.conftest import rows

runner = CliRunner()
COMMANDS = ("create", "list", "show", "export", "import", "apply", "check")


@pytest.fixture
def cli(tmp_path):
    def invoke(*args: str):
        return runner.invoke(app, ["--store", str(tmp_path), *args])

    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    return invoke


def write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_split_command_has_help(command):
    result = runner.invoke(app, ["split", command, "--help"])
    assert result.exit_code == 0 and len(result.output.strip()) > 40


def test_create_show_list_export_import_apply(cli, tmp_path):
    data = rows(100)
    assert cli("data", "snapshot", write(tmp_path, "t.jsonl", data), "--name", "tickets", "--id-column", "id").exit_code == 0
    made = cli("split", "create", "ds:tickets@v1", "--name", "tk", "--strategy", "stratified", "--by", "label",
               "--ratios", "0.8,0.1,0.1", "--seed", "42", "--json")
    assert made.exit_code == 0, made.output
    d = json.loads(made.output)
    assert d["ref"] == "split:tk@v1" and d["counts"] == {"train": 80, "validation": 10, "test": 10}
    assert d["leakage"]["passed"] is True
    shown = cli("split", "show", "split:tk@v1")
    assert shown.exit_code == 0 and "split:tk@v1" in shown.output and "validation" in shown.output
    listed = json.loads(cli("split", "list", "--json").output)
    assert [i["ref"] for i in listed] == ["split:tk@v1"]
    out = tmp_path / "splits_v1.json"
    assert cli("split", "export", "split:tk@v1", "-o", str(out)).exit_code == 0
    assert sorted(sum(json.loads(out.read_text()).values(), [])) == sorted(r["id"] for r in data)
    imp = cli("split", "import", str(out), "ds:tickets@v1", "--name", "again", "--json")
    assert imp.exit_code == 0 and json.loads(imp.output)["counts"] == d["counts"]
    cli("data", "snapshot", write(tmp_path, "t.jsonl", data + rows(20, seed=3, start=100)), "--name", "tickets",
        "--id-column", "id")
    applied = json.loads(cli("split", "apply", "split:tk@v1", "ds:tickets@v2", "--json").output)
    assert applied["ref"] == "split:tk@v2" and sum(applied["applied"]["added"].values()) == 20


def test_check_lists_leaking_pairs_as_json_and_exits_1(cli, tmp_path):
    data = rows(60)
    data += [{**r, "id": f"copy{i}", "text": r["text"].replace("w", "W")} for i, r in enumerate(data[:30])]
    cli("data", "snapshot", write(tmp_path, "t.jsonl", data), "--name", "tickets", "--id-column", "id")
    assert cli("split", "create", "tickets", "--name", "leaky", "--seed", "1").exit_code == 0
    result = cli("split", "check", "leaky", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["passed"] is False and report["pairs"]
    pair = report["pairs"][0]
    assert set(pair) == {"a", "b", "kind", "similarity", "partitions"} and pair["kind"] == "exact"
    copies = {f"copy{i}": r["id"] for i, r in enumerate(data[:30])}
    for p in report["pairs"]:
        copy, original = sorted((p["a"], p["b"]))
        assert copies[copy] == original and p["partitions"][0] != p["partitions"][1]
    human = cli("split", "check", "leaky")
    assert human.exit_code == 1 and "Leakage" in human.output and "exact" in human.output
    dedup = json.loads(cli("split", "create", "tickets", "--name", "clean", "--dedup", "--json").output)
    assert dedup["removed"] == 30 and dedup["leakage"]["passed"] is True


@pytest.mark.parametrize("args, message", [
    (("--ratios", "0.8,0.1"), "sum to 0.9"),
    (("--ratios", "a,b"), "must be numbers"),
    (("--strategy", "temporal", "--by", "nope"), "Column 'nope'"),
    (("--strategy", "magic"), "Unknown split strategy"),
])
def test_user_errors_are_one_line_and_exit_2(cli, tmp_path, args, message):
    cli("data", "snapshot", write(tmp_path, "t.jsonl", rows(30)), "--name", "tickets", "--id-column", "id")
    result = cli("split", "create", "tickets", "--name", "x", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_create_reports_leakage_found_at_creation_and_strict_exits_1(cli, tmp_path):
    data = rows(60)
    data += [{**r, "id": f"copy{i}", "text": r["text"].upper()} for i, r in enumerate(data[:30])]
    cli("data", "snapshot", write(tmp_path, "t.jsonl", data), "--name", "tickets", "--id-column", "id")
    plain = cli("split", "create", "tickets", "--name", "leaky", "--seed", "1")
    assert plain.exit_code == 0 and "Leakage found at creation" in plain.output and "--dedup" in plain.output
    strict = cli("split", "create", "tickets", "--name", "strict", "--seed", "1", "--strict", "--json")
    assert strict.exit_code == 1
    made = json.loads(strict.output)
    assert made["leakage"]["passed"] is False and made["ref"] == "split:strict@v1"  # recorded, with its report
    clean = cli("split", "create", "tickets", "--name", "clean", "--dedup", "--strict")
    assert clean.exit_code == 0 and "No leakage found" in clean.output
    both = cli("split", "create", "tickets", "--name", "x", "--strict", "--no-check")
    assert both.exit_code == 2 and "--strict needs the leakage checks" in both.output


def test_check_with_a_progress_bar_still_prints_its_result(cli, tmp_path):
    cli("data", "snapshot", write(tmp_path, "t.jsonl", rows(80)), "--name", "tickets", "--id-column", "id")
    cli("split", "create", "tickets", "--name", "tk", "--no-check")
    result = cli("split", "check", "tk", "--progress")
    assert result.exit_code == 0 and "No leakage found" in result.output
