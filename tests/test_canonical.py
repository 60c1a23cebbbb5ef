"""Canonical JSON and content ids: golden values, so any change of encoding shows up as a diff."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runlock import canonical
from runlock.errors import InvalidInput
from runlock.hashing import digest_bytes

GOLDEN = {"b": [1, 2.5, "é"], "a": {"y": None, "x": True}}


def test_encoding_is_sorted_compact_utf8() -> None:
    assert canonical.dumps(GOLDEN) == '{"a":{"x":true,"y":null},"b":[1,2.5,"é"]}'.encode()


def test_golden_digest() -> None:
    # sha256sum of the literal canonical bytes, computed outside runlock
    assert canonical.digest(GOLDEN) == "sha256:1ec5114d36593eba3ac85d60b13d0046b42734255834ce2b5366c78cd108ea57"


def test_key_order_does_not_matter() -> None:
    assert canonical.digest({"a": 1, "b": 2}) == canonical.digest({"b": 2, "a": 1})


@pytest.mark.parametrize("bad", [float("nan"), math.inf, {1: "int key"}, {"s": {1, 2}}, object()])
def test_unencodable_values_are_errors_naming_the_place(bad: object) -> None:
    with pytest.raises(InvalidInput):
        canonical.dumps({"outer": bad})


def test_numpy_scalars_are_unwrapped() -> None:
    assert canonical.dumps({"lr": np.float64(0.5), "r": np.int64(8)}) == b'{"lr":0.5,"r":8}'


def test_sha256_known_vector() -> None:
    assert digest_bytes(b"abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
