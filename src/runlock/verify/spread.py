"""The seed-to-seed spread of final metrics over a set of runs (``runlock variance``)."""

from __future__ import annotations

import math

from runlock.store import Store
from runlock.tracking import records
from runlock.tracking.diff import metric_series


def final_metrics(store: Store, run_id: str) -> dict[str, float]:
    """Numeric summary values, or the last value of each metric when there are none."""
    summary = records.get(store, run_id).summary
    finals = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return finals or {k: s[-1][1] for k, s in metric_series(store, run_id).items() if s}


def spread_stats(store: Store, run_ids: list[str]) -> dict[str, dict]:
    """``{metric: {n, mean, std, min, max, values}}`` over the runs (sample std, n - 1)."""
    finals = [final_metrics(store, r) for r in run_ids]
    keys = set.intersection(*(set(f) for f in finals)) if finals else set()
    stats = {}
    for key in sorted(keys):
        values = [f[key] for f in finals]
        if not all(math.isfinite(v) for v in values):
            continue
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        stats[key] = {"n": len(values), "mean": mean, "std": math.sqrt(var), "min": min(values),
                      "max": max(values), "values": values}
    return stats

