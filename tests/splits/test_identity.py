"""Identity of splits: the id depends on what was split and how, never on the runlock version, and
hash / group keys keep their text when a column's type widens as the dataset grows."""

from __future__ import annotations

import pytest

from runlock.data import split as split_module
from runlock.data.split import FORMAT, create_split, load
from runlock.data.strategies import key_text, key_texts
from runlock.errors import InvalidInput

# Golden id of one small split. The manifest format moved to runlock.split/2 when the runlock
# version was taken out of it and group/hash keys got one canonical text (rl-key-v1); a change to
# either encoding must show up here as a diff.
GOLDEN_ROWS = [{"id": f"r{i:02d}", "user": i % 13, "text": f"ticket {i} about the printer"} for i in range(40)]
GOLDEN_ID = "sha256:294b92fd4719c9d8c513a4d8ce8942474b3fd680293c01151ac6856a1e5a6448"


def _members(sp):
    return {rid: p for p in sp.partitions for rid in sp.ids(p)}


def test_split_id_is_golden_and_does_not_depend_on_the_runlock_version(store, make_snapshot, monkeypatch):
    snap = make_snapshot(store, GOLDEN_ROWS)
    sp = create_split(store, snap, name="golden", strategy="hash", by="user", seed=7, ratios=(0.6, 0.4))
    assert sp.manifest["format"] == FORMAT == "runlock.split/2"
    assert "runlock_version" not in sp.manifest and sp.manifest["keys"] == "rl-key-v1"
    assert sp.id == GOLDEN_ID
    monkeypatch.setattr(split_module, "__version__", "99.0.0")  # an upgrade
    again = create_split(store, snap, name="golden", strategy="hash", by="user", seed=7, ratios=(0.6, 0.4))
    assert (again.id, again.ref, again.created) == (sp.id, "split:golden@v1", False)


def test_hash_split_by_an_integer_column_is_stable_when_a_float_row_arrives(store, make_snapshot):
    rows = [{"id": f"r{i:04d}", "user": i % 57, "text": f"t{i}"} for i in range(400)]
    before = create_split(store, make_snapshot(store, rows), name="u", strategy="hash", by="user", seed=3)
    grown = create_split(store, make_snapshot(store, rows + [{"id": "new", "user": 0.5, "text": "x"}]),
                         name="u", strategy="hash", by="user", seed=3)
    old, new = _members(before), _members(grown)
    assert sum(old[r] != new[r] for r in old) == 0  # was 96 of 400 when 7 became "7.0"
    group = create_split(store, make_snapshot(store, rows), name="g", strategy="group", by="user", seed=3)
    widened = create_split(store, make_snapshot(store, [{**r, "user": float(r["user"])} for r in rows]),
                           name="g", strategy="group", by="user", seed=3)
    assert _members(group) == _members(widened)


def test_a_string_column_that_gains_a_number_keeps_its_keys(store, make_snapshot):
    rows = [{"id": f"r{i:04d}", "user": f"u{i % 31}", "text": f"t{i}"} for i in range(300)]
    before = create_split(store, make_snapshot(store, rows), name="s", strategy="hash", by="user", seed=1)
    grown = create_split(store, make_snapshot(store, rows + [{"id": "n", "user": 12, "text": "x"}]),
                         name="s", strategy="hash", by="user", seed=1)
    old, new = _members(before), _members(grown)
    assert all(old[r] == new[r] for r in old)
    with pytest.raises(InvalidInput, match="lists or objects"):
        create_split(store, make_snapshot(store, rows + [{"id": "l", "user": [1, 2], "text": "x"}]),
                     name="s", strategy="hash", by="user", seed=1)
    assert load(store, "split:s@v1").id == before.id


@pytest.mark.parametrize("value, text", [("u1", "u1"), (7, "7"), (7.0, "7"), (-0.0, "0"), (0.5, "0.5"),
                                         (1e20, "100000000000000000000"), (True, "true"), ("7.0", "7.0")])
def test_key_text_is_canonical(value, text):
    assert key_text(value) == text


def test_key_text_refuses_what_has_no_canonical_text():
    with pytest.raises(InvalidInput, match="finite"):
        key_texts([1.0, float("inf")])
    with pytest.raises(InvalidInput, match="string, a number"):
        key_text(b"bytes")
