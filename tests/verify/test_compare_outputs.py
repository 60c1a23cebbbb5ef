"""compare says which file and why (issue 13): the files of a folder whose bytes differ, the first
differing line of a text file, the tensors of a weights file with their largest differences
(within tolerance: ``tolerance``); series aligned by step; "nothing recorded differs" when the
locks are identical; "nothing to compare" for two runs without outputs; an empty reference file
is an error."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (imported before any run: every lock here sees the same torch knobs)
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.verify import compare, verify_reference


def safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    """A safetensors file written by hand (F32 only), as the format specifies it."""
    header, body, offset = {}, b"", 0
    for name, arr in sorted(tensors.items()):
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        body += raw
        offset += len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@pytest.fixture
def make(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``make(series, files=..., steps=...)``: a finished run with one folder artifact ``adapter``."""
    monkeypatch.chdir(tmp_path)   # outside any git repository: every lock has the same code section
    count = iter(range(1000))

    def run(series: dict[str, list[float]] | None = None, *, files: dict[str, bytes] | None = None,
            steps: list[int] | None = None) -> str:
        with runlock.start_run(project="c", store=store, config={"lr": 0.1}, seed=1, argv=["train.py"]) as r:
            for key, values in (series or {}).items():
                for step, value in zip(steps or range(len(values)), values):
                    r.log({key: value}, step=step)
            if files is not None:
                folder = tmp_path / f"adapter-{next(count)}"
                folder.mkdir()
                for name, data in files.items():
                    (folder / name).write_bytes(data)
                r.log_artifact(folder, name="adapter", kind="model")
        return r.id

    return run


W = {"lora_A": np.arange(6, dtype=np.float32).reshape(2, 3), "lora_B": np.ones((3, 2), dtype=np.float32)}
CONFIG = b'{\n  "base_model_name_or_path": "models/base",\n  "r": 8\n}\n'


def test_a_folder_artifact_names_the_file_and_the_first_differing_line(store: Store, make: Callable) -> None:
    a = make({"loss": [1.0, 0.5]}, files={"adapter_config.json": CONFIG, "weights.safetensors": safetensors(W)})
    moved = CONFIG.replace(b'"models/base"', b'"/tmp/runlock-rerun-x/inputs/base"')
    b = make({"loss": [1.0, 0.5]}, files={"adapter_config.json": moved, "weights.safetensors": safetensors(W),
                                         "README.md": b"card\n"})
    found = compare(store, a, b)
    art = next(o for o in found.outputs if o.name == "artifact:adapter")
    assert art.tier == "different"
    files = {f["path"]: f for f in art.detail["files"]}
    assert set(files) == {"README.md", "adapter_config.json"}        # the weights are byte-identical
    assert files["README.md"]["change"] == "only in b"
    assert files["adapter_config.json"] == {"path": "adapter_config.json", "change": "differs", "kind": "text",
                                            "line": 2, "a": '  "base_model_name_or_path": "models/base",',
                                            "b": '  "base_model_name_or_path": "/tmp/runlock-rerun-x/inputs/base",'}
    assert found.tier == "tolerance"          # the curves agree; the bytes of a text file do not
    assert found.first_divergence == {"artifact": "adapter", "a": art.a, "b": art.b, "file": "README.md"}


def test_weights_within_tolerance_are_tolerance_and_beyond_are_different(store: Store, make: Callable) -> None:
    a = make({"loss": [1.0]}, files={"w.safetensors": safetensors(W)})
    near = make({"loss": [1.0]}, files={"w.safetensors": safetensors({**W, "lora_B": W["lora_B"] * (1 + 1e-7)})})
    far = make({"loss": [1.0]}, files={"w.safetensors": safetensors({**W, "lora_A": W["lora_A"] + 0.5})})
    close = compare(store, a, near)
    art = next(o for o in close.outputs if o.name == "artifact:adapter")
    (f,) = art.detail["files"]
    assert (art.tier, close.tier, f["kind"], f["within_tolerance"]) == ("tolerance", "tolerance", "tensors", True)
    assert [t["name"] for t in f["tensors"]] == ["lora_B"]
    assert 0 < f["tensors"][0]["max_abs"] < 1e-6 and 0 < f["tensors"][0]["max_rel"] < 1e-6
    apart = compare(store, a, far)
    art = next(o for o in apart.outputs if o.name == "artifact:adapter")
    (f,) = art.detail["files"]
    assert (art.tier, apart.tier, f["within_tolerance"]) == ("different", "different", False)
    assert f["tensors"] == [{"name": "lora_A", "change": "values", "max_abs": 0.5,
                             "max_rel": 1.0, "within_tolerance": False}]   # 0.5 against b = 0.5


