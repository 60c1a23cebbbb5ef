"""The canonical state of a sealed record, and the digest the audit log keeps of it.

A record that no one may change once it is sealed gets the sha256 of its canonical state written
into the audit entry that seals it (``details["state"]``), in the same transaction:

    run        run.seal / run.failed / run.crashed   its row (but heartbeat, tags, tombstone), its artifacts,
                                                     and a digest of each metric series
    model      model.register                        its ``refs`` row (name, version, digest, meta)
    alias      model.alias, model.alias.import       the move (from, to, reason, actor); an imported move
                                                     (``bundle import``) keeps its source's actor and digest
    snapshot   snapshot.create                       its ``refs`` row and its ``snapshots`` row
    split      split.create / import / apply / …     its ``refs`` row and the immutable ``splits``
                                                     columns (the leakage report may be re-checked)

Config is inside the run's lock, which its row names by content id (``recipe_id``). ``state``
recomputes a record's digest from the database; ``changed`` compares every one with its audit
entry (``audit verify --deep``, ``fsck``), and ``require`` refuses a changed record in every
command that serves one (``registry get``, ``artifacts get``, ``rerun``, ``attest``, the gate).
``gate_failures`` re-checks every recorded ``gate.pass`` against the attestation it kept. This
module only reads: it never writes the audit log (``runlock.audit`` appends, and calls
``state_at_seal`` inside the sealing transaction).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import dsse, keys
from runlock.errors import IntegrityError, InvalidInput, NotFound
from runlock.store import Store
from runlock.store.schema import artifacts, metrics, refs, runs

RUN_ACTIONS = ("run.seal", "run.failed", "run.crashed")
# liveness, and the annotations a sealed run may still get (each audited on its own: run.tag,
# run.delete), are not part of its sealed state
RUN_SKIP = ("heartbeat_at", "tags", "deleted_at", "deleted_by", "deleted_reason")

snapshots = sa.table("snapshots", sa.column("id"), sa.column("kind"), sa.column("parent"), sa.column("recipe_id"),
                     sa.column("record_count"), sa.column("size"), sa.column("files"))
splits = sa.table("splits", sa.column("id"), sa.column("snapshot_id"), sa.column("strategy"), sa.column("params"),
                  sa.column("seed"), sa.column("counts"))
audit_log = sa.table("audit_log", sa.column("seq"), sa.column("action"), sa.column("target"), sa.column("after"),
                     sa.column("details", sa.JSON))
alias_moves = sa.table("model_alias_moves", sa.column("audit_seq"), sa.column("name"), sa.column("alias"),
                       sa.column("from_version"), sa.column("to_version"), sa.column("actor"), sa.column("reason"))


def kind_of(action: str, target: str) -> str | None:
    """Which kind of sealed record an audit entry of ``action`` on ``target`` seals, if any."""
    if action in RUN_ACTIONS and target.startswith("run:"):
        return "run"
    if action == "model.register" and target.startswith("model:"):
        return "model"
    if action in ("model.alias", "model.alias.import") and target.startswith("model:"):
        return "alias"
    if action == "snapshot.create" and target.startswith("ds:"):
        return "snapshot"
    if action.startswith("split.") and action != "split.check" and target.startswith("split:"):
        return "split"
    return None


def digest(value: Any) -> str:
    """sha256 over a canonical JSON encoding that also takes what the database may hold (NaN)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


def state_at_seal(conn: Connection, kind: str, target: str, actor: str, details: dict) -> str | None:
    """The state digest to record in the sealing entry (inside its transaction)."""
    if kind == "alias":
        return digest(_move(target.split("@", 1)[0].removeprefix("model:"), target.split("@", 1)[1],
                            details.get("from"), details.get("to"), details.get("reason"), actor))
    return state(conn, kind, target)


def state(conn: Connection, kind: str, target: str, seq: int | None = None) -> str | None:
    """The digest of the record's canonical state as the database holds it now (None: gone)."""
    doc = _STATES[kind](conn, target, seq)
    return None if doc is None else digest(doc)


@dataclass(frozen=True)
class Series:
    """A run's metric series hashed ahead of its seal, outside the write transaction, with the
    shape (points, last seq) of each series they were hashed at."""

    run_id: str
    shape: dict[str, tuple[int, int]]
    digests: dict[str, str]


def prepare_run(store: Store, run_id: str) -> Series:
    """Hash a run's series before sealing it: the seal's write transaction then only checks
    that no point arrived since (``run_state``), so it holds the write lock for milliseconds."""
    with store.db.read() as conn:
        return Series(run_id, _shape(conn, run_id), series_digests(conn, run_id))


