"""The ``runlock data`` commands, in-process."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from runlock.cli.main import app

runner = CliRunner()


def run(store, *args):
    return runner.invoke(app, ["--store", str(store.root), "data", *args])


def test_every_command_has_help():
    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    for name in ("snapshot", "list", "show", "diff", "checkout", "verify"):
        assert name in result.output
        sub = runner.invoke(app, ["data", name, "--help"])
        assert sub.exit_code == 0 and len(sub.output) > 100, name


def test_snapshot_list_show_diff_checkout_verify(store, make_tree, tmp_path):
    tree = make_tree({"t.csv": "id,text\n1,a\n2,b\n"})
    r = run(store, "snapshot", str(tree / "t.csv"), "--name", "tickets", "--id-column", "id", "--json")
    assert r.exit_code == 0, r.output
    v1 = json.loads(r.output)
    assert (v1["ref"], v1["kind"], v1["record_count"], v1["created"]) == ("ds:tickets@v1", "table", 2, True)
    (tree / "t.csv").write_text("id,text\n1,a\n2,B\n3,c\n")
    assert run(store, "snapshot", str(tree / "t.csv"), "--name", "tickets", "--id-column", "id").exit_code == 0
    listed = json.loads(run(store, "list", "--json").output)
    assert [i["ref"] for i in listed] == ["ds:tickets@v1", "ds:tickets@v2"]
    shown = json.loads(run(store, "show", "ds:tickets@v2", "--files", "--json").output)
    assert shown["entries"][0]["path"] == "t.csv" and shown["record_count"] == 3
    d = json.loads(run(store, "diff", "ds:tickets@v1", "ds:tickets@v2", "--json").output)
    assert d["records"] == {"added": ["3"], "removed": [], "changed": ["2"]}
    human = run(store, "diff", "ds:tickets@v1", "ds:tickets@v2")
    assert "records: 1 added, 0 removed, 1 changed" in human.output
    out = tmp_path / "co"
    assert run(store, "checkout", "ds:tickets@v1", str(out)).exit_code == 0
    assert (out / "t.csv").read_text() == "id,text\n1,a\n2,b\n"
    ok = run(store, "verify")
    assert ok.exit_code == 0 and "OK: 2 snapshot(s)" in ok.output
    bad = run(store, "verify", "ds:tickets@v1", "--path", str(tree), "--json")
    assert bad.exit_code == 1 and json.loads(bad.output)["problems"][0]["problem"] == "changed"


def test_user_errors_are_one_line(store, tmp_path):
    r = run(store, "snapshot", str(tmp_path / "missing"), "--name", "x")
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    r = run(store, "show", "ds:nothing@v1")
    assert r.exit_code == 1 and "No dataset snapshot" in r.output


def test_progress_bar_when_asked(store, make_tree):
    r = run(store, "snapshot", str(make_tree({"a": "1"})), "--name", "p", "--progress")
    assert r.exit_code == 0 and "Created ds:p@v1" in r.output
