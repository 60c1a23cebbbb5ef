"""Human names for content ids: ``ds:NAME@vN``, ``split:NAME@vN``, ``model:NAME@vN``.

A version number is only a name; the content id it points at is the truth. Naming the same
content twice under one name returns the existing version instead of creating a new one.
A reference may also be ``NAMESPACE:NAME`` (the latest version) or a bare content id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock.errors import InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store import Store
from runlock.store.schema import refs, utcnow

NAMESPACES = {"ds": "dataset snapshot", "split": "split", "model": "model"}
MAX_VERSION = 2**63 - 1  # versions are 64-bit integers in the database
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REF_RE = re.compile(r"^(?P<ns>[a-z]+):(?P<name>[^@\s]+)(?:@(?P<tag>[^@\s]+))?$")


@dataclass(frozen=True)
class Ref:
    namespace: str
    name: str
    version: int
    target: str
    created_at: str
    created_by: str
    meta: dict

    @property
    def ref(self) -> str:
        return f"{self.namespace}:{self.name}@v{self.version}"


@dataclass(frozen=True)
class ParsedRef:
    namespace: str
    name: str
    tag: str | None  # "v3", an alias, or None for the latest


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):   # fullmatch: "$" allows a final newline
        raise InvalidInput(
            f"{what.capitalize()} {name!r} is not allowed.",
            hint="Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def parse(text: str, namespace: str | None = None) -> ParsedRef:
    m = _REF_RE.match(text.strip()) if isinstance(text, str) else None
    if not m or m["ns"] not in NAMESPACES or (namespace and m["ns"] != namespace):
        want = f"{namespace}:NAME@vN" if namespace else "ds:NAME@vN, split:NAME@vN or model:NAME@vN"
        raise InvalidInput(f"{text!r} is not a reference; expected {want}.")
    check_name(m["name"])
    return ParsedRef(m["ns"], m["name"], m["tag"])


def assign(conn: Connection, namespace: str, name: str, target: str, *, actor: str,
           meta: dict | None = None) -> tuple[Ref, bool]:
    """Name ``target`` under ``namespace:name``; return (ref, created). Idempotent per target."""
    check_name(name)
    existing = conn.execute(sa.select(refs).where(
        refs.c.namespace == namespace, refs.c.name == name, refs.c.target == target)).first()
    if existing:
        return _ref(existing), False
    last = conn.execute(sa.select(sa.func.max(refs.c.version)).where(
        refs.c.namespace == namespace, refs.c.name == name)).scalar()
    row = {"namespace": namespace, "name": name, "version": (last or 0) + 1, "target": target,
           "created_at": utcnow(), "created_by": actor, "meta": meta or {}}
    conn.execute(refs.insert().values(**row))
    return Ref(**row), True


def resolve(store: Store, text: str, namespace: str | None = None) -> Ref:
    """The version a reference names. ``@vN`` is a version, no tag is the latest."""
    p = parse(text, namespace)
    q = sa.select(refs).where(refs.c.namespace == p.namespace, refs.c.name == p.name)
    if p.tag is None:
        q = q.order_by(refs.c.version.desc()).limit(1)
    elif re.fullmatch(r"v[0-9]+", p.tag):
        version = int(p.tag[1:])
        if version > MAX_VERSION:   # no store holds it, and no database column could
            raise NotFound(NAMESPACES[p.namespace], text,
                           hint=f"List what exists with `runlock {_cli_group(p.namespace)} list`.")
        q = q.where(refs.c.version == version)
    else:
        raise InvalidInput(f"{text!r}: unknown version {p.tag!r}; versions look like @v3.")
    with store.db.read() as conn:
        row = conn.execute(q).first()
    if row is None:
        raise NotFound(NAMESPACES[p.namespace], text,
                       hint=f"List what exists with `runlock {_cli_group(p.namespace)} list`.")
    return _ref(row)


def versions(store: Store, namespace: str, name: str | None = None) -> list[Ref]:
    q = sa.select(refs).where(refs.c.namespace == namespace)
    if name is not None:
        q = q.where(refs.c.name == name)
    with store.db.read() as conn:
        return [_ref(r) for r in conn.execute(q.order_by(refs.c.name, refs.c.version))]


def names_for(store: Store, namespace: str, target: str) -> list[Ref]:
    """Every version, under any name, that points at ``target``."""
    with store.db.read() as conn:
        rows = conn.execute(sa.select(refs).where(refs.c.namespace == namespace, refs.c.target == target)
                            .order_by(refs.c.name, refs.c.version))
        return [_ref(r) for r in rows]


def is_content_id(text: str) -> bool:
    return is_digest(text)


def _cli_group(namespace: str) -> str:
    return {"ds": "data", "split": "split", "model": "registry"}[namespace]


def _ref(row: sa.Row) -> Ref:
    return Ref(row.namespace, row.name, row.version, row.target, row.created_at, row.created_by,
               dict(row.meta or {}))
