"""Property tests: the id depends on content and names only, and on every byte."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runlock.data.ingest import ingest
from runlock.data.manifest import build
from runlock.data.tree import list_files
from runlock import canonical
from runlock.store.objects import LocalObjectStore

names = st.text(alphabet="abcdefgh_-.0123456789é", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))
trees = st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=64),
                        min_size=1, max_size=8)


def _valid(files: dict) -> bool:
    paths = set(files)
    return not any(p.startswith(q + "/") for p in paths for q in paths)  # no file is also a folder


def _write(root: Path, files: dict, order: list[str]) -> None:
    for rel in order:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(files[rel])


def _id(root: Path, objects: LocalObjectStore) -> str:
    return canonical.digest(build("files", ingest(objects, list_files(root))))


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(files=trees.filter(_valid), seed=st.integers(0, 2**32))
def test_id_ignores_write_order_and_location(files, seed):
    with tempfile.TemporaryDirectory() as tmp:
        objects = LocalObjectStore(Path(tmp) / "objects")
        order = sorted(files)
        shuffled = order[:]
        random.Random(seed).shuffle(shuffled)
        a, b = Path(tmp) / "a", Path(tmp) / "x" / "y" / "moved"
        _write(a, files, order)
        _write(b, files, shuffled)
        assert _id(a, objects) == _id(b, objects)
        shutil.move(a, Path(tmp) / "elsewhere")
        assert _id(Path(tmp) / "elsewhere", objects) == _id(b, objects)


@SETTINGS
@given(files=trees.filter(_valid).filter(lambda f: any(f.values())), data=st.data())
def test_any_changed_byte_changes_the_id(files, data):
    rel = data.draw(st.sampled_from(sorted(k for k, v in files.items() if v)))
    pos = data.draw(st.integers(0, len(files[rel]) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = dict(files)
    buf = bytearray(files[rel])
    buf[pos] ^= flip
    changed[rel] = bytes(buf)
    with tempfile.TemporaryDirectory() as tmp:
        objects = LocalObjectStore(Path(tmp) / "objects")
        _write(Path(tmp) / "a", files, sorted(files))
        _write(Path(tmp) / "b", changed, sorted(changed))
        assert _id(Path(tmp) / "a", objects) != _id(Path(tmp) / "b", objects)
