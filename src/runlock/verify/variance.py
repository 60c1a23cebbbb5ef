"""The seed-to-seed spread of a run's final metrics: what ``statistical`` equality is measured
against.

``variance(store, RUN, seeds=5)`` reruns RUN from its lock ``seeds`` times, each time with a
different seed and nothing else changed, and stores the spread of the final metrics. The new
seeds are ``derive_seed(recorded seed, "variance", index=i) mod 2**31``, so measuring twice
uses the same seeds. A run takes its seed from its command line (``--seed N`` or
``--seed=N``, or another option named by ``seed_arg``) or from ``RUNLOCK_SEED``, which a
rerun always sets. Final metrics are the run's numeric summary values, or, for a run without
any, the last value of each metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from runlock.errors import InvalidInput, RunlockError
from runlock.seeding import derive_seed
from runlock.store import Store
from runlock.tracking import records
from runlock.tracking.diff import metric_series
from runlock.verify import records as vrecords
from runlock.verify.records import Spread
from runlock.verify.rerun import launch, plan_rerun, prepared

Progress = Callable[[int, int], None]


def variance(store: Store, run: str, *, seeds: int = 5, seed_arg: str | None = "--seed",
             isolated: bool = True, repo: str | Path | None = None, progress: Progress | None = None) -> Spread:
    """Rerun ``run`` with ``seeds`` different seeds and store the spread of its final metrics."""
    if seeds < 2:
        raise InvalidInput(f"A spread needs at least 2 seeds, not {seeds}.")
    plan = plan_rerun(store, run, isolated=isolated)
    chosen = [derive_seed(plan.seed or 0, "variance", index=i) % 2**31 for i in range(seeds)]
    made = []
    with prepared(store, plan, repo=repo) as prep:
        for i, seed in enumerate(chosen):
            result = launch(store, plan, prep, argv=with_seed(plan.argv, seed_arg, seed), seed=seed)
            if result.status != "finished":
                raise RunlockError(f"The rerun of run {plan.run_id} with seed {seed} ended {result.status} "
                                   f"(run {result.run_id}); the spread was not stored.",
                                   hint=f"See why with `runlock runs show {result.run_id}`.")
            made.append(result.run_id)
            if progress:
                progress(i + 1, seeds)
    return vrecords.add_spread(store, plan.run_id, chosen, made, spread_stats(store, made))


def with_seed(argv: list[str], seed_arg: str | None, seed: int) -> list[str]:
    """``argv`` with the value of ``seed_arg`` replaced by ``seed`` (unchanged if ``seed_arg`` is None)."""
    if seed_arg is None:
        return list(argv)
    out = list(argv)
    for i, a in enumerate(out):
        if a == seed_arg and i + 1 < len(out):
            out[i + 1] = str(seed)
            return out
        if a.startswith(seed_arg + "="):
            out[i] = f"{seed_arg}={seed}"
            return out
    raise InvalidInput(f"The recorded command {argv} has no {seed_arg} option to change the seed with.",
                       hint="Name the option with --seed-arg, or use --seed-env if the script reads RUNLOCK_SEED.")


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

