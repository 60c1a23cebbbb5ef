"""Peak memory of `bundle export` (and `bundle verify`) on a bundle holding one large data object.

    .venv/bin/python bench/bench_bundle.py [--mb 100] [--keep DIR]
    PYTHONPATH=OTHER/src .venv/bin/python bench/bench_bundle.py     # the same against another checkout

Builds a store with a snapshot of one file of ``--mb`` MB (random bytes, seeded), one run that
uses it and writes a small artifact, then runs ``bundle export`` and ``bundle verify`` each in a
fresh process, then ``bundle import`` into a fresh store, and reports that process's peak resident set size (``VmHWM`` of /proc/self/status),
its wall time and the bundle's size. The baseline is the same process doing only its imports
and opening the store, so the difference is what the command itself held. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import runlock
from runlock import keys
from runlock.workspace import init

CHILD = """
import sys, time
from pathlib import Path
from runlock import bundle, keys
from runlock.store import Store
what, store_path, out, pub = sys.argv[1:5]
if what == "export":
    s = Store.open(store_path)
    bundle.export(s, sys.argv[5], out)
elif what == "verify":
    assert bundle.verify(out, keys.load_public(Path(pub))).ok
elif what == "import":
    from runlock.workspace import init
    Path(sys.argv[5]).mkdir()
    bundle.load(init(sys.argv[5]), out, key=keys.load_public(Path(pub)))
elif what == "baseline":
    s = Store.open(store_path)
# this process's own high-water mark (VmHWM: ru_maxrss would carry the forking parent's over exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(hwm)
"""


def child(what: str, store: Path, out: Path, pub: Path, ref: str = "") -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(store), str(out), str(pub), ref],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    hwm_kib = int(done.stdout.split()[-1])
    return {"peak_rss_mib": round(hwm_kib / 1024, 1), "wall_s": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    (base / "store").mkdir(parents=True, exist_ok=True)
    store = init(base / "store")
    data = base / "big.bin"
    rng = np.random.default_rng(7)
    with open(data, "wb") as f:
        for _ in range(args.mb):
            f.write(rng.bytes(1 << 20))
    snap = runlock.snapshot(data, name="big", store=store)
    with runlock.start_run(project="bench", name="big", store=store, argv=["bench"]) as run:
        run.use(snap)
        (base / "w.txt").write_text("0.5")
        run.log_artifact(base / "w.txt", name="weights", kind="model")
    pub = base / "store.pub"
    keys.export_public(store, pub)
    store.close()
    out = base / "big.rlb"
    result = {"mb": args.mb, "python": sys.version.split()[0],
              "baseline": child("baseline", base / "store", out, pub),
              "export": child("export", base / "store", out, pub, run.id)}
    result["bundle_bytes"] = out.stat().st_size
    result["verify"] = child("verify", base / "store", out, pub)
    result["import"] = child("import", base / "store", out, pub, str(base / "fresh"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
