"""The pipeline commands in process: clean errors, status that names what changed, show, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import Store

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "params.yaml").write_text("a: {n: 1}\nother: 5\n")
    (d / "runlock.yaml").write_text("stages:\n  one:\n    cmd: cat params.yaml > one.txt\n"
                                    "    params: [a.n]\n    outs: [one.txt]\n"
                                    "  two:\n    cmd: cp one.txt two.txt\n    deps: [one.txt]\n    outs: [two.txt]\n")
    monkeypatch.chdir(d)
    monkeypatch.setenv("RUNLOCK_STORE", str(store.root))
    return d


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args))


def test_no_runlock_yaml_is_one_line_and_exit_2(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = invoke("--store", str(store.root), "repro")
    assert r.exit_code == 2 and "No runlock.yaml" in r.output and "Traceback" not in r.output


def test_a_mistake_in_the_file_is_placed(tiny: Path) -> None:
    (tiny / "runlock.yaml").write_text("stages:\n  one:\n    cmd: x\n    outz: [a]\n")
    r = invoke("pipeline", "status")
    assert r.exit_code == 2 and "runlock.yaml:4:5: unknown key 'outz'" in r.output


def test_status_names_the_param_and_repro_reruns_only_what_it_reaches(tiny: Path) -> None:
    assert invoke("repro", "--json").exit_code == 0
    assert invoke("pipeline", "status").exit_code == 0
    (tiny / "params.yaml").write_text("a: {n: 1}\nother: 6\n")          # an undeclared key: nothing stale
    assert invoke("pipeline", "status").exit_code == 0
    (tiny / "params.yaml").write_text("a: {n: 2}\nother: 6\n")
    r = invoke("pipeline", "status")
    assert r.exit_code == 1
    assert "param params.yaml:a.n changed: 1 -> 2" in r.output and "upstream stage one is stale" in r.output
    dry = json.loads(invoke("repro", "--dry", "--json").output)
    assert [s["action"] for s in dry["stages"]] == ["would-run", "would-run"]
    again = json.loads(invoke("repro", "--json").output)
    assert [s["action"] for s in again["stages"]] == ["ran", "ran"]
    assert invoke("pipeline", "status").exit_code == 0


def test_show_and_export(tiny: Path) -> None:
    invoke("repro")
    dot = invoke("pipeline", "show", "--format", "dot").output
    assert '"one" -> "two";' in dot and "up-to-date" in dot
    shown = json.loads(invoke("pipeline", "show").output)
    assert [s["status"] for s in shown["stages"]] == ["up-to-date", "up-to-date"]
    assert invoke("pipeline", "export", "-o", "pipeline.lock.json").exit_code == 0
    doc = json.loads((tiny / "pipeline.lock.json").read_text())
    assert set(doc["stages"]) == {"one", "two"} and doc["stages"]["one"]["params"] == {"params.yaml:a.n": 1}
    r = invoke("pipeline", "export", "-o", "pipeline.lock.json")
    assert r.exit_code == 2 and "already exists" in r.output        # never replaced without --force
    assert invoke("pipeline", "show", "--format", "svg").exit_code == 2


def test_a_failing_stage_exits_1_and_nothing_downstream_runs(tiny: Path) -> None:
    (tiny / "runlock.yaml").write_text("stages:\n  one:\n    cmd: exit 3\n    outs: [one.txt]\n"
                                       "  two:\n    cmd: cp one.txt two.txt\n    deps: [one.txt]\n    outs: [two.txt]\n")
    r = invoke("repro", "--json")
    assert r.exit_code == 1
    acts = {s["stage"]: s["action"] for s in json.loads(r.stdout)["stages"]}
    assert acts == {"one": "failed", "two": "not-run"}


def test_a_code_change_is_named_and_the_png_is_drawn_without_graphviz(tiny: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tiny / "step.sh").write_text("cp one.txt two.txt\n")
    (tiny / "runlock.yaml").write_text("stages:\n  one:\n    cmd: cat params.yaml > one.txt\n    outs: [one.txt]\n"
                                       "  two:\n    cmd: sh step.sh\n    deps: [step.sh, one.txt]\n    outs: [two.txt]\n")
    assert invoke("repro").exit_code == 0
    (tiny / "step.sh").write_text("cp one.txt two.txt  # edited\n")
    r = invoke("pipeline", "status", "--json")
    two = {s["stage"]: s for s in json.loads(r.stdout)}["two"]
    assert two["state"] == "stale" and [(x["what"], x["name"]) for x in two["reasons"]] == [("dep", "step.sh")]
    bare = tiny / "bare"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))                    # no Graphviz `dot` (nor anything else) to call
    assert invoke("pipeline", "show", "--format", "png", "-o", "dag.png").exit_code == 0
    png = (tiny / "dag.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert invoke("pipeline", "show", "--format", "png", "-o", "again.png").exit_code == 0
    assert (tiny / "again.png").read_bytes() == png          # the lineage drawer's PNGs carry no timestamp


NO_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None                                # as if it were not installed
sys.argv = ["runlock", "pipeline", "show", "--format", "png", "-o", "dag.png"]
from runlock.cli.entry import main
main()
"""


def test_png_without_matplotlib_is_one_clear_line_and_exit_2(tiny: Path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_MATPLOTLIB], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "needs matplotlib" in done.stderr and "--format dot" in done.stderr
    assert not (tiny / "dag.png").exists()


LOADED = """
import sys
sys.argv = ["runlock", *sys.argv[1:]]
from runlock.cli.entry import main
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
print(" ".join(sorted(sys.modules)))
"""


def test_a_repro_with_nothing_to_do_loads_only_what_it_uses(tiny: Path) -> None:
    """No verify tiers (numpy), no run machinery (psutil, the wrapper), no rich: they were most of
    a no-op repro's time (bench/bench_pipeline.py)."""
    assert invoke("repro").exit_code == 0
    done = subprocess.run([sys.executable, "-c", LOADED, "repro"], capture_output=True, text=True, check=True)
    modules = set(done.stdout.split())
    assert "runlock.pipeline.repro" in modules and "cache hit" in done.stderr
    assert not modules & {"runlock.pipeline.check", "runlock.pipeline.execute", "runlock.tracking.run",
                          "runlock.verify", "rich", "numpy"}
