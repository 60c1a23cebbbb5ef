"""`environment.capture` reads the installed distributions once per installation, not at every
start_run: the same answer from a per-process cache keyed on sys.path and its folders' times."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runlock import environment


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each full read of the installed distributions' metadata (importing torch, which the first
    capture does, reads some metadata of its own: not counted)."""
    calls: list[int] = []
    real = environment._read_installed

    def counted():  # noqa: ANN202
        calls.append(1)
        return real()

    monkeypatch.setattr(environment, "_read_installed", counted)
    environment._read.clear()
    environment.torch_info()
    return calls


def test_repeated_captures_read_the_metadata_once_and_agree(reads: list[int]) -> None:
    first = environment.capture()
    again = [environment.capture() for _ in range(3)]
    assert len(reads) == 1 and all(a == first for a in again)
    again[0]["packages"]["not-installed"] = "1"          # a caller's change never leaks into the cache
    assert environment.capture() == first and environment.distributions() == first["packages"]


def test_a_change_to_sys_path_or_an_install_reads_again(reads: list[int], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    environment.capture()
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    environment.capture()
    assert len(reads) == 2
    info = tmp_path / "extra_pkg-1.0.dist-info"           # "pip install" into a folder on sys.path
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-pkg\nVersion: 1.0\n")
    assert environment.capture()["packages"]["extra-pkg"] == "1.0" and len(reads) == 3


def test_a_script_writing_beside_itself_does_not_read_again(reads: list[int], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The script's folder is on sys.path and its outputs change its modification time; that alone
    is not an install, so the metadata is not read again."""
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    environment.capture()
    for i in range(3):
        (tmp_path / f"checkpoint-{i}.bin").write_bytes(b"x")
        environment.capture()
    assert len(reads) == 1
