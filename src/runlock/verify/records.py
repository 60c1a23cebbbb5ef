"""What verification leaves behind: verification records, variance spreads, audit rehearsals.

Each is written once, in one audited transaction, and never changed:

    verifications      one outcome of ``verify``: the tier a run was reproduced at (or
                       ``failed`` when it could not be rerun), the rerun, the full report
    variance_spreads   the seed-to-seed spread of a run's final metrics (``runlock variance``)
    rehearsals         one audit rehearsal: its seed, what it sampled, and the counts per tier
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from ulid import ULID

from runlock import audit, canonical, lineage
from runlock.store import Store
from runlock.store.schema import ID, METADATA, NAME, TIME, edges, utcnow

TIERS = ("bitwise", "tolerance", "statistical", "different")
FAILED = "failed"  # a verification whose rerun could not run or did not finish
NOTHING = "nothing"  # neither run had a metric, a summary value or an artifact: nothing to compare

verifications = sa.Table(
    "verifications", METADATA,
    sa.Column("id", ID, primary_key=True),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),     # rerun | reference
    sa.Column("tier", sa.String(16), nullable=False),     # a TIER, or "failed"
    sa.Column("rerun_id", ID, nullable=True),
    sa.Column("reference", ID, nullable=True),           # object id of a reference outputs file
    sa.Column("rehearsal_id", ID, nullable=True),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Index("ix_verifications_run", "run_id", "created_at"),
    sa.Index("ix_verifications_rehearsal", "rehearsal_id"),
)

variance_spreads = sa.Table(
    "variance_spreads", METADATA,
    sa.Column("id", ID, primary_key=True),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("seeds", sa.JSON, nullable=False),
    sa.Column("runs", sa.JSON, nullable=False),
    sa.Column("stats", sa.JSON, nullable=False),          # {metric: {n, mean, std, min, max, values}}
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Index("ix_variance_run", "run_id", "created_at"),
)

rehearsals = sa.Table(
    "rehearsals", METADATA,
    sa.Column("id", ID, primary_key=True),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("outcome", sa.JSON, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
)


def tier_rank(tier: str) -> int:
    """0 for bitwise (strictest) .. 3 for different; 4 for a failed verification or nothing to compare."""
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


@dataclass(frozen=True)
class Verification:
    id: str
    run_id: str
    kind: str
    tier: str
    rerun_id: str | None
    reference: str | None
    rehearsal_id: str | None
    report: dict
    created_at: str
    created_by: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class Spread:
    id: str
    run_id: str
    seeds: list
    runs: list
    stats: dict
    created_at: str
    created_by: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def add_verification(store: Store, run_id: str, kind: str, tier: str, report: dict, *,
                     rerun_id: str | None = None, reference: str | None = None,
                     rehearsal_id: str | None = None) -> Verification:
    """Store one verification outcome on ``run_id`` (and the rerun's ``reproduces`` edge)."""
    row = {"id": str(ULID()), "run_id": run_id, "kind": kind, "tier": tier, "rerun_id": rerun_id,
           "reference": reference, "rehearsal_id": rehearsal_id, "report": canonical.normalize(report),
           "created_at": utcnow(), "created_by": store.actor}

    def write(conn: Connection) -> None:
        conn.execute(verifications.insert().values(**row))
        if rerun_id:
            lineage.record_edge(conn, "reproduces", f"run:{rerun_id}", f"run:{run_id}")
        audit.append(conn, store.actor, "verification.create", f"run:{run_id}",
                     after=canonical.digest(row["report"]),
                     details={"verification": row["id"], "kind": kind, "tier": tier, "rerun": rerun_id})

    store.db.run_write(write)
    return Verification(**row)


def verifications_of(store: Store, run_id: str) -> list[Verification]:
    """Every verification of a run, oldest first."""
    q = sa.select(verifications).where(verifications.c.run_id == run_id).order_by(
        verifications.c.created_at, verifications.c.id)
    with store.db.read() as conn:
        return [Verification(**r._mapping) for r in conn.execute(q)]


def latest_verification(store: Store, run_id: str) -> Verification | None:
    """The newest verification of the run: what is true of it now (``None`` if never verified)."""
    found = verifications_of(store, run_id)
    return found[-1] if found else None


def best_tier(store: Store, run_id: str) -> str | None:
    """The strictest tier any verification of the run reached (``None`` if never verified)."""
    found = [v.tier for v in verifications_of(store, run_id)]
    return min(found, key=tier_rank) if found else None


def add_spread(store: Store, run_id: str, seeds: list[int], runs: list[str], stats: dict) -> Spread:
    row = {"id": str(ULID()), "run_id": run_id, "seeds": seeds, "runs": runs,
           "stats": canonical.normalize(stats), "created_at": utcnow(), "created_by": store.actor}

    def write(conn: Connection) -> None:
        conn.execute(variance_spreads.insert().values(**row))
        for rid in runs:
            lineage.record_edge(conn, "derived_from", f"run:{rid}", f"run:{run_id}")
        audit.append(conn, store.actor, "variance.create", f"run:{run_id}", after=canonical.digest(row["stats"]),
                     details={"spread": row["id"], "seeds": seeds, "runs": runs})

    store.db.run_write(write)
    return Spread(**row)


def latest_spread(store: Store, run_ids: list[str]) -> Spread | None:
    """The newest spread measured for the first of ``run_ids`` that has one."""
    with store.db.read() as conn:
        for rid in run_ids:
            r = conn.execute(sa.select(variance_spreads).where(variance_spreads.c.run_id == rid).order_by(
                variance_spreads.c.created_at.desc(), variance_spreads.c.id.desc()).limit(1)).first()
            if r is not None:
                return Spread(**r._mapping)
    return None


def reproduced(store: Store, run_id: str) -> list[str]:
    """The runs ``run_id`` is a rerun of (its ``reproduces`` edges)."""
    with store.db.read() as conn:
        rows = conn.execute(sa.select(edges.c.dst).where(edges.c.kind == "reproduces",
                                                          edges.c.src == f"run:{run_id}"))
        return [r.dst.split(":", 1)[1] for r in rows]


def add_rehearsal(store: Store, rehearsal_id: str, seed: int, params: dict, outcome: dict) -> None:
    row = {"id": rehearsal_id, "seed": seed, "params": canonical.normalize(params),
           "outcome": canonical.normalize(outcome), "created_at": utcnow(), "created_by": store.actor}

    def write(conn: Connection) -> None:
        conn.execute(rehearsals.insert().values(**row))
        audit.append(conn, store.actor, "rehearsal.create", f"rehearsal:{rehearsal_id}",
                     after=canonical.digest(row["outcome"]), details={"seed": seed, **row["params"]})

    store.db.run_write(write)
