"""Fresh processes: the same id from two directories; a killed snapshot leaves no trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from runlock.data.snapshot import snapshots
from runlock.store.schema import refs

SNAPSHOT_ID = (
    "import json, sys\n"
    "from runlock.store import Store\n"
    "from runlock.data.ingest import ingest\n"
    "from runlock.data.manifest import build\n"
    "from runlock.data.tree import list_files\n"
    "from runlock import canonical\n"
    "from runlock.store.objects import LocalObjectStore\n"
    "objects = LocalObjectStore(sys.argv[2])\n"
    "print(canonical.digest(build('files', ingest(objects, list_files(sys.argv[1])))))\n"
)


def _env() -> dict:
    return {**os.environ, "PYTHONHASHSEED": "random"}


def test_same_id_in_fresh_processes_from_two_directories(make_tree, tmp_path):
    files = {"b.txt": "bee", "a/z.bin": os.urandom(5000), "a/é.txt": "accent", "c": ""}
    one = make_tree(files, "first/place")
    two = make_tree(dict(reversed(list(files.items()))), "second")
    ids = set()
    for root, cwd in ((one, tmp_path), (two, two)):
        out = subprocess.run([sys.executable, "-c", SNAPSHOT_ID, str(root), str(tmp_path / f"obj{len(ids)}")],
                             cwd=cwd, env=_env(), capture_output=True, text=True, check=True)
        ids.add(out.stdout.strip())
    assert len(ids) == 1 and next(iter(ids)).startswith("sha256:")


KILLABLE = (
    "import sys\n"
    "from runlock.workspace import open_store\n"
    "from runlock.data import create_snapshot\n"
    "def tell(p):\n"
    "    if p.bytes_done > 0:\n"
    "        print('started', flush=True)\n"
    "create_snapshot(open_store(sys.argv[1]), sys.argv[2], 'killed', on_progress=tell)\n"
    "print('finished', flush=True)\n"
)


def test_sigkill_mid_snapshot_leaves_no_snapshot_and_no_corrupt_object(store, make_tree):
    tree = make_tree({f"f{i:03d}.bin": os.urandom(1 << 20) for i in range(300)})
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(store.root), str(tree)],
                            stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(refs)).scalar() == 0
    problems = [p for p in map(store.objects.verify_one, store.objects.iter_ids()) if p is not None]
    assert problems == []
    # and the store still works: the next snapshot of the same tree completes
    from runlock.data import create_snapshot

    assert create_snapshot(store, tree, "killed").ref == "ds:killed@v1"


def test_ctrl_c_mid_snapshot_cleans_scratch(store, make_tree):
    tree = make_tree({f"f{i:03d}.bin": os.urandom(1 << 20) for i in range(200)})
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(store.root), str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar() == 0
    assert list(store.objects.scratch_dir().glob("snap-*")) == []
    assert json.dumps([p for p in map(store.objects.verify_one, store.objects.iter_ids()) if p]) == "[]"
