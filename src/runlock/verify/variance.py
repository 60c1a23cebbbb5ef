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

from collections.abc import Callable
from pathlib import Path

from runlock.errors import InvalidInput, RunlockError
from runlock.seeding import derive_seed
from runlock.store import Store
from runlock.verify.records import Spread
from runlock.verify.rerun import Rerunner, prepared, rerunner

Progress = Callable[[int, int], None]


def variance(source: Store | Rerunner, run: str, *, seeds: int = 5, seed_arg: str | None = "--seed",
             isolated: bool = True, repo: str | Path | None = None, progress: Progress | None = None) -> Spread:
    """Rerun ``run`` with ``seeds`` different seeds and store the spread of its final metrics
    (computed where the records are: a team server measures it from the runs it holds)."""
    if seeds < 2:
        raise InvalidInput(f"A spread needs at least 2 seeds, not {seeds}.")
    backend = rerunner(source)
    plan = backend.plan(run, isolated=isolated)
    chosen = [derive_seed(plan.seed or 0, "variance", index=i) % 2**31 for i in range(seeds)]
    made = []
    with prepared(backend, plan, repo=repo) as prep:
        for i, seed in enumerate(chosen):
            result = backend.launch(plan, prep, argv=with_seed(plan.argv, seed_arg, seed), seed=seed)
            if result.status != "finished":
                raise RunlockError(f"The rerun of run {plan.run_id} with seed {seed} ended {result.status} "
                                   f"(run {result.run_id}); the spread was not stored.",
                                   hint=f"See why with `runlock runs show {result.run_id}`.")
            made.append(result.run_id)
            if progress:
                progress(i + 1, seeds)
    return backend.spread(plan.run_id, chosen, made)


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