def run_state(conn: Connection, run_id: str, prepared: Series | None = None) -> str | None:
    """The state digest of a run, using ``prepared`` digests when the series are unchanged."""
    doc = _run(conn, f"run:{run_id}", None, prepared)
    return None if doc is None else digest(doc)


def _shape(conn: Connection, run_id: str) -> dict[str, tuple[int, int]]:
    q = (sa.select(metrics.c.key, metrics.c.rank, sa.func.count(), sa.func.max(metrics.c.seq))
         .where(metrics.c.run_id == run_id).group_by(metrics.c.key, metrics.c.rank))
    return {f"{k}#{r}": (int(n), int(m)) for k, r, n, m in conn.execute(q)}


def _run(conn: Connection, target: str, _seq: int | None, prepared: Series | None = None) -> dict | None:
    run_id = target.removeprefix("run:")
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        return None
    arts = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.name)).all()
    fresh = prepared is not None and prepared.run_id == run_id and _shape(conn, run_id) == prepared.shape
    return {"run": {k: v for k, v in row._mapping.items() if k not in RUN_SKIP},
            "artifacts": [dict(a._mapping) for a in arts],
            "metrics": prepared.digests if fresh else series_digests(conn, run_id)}


def series_digests(conn: Connection, run_id: str) -> dict[str, str]:
    """``{"KEY#RANK": sha256}``: one digest per metric series over (seq, step, value, raw, time)."""
    out: dict[str, str] = {}
    q = (sa.select(metrics.c.key, metrics.c.rank, metrics.c.seq, metrics.c.step, metrics.c.value,
                   metrics.c.raw, metrics.c.time)
         .where(metrics.c.run_id == run_id).order_by(metrics.c.key, metrics.c.rank, metrics.c.seq))
    current, h = None, None
    for key, rank, seq, step, value, raw, time in conn.execute(q.execution_options(yield_per=10_000)):
        if (key, rank) != current:
            if h is not None:
                out[f"{current[0]}#{current[1]}"] = "sha256:" + h.hexdigest()
            current, h = (key, rank), hashlib.sha256()
        h.update(f"{seq}\t{step}\t{value!r}\t{raw}\t{time!r}\n".encode())
    if h is not None:
        out[f"{current[0]}#{current[1]}"] = "sha256:" + h.hexdigest()
    return out


def _ref(conn: Connection, namespace: str, target: str) -> dict | None:
    name, _, tag = target.split(":", 1)[1].partition("@")
    if not tag.startswith("v") or not tag[1:].isdigit():
        return None
    row = conn.execute(sa.select(refs).where(refs.c.namespace == namespace, refs.c.name == name,
                                             refs.c.version == int(tag[1:]))).first()
    return None if row is None else dict(row._mapping)


def _model(conn: Connection, target: str, _seq: int | None) -> dict | None:
    return _ref(conn, "model", target)


def _snapshot(conn: Connection, target: str, _seq: int | None) -> dict | None:
    ref = _ref(conn, "ds", target)
    if ref is None:
        return None
    row = conn.execute(sa.select(snapshots).where(snapshots.c.id == ref["target"])).first()
    return {"ref": ref, "snapshot": dict(row._mapping) if row else None}


def _split(conn: Connection, target: str, _seq: int | None) -> dict | None:
    ref = _ref(conn, "split", target)
    if ref is None:
        return None
    row = conn.execute(sa.select(splits).where(splits.c.id == ref["target"])).first()
    return {"ref": ref, "split": dict(row._mapping) if row else None}


def _alias(conn: Connection, _target: str, seq: int | None) -> dict | None:
    row = conn.execute(sa.select(alias_moves).where(alias_moves.c.audit_seq == seq)).first()
    if row is None:
        return None
    v = lambda n: None if n is None else f"v{n}"  # noqa: E731
    return _move(row.name, row.alias, v(row.from_version), v(row.to_version), row.reason, row.actor)


def _move(name: str, alias: str, frm: str | None, to: str | None, reason: str | None, actor: str) -> dict:
    return {"name": name, "alias": alias, "from": frm, "to": to, "reason": reason, "actor": actor}


_STATES = {"run": _run, "model": _model, "alias": _alias, "snapshot": _snapshot, "split": _split}


aliases = sa.table("model_aliases", sa.column("name"), sa.column("alias"), sa.column("version"))


