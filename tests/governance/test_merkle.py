"""RFC 6962 / 9162 Merkle trees: golden roots from Certificate Transparency, and proofs that
hold for every leaf and every prefix, and fail for any other leaf, index, size or root."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from runlock import merkle

# The eight leaves of the RFC 6962 test tree (certificate-transparency-go, merkletree tests).
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def test_roots_match_certificate_transparency_vectors() -> None:
    hashes = [merkle.leaf_hash(d) for d in CT_LEAVES]
    for n, want in CT_ROOTS.items():
        assert merkle.root(hashes[:n]).hex() == want
    assert merkle.root([]) == hashlib.sha256(b"").digest()


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


def test_a_frontier_extended_in_pieces_equals_one_built_at_once() -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(2, 'big')) for i in range(300)]
    f = merkle.extend([], hashes[:256])
    f = merkle.extend(merkle.frontier_from_json(merkle.frontier_to_json(f)), hashes[256:])
    assert merkle.frontier_size(f) == 300
    assert merkle.frontier_root(f) == merkle.root(hashes)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_inclusion_proofs_hold_and_reject_anything_else(n: int, data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
    root = merkle.root(hashes)
    i = data.draw(st.integers(0, n - 1))
    path = merkle.inclusion_proof(hashes, i)
    assert merkle.verify_inclusion(hashes[i], i, n, path, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), i, n, path, root)
    assert not merkle.verify_inclusion(hashes[i], i, n, path, merkle.leaf_hash(b"root"))
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not merkle.verify_inclusion(hashes[i], j, n, path, root)
    if path:
        broken = [*path[:-1], merkle.leaf_hash(b"x")]
        assert not merkle.verify_inclusion(hashes[i], i, n, broken, root)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_consistency_proofs_hold_for_prefixes_and_reject_forks(n: int, data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
    m = data.draw(st.integers(1, n))
    old, new = merkle.root(hashes[:m]), merkle.root(hashes)
    proof = merkle.consistency_proof(hashes, m)
    assert merkle.verify_consistency(m, n, old, new, proof)
    if m < n:
        forked = [*hashes[: m - 1], merkle.leaf_hash(b"fork")]
        assert not merkle.verify_consistency(m, n, merkle.root(forked), new, proof)
        assert not merkle.verify_consistency(m, n, old, merkle.leaf_hash(b"x"), proof)
        assert not merkle.verify_consistency(m, n, old, new, [])
