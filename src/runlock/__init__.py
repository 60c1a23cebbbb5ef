"""runlock: reproducible, auditable ML runs.

The public API a training script needs::

    import runlock
    runlock.init(".")                                   # once per project: creates .runlock/
    runlock.seed_everything(42)
    snap = runlock.snapshot("data/tickets.jsonl", name="tickets", id_column="id")
    split = runlock.split(snap, name="tickets", ratios=(0.8, 0.1, 0.1), seed=42)
    with runlock.start_run(project="support-bot", name="lora-r8", config=cfg, seed=42) as run:
        run.use(split)
        run.log({"train/loss": loss}, step=step)
        run.log_artifact("out/adapter", name="adapter", kind="model")
        run.set_summary({"eval/f1": f1})

Verification (``runlock.verify`` is the package; its functions take the store first)::

    store = runlock.open_store()
    runlock.compare(store, "run:A", "run:B")      # bitwise / tolerance / statistical / different
    runlock.verify.verify(store, "run:A")          # rerun from the lock, compare, record
    runlock.check(store, "model:support-bot@v3")   # the reproducibility checklist
"""

__version__ = "0.1.0"  # first: modules below record it in manifests

from runlock.config import ResolvedConfig
from runlock.config import resolve as resolve_config
from runlock.data.snapshot import Snapshot, load_snapshot, snapshot
from runlock.data.split import Split, load_split, split
from runlock.data.transform import transform
from runlock.errors import RunlockError
from runlock.probe import probe_steps
from runlock.registry import register_model
from runlock.seeding import derive_seed
from runlock.tracking.query import runs
from runlock.tracking.run import Run, current_run, join_run, seed_everything, start_run
from runlock.tracking.writer import WriterSettings
from runlock.verify import check, compare, input_path, rerun, variance
from runlock.workspace import init, open_store

__all__ = [
    "ResolvedConfig", "RunlockError", "Run", "Snapshot", "Split", "WriterSettings", "check", "compare", "current_run", "derive_seed", "init",
    "input_path", "join_run", "load_snapshot", "load_split", "open_store", "probe_steps", "register_model", "rerun",
    "resolve_config", "runs", "seed_everything", "snapshot", "split", "start_run", "transform", "variance", "__version__",
]
