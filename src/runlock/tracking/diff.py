"""What differs between two runs: their locks, field by field, and their metrics.

Lock fields are flattened to dotted paths (``config.lora.r``, ``environment.packages.torch``,
``knobs.torch.allow_tf32``) and grouped by the lock's top-level section, so a reader sees at once
whether two runs differ in config, seeds, code, environment or inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sqlalchemy as sa

from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import lock as locks
from runlock.tracking import fields, records
from runlock.tracking.writer import decode

SECTIONS = ("config", "seed", "seeding", "knobs", "code", "entrypoint", "environment", "inputs")
_MISSING = "<absent>"


@dataclass(frozen=True)
class Change:
    field: str
    a: object
    b: object


@dataclass(frozen=True)
class MetricDelta:
    key: str
    a_last: float | None
    b_last: float | None
    a_steps: int
    b_steps: int
    identical: bool


@dataclass(frozen=True)
class RunDiff:
    a: str
    b: str
    same_recipe: bool
    fields: dict[str, list[Change]] = field(default_factory=dict)
    metrics: list[MetricDelta] = field(default_factory=list)

    @property
    def lock_fields(self) -> list[Change]:
        return [c for cs in self.fields.values() for c in cs]

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "same_recipe": self.same_recipe,
                "changes": {s: [c.__dict__ for c in cs] for s, cs in self.fields.items()},
                "metrics": [m.__dict__ for m in self.metrics]}


def flatten(value: object) -> dict[str, object]:
    """A document as dotted paths, lists opened: ``{"l": [1, 2]}`` -> ``{"l[0]": 1, "l[1]": 2}``."""
    return fields.flatten(value, lists=True)


def lock_changes(lock_a: dict, lock_b: dict) -> dict[str, list[Change]]:
    return changes(flatten(_keyed_inputs(lock_a)), flatten(_keyed_inputs(lock_b)))


def changes(fa: dict[str, object], fb: dict[str, object]) -> dict[str, list[Change]]:
    """Differences between two flattened documents, grouped by their first path element."""
    grouped: dict[str, list[Change]] = {}
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, _MISSING), fb.get(key, _MISSING)
        if va != vb:
            grouped.setdefault(key.split(".", 1)[0].split("[", 1)[0], []).append(Change(key, va, vb))
    return grouped


def _keyed_inputs(lock: dict) -> dict:
    """Inputs keyed by kind and name rather than position, so a changed snapshot shows as one field."""
    lk = dict(lock)
    keyed = {}
    for i in lock.get("inputs", []):
        ref = i.get("ref") or i["node"]
        name = ref.split("@", 1)[0]
        keyed[name] = i["id"]
    lk["inputs"] = keyed
    return lk


def metric_series(store: Store, run_id: str, key: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a run as ``{key: [(step, value), ...]}`` in step order (rank 0 first)."""
    q = sa.select(metrics.c.key, metrics.c.step, metrics.c.value, metrics.c.raw).where(
        metrics.c.run_id == run_id).order_by(metrics.c.key, metrics.c.step, metrics.c.rank, metrics.c.seq)
    if key is not None:
        q = q.where(metrics.c.key == key)
    out: dict[str, list[tuple[int, float]]] = {}
    with store.db.read() as conn:
        for r in conn.execute(q):
            out.setdefault(r.key, []).append((r.step, decode(r.value, r.raw)))
    return out


def _same(xs: list[tuple[int, float]], ys: list[tuple[int, float]]) -> bool:
    return len(xs) == len(ys) and all(
        sa_ == sb and (va == vb or (math.isnan(va) and math.isnan(vb))) for (sa_, va), (sb, vb) in zip(xs, ys))


def diff_runs(store: Store, ref_a: str, ref_b: str) -> RunDiff:
    a, b = records.get(store, ref_a), records.get(store, ref_b)
    ma, mb = metric_series(store, a.id), metric_series(store, b.id)
    deltas = [MetricDelta(k, ma[k][-1][1] if k in ma else None, mb[k][-1][1] if k in mb else None,
                          len(ma.get(k, [])), len(mb.get(k, [])), _same(ma.get(k, []), mb.get(k, [])))
              for k in sorted(set(ma) | set(mb))]
    found = lock_changes(locks.load(store, a.recipe_id), locks.load(store, b.recipe_id))
    found.update(changes(flatten({"summary": a.summary}), flatten({"summary": b.summary})))
    return RunDiff(a.id, b.id, a.recipe_id == b.recipe_id, found, deltas)