def test_torch_files_are_compared_by_tensor(store: Store, make: Callable, tmp_path: Path) -> None:
    def saved(state: dict) -> bytes:
        torch.save(state, tmp_path / "opt.pt")
        return (tmp_path / "opt.pt").read_bytes()

    a = make(files={"optimizer.pt": saved({"state": {"exp_avg": torch.zeros(4)}, "step": 3})})
    b = make(files={"optimizer.pt": saved({"state": {"exp_avg": torch.full((4,), 0.25)}, "step": 3})})
    (f,) = next(o for o in compare(store, a, b).outputs if o.name == "artifact:adapter").detail["files"]
    assert f["kind"] == "tensors" and [(t["name"], t["max_abs"]) for t in f["tensors"]] == [("state.exp_avg", 0.25)]


def test_series_are_aligned_by_step_never_by_position(store: Store, make: Callable) -> None:
    whole = make({"loss": [0.9, 0.7, 0.5, 0.3]}, steps=[1, 2, 3, 4])
    later = make({"loss": [0.5, 0.3]}, steps=[3, 4])      # a run that has no steps 1 and 2
    found = compare(store, whole, later)
    assert found.first_divergence == {"metric": "loss", "step": 1, "a": 0.9, "b": None}
    assert found.tier == "different"
    same_values = make({"loss": [0.9, 0.7, 0.5, 0.3]}, steps=[2, 4, 6, 8])
    assert compare(store, whole, same_values).first_divergence == {"metric": "loss", "step": 1, "a": 0.9, "b": None}


def test_identical_locks_with_different_results_say_nothing_recorded_differs(store: Store, make: Callable) -> None:
    a = make({"loss": [1.0, 0.5, 0.25]})
    b = make({"loss": [1.0, 0.5, 0.26]})
    found = compare(store, a, b)
    assert found.tier == "different"
    (d,) = found.diagnosis
    assert d["kind"] == "unrecorded" and d["message"].startswith(
        "nothing recorded differs: an unrecorded source of randomness; run `runlock probe`")
    assert "step 2" in d["message"]
    out = CliRunner().invoke(app, ["--store", str(store.root), "compare", a, b])
    text = " ".join(out.stdout.split())
    assert out.exit_code == 0 and "nothing recorded differs" in text and "step 2" in text
    assert compare(store, a, make({"loss": [1.0, 0.5, 0.25]})).diagnosis == []     # bitwise: nothing to explain


def test_two_runs_without_outputs_have_nothing_to_compare(store: Store, make: Callable) -> None:
    a, b = make(), make()
    found = compare(store, a, b)
    assert (found.tier, found.outputs, found.diagnosis) == ("nothing", [], [])
    out = CliRunner().invoke(app, ["--store", str(store.root), "compare", a, b, "--require", "different"])
    assert out.exit_code == 1 and "nothing to compare" in " ".join(out.stdout.split())


def test_an_empty_reference_file_is_an_error(store: Store, make: Callable, tmp_path: Path) -> None:
    run = make({"loss": [1.0]})
    outputs = tmp_path / "outputs.json"
    outputs.write_text('{"q1": 1.0}')
    for text in ("", "  \n", "{}", "[]"):
        (tmp_path / "ref.json").write_text(text)
        with pytest.raises(InvalidInput):
            verify_reference(store, run, tmp_path / "ref.json", outputs=outputs)
    out = CliRunner().invoke(app, ["--store", str(store.root), "verify", run, "--reference",
                                   str(tmp_path / "ref.json"), "--outputs", str(outputs)])
    assert out.exit_code == 2 and "Traceback" not in out.output
