"""Tabular files (CSV, TSV, JSONL, Parquet) as records with stable record ids. Pure: no store.

A record's **canonical form** is a JSON object (canonical JSON, see ``runlock.canonical``):

* CSV / TSV: ``{column: raw string}`` for every header column (CSV carries no types).
* JSONL: the line's JSON object as parsed.
* Parquet: each value as ``to_pylist`` gives it, made JSON-safe by ``jsonable``.

A record's **id** is the value of the id column given by the user, as a string (strings as they
are, other values as their canonical JSON), or else ``sha256:<hex>`` of the canonical form; the
k-th identical copy of a record (k >= 2) gets ``sha256:<hex>#k``. These rules are part of the
snapshot format and never change within ``runlock.snapshot/1``.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from runlock import canonical
from runlock.errors import InvalidInput

RECORD_ID = "_record_id"
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
_TABULAR_HINT = "Install the tabular extra: pip install 'runlock[tabular]'."


@dataclass
class Parsed:
    """One tabular file read into records."""

    format: str
    columns: list[dict]                 # [{"name": ..., "type": ...}] in file order
    ids: list[str]
    hashes: list[str]                   # sha256 hex of each record's canonical form
    rows: list[dict] = field(repr=False)  # records as JSON-safe dicts (their canonical forms)
    arrow: Any = field(default=None, repr=False)  # the typed table as read (Parquet only)

    @property
    def record_count(self) -> int:
        return len(self.ids)


def format_of(path: str | PurePath) -> str | None:
    """The tabular format a file name implies, or None."""
    return FORMATS.get(PurePath(path).suffix.lower())


def parse(data: bytes, fmt: str, *, id_column: str | None = None, source: str = "data") -> Parsed:
    """Read ``data`` (the whole file) as ``fmt``; errors name ``source`` and the line."""
    readers = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl,
               "parquet": _read_parquet}
    if fmt not in readers:
        raise InvalidInput(f"Unknown tabular format {fmt!r}; expected csv, tsv, jsonl or parquet.")
    columns, rows, where, arrow = readers[fmt](data, fmt, source)
    if any(c["name"] == RECORD_ID for c in columns):
        raise InvalidInput(f"{source}: the column name {RECORD_ID!r} is reserved for record ids.",
                           hint="Rename that column and snapshot again.")
    hashes = [record_hash(r) for r in rows]
    ids = _ids_from_column(rows, id_column, where, source) if id_column else _ids_from_hashes(hashes)
    return Parsed(fmt, columns, ids, hashes, rows, arrow)


def record_hash(record: dict) -> str:
    """sha256 hex of a record's canonical form."""
    return hashlib.sha256(canonical.dumps(record)).hexdigest()


