"""Split strategies as pure functions: counts, stratification, groups, time, hash stability."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runlock.data import strategies as S
from runlock.errors import InvalidInput


RATIOS = st.sampled_from([(0.8, 0.1, 0.1), (0.7, 0.3), (0.5, 0.25, 0.25), (0.6, 0.2, 0.1, 0.1),
                          (1 / 3, 1 / 3, 1 / 3), (0.9, 0.05, 0.05)])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ids_of(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_hash64_golden_values() -> None:
    """rl-hash64-v1 is part of the split format: a change here would move records."""
    assert S.hash64("r00001", 42) == 0x5D3ABDD8C3ECE92A
    assert S.hash64("", 0) == 0x6393D51C06C618DC
    assert S.hash64("日本語のテキスト", 7) == 0xE259609FA12674A0


@FAST
@given(st.lists(st.text(max_size=40), max_size=60), st.integers(0, S.MAX_SEED))
def test_vectorised_hash_equals_the_reference(values: list[str], seed: int) -> None:
    want = [S.hash64(v, seed) for v in values]
    assert S.hash64_array(values, seed).tolist() == want
    assert S.hash64_array(pa.array(values, pa.string()), seed).tolist() == want
    assert S.hash64_array(pa.array(values, pa.large_string()), seed).tolist() == want


def test_hash_of_a_sliced_arrow_array_uses_the_slice() -> None:
    arr = pa.array(ids_of(50))
    assert S.hash64_array(arr.slice(10, 5), 3).tolist() == [S.hash64(v, 3) for v in ids_of(50)[10:15]]


@FAST
@given(st.integers(1, 2000), RATIOS, st.integers(0, 2**32))
def test_random_counts_are_within_one_record_and_cover_everything(n: int, ratios, seed: int) -> None:
    weights, _ = S.check_ratios(ratios)
    if n < len(ratios) * 12:
        n = len(ratios) * 12
    part = S.assign("random", ids_of(n), weights, seed).part
    counts = np.bincount(part, minlength=len(ratios))
    assert counts.sum() == n and part.min() >= 0 and part.max() < len(ratios)
    assert np.all(np.abs(counts - n * np.array(weights) / sum(weights)) < 1)


def test_assignment_does_not_depend_on_input_order() -> None:
    ids = ids_of(500)
    labels = np.array([i % 4 for i in range(500)])
    weights, _ = S.check_ratios((0.8, 0.1, 0.1))
    order = np.random.default_rng(1).permutation(500)
    for strategy, col in (("random", None), ("stratified", labels), ("hash", None)):
        a = S.assign(strategy, ids, weights, 5, column=col).part
        b = S.assign(strategy, [ids[i] for i in order], weights, 5,
                     column=None if col is None else col[order]).part
        assert dict(zip(ids, a.tolist())) == dict(zip([ids[i] for i in order], b.tolist()))


def test_seed_changes_the_assignment() -> None:
    weights, _ = S.check_ratios((0.5, 0.5))
    a = S.assign("random", ids_of(200), weights, 1).part
    b = S.assign("random", ids_of(200), weights, 2).part
    assert (a != b).any()


@FAST
@given(st.lists(st.integers(1, 60), min_size=1, max_size=12), RATIOS, st.integers(0, 99))
def test_stratified_keeps_every_class_and_total_within_one(sizes: list[int], ratios, seed: int) -> None:
    weights, _ = S.check_ratios(ratios)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = len(labels)
    share = np.array(weights) / sum(weights)
    if n < 12 * len(ratios):
        return
    part = S.assign("stratified", ids_of(n), weights, seed, column=labels).part
    for c, size in enumerate(sizes):
        got = np.bincount(part[labels == c], minlength=len(ratios))
        assert np.all(np.abs(got - size * share) < 1), (c, got, size * share)
    totals = np.bincount(part, minlength=len(ratios))
    assert np.all(np.abs(totals - n * share) < 1)


@FAST
@given(st.lists(st.integers(0, 500), min_size=1, max_size=40), RATIOS)
def test_controlled_rounding_meets_both_margins(sizes: list[int], ratios) -> None:
    weights, _ = S.check_ratios(ratios)
    table = S.controlled_round(sizes, weights)
    exact = np.array(sizes)[:, None] * np.array(weights)[None, :] / sum(weights)
    assert (table.sum(1) == sizes).all()
    assert np.all(np.abs(table - exact) < 1)
    assert np.all(np.abs(table.sum(0) - exact.sum(0)) < 1)


def test_stratified_warns_about_small_classes() -> None:
    labels = np.array(["big"] * 95 + ["tiny"] * 5)
    weights, _ = S.check_ratios((0.8, 0.1, 0.1))
    result = S.assign("stratified", ids_of(100), weights, 0, column=labels)
    assert result.warnings and "tiny" in result.warnings[0]
    assert result.details["small_classes"] == ["tiny"]


@FAST
@given(st.lists(st.integers(1, 30), min_size=3, max_size=60), RATIOS, st.integers(0, 99))
def test_group_never_splits_a_group_and_is_within_one_group(sizes: list[int], ratios, seed: int) -> None:
    weights, _ = S.check_ratios(ratios)
    groups = np.repeat(np.array([f"g{i}" for i in range(len(sizes))]), sizes)
    n = len(groups)
    try:
        part = S.assign("group", ids_of(n), weights, seed, column=groups).part
    except InvalidInput:
        return  # a partition would be empty: allowed to refuse, never to split a group
    for g in np.unique(groups):
        assert len(np.unique(part[groups == g])) == 1
    totals = np.bincount(part, minlength=len(ratios))
    assert np.all(np.abs(totals - n * np.array(weights) / sum(weights)) <= max(sizes))


def test_stratified_group_keeps_groups_whole_and_classes_balanced() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, 3000)
    labels = np.where(rng.random(3000) < 0.3, "pos", "neg")
    weights, _ = S.check_ratios((0.8, 0.1, 0.1))
    part = S.assign("stratified-group", ids_of(3000), weights, 1, column=labels, group=groups).part
    for g in np.unique(groups):
        assert len(np.unique(part[groups == g])) == 1
    for i, share in enumerate((0.8, 0.1, 0.1)):
        assert abs((part == i).mean() - share) < 0.02
        assert abs((labels[part == i] == "pos").mean() - (labels == "pos").mean()) < 0.05


@FAST
@given(st.lists(st.integers(0, 50), min_size=30, max_size=300), RATIOS)
def test_temporal_partitions_are_strictly_ordered(times: list[int], ratios) -> None:
    weights, _ = S.check_ratios(ratios)
    t = np.array(times)
    try:
        part = S.assign("temporal", ids_of(len(t)), weights, 0, column=t).part
    except InvalidInput:
        return
    for i in range(len(ratios) - 1):
        assert t[part == i].max() < t[part == i + 1].min()


def test_temporal_ties_go_to_the_earlier_partition() -> None:
    t = np.array([1] * 5 + [2] * 4 + [3] + [4] * 10)  # the 80% cut falls inside the 4s
    weights, _ = S.check_ratios((0.5, 0.5))
    result = S.assign("temporal", ids_of(20), weights, 0, column=t)
    assert (result.part[:10] == 0).all() and (result.part[10:] == 1).all()
    weights, _ = S.check_ratios((0.75, 0.25))
    with pytest.raises(InvalidInput, match="share a timestamp"):
        S.assign("temporal", ids_of(20), weights, 0, column=t)


@FAST
@given(st.integers(20, 400), st.integers(1, 400), RATIOS, st.integers(0, 2**40))
def test_hash_is_stable_when_the_dataset_grows(n: int, extra: int, ratios, seed: int) -> None:
    weights, _ = S.check_ratios(ratios)
    old, new = ids_of(n), ids_of(n) + ids_of(extra, "new")
    a = S.assign("hash", old, weights, seed, allow_empty=True).part
    b = S.assign("hash", new, weights, seed, allow_empty=True).part
    assert (b[:n] == a).all()


def test_hash_partition_follows_the_documented_bounds() -> None:
    weights, _ = S.check_ratios((0.8, 0.1, 0.1))
    ids = ids_of(300)
    part = S.assign("hash", ids, weights, 9).part
    for rid, p in zip(ids, part.tolist()):
        u = S.hash64(rid, 9) >> 11
        want = 0 if u < (8 << 53) // 10 else 1 if u < (9 << 53) // 10 else 2
        assert p == want


@pytest.mark.parametrize("ratios, match", [
    ((0.8, 0.1), "sum to 0.9"), ((0.8, 0.3, -0.1), "each above 0"), ((1.0,), "at least two"),
    (("a", "b"), "must be numbers")])
def test_bad_ratios_are_named(ratios, match) -> None:
    with pytest.raises(InvalidInput, match=match):
        S.check_ratios(ratios)


def test_bad_names_seeds_and_strategies() -> None:
    with pytest.raises(InvalidInput, match="3 distinct"):
        S.check_ratios((0.8, 0.1, 0.1), ["a", "a", "b"])
    for seed in (-1, 2**63, 1.5, True):
        with pytest.raises(InvalidInput, match="Seed"):
            S.check_seed(seed)
    weights, _ = S.check_ratios((0.8, 0.2))
    with pytest.raises(InvalidInput, match="Unknown split strategy"):
        S.assign("fancy", ids_of(10), weights, 0)
    with pytest.raises(InvalidInput, match="needs a column"):
        S.assign("stratified", ids_of(10), weights, 0)


def test_too_small_datasets_are_refused() -> None:
    weights, _ = S.check_ratios((0.8, 0.1, 0.1))
    with pytest.raises(InvalidInput, match="too small"):
        S.assign("random", ids_of(4), weights, 0)
    with pytest.raises(InvalidInput, match="Only 2 groups"):
        S.assign("group", ids_of(10), weights, 0, column=np.array([0] * 5 + [1] * 5))
