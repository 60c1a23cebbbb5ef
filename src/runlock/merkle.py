"""Merkle trees as in RFC 6962 / RFC 9162 (Certificate Transparency): pure functions, no I/O.

A leaf's hash is ``SHA-256(0x00 || data)``, an inner node's ``SHA-256(0x01 || left || right)``;
a tree of ``n`` leaves splits at the largest power of two smaller than ``n``. The audit log uses
these so that a signed tree head (size + root) commits to every entry before it, an inclusion
proof shows one entry is in the tree, and a consistency proof shows an older tree is a prefix of a
newer one; anyone can check both with this module alone.

A *frontier* is the list of ``(size, hash)`` roots of the perfect subtrees that make up a tree,
largest first (one per set bit of ``n``): enough to extend the tree leaf by leaf and to compute its
root, in ``O(log n)`` space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

Frontier = list[tuple[int, bytes]]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def extend(frontier: Frontier, leaves: Iterable[bytes]) -> Frontier:
    """The frontier after appending leaf hashes ``leaves`` (the input is not changed)."""
    out = list(frontier)
    for h in leaves:
        size = 1
        while out and out[-1][0] == size:
            h = node_hash(out.pop()[1], h)
            size *= 2
        out.append((size, h))
    return out


def frontier_root(frontier: Frontier) -> bytes:
    """The tree head of the tree a frontier describes."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1][1]
    for _, h in reversed(frontier[:-1]):
        acc = node_hash(h, acc)
    return acc


def frontier_size(frontier: Frontier) -> int:
    return sum(size for size, _ in frontier)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    return frontier_root(extend([], leaves))


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf ``index`` in the tree over ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return inclusion_proof(leaves[:k], index) + [root(leaves[k:])]
    return inclusion_proof(leaves[k:], index - k) + [root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], tree_root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` put ``leaf`` at ``index`` of the tree ``tree_root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == tree_root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of the first ``old_size`` leaves is a prefix of ``leaves``."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"cannot prove size {old_size} against a tree of {len(leaves)} leaves")
    return _subproof(leaves, old_size, True)


def _subproof(leaves: Sequence[bytes], m: int, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(leaves[:k], m, complete) + [root(leaves[k:])]
    return _subproof(leaves[k:], m - k, False) + [root(leaves[:k])]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree ``old_root`` a prefix of the tree ``new_root``?"""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:      # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


def frontier_to_json(frontier: Frontier) -> list[list]:
    return [[size, h.hex()] for size, h in frontier]


def frontier_from_json(data: list) -> Frontier:
    return [(int(size), bytes.fromhex(h)) for size, h in data]
