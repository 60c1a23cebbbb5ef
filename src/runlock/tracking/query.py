"""Finding runs: ``--where`` filters and ``--sort`` orders, compiled to one SQL query.

A filter is a Python-like expression, parsed with ``ast`` and translated node by node into
SQLAlchemy (never evaluated)::

    config.lr > 1e-4 and summary.eval_f1 >= 0.9
    status == "finished" and not config.optim in ["sgd", "adam"]
    0.1 <= config.lora.dropout < 0.3 or tags.team == "nlp"
    summary["eval/f1"] > 0.8

Names: ``config.<path>``, ``summary.<key>``, ``metrics.<key>`` (the latest value logged, rank 0),
``tags.<key>``, and the run's own fields ``id project name status recipe_id created_by host
started_at ended_at last_step``. A dotted name matches a stored key whose slug is the same: every
character other than letters, digits, ``_`` and ``.`` counts as ``_``, so ``summary.eval_f1``
matches ``eval/f1`` (and ``eval-f1``). A quoted part (``summary["eval/f1"]``) matches exactly.
Literals: numbers, strings, ``True``/``False``, ``None``, and lists of those after ``in``.
A comparison with a key that a run does not have is false for that run (so ``not`` of it is true);
a number never equals a string. Each comparison becomes ``runs.id IN (SELECT run_id FROM run_fields
WHERE section, slug and value match)``, which the database evaluates once over an index.

Sorting: comma-separated names, ``-`` in front for descending; runs without the value come last.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import runs as runs_t
from runlock.tracking import fields as fieldidx
from runlock.tracking import records
from runlock.tracking.fields import run_fields
from runlock.tracking.records import RunRecord, from_row

RUN_COLUMNS = ("id", "project", "name", "status", "recipe_id", "created_by", "host", "started_at",
               "ended_at", "last_step")
SECTION_ALIASES = {"config": "config", "summary": "summary", "metrics": "metrics", "metric": "metrics",
                   "tags": "tags"}
_OPS = {ast.Eq: "__eq__", ast.NotEq: "__ne__", ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__",
        ast.GtE: "__ge__"}
_FLIP = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}
_HELP = "See `runlock runs list --help` for the filter syntax."


@dataclass(frozen=True)
class Name:
    """A field a filter or sort names: a run column, or (section, key, exact)."""

    section: str | None
    key: str
    exact: bool = False

    @property
    def label(self) -> str:
        return self.key if self.section is None else f"{self.section}.{self.key}"


@dataclass(frozen=True)
class FoundRun:
    record: RunRecord
    fields: dict = field(default_factory=dict)   # values of the fields the query named

    def to_dict(self) -> dict:
        return {**self.record.to_dict(), "fields": self.fields}


# -- parsing ------------------------------------------------------------------------------------
def parse_name(node: ast.AST, text: str) -> Name:
    parts: list[tuple[str, bool]] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append((node.attr, False))
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            parts.append((node.slice.value, True))
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append((node.id, False))
            break
        else:
            raise InvalidInput(f"{ast.unparse(node)!r} in {text!r} is not a field name.", hint=_HELP)
    parts.reverse()
    head = parts[0][0]
    if len(parts) == 1:
        if head not in RUN_COLUMNS:
            raise InvalidInput(f"Unknown field {head!r} in {text!r}; use config.X, summary.X, metrics.X, "
                               f"tags.X or one of {', '.join(RUN_COLUMNS)}.", hint=_HELP)
        return Name(None, head)
    if head not in SECTION_ALIASES:
        raise InvalidInput(f"Unknown section {head!r} in {text!r}; use config, summary, metrics or tags.",
                           hint=_HELP)
    rest = parts[1:]
    return Name(SECTION_ALIASES[head], ".".join(p for p, _ in rest), exact=any(q for _, q in rest))


def _literal(node: ast.AST, text: str) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, text) for e in node.elts]
    raise InvalidInput(f"{ast.unparse(node)!r} in {text!r} is not a literal (a number, a string, "
                       "True, False, None or a list of them).", hint=_HELP)


def _is_name(node: ast.AST) -> bool:
    return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript))


def parse_where(text: str) -> ast.AST:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise InvalidInput(f"Cannot parse filter {text!r}: {e.msg}.",
                           hint="Quote keys that are not identifiers: summary[\"eval/f1\"] > 0.8.") from None
    return tree.body


# -- translation --------------------------------------------------------------------------------
def compile_where(text: str) -> tuple[ColumnElement, list[Name]]:
    """The SQL condition for a filter, and the names it uses."""
    names: list[Name] = []
    return _node(parse_where(text), text, names), names


def _node(node: ast.AST, text: str, names: list[Name]) -> ColumnElement:
    if isinstance(node, ast.BoolOp):
        parts = [_node(v, text, names) for v in node.values]
        return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return sa.not_(_node(node.operand, text, names))
    if isinstance(node, ast.Compare):
        conds, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            conds.append(_compare(left, op, right, text, names))
            left = right
        return sa.and_(*conds)
    raise InvalidInput(f"{ast.unparse(node)!r} in {text!r} is not a comparison; write e.g. "
                       "config.lr > 1e-4, joined with and / or / not.", hint=_HELP)


def _compare(left: ast.AST, op: ast.cmpop, right: ast.AST, text: str, names: list[Name]) -> ColumnElement:
    if not _is_name(left) and _is_name(right) and type(op) in _FLIP:
        left, op, right = right, _FLIP[type(op)](), left
    if not _is_name(left):
        raise InvalidInput(f"{ast.unparse(left)!r} in {text!r}: one side of each comparison must be a "
                           "field name.", hint=_HELP)
    name = parse_name(left, text)
    names.append(name)
    value = _literal(right, text)
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(value, list):
            raise InvalidInput(f"`in` needs a list in {text!r}, e.g. config.optim in [\"adam\", \"sgd\"].")
        cond = sa.or_(sa.false(), *(_leaf(name, ast.Eq(), v, text) for v in value))
        return sa.not_(cond) if isinstance(op, ast.NotIn) else cond
    if type(op) not in _OPS:
        raise InvalidInput(f"Operator {type(op).__name__} is not supported in {text!r}; use == != < <= > >= "
                           "in, not in.", hint=_HELP)
    return _leaf(name, op, value, text)


def _leaf(name: Name, op: ast.cmpop, value: object, text: str) -> ColumnElement:
    if isinstance(value, list):
        raise InvalidInput(f"A list can only follow `in` in {text!r}.", hint=_HELP)
    if name.section is None:
        col = runs_t.c[name.key]
        if value is None:
            return col.is_(None) if isinstance(op, ast.Eq) else col.is_not(None)
        return sa.and_(col.is_not(None), getattr(col, _OPS[type(op)])(value))
    f = run_fields.alias()
    where = [f.c.section == name.section, _key_match(f, name)]
    if value is None:
        if type(op) not in (ast.Eq, ast.NotEq):
            raise InvalidInput(f"None can only be compared with == or != in {text!r}.", hint=_HELP)
        where.append(f.c.kind == "null" if isinstance(op, ast.Eq) else f.c.kind != "null")
    elif isinstance(value, bool):
        where += [f.c.kind == "bool", getattr(f.c.num, _OPS[type(op)])(float(value))]
    elif isinstance(value, (int, float)):
        where += [f.c.kind == "num", getattr(f.c.num, _OPS[type(op)])(float(value))]
    else:
        where += [f.c.kind == "str", getattr(f.c.text, _OPS[type(op)])(value)]
    return runs_t.c.id.in_(sa.select(f.c.run_id).where(*where))   # evaluated once, not per run


def _key_match(f: sa.Table | sa.Alias, name: Name) -> ColumnElement:
    return f.c.key == name.key if name.exact else f.c.slug == fieldidx.slug(name.key)


def compile_sort(text: str) -> tuple[list[ColumnElement], list[Name]]:
    keys, names = sort_keys(text)
    return [(col.desc() if desc else col.asc()).nulls_last() for col, desc in keys], names


def sort_keys(text: str) -> tuple[list[tuple[ColumnElement, bool]], list[Name]]:
    """The expressions a sort orders by, each with ``True`` for descending (nulls always last),
    and the names it uses: what ``compile_sort`` orders by, and what a keyset page compares."""
    keys, names = [], []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        desc = part.startswith("-")
        try:
            node = ast.parse(part.lstrip("+-").strip(), mode="eval").body
        except SyntaxError:
            raise InvalidInput(f"Cannot parse sort key {part!r}.", hint="Write e.g. -summary.eval_f1,started_at.") \
                from None
        name = parse_name(node, text)
        names.append(name)
        keys += [(col, desc) for col in _sort_columns(name)]
    return keys, names


def _sort_columns(name: Name) -> list[ColumnElement]:
    if name.section is None:
        return [runs_t.c[name.key]]
    out = []
    for column in (run_fields.c.num, run_fields.c.text):
        f = run_fields.alias()
        out.append(sa.select(f.c[column.name]).where(
            f.c.run_id == runs_t.c.id, f.c.section == name.section, _key_match(f, name)).limit(1).scalar_subquery())
    return out


# -- the query ----------------------------------------------------------------------------------
def find_runs(store: Store, *, project: str | None = None, status: str | None = None,
              where: str | None = None, sort: str | None = None, limit: int | None = None,
              deleted: bool = False) -> list[FoundRun]:
    """Runs matching every condition, sorted (default: newest first), with the named fields.
    Deleted runs are left out, or with ``deleted=True`` are the only ones looked at."""
    q = records.select_runs(project, status, deleted=deleted)
    names: list[Name] = []
    if where and where.strip():
        cond, used = compile_where(where)
        q, names = q.where(cond), names + used
    order: list[ColumnElement] = []
    if sort and sort.strip():
        order, used = compile_sort(sort)
        names += used
    q = q.order_by(*order, runs_t.c.started_at.desc(), runs_t.c.id.desc())
    if limit:
        q = q.limit(limit)
    with store.db.read() as conn:
        rows = conn.execute(q).all()
        named = sa.or_(sa.false(), *(sa.and_(run_fields.c.section == n.section, _key_match(run_fields, n))
                         for n in names if n.section is not None))
        values = fieldidx.for_runs(conn, [r.id for r in rows], named) if names else {}
    found = [from_row(r) for r in rows]
    return [FoundRun(rec, _named(rec, values.get(rec.id, {}), names)) for rec in found]


def _named(rec: RunRecord, values: dict, names: list[Name]) -> dict:
    out: dict[str, object] = {}
    for n in names:
        if n.section is None:
            out[n.label] = getattr(rec, n.key)
            continue
        prefix = n.section + "."
        for label, v in values.items():
            key = label[len(prefix):] if label.startswith(prefix) else None
            if key is not None and (key == n.key if n.exact else fieldidx.slug(key) == fieldidx.slug(n.key)):
                out[label] = v
    return out


def frame(store: Store, *, project: str | None = None, status: str | None = None, where: str | None = None,
          sort: str | None = None, limit: int | None = None):  # noqa: ANN201  (a pandas DataFrame)
    """The matching runs as a pandas DataFrame: one row per run; columns ``id, project, name,
    status, started_at, ended_at, last_step, recipe_id``, then ``config.*``, ``summary.*``,
    ``metrics.*`` (latest values) and ``tags.*``."""
    found = find_runs(store, project=project, status=status, where=where, sort=sort, limit=limit)
    return frame_of([FoundRun(f.record, v) for f, v in zip(found, all_fields(store, [f.record for f in found]))])


def all_fields(store: Store, recs: list[RunRecord]) -> list[dict]:
    """Every field of each run (``config.*``, ``summary.*``, ``metrics.*``, ``tags.*``), in order."""
    with store.db.read() as conn:
        values = fieldidx.for_runs(conn, [r.id for r in recs])
    return [values[r.id] for r in recs]


def frame_of(found: list[FoundRun]):  # noqa: ANN201  (a pandas DataFrame)
    """``frame`` of runs found already, each with every field (a team server sends them so)."""
    try:
        import pandas as pd
    except ModuleNotFoundError:
        raise InvalidInput("runlock.runs() returns a pandas DataFrame, and pandas is not installed.",
                           hint="Install it with `pip install 'runlock[tabular]'`.") from None
    base = ("id", "project", "name", "status", "started_at", "ended_at", "last_step", "recipe_id")
    rows = [{**{c: getattr(f.record, c) for c in base}, **f.fields} for f in found]
    extra = sorted({k for r in rows for k in r} - set(base), key=lambda k: (_section_rank(k), k))
    return pd.DataFrame(rows, columns=[*base, *extra])


def _section_rank(label: str) -> int:
    return ("config", "summary", "metrics", "tags").index(label.split(".", 1)[0])
