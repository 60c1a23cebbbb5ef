"""The written reference stays true: docs/cli.md is what the CLI says about itself, and every
public name the README and docs/api.md promise exists."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import runlock
from runlock.tracking import records

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_from_the_current_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run([sys.executable, "-m", "typer", "runlock.cli.main", "utils", "docs", "--name", "runlock",
                    "--title", "runlock CLI reference", "--output", str(out)], check=True, capture_output=True)
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), "run `make docs` and commit docs/cli.md"


def test_every_api_name_the_docs_mention_exists() -> None:
    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "api.md").read_text()
    named = set(re.findall(r"`runlock\.([A-Za-z_]+)\b", text))
    assert named, "the docs name no API"
    missing = sorted(n for n in named if not hasattr(runlock, n) and importlib.util.find_spec(f"runlock.{n}") is None)
    assert not missing, f"documented but not in runlock: {missing}"
    assert set(runlock.__all__) - {"__version__"} <= named | {"RunlockError"}, \
        f"exported but undocumented: {sorted(set(runlock.__all__) - named - {'__version__', 'RunlockError'})}"


def test_the_makefile_demo_command_is_one_the_cli_accepts() -> None:
    from typer.testing import CliRunner

    from runlock.cli.main import app

    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if "bin/runlock demo" in ln)
    args = line.split("bin/runlock", 1)[1].split()
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


QUICKSTART_SETUP = '''
import json, os
os.makedirs("data", exist_ok=True)
with open("data/tickets.jsonl", "w") as f:
    for i in range(40):
        f.write(json.dumps({"id": f"t{i}", "text": f"ticket number {i} about billing"}) + "\\n")
os.makedirs("out/adapter", exist_ok=True)
open("out/adapter/adapter_model.safetensors", "wb").write(b"weights")
cfg = {"lr": 3e-4, "lora": {"r": 8}}
loader = range(3)
loss, lr, f1, test_f1 = 0.5, 3e-4, 0.9, 0.88
'''


def test_the_readme_quickstart_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1).replace("        ...\n", "")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    script = "import runlock\nrunlock.init('.')\n" + QUICKSTART_SETUP + code + "\nprint(run.recipe_id)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    store = runlock.open_store(tmp_path)
    (rec,) = records.list_runs(store)
    assert rec.status == "finished" and rec.summary == {"eval/f1": 0.9, "test/f1": 0.88} and rec.last_step == 2
    assert done.stdout.strip().endswith(rec.recipe_id)
