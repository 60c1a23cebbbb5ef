"""Derived snapshots: a preprocessing function applied to a snapshot, with its recipe recorded.

A **recipe** pins everything the output depends on (canonical JSON, ``runlock.recipe/2``)::

    {"format": "runlock.recipe/2", "parent": "sha256:…",
     "function": "my_pkg.prep.clean", "source": "sha256:…"   (of the function's source text),
     "defaults": [...], "closure": {...}, "globals": {...},  (values the code reads; JSON only)
     "params": {...}}

It holds nothing about the runlock that applied it, so a derived snapshot keeps its id across
upgrades (the version is in the ``snapshot.create`` audit entry, as for splits); a
``runlock.recipe/1`` recipe held the version, so a recipe recorded by an older runlock is applied
again once after an upgrade, giving the id it keeps from then on.

Its hash finds an earlier result: applying the same recipe to the same parent again returns the
existing snapshot without calling the function. An input that cannot be hashed (a function with
no readable source, a default, closure variable or module-level value that is not plain JSON)
is an error, never a random fingerprint: pass such values through ``params`` instead.

What a function receives depends on the parent: a table snapshot gives ``fn(table, **params)``
(a ``pyarrow.Table`` of the data columns) and expects a ``pyarrow.Table``, a ``pandas.DataFrame``
or a list of dicts back, stored as JSONL; a files snapshot gives ``fn(src, dst, **params)``
(a checked-out copy of the parent and an empty folder to fill).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runlock import canonical
from runlock.data.checkout import checkout
from runlock.data.snapshot import (Snapshot, create_snapshot, load_snapshot, read_table, safe_name, save, snapshots)
from runlock.data.tabular import RECORD_ID, jsonable
from runlock.errors import InvalidInput
from runlock.store import Store

RECIPE_FORMAT = "runlock.recipe/2"   # /1 held the runlock version, which moved the id on upgrade
_CODE_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type,
               types.MethodType, classmethod, staticmethod)


def derive(store: Store, parent: str | Snapshot, fn: Callable, params: dict | None = None,
           name: str | None = None) -> Snapshot:
    """Like ``transform``, on an open store."""
    base = load_snapshot(store, parent)
    recipe = recipe_for(base.id, fn, params or {})
    name = name or _default_name(base, fn)
    with store.db.read() as conn:
        done = conn.execute(sa.select(snapshots.c.id).where(
            snapshots.c.recipe_id == canonical.digest(recipe)).limit(1)).scalar()
    if done is not None:
        return save(store, load_snapshot(store, done).manifest, name)
    with tempfile.TemporaryDirectory(prefix="runlock-derive-") as tmp:
        out, id_column = apply(store, base, fn, params or {}, Path(tmp))
        return create_snapshot(store, out, name, id_column=id_column, use_cache=False,
                               parent=base.id, recipe=recipe)


def apply(view: Any, base: Snapshot, fn: Callable, params: dict, tmp: Path) -> tuple[Path, str | None]:
    """Call ``fn`` on snapshot ``base`` (read through ``view``: a store, or a team server's
    objects); the output written under ``tmp``, and the id column it kept."""
    out = _apply_table(view, base, fn, params, tmp) if base.kind == "table" else _apply_files(view, base, fn, params, tmp)
    return out, _kept_id_column(base, out)


def default_name(base: Snapshot, fn: Callable) -> str:
    """The dataset name a derived snapshot gets when none is given."""
    return _default_name(base, fn)


def recipe_for(parent_id: str, fn: Callable, params: dict) -> dict:
    """The canonical recipe of applying ``fn`` with ``params`` to snapshot ``parent_id``."""
    if not inspect.isfunction(fn) and not inspect.ismethod(fn):
        raise InvalidInput(f"{fn!r} is not a Python function, so its code cannot be hashed.",
                           hint="Pass a function defined with def in a module.")
    func = inspect.unwrap(fn.__func__ if inspect.ismethod(fn) else fn)
    label = f"{func.__module__}.{func.__qualname__}"
    return {"format": RECIPE_FORMAT, "parent": parent_id, "function": label,
            "source": _source_hash(func, label),
            "defaults": _plain(list(func.__defaults__ or ()), label, "its defaults"),
            "kwdefaults": _plain(dict(func.__kwdefaults__ or {}), label, "its keyword defaults"),
            "closure": _closure(func, label), "globals": _globals(func, label),
            "params": _plain(params, label, "params")}


def _source_hash(func: types.FunctionType, label: str) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        raise InvalidInput(f"The source of {label} cannot be read, so it cannot be hashed.",
                           hint="Define the function in a .py file (not at an interactive prompt).") from None
    return "sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest()


def _closure(func: types.FunctionType, label: str) -> dict:
    cells = dict(zip(func.__code__.co_freevars, func.__closure__ or ()))
    out = {}
    for var, cell in cells.items():
        try:
            value = cell.cell_contents
        except ValueError:
            continue  # an empty cell: the variable is never bound
        out[var] = _plain(value, label, f"the variable {var!r} from its enclosing scope")
    return out


def _globals(func: types.FunctionType, label: str) -> dict:
    """Module-level values the code reads: JSON ones are pinned, code is skipped, others refused."""
    out = {}
    for var in sorted(set(_names(func.__code__))):
        if var not in func.__globals__:
            continue
        value = func.__globals__[var]
        if isinstance(value, _CODE_TYPES):
            continue
        out[var] = _plain(value, label, f"the module-level value {var!r}")
    return out


def _names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_names(const))
    return names


def _plain(value: Any, label: str, what: str) -> Any:
    try:
        return canonical.normalize(value)
    except InvalidInput:
        raise InvalidInput(f"{label} depends on {what}, a {type(value).__name__} that cannot be hashed.",
                           hint="Pass JSON values (str, int, float, bool, None, lists, dicts) in params.") from None


def _apply_table(store: Store, base: Snapshot, fn: Callable, params: dict, tmp: Path) -> Path:
    table = read_table(store, base).drop_columns([RECORD_ID])
    rows = _rows(fn(table, **params), fn)
    stem = Path(base.entries[0]["path"]).stem
    out = tmp / f"{stem}.jsonl"
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(canonical.normalize(jsonable(row)), separators=(",", ":"),
                               ensure_ascii=False, allow_nan=False) + "\n")
    return out


def _apply_files(store: Store, base: Snapshot, fn: Callable, params: dict, tmp: Path) -> Path:
    src, dst = tmp / "input", tmp / "output"
    checkout(store, base, src)
    dst.mkdir()
    fn(src, dst, **params)
    return dst


def _rows(result: Any, fn: Callable) -> list[dict]:
    if hasattr(result, "to_pylist"):
        return result.to_pylist()
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return result.to_dict(orient="records")
    if isinstance(result, list) and all(isinstance(r, dict) for r in result):
        return result
    raise InvalidInput(f"{fn.__qualname__} returned a {type(result).__name__}; a table transform must return "
                       "a pyarrow.Table, a pandas.DataFrame or a list of dicts.")


def _kept_id_column(base: Snapshot, out: Path) -> str | None:
    column = (base.manifest.get("table") or {}).get("id_column")
    if not column or not out.is_file():
        return None
    with open(out, encoding="utf-8") as f:
        first = f.readline()
    return column if first and column in json.loads(first) else None


def _default_name(base: Snapshot, fn: Callable) -> str:
    return safe_name(f"{base.name or 'derived'}.{fn.__name__}")
