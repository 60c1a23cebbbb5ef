"""examples/plain_pytorch.py runs as a script and leaves a complete, explainable run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runlock import config as configs
from runlock.store import Store
from runlock.tracking import query, records, series

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_pytorch.py"


def test_plain_pytorch_example(store: Store, tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text("epochs: 2\nmodel:\n  hidden: 8\n")
    out = subprocess.run([sys.executable, str(EXAMPLE), "exp.yaml", "lr=5e-3"], cwd=tmp_path, text=True,
                         capture_output=True, env={"RUNLOCK_STORE": str(store.root), "PATH": "/usr/bin:/bin"},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    rec = records.get(store, run_id)
    assert rec.status == "finished" and rec.last_step == 26 and rec.summary["steps"] == 26
    assert len(list(series.points(store, run_id, keys=["train/loss"]))) == 26
    origins = {k.key: k.origin for k in configs.explain(store, run_id).keys}
    assert origins == {"batch_size": "defaults", "epochs": "exp.yaml", "lr": "override lr=5e-3",
                       "model.hidden": "exp.yaml", "seed": "defaults"}
    found = query.find_runs(store, where="config.lr == 5e-3 and summary.val_loss < 1")
    assert [f.record.id for f in found] == [run_id]
