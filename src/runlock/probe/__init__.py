"""The nondeterminism probe: run the first steps twice from identical state and say what differs.

Two ways in:

* ``runlock.probe_steps(step_fn, steps=3, setup_fn=…, state_fn=…)`` runs the steps twice in
  this process.
* ``probe_command(argv, steps=3)`` (``runlock probe -- python train.py …``) runs the program three
  times: twice with the same ``PYTHONHASHSEED`` (any difference is nondeterminism) and once with
  another (a difference only there is a dependence on the hash seed, e.g. set ordering). A script
  that logs to a run needs no change: under the probe ``start_run`` returns a ``ProbeRun`` that
  records nothing in the store and passes each ``run.log`` to ``record_step``; other programs
  mark their steps with ``runlock.probe.record_step(step, metrics=…, params=model)``, which does
  nothing outside a probe. The program is stopped after ``RUNLOCK_PROBE_STEPS`` steps.

Each step records a fingerprint (sha256) of every global RNG state (Python, NumPy's legacy RNG,
torch CPU, initialised CUDA devices, named generators, generators created without a seed), the
exact metric values and a fingerprint of each parameter tensor. The report names the first
difference, causes before consequences (``runlock.probe.report``), the RNG streams each step
consumed, the nondeterministic torch kernels that ran (torch's deterministic mode in
``warn_only``), and dataset-held RNGs that start identical in two DataLoader workers (every
DataLoader is watched: ``runlock.probe.watch``). The second run starts at least ``min_gap_s``
after the first, so that a seed taken from a seconds clock differs and shows up.

The module is ``runlock.probe``; the in-process function is ``runlock.probe_steps`` (it was
``runlock.probe`` before, which hid this module behind a function of the same name).
"""

from runlock.probe.command import audit_loader, probe_command, probe_steps
from runlock.probe.hooks import STEPS_ENV, activate, active, record_step, watch_loader
from runlock.probe.report import Divergence, ProbeReport, WorkerRngFinding
from runlock.probe.run import ProbeRun

__all__ = ["Divergence", "ProbeReport", "ProbeRun", "STEPS_ENV", "WorkerRngFinding", "activate", "active",
           "audit_loader", "probe_command", "probe_steps", "record_step", "watch_loader"]
