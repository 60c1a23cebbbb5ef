"""Audit rehearsal: re-verify a random, seeded sample of historic runs and keep the outcome.

``rehearse(store, 5, project="bot", since="2026-01-01")`` draws 5 finished runs (not reruns
themselves) with ``random.Random(seed).sample`` over their ids in sorted order, verifies each
(rerun + compare), and stores one rehearsal record plus one verification record per run. A run
whose rerun fails is recorded as ``failed``, never skipped. Each result also carries the run's
previous verification tier, and ``regressed`` when it is worse now: the moment an old result
stopped being reproducible. The seed is chosen at random when none is given and is always
recorded, so any rehearsal can be drawn again.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from ulid import ULID

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import edges, runs
from runlock.verify.compare import ATOL, K, RTOL
from runlock.verify.records import FAILED, NOTHING, TIERS, add_rehearsal, tier_rank, verifications_of
from runlock.verify.verification import verify

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Rehearsal:
    id: str
    seed: int
    params: dict
    results: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {t: sum(r["tier"] == t for r in self.results) for t in (*TIERS, NOTHING, FAILED)}

    @property
    def regressed(self) -> list[str]:
        return [r["run"] for r in self.results if r["regressed"]]

    def to_dict(self) -> dict:
        return {"id": self.id, "seed": self.seed, "params": self.params, "counts": self.counts,
                "regressed": self.regressed, "results": self.results}


def candidates(store: Store, *, project: str | None = None, since: str | None = None) -> list[str]:
    """Ids of finished runs that are not themselves reruns (nor deleted), sorted."""
    reruns = sa.select(edges.c.src).where(edges.c.kind.in_(("reproduces", "derived_from")),
                                          edges.c.dst.like("run:%"))
    q = sa.select(runs.c.id).where(runs.c.status == "finished", runs.c.deleted_at.is_(None),
                                   (sa.literal("run:", sa.String) + runs.c.id).not_in(reruns)).order_by(runs.c.id)
    if project:
        q = q.where(runs.c.project == project)
    if since:
        q = q.where(runs.c.started_at >= _check_date(since))
    with store.db.read() as conn:
        return [r.id for r in conn.execute(q)]


def rehearse(store: Store, sample: int, *, project: str | None = None, since: str | None = None,
             seed: int | None = None, isolated: bool = True, repo: str | Path | None = None,
             rtol: float = RTOL, atol: float = ATOL, k: float = K, progress: Progress | None = None) -> Rehearsal:
    """Verify a seeded random sample of ``sample`` historic runs and record the outcome."""
    if sample < 1:
        raise InvalidInput(f"The sample size must be at least 1, not {sample}.")
    seed = secrets.randbelow(2**31) if seed is None else seed
    pool = candidates(store, project=project, since=since)
    chosen = sorted(random.Random(seed).sample(pool, min(sample, len(pool))))
    rid = str(ULID())
    results = []
    for i, run_id in enumerate(chosen):
        before = verifications_of(store, run_id)
        previous = before[-1].tier if before else None
        v = verify(store, run_id, isolated=isolated, repo=repo, rtol=rtol, atol=atol, k=k, rehearsal_id=rid)
        results.append({"run": run_id, "tier": v.tier, "previous": previous, "verification": v.id,
                        "rerun": v.rerun_id, "error": v.report.get("error") if v.tier == FAILED else None,
                        "regressed": previous is not None and tier_rank(v.tier) > tier_rank(previous)})
        if progress:
            progress(i + 1, len(chosen))
    params = {"sample": sample, "project": project, "since": since, "candidates": len(pool)}
    done = Rehearsal(rid, seed, params, results)
    add_rehearsal(store, rid, seed, params, {"counts": done.counts, "regressed": done.regressed,
                                             "runs": [r["run"] for r in results]})
    return done


def _check_date(text: str) -> str:
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date; use YYYY-MM-DD or an ISO-8601 time.") from None
    return text
