"""The written reference stays true: docs/cli.md is what the CLI says about itself, and every
public name the README and docs/api.md promise exists."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import runlock

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
