"""Near-duplicate search: normalisation, shingles, MinHash LSH, and the calibrated defaults."""

from __future__ import annotations

import random

import numpy as np
import pytest

from runlock.data import minhash as M
from runlock.errors import InvalidInput
from tests.splits.conftest import words_text


def planted_corpus(n: int, copies: int, seed: int = 0) -> tuple[list[str], set[tuple[int, int]]]:
    """``n`` random 20-word texts plus ``copies`` near copies with one word in twenty changed."""
    rng = random.Random(seed)
    texts = [words_text(rng) for _ in range(n)]
    planted = set()
    for k in range(copies):
        src = rng.randrange(n)
        words = texts[src].split()
        words[rng.randrange(20)] = f"changed{k}"
        texts.append(" ".join(words))
        planted.add((src, n + k))
    return texts, planted


def test_normalisation_folds_case_whitespace_and_compatibility_forms() -> None:
    got = M.normalise(["  Hello\u00a0WORLD\t x ", "ﬁne Ｆｕｌｌ", "", "   ", None]).to_pylist()
    assert got == ["hello world x", "fine full", None, None, None]


def test_shingles_of_short_and_empty_texts() -> None:
    sh = M.shingles(["a b c", "a", "", "A  B c"], 2)
    assert [len(sh.of(i)) for i in range(4)] == [2, 1, 0, 2]
    assert (sh.of(0) == sh.of(3)).all()  # normalised before shingling


def test_signatures_estimate_jaccard() -> None:
    texts, _ = planted_corpus(1, 0)
    words = texts[0].split()
    other = " ".join(words[:10] + [f"x{i}" for i in range(10)])
    sh = M.shingles([texts[0], other], 2)
    sig = M.signatures(sh, 256)
    exact = M.jaccard(sh, np.array([0]), np.array([1]))[0]
    assert abs((sig[0] == sig[1]).mean() - exact) < 0.1
    assert M.signatures(M.shingles([""], 2), 8)[0].tolist() == [0xFFFFFFFF] * 8


def test_defaults_find_one_word_in_twenty_changes() -> None:
    texts, planted = planted_corpus(3000, 150)
    a, b, sim = M.near_duplicates(texts)
    found = set(zip(a.tolist(), b.tolist()))
    recall = len(found & planted) / len(planted)
    precision = len(found & planted) / max(1, len(found))
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    assert (sim >= M.NearDupSettings().threshold).all()


def test_five_word_shingles_at_0_8_miss_those_changes() -> None:
    """The claim the defaults rest on: the common setting finds almost none of them."""
    texts, planted = planted_corpus(500, 100)
    a, b, _ = M.near_duplicates(texts, M.NearDupSettings(shingle=5, threshold=0.8, bands=16, rows=8))
    assert len(set(zip(a.tolist(), b.tolist())) & planted) / len(planted) < 0.2


def test_detection_probability_of_the_defaults() -> None:
    s = M.NearDupSettings()
    assert s.num_perm == 120 and s.threshold <= 9 / 13  # a 12-word text with its middle word changed
    assert s.detection_probability(9 / 13) > 0.999
    assert s.detection_probability(0.81) > 0.99999
    assert s.detection_probability(0.2) < 0.05  # unrelated texts rarely even become candidates


def test_group_restricts_pairs_to_different_groups() -> None:
    texts = ["one two three four five six", "one two three four five six seven"] * 2
    group = np.array([0, 0, 1, 1])
    a, b, _ = M.near_duplicates(texts, group=group)
    assert all(group[i] != group[j] for i, j in zip(a, b)) and len(a) == 4


def test_large_buckets_are_chained_not_squared() -> None:
    texts = ["same words in every text here"] * 200
    a, b = M.candidate_pairs(M.signatures(M.shingles(texts, 2), 12), 2, 6, max_bucket=10)
    assert len(a) == 199


@pytest.mark.parametrize("kwargs", [{"shingle": 0}, {"threshold": 1.5}, {"bands": 0}, {"max_bucket": 1}])
def test_bad_settings_are_named(kwargs) -> None:
    with pytest.raises(InvalidInput):
        M.NearDupSettings(**kwargs)
