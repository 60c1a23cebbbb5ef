"""A rerun refuses inputs (snapshots, splits, models) whose records changed since they were sealed."""

from __future__ import annotations

import pytest

from runlock import audit
from runlock.errors import IntegrityError
from runlock.store import Store
from runlock.verify.rerun import plan_rerun
from tests.governance.test_trust import sql


def test_an_edited_snapshot_is_named_and_a_rerun_that_uses_it_is_refused(store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(store)
    sql(store, "UPDATE snapshots SET files = 99")
    report = audit.verify(store, deep=True)
    assert any(p.message.startswith("ds:rows@v1 changed") for p in report.problems)
    with pytest.raises(IntegrityError, match="ds:rows@v1"):
        plan_rerun(store, w.run_id)

