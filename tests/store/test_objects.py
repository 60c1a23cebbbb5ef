"""Conformance suite for ObjectStore backends: every backend must pass all of it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from runlock.errors import IntegrityError, InvalidInput, NotFound
from runlock.store.objects import LocalObjectStore, ObjectStore
from runlock.store.s3 import S3ObjectStore


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Every test here runs against every backend: the conformance suite."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ObjectStore(request.getfixturevalue("s3_bucket"), endpoint_url=endpoint, scratch=tmp_path / "scratch")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_returns_sha256_id_and_get_returns_bytes(objects: ObjectStore) -> None:
    oid = objects.put_bytes(b"hello")
    assert oid == sha(b"hello")
    assert objects.get_bytes(oid) == b"hello"
    assert objects.has(oid)


def test_same_content_is_one_object(objects: ObjectStore) -> None:
    a = objects.put_bytes(b"x" * 1000)
    b = objects.put_bytes(b"x" * 1000)
    assert a == b
    assert list(objects.iter_ids()) == [a]


def test_put_file_streams_and_matches_bytes(objects: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    oid = objects.put_file(f)
    assert oid == sha(data)
    out = tmp_path / "out" / "copy.bin"
    objects.copy_to(oid, out)
    assert out.read_bytes() == data


def test_missing_object_is_not_found(objects: ObjectStore) -> None:
    with pytest.raises(NotFound):
        objects.get_bytes(sha(b"never stored"))
    assert objects.verify_one(sha(b"never stored")).problem == "missing"


def test_malformed_id_is_refused(objects: ObjectStore) -> None:
    with pytest.raises(InvalidInput):
        objects.get_bytes("md5:abc")


def test_iter_ids_lists_every_object_and_no_temp_files(objects: ObjectStore) -> None:
    ids = {objects.put_bytes(bytes([i]) * 10) for i in range(20)}
    assert set(objects.iter_ids()) == ids


def test_corruption_is_detected_on_read_and_verify(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    oid = objects.put_bytes(b"precious weights")
    path = objects.path_of(oid)
    os.chmod(path, 0o644)
    path.write_bytes(b"precious weightz")
    with pytest.raises(IntegrityError):
        objects.get_bytes(oid)
    with pytest.raises(IntegrityError):
        objects.copy_to(oid, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert objects.verify_one(oid).problem == "corrupt"


def test_objects_are_read_only_and_never_rewritten(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    oid = objects.put_bytes(b"v1")
    path = objects.path_of(oid)
    inode = path.stat().st_ino
    objects.put_bytes(b"v1")
    assert path.stat().st_ino == inode and path.read_bytes() == b"v1"    # not rewritten (only freshened)
    assert path.stat().st_mode & 0o222 == 0
    assert not list((tmp_path / "objects" / "tmp").iterdir())


def test_s3_store_is_configured_from_init(tmp_path: Path, s3_endpoint: str, s3_bucket: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from runlock.workspace import init

    monkeypatch.setenv("RUNLOCK_S3_ENDPOINT_URL", s3_endpoint)
    store = init(tmp_path, objects=s3_bucket)
    assert isinstance(store.objects, S3ObjectStore)
    oid = store.objects.put_bytes(b"in the bucket")
    assert store.objects.get_bytes(oid) == b"in the bucket"
