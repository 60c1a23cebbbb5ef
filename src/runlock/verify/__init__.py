"""Reproduce and verify: rerun any run from its lock, compare, explain every difference, gate on it.

    rerun.py         plan_rerun / rerun: the recorded code, inputs, knobs and command, as a new run
    workdir.py       the recorded commit + diff in a temporary git worktree (or the checkout, checked)
    inputs.py        rebuild the recorded inputs (at their recorded paths, and for RUNLOCK_INPUT_*)
    boot.py          the rerun's first code: restore torch threads and determinism flags
    compare.py       outputs compared at the strictest tier that holds, first divergence, diagnosis
    filediff.py      which files, lines and tensors of two artifacts differ
    variance.py      the seed-to-seed spread that ``statistical`` is measured against
    verification.py  verify = rerun + compare, stored; or outputs against a reference file
    rehearsal.py     re-verify a seeded sample of historic runs
    checklist.py     the reproducibility checklist: a policy of rules with evidence
    envlock.py       environment drift, pinned requirements, a container recipe, rebuild a venv
    pylock.py        the environment as a PEP 751 pylock.toml or a CycloneDX SBOM
    wheels.py        each index wheel's sha256 for this platform, asked of the index at export (--hashes)
    records.py       the tables: verifications, variance spreads, rehearsals
"""

from runlock.verify.checklist import CheckReport, Policy, RuleResult, check, load_policy
from runlock.verify.compare import Comparison, compare
from runlock.verify.envlock import (EnvDiff, Rebuilt, RequirementsLock, capture_with, env_diff, export_lockfile,
                                    export_requirements, rebuild)
from runlock.verify.pylock import LockFile
from runlock.verify.inputs import input_path
from runlock.verify.records import Spread, Verification, verifications_of
from runlock.verify.rehearsal import Rehearsal, rehearse
from runlock.verify.rerun import Rerun, RerunPlan, plan_rerun, rerun
from runlock.verify.variance import variance
from runlock.verify.verification import verify, verify_reference

__all__ = [
    "CheckReport", "Comparison", "EnvDiff", "LockFile", "Policy", "Rebuilt", "Rehearsal", "RequirementsLock", "Rerun", "RerunPlan",
    "RuleResult", "Spread", "Verification", "capture_with", "check", "compare", "env_diff",
    "export_lockfile", "export_requirements", "rebuild",
    "input_path", "load_policy", "plan_rerun", "rehearse", "rerun", "variance", "verifications_of",
    "verify", "verify_reference",
]
