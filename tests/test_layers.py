"""The import graph is one-way: a lower layer never imports a higher one (DESIGN.md, Layers)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "runlock"

# module path prefix -> layer (most specific prefix wins)
LAYERS = {
    "errors": 1, "hashing": 1, "canonical": 1, "paths": 1,
    "store": 2,
    "": 3,                      # every domain module by default
    "workspace": 4, "api": 4,   # the surfaces' opening of a store, and the Python API that uses it
    "integrations": 4, "demo": 4,
    "cli": 5, "server": 5, "ui": 5,
}


def layer_of(module: str) -> int:
    rel = module.removeprefix("runlock").lstrip(".")
    best = max((p for p in LAYERS if rel == p or rel.startswith(p + ".") or p == ""), key=len)
    return LAYERS[best]


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("runlock")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runlock"):
            out.append(node.module)
    return out


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_goes_up_a_layer(path: Path) -> None:
    me = module_name(path)
    if me == "runlock":
        return  # the package facade re-exports the public API from every layer
    up = [m for m in imports(path) if layer_of(m) > layer_of(me)]
    assert not up, f"{me} (layer {layer_of(me)}) imports higher layers: {up}"


# -- import-linter: the contracts in pyproject.toml [tool.importlinter] ---------------------------
ROOT = SRC.parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=src, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept() -> None:
    """Layers; domain modules never open a store (no workspace, no api); no package cycles."""
    done = lint_imports(SRC.parent)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("refs.py", "import runlock.workspace", "Domain modules take a store"),
    ("store/objects.py", "import runlock.tracking.records", "Layers"),
    ("tracking/records.py", "import runlock.verify.rerun", "No cycles"),
])
def test_a_broken_contract_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """The check is not vacuous: one import that breaks a contract, in a copy of the package, fails it."""
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy / "runlock", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "runlock" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = lint_imports(copy)
    assert done.returncode != 0
    broken = done.stdout[done.stdout.index("Broken contracts"):]
    assert contract in broken, done.stdout[-3000:]

