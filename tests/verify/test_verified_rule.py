"""The `verified` rule reads the latest verification: a run that reproduced once and no longer
does is not verified."""

from __future__ import annotations

from pathlib import Path

from runlock.store import Store
from runlock.verify import check, load_policy
from runlock.verify.records import add_verification
from tests.verify.test_checklist import good_run, repo  # noqa: F401  (the fixture)


def verified(store: Store, run: str) -> tuple[bool, dict]:
    (rule,) = [r for r in check(store, run, load_policy(None)).results if r.rule == "verified"]
    return rule.passed, rule.evidence


def test_the_latest_verification_decides(store: Store, repo: Path, tmp_path: Path) -> None:  # noqa: F811
    run = good_run(store, tmp_path)
    add_verification(store, run, "rerun", "bitwise", {"tier": "bitwise"})
    assert verified(store, run)[0] is True
    add_verification(store, run, "rerun", "different", {"tier": "different"})
    passed, evidence = verified(store, run)
    assert passed is False and evidence["latest"] == "different" and evidence["best"] == "bitwise"
    add_verification(store, run, "rerun", "tolerance", {"tier": "tolerance"})
    assert verified(store, run) == (True, {"latest": "tolerance", "best": "bitwise", "min_tier": "tolerance"})
