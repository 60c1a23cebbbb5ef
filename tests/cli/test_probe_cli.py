"""`runlock probe -- CMD` end to end on real child processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli.main import app

SCRIPT = """
import numpy as np
from runlock.probe import record_step
rng = np.random.default_rng({seed})
for step in range(2):
    record_step(step, metrics={{"x": float(rng.random())}})
"""


def probe(tmp_path: Path, seed: str) -> tuple[int, dict]:
    script = tmp_path / f"train_{seed}.py"
    script.write_text(SCRIPT.format(seed=seed))
    result = CliRunner().invoke(app, ["probe", "--steps", "2", "--json", "--", sys.executable, str(script)],
                                catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_seeded_program_is_reproducible(tmp_path: Path) -> None:
    code, report = probe(tmp_path, "7")
    assert code == 0 and report["reproducible"] is True and report["first_divergence"] is None


def test_unseeded_default_rng_is_caught_at_step_zero(tmp_path: Path) -> None:
    code, report = probe(tmp_path, "")
    assert code == 1 and report["reproducible"] is False
    assert report["first_divergence"]["step"] == 0
    assert report["first_divergence"]["kind"] == "metric" and report["first_divergence"]["name"] == "x"