def alias_positions(conn: Connection) -> list[str]:
    """Aliases whose current position is not where their last recorded move put them."""
    last: dict[tuple[str, str], int | None] = {}
    for r in conn.execute(sa.select(alias_moves.c.name, alias_moves.c.alias, alias_moves.c.to_version)
                          .order_by(alias_moves.c.audit_seq)):
        last[(r.name, r.alias)] = r.to_version
    now = {(r.name, r.alias): r.version for r in conn.execute(sa.select(aliases))}
    out = []
    for key in sorted(set(last) | set(now)):
        if last.get(key) != now.get(key):
            where = f"v{now[key]}" if now.get(key) is not None else "nothing"
            moved = f"v{last[key]}" if last.get(key) is not None else "nothing"
            out.append(f"model:{key[0]}@{key[1]} points at {where}, but its last recorded move was to {moved}.")
    return out


# -- checking ---------------------------------------------------------------------------------
SEALING = (*RUN_ACTIONS, "model.register", "model.alias", "model.alias.import", "snapshot.create")


def changed(conn: Connection) -> list[str]:
    """One line for every sealed record whose state differs from its audit entry's digest, and
    for every alias that is not where its last recorded move put it."""
    latest: dict[tuple, tuple[int, str, str, str]] = {}
    q = (sa.select(audit_log.c.seq, audit_log.c.action, audit_log.c.target, audit_log.c.details)
         .where(sa.or_(audit_log.c.action.in_(SEALING), audit_log.c.action.like("split.%")))
         .order_by(audit_log.c.seq))
    for r in conn.execute(q.execution_options(yield_per=5000)):
        kind = kind_of(r.action, r.target)
        want = r.details.get("state") if isinstance(r.details, dict) else None
        if kind is None or not want:
            continue          # sealed before states were recorded
        latest[(kind, r.seq) if kind == "alias" else (kind, r.target)] = (r.seq, kind, r.target, want)
    out = []
    for seq, kind, target, want in latest.values():
        now = state(conn, kind, target, seq)
        if now != want:
            what = f"alias move of {target} (entry {seq})" if kind == "alias" else target
            out.append(f"{what} {'is gone' if now is None else 'changed'} since it was sealed in audit entry {seq}.")
    return out + alias_positions(conn)


def require(store: Store, *targets: str) -> None:
    """Raise IntegrityError naming the first of ``targets`` (run:ID, model:NAME@vN, ds:…,
    split:…) whose state differs from what its sealing audit entry recorded."""
    with store.db.read() as conn:
        for target in targets:
            rows = conn.execute(sa.select(audit_log.c.seq, audit_log.c.action, audit_log.c.details)
                                .where(audit_log.c.target == target).order_by(audit_log.c.seq.desc())).all()
            found = next(((r.seq, k, r.details["state"]) for r in rows if (k := kind_of(r.action, target))
                          and k != "alias" and isinstance(r.details, dict) and r.details.get("state")), None)
            if found is None:
                continue
            seq, kind, want = found
            if state(conn, kind, target, seq) != want:
                raise IntegrityError(f"{target} changed since it was sealed (audit entry {seq}): its record in the "
                                     "database no longer matches the audit log; refusing to use it.",
                                     hint="Run `runlock audit verify --deep` to list every changed record, and "
                                          "restore the database from a backup.")


def gate_failures(store: Store, conn: Connection, key: keys.PublicKey | None) -> list[str]:
    """One line for every ``gate.pass`` whose attestation (kept as an object) is missing or does
    not let that exact version through the gate (``dsse.gate_reasons``) under ``key``."""
    out = []
    q = sa.select(audit_log).where(audit_log.c.action == "gate.pass").order_by(audit_log.c.seq)
    for r in conn.execute(q):
        details = r.details if isinstance(r.details, dict) else {}
        oid = details.get("attestation")
        where = f"gate.pass entry {r.seq} for {r.target}"
        if not isinstance(oid, str) or not r.after:
            out.append(f"{where} names no attestation.")
            continue
        try:
            envelopes = dsse.parse_bundle(store.objects.get_bytes(oid), oid)
        except (NotFound, IntegrityError, InvalidInput) as e:
            out.append(f"{where}: its attestation {oid} cannot be read ({e}).")
            continue
        if key is None:
            out.append(f"{where}: no key to check its attestation with.")
            continue
        reasons = dsse.gate_reasons(dsse.check_envelopes(envelopes, key), r.target, r.after, details.get("run"))
        if reasons:
            out.append(f"{where}: its attestation does not pass for that version: {reasons[0]}.")
    return out
