"""Leakage checks on partitions: exact and near duplicates, groups, time, class balance."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from runlock.data import leakage as L

NAMES = ("train", "validation", "test")
BASE = "the quick brown fox jumps over the lazy dog near the river bank on a sunny day in june"


def inputs(texts, part, **kw) -> L.Inputs:
    ids = [f"r{i}" for i in range(len(texts))]
    return L.Inputs(ids, np.array(part), NAMES, pa.array(texts, pa.string()), **kw)


def test_exact_duplicates_after_normalisation_only_across_partitions() -> None:
    texts = [BASE, "  THE quick brown\tfox jumps over the lazy dog near the river bank on a sunny day in June",
             "something else entirely that is long enough to matter here", BASE, "x y z"]
    report = L.check(inputs(texts, [0, 2, 1, 0, 1]))
    exact = [p for p in report.pairs if p.kind == "exact"]
    assert [(p.a, p.b, p.partitions, p.similarity) for p in exact] == [("r0", "r1", ("train", "test"), 1.0)]
    assert not report.passed and report.counts["exact"] == 1


def test_near_duplicates_are_paired_with_their_similarity() -> None:
    near = BASE.replace("lazy", "sleepy")
    report = L.check(inputs([BASE, near, "entirely different words appear in this one only"], [0, 1, 0]))
    assert [(p.kind, p.a, p.b, p.partitions) for p in report.pairs] == [("near", "r0", "r1", ("train", "validation"))]
    assert 0.7 <= report.pairs[0].similarity < 1
    d = report.to_dict()
    assert d["pairs"] == [{"a": "r0", "b": "r1", "kind": "near", "similarity": report.pairs[0].similarity,
                           "partitions": ["train", "validation"]}]
    assert L.LeakageReport.from_dict(d) == report


def test_clean_split_passes() -> None:
    report = L.check(inputs([BASE, "nothing alike at all in any way whatsoever", "a third one"], [0, 1, 2]))
    assert report.passed and report.pairs == () and report.settings["shingle"] == 2


def test_group_temporal_and_balance() -> None:
    texts = [f"text number {i} with its own words" for i in range(6)]
    report = L.check(inputs(texts, [0, 0, 1, 1, 2, 2], groups=np.array(["a", "b", "b", "c", "d", "d"]),
                            times=np.array([1, 5, 4, 6, 7, 8]), labels=np.array(["x", "x", "x", "y", "x", "x"])))
    assert report.groups == ({"group": "b", "partitions": ["train", "validation"], "records": 2},)
    assert report.temporal == ({"earlier": "train", "later": "validation", "earlier_max": 5, "later_min": 4,
                                "records": 1},)
    assert report.balance["missing"] == [{"class": "y", "partition": "train"}, {"class": "y", "partition": "test"}]
    assert report.counts == {"exact": 0, "near": 0, "group": 1, "temporal": 1} and not report.passed


def test_no_text_columns_is_a_note_not_a_failure() -> None:
    report = L.check(L.Inputs(["a", "b"], np.array([0, 1]), NAMES))
    assert report.passed and "skipped" in report.notes[0]


def test_duplicates_keep_the_smallest_id_per_cluster() -> None:
    near = BASE.replace("lazy", "sleepy")
    texts = pa.array([BASE, near, BASE.upper(), "unrelated words only here", None])
    got = L.duplicates(["d", "c", "b", "a", "e"], texts)
    assert got == [{"id": "c", "kept": "b", "kind": "near"}, {"id": "d", "kept": "b", "kind": "exact"}]


def test_temporal_leak_on_timestamps_is_reported_as_text() -> None:
    times = np.array(["2024-01-05", "2024-01-02", "2024-01-03"], dtype="datetime64[ns]")
    report = L.check(L.Inputs(["a", "b", "c"], np.array([0, 1, 1]), NAMES, times=times))
    assert report.temporal[0]["earlier_max"].startswith("2024-01-05")
    assert report.temporal[0]["later_min"].startswith("2024-01-02")
    assert L.LeakageReport.from_dict(report.to_dict()) == report