def jsonable(value: Any, where: str = "") -> Any:
    """A JSON-safe form of a value read from Parquet / Arrow (documented in docs/data.md)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return {"$timedelta_us": value // _dt.timedelta(microseconds=1)}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return canonical.normalize(value, where)  # numpy scalars; anything else is an error there


def to_arrow(parsed: Parsed):  # -> pyarrow.Table
    """The records as a table: ``_record_id`` (string) first, then the columns in file order."""
    pa = _pyarrow()
    ids = pa.array(parsed.ids, pa.string())
    if parsed.arrow is not None:
        return parsed.arrow.add_column(0, RECORD_ID, ids)
    arrays = [ids]
    for col in parsed.columns:
        arrays.append(_column_array(pa, col, [r.get(col["name"]) for r in parsed.rows]))
    return pa.table(arrays, names=[RECORD_ID] + [c["name"] for c in parsed.columns])


# -- readers: each returns (columns, rows, where, arrow); where(i) names record i for a person --
def _read_delimited(data: bytes, fmt: str, source: str):
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t",
                        strict=True)
    lines: list[int] = []
    rows: list[dict] = []
    try:
        header = next(reader, None)
        if not header:
            raise InvalidInput(f"{source}: line 1: no header row; a {fmt.upper()} file needs one.")
        _check_header(header, source)
        for row in reader:
            if not row:
                continue  # blank line
            if len(row) != len(header):
                raise InvalidInput(f"{source}: line {reader.line_num}: {len(row)} fields, but the header "
                                   f"has {len(header)}.", hint="Fix that line and snapshot again.")
            rows.append(dict(zip(header, row)))
            lines.append(reader.line_num)
    except csv.Error as e:
        raise InvalidInput(f"{source}: line {reader.line_num}: malformed {fmt.upper()}: {e}.",
                           hint="Fix that line and snapshot again.") from None
    columns = [{"name": h, "type": "string"} for h in header]
    return columns, rows, lambda i: f"line {lines[i]}", None


def _read_jsonl(data: bytes, fmt: str, source: str):
    rows: list[dict] = []
    lines: list[int] = []
    for n, line in enumerate(_decode(data, source).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = canonical.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            rows.append(canonical.normalize(obj))
        except (ValueError, InvalidInput) as e:
            detail = e.message if isinstance(e, InvalidInput) else str(e)
            raise InvalidInput(f"{source}: line {n}: malformed JSONL: {detail.rstrip('.')}.",
                               hint="Fix that line and snapshot again.") from None
        lines.append(n)
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    columns = [{"name": k, "type": _json_type([r.get(k) for r in rows])} for k in names]
    return columns, rows, lambda i: f"line {lines[i]}", None


def _read_parquet(data: bytes, fmt: str, source: str):
    pa = _pyarrow()
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as e:
        raise InvalidInput(f"{source}: not a readable Parquet file: {e}.") from None
    columns = [{"name": f.name, "type": _arrow_type_name(f.type)} for f in table.schema]
    _check_header([c["name"] for c in columns], source)
    rows = [jsonable(r) for r in table.to_pylist()]
    return columns, rows, lambda i: f"row {i + 1}", table


# -- record ids ---------------------------------------------------------------------------------
def _ids_from_hashes(hashes: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for h in hashes:
        k = seen[h] = seen.get(h, 0) + 1
        ids.append(f"sha256:{h}" if k == 1 else f"sha256:{h}#{k}")
    return ids


def _ids_from_column(rows: list[dict], column: str, where, source: str) -> list[str]:
    ids: list[str] = []
    first: dict[str, int] = {}
    for i, r in enumerate(rows):
        value = r.get(column)
        if value is None:
            raise InvalidInput(f"{source}: {where(i)}: the id column {column!r} is missing or empty.",
                               hint="Every record needs an id, or leave out --id-column to use content ids.")
        rid = value if isinstance(value, str) else canonical.dumps(value).decode("utf-8")
        if rid in first:
            raise InvalidInput(f"{source}: {where(i)}: id {rid!r} repeats the id of {where(first[rid])}.",
                               hint="Ids in the id column must be unique.")
        first[rid] = i
        ids.append(rid)
    return ids


# -- helpers -------------------------------------------------------------------------------------
def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InvalidInput(f"{source}: line {line}: not valid UTF-8 ({e.reason}).",
                           hint="Re-encode the file as UTF-8.") from None


def _check_header(names: list[str], source: str) -> None:
    seen = set()
    for n in names:
        if n == "" or n in seen:
            problem = "an empty column name" if n == "" else f"the column name {n!r} twice"
            raise InvalidInput(f"{source}: line 1: the header has {problem}.",
                               hint="Give every column a unique name.")
        seen.add(n)


def _json_type(values: list) -> str:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "null"
    if kinds == {bool}:
        return "bool"
    if kinds == {int} and all(-(2**63) <= v < 2**63 for v in values if v is not None):
        return "int64"
    if kinds <= {int, float}:
        return "double"
    if kinds == {str}:
        return "string"
    return "json"


def _arrow_type_name(t) -> str:
    name = str(t)
    for large, plain in (("large_string", "string"), ("large_binary", "binary"), ("large_list", "list")):
        name = name.replace(large, plain)
    return name


def _column_array(pa, col: dict, values: list):
    kind = col["type"]
    if kind == "json":
        return pa.array([None if v is None else canonical.dumps(v).decode("utf-8") for v in values],
                        pa.string())
    simple = {"string": pa.string(), "int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
              "null": pa.null()}
    if kind in simple:
        return pa.array(values, simple[kind])
    raise InvalidInput(f"Column {col['name']!r} has unknown type {kind!r} in this manifest.")


def _pyarrow():
    try:
        import pyarrow
    except ModuleNotFoundError:
        raise InvalidInput("Reading tables needs pyarrow, which is not installed.", hint=_TABULAR_HINT) from None
    return pyarrow
