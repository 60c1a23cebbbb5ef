"""runlock.yaml: the DAG, and each mistake named at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from runlock.errors import InvalidInput
from runlock.pipeline import load
from runlock.pipeline.spec import SpecError


def spec(tmp_path: Path, text: str, files: tuple[str, ...] = ("a.py",)):  # noqa: ANN201
    for f in files:
        (tmp_path / f).write_text("x")
    return load(tmp_path, text)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as e:
        spec(tmp_path, text)
    return e.value.message


def test_stages_are_ordered_by_their_deps_and_params_default_to_params_yaml(tmp_path: Path) -> None:
    p = spec(tmp_path, """
stages:
  b:
    cmd: python a.py
    deps: [out/a.txt]
    outs: [b.txt]
  a:
    cmd: python a.py
    deps: [a.py, ds:raw@v1]
    params: [train.lr, conf/x.json:k.v]
    outs: [out]
""")
    assert p.order() == ["a", "b"]
    assert p.upstream == {"a": (), "b": ("a",)}         # a file inside an out folder depends on its stage
    assert [x.text for x in p.stages["a"].params] == ["params.yaml:train.lr", "conf/x.json:k.v"]
    assert p.closure(["a"]) == ["a"] and p.closure(["b"]) == ["a", "b"]


def test_a_cycle_is_named_with_its_stages(tmp_path: Path) -> None:
    msg = error(tmp_path, """stages:
  a:
    cmd: x
    deps: [b.txt]
    outs: [a.txt]
  b:
    cmd: x
    deps: [a.txt]
    outs: [b.txt]
""")
    assert "cycle" in msg and ("a -> b -> a" in msg or "b -> a -> b" in msg)
    assert msg.startswith("runlock.yaml:")


def test_a_missing_dep_is_placed_at_its_line_and_column(tmp_path: Path) -> None:
    msg = error(tmp_path, """stages:
  a:
    cmd: x
    deps: [a.py, nowhere.csv]
""")
    assert msg.startswith("runlock.yaml:4:18:") and "nowhere.csv" in msg


def test_two_stages_with_one_out(tmp_path: Path) -> None:
    msg = error(tmp_path, """stages:
  a:
    cmd: x
    outs: [data]
  b:
    cmd: y
    outs:
      - data/part.csv
""")
    assert msg.startswith("runlock.yaml:8:9:") and "stage 'a'" in msg


def test_unknown_keys_are_placed(tmp_path: Path) -> None:
    msg = error(tmp_path, "stages:\n  a:\n    cmd: x\n    dependencies: [a.py]\n")
    assert msg.startswith("runlock.yaml:4:5:") and "dependencies" in msg
    assert error(tmp_path, "stage:\n  a: {cmd: x}\n").startswith("runlock.yaml:1:1: unknown key 'stage'")


@pytest.mark.parametrize("text, where", [
    ("stages:\n  a:\n    deps: [a.py]\n", "runlock.yaml:2:3:"),                    # no cmd
    ("stages:\n  a:\n    cmd: x\n    seed: -1\n", "runlock.yaml:4:11:"),
    ("stages:\n  a:\n    cmd: x\n    outs: [../up.txt]\n", "runlock.yaml:4:12:"),
    ("stages:\n  a:\n    cmd: x\n    outs: [.runlock/x]\n", "runlock.yaml:4:12:"),
    ("stages:\n  a:\n    cmd: x\n    params: [params.yaml:]\n", "runlock.yaml:4:14:"),
    ("stages:\n  a: [x\n", "runlock.yaml:"),                                          # not YAML
])
def test_other_mistakes_are_placed(tmp_path: Path, text: str, where: str) -> None:
    assert error(tmp_path, text).startswith(where)


def test_no_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="No runlock.yaml"):
        load(tmp_path)
