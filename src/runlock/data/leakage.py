"""Leakage checks: proof that no evaluation record is a copy, a near copy, a group-mate or a
time-traveller of a training record.

    exact      two records whose texts are equal after normalisation (NFKC, lower case,
               whitespace collapsed) sit in different partitions
    near       two records whose word-shingle sets have Jaccard similarity >= threshold
               (MinHash LSH, see ``runlock.data.minhash``) sit in different partitions
    group      one value of the group column appears in more than one partition
    temporal   a partition holds a record at or after the earliest record of a later partition
    balance    class counts per partition (reported, never a failure)

Each offending record is paired with one representative of its duplicate cluster (the record of
the earliest partition, then the smallest record id), so a cluster of m copies gives m - 1 pairs.
A report keeps at most ``MAX_PAIRS`` pairs; ``counts`` always has the full numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from typing import Any

import numpy as np

from runlock.data.minhash import NearDupSettings, arrow, near_duplicates, normalise
from runlock.data.strategies import plain

MAX_PAIRS = 10_000
REPORT_FORMAT = "runlock.leakage/1"


@dataclass(frozen=True)
class LeakPair:
    a: str
    b: str
    kind: str  # "exact" | "near"
    similarity: float
    partitions: tuple[str, str]

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "kind": self.kind, "similarity": self.similarity,
                "partitions": list(self.partitions)}


@dataclass(frozen=True)
class LeakageReport:
    passed: bool
    counts: dict
    pairs: tuple[LeakPair, ...] = ()
    groups: tuple[dict, ...] = ()
    temporal: tuple[dict, ...] = ()
    balance: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"format": REPORT_FORMAT, "passed": self.passed, "counts": dict(self.counts),
                "pairs": [p.to_dict() for p in self.pairs], "groups": list(self.groups),
                "temporal": list(self.temporal), "balance": self.balance,
                "settings": self.settings, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> "LeakageReport":
        pairs = tuple(LeakPair(p["a"], p["b"], p["kind"], p["similarity"], tuple(p["partitions"]))
                      for p in d.get("pairs", ()))
        return cls(d["passed"], d["counts"], pairs, tuple(d.get("groups", ())),
                   tuple(d.get("temporal", ())), d.get("balance", {}), d.get("settings", {}),
                   tuple(d.get("notes", ())))


@dataclass(frozen=True)
class Inputs:
    """What the checks look at, one entry per record; any column may be absent."""

    ids: Sequence[str]
    part: np.ndarray
    names: Sequence[str]
    texts: Any = None  # a pyarrow string array
    groups: np.ndarray | None = None
    times: np.ndarray | None = None
    labels: np.ndarray | None = None
    text_columns: tuple[str, ...] = ()
    text_note: str | None = None  # how the text columns were chosen (said in the report)


@dataclass(frozen=True)
class TextColumns:
    """The columns the duplicate checks compare, and how they were chosen."""

    columns: tuple[str, ...]
    chosen_from_data: bool = False
    left_out: tuple[str, ...] = ()   # string columns the data showed are not free text

    def note(self) -> str | None:
        if not self.chosen_from_data:
            return None
        if not self.columns:
            return ("No free-text column found (string columns whose values mostly have "
                    f"{MIN_TEXT_WORDS}+ words and do not mostly repeat): exact and near duplicate checks "
                    "were skipped. Name the columns to compare with --text COLUMN.")
        left = f"; not free text, left out: {', '.join(self.left_out)}" if self.left_out else ""
        return (f"Duplicate checks compared the free-text column(s) {', '.join(self.columns)}, chosen from "
                f"the data{left}. Choose others with --text COLUMN.")


MIN_TEXT_WORDS = 4        # a free-text value has at least this many words with a letter in them
MIN_TEXT_SHARE = 0.5      # ... in at least this share of a column's values
MIN_DISTINCT_SHARE = 0.2  # and at least this share of its values are distinct (labels and codes
                          # repeat far more; a text column with many exact copies still qualifies)


def free_text_columns(table: Any, candidates: Sequence[str]) -> TextColumns:
    """Of ``candidates`` (string columns), those that hold free text: in at least half of the
    non-empty values, four or more words contain a letter, and at least a fifth of the values are
    distinct. That leaves out labels and customer codes (few words, few values), ids (one token),
    timestamps (no letters), short names and multi-word categories (many repeats)."""
    pa, pc = arrow()
    chosen, left = [], []
    for name in candidates:
        col = table.column(name).combine_chunks()
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        (chosen if _is_free_text(col) else left).append(name)
    return TextColumns(tuple(chosen), True, tuple(left))


def _is_free_text(col: Any) -> bool:
    pc = arrow()[1]
    present = pc.drop_null(col)
    n = len(present)
    if n == 0:
        return False
    words = pc.utf8_split_whitespace(present)
    flat = pc.list_flatten(words)
    lettered = pc.match_substring_regex(flat, r"\pL").to_numpy(zero_copy_only=False)
    owner = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
    per_value = np.bincount(owner[lettered], minlength=n)
    texty = np.count_nonzero(per_value >= MIN_TEXT_WORDS) >= MIN_TEXT_SHARE * n
    return bool(texty) and pc.count_distinct(present).as_py() >= MIN_DISTINCT_SHARE * n


def check(inputs: Inputs, settings: NearDupSettings = NearDupSettings(),
          on_progress: Callable[[str, int, int], None] | None = None) -> LeakageReport:
    """Run every check the inputs allow; the report passes when nothing leaks.
    ``on_progress(stage, done, total)`` follows the near-duplicate search band by band."""
    notes: list[str] = [inputs.text_note] if inputs.text_note else []
    pairs: list[LeakPair] = []
    if inputs.texts is None:
        if not inputs.text_note:
            notes.append("No text columns: exact and near duplicate checks were skipped.")
    else:
        cluster = exact_clusters(inputs.texts)
        pairs += _exact_pairs(inputs, cluster)
        bands = (lambda done, total: on_progress("near duplicates", done, total)) if on_progress else None
        pairs += _near_pairs(inputs, cluster, settings, bands)
    groups = _group_leaks(inputs) if inputs.groups is not None else []
    temporal = _temporal_leaks(inputs) if inputs.times is not None else []
    counts = {"exact": sum(p.kind == "exact" for p in pairs), "near": sum(p.kind == "near" for p in pairs),
              "group": len(groups), "temporal": len(temporal)}
    if len(pairs) > MAX_PAIRS:
        notes.append(f"Only the first {MAX_PAIRS} of {len(pairs)} pairs are listed.")
    return LeakageReport(
        passed=not any(counts.values()), counts=counts,
        pairs=tuple(sorted(pairs, key=lambda p: (p.kind, p.a, p.b))[:MAX_PAIRS]),
        groups=tuple(groups[:MAX_PAIRS]), temporal=tuple(temporal),
        balance=_balance(inputs) if inputs.labels is not None else {},
        settings={**settings.to_dict(), "text_columns": list(inputs.text_columns)},
        notes=tuple(notes))


def exact_clusters(texts: Any) -> np.ndarray:
    """Per record, the index of its normalised text among the distinct ones (-1 for no text)."""
    pc = arrow()[1]
    codes = pc.dictionary_encode(normalise(texts)).indices
    return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _runs(cluster: np.ndarray) -> list[np.ndarray]:
    """Row indices of each cluster with two or more members."""
    order = np.argsort(cluster, kind="stable")
    sc = cluster[order]
    cuts = np.flatnonzero(np.diff(sc)) + 1
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(sc)]])
    multi = (ends - starts > 1) & (sc[starts] >= 0) if len(sc) else np.zeros(0, bool)
    return [order[s:e] for s, e in zip(starts[multi], ends[multi])]


def _exact_pairs(inputs: Inputs, cluster: np.ndarray) -> list[LeakPair]:
    out = []
    for rows in _runs(cluster):
        parts = inputs.part[rows]
        if (parts == parts[0]).all():
            continue
        rep = min(rows.tolist(), key=lambda r: (inputs.part[r], inputs.ids[r]))
        for r in rows.tolist():
            if inputs.part[r] != inputs.part[rep]:
                out.append(_pair(inputs, rep, r, "exact", 1.0))
    return out


def _near_pairs(inputs: Inputs, cluster: np.ndarray, settings: NearDupSettings,
                on_progress: Callable[[int, int], None] | None = None) -> list[LeakPair]:
    a, b, sim = near_duplicates(inputs.texts, settings, group=inputs.part, on_progress=on_progress)
    keep = cluster[a] != cluster[b]
    return [_pair(inputs, i, j, "near", round(float(s), 4))
            for i, j, s in zip(a[keep].tolist(), b[keep].tolist(), sim[keep].tolist())]


def _pair(inputs: Inputs, i: int, j: int, kind: str, similarity: float) -> LeakPair:
    if (inputs.part[i], inputs.ids[i]) > (inputs.part[j], inputs.ids[j]):
        i, j = j, i
    return LeakPair(str(inputs.ids[i]), str(inputs.ids[j]), kind, similarity,
                    (inputs.names[inputs.part[i]], inputs.names[inputs.part[j]]))


def _group_leaks(inputs: Inputs) -> list[dict]:
    keys, code = np.unique(inputs.groups, return_inverse=True)
    pairs = np.unique(code.astype(np.int64) * len(inputs.names) + inputs.part)
    g, p = pairs // len(inputs.names), pairs % len(inputs.names)
    spread = np.bincount(g, minlength=len(keys))
    out = []
    for k in np.flatnonzero(spread > 1).tolist():
        out.append({"group": plain(keys[k]), "partitions": [inputs.names[i] for i in p[g == k]],
                    "records": int((code == k).sum())})
    return out


def _temporal_leaks(inputs: Inputs) -> list[dict]:
    out = []
    present = [i for i in range(len(inputs.names)) if (inputs.part == i).any()]
    for i, j in zip(present, present[1:]):
        earlier, later = inputs.times[inputs.part == i], inputs.times[inputs.part == j]
        if earlier.max() >= later.min():
            out.append({"earlier": inputs.names[i], "later": inputs.names[j],
                        "earlier_max": plain(earlier.max()), "later_min": plain(later.min()),
                        "records": int((later <= earlier.max()).sum())})
    return out


def _balance(inputs: Inputs) -> dict:
    classes, code = np.unique(inputs.labels, return_inverse=True)
    table = np.zeros((len(classes), len(inputs.names)), np.int64)
    np.add.at(table, (code, inputs.part), 1)
    totals = table.sum(0)
    out = {"classes": {}, "missing": []}
    for c, row in zip(classes, table):
        name = str(plain(c))
        out["classes"][name] = {n: {"count": int(v), "fraction": round(float(v / t), 6) if t else 0.0}
                                for n, v, t in zip(inputs.names, row, totals)}
        out["missing"] += [{"class": name, "partition": n} for n, v in zip(inputs.names, row) if v == 0]
    return out


def duplicates(ids: Sequence[str], texts: Any,
               settings: NearDupSettings = NearDupSettings()) -> list[dict]:
    """Records to drop so that no two remaining texts are exact or near duplicates: in each
    connected cluster the smallest record id is kept. ``[{"id", "kept", "kind"}]``."""
    cluster = exact_clusters(texts)
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x: int, y: int) -> None:
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry, key=lambda r: ids[r])] = min(rx, ry, key=lambda r: ids[r])

    for rows in _runs(cluster):
        for r in rows.tolist()[1:]:
            union(int(rows[0]), r)
    a, b, _ = near_duplicates(texts, settings)
    for i, j in zip(a.tolist(), b.tolist()):
        union(i, j)
    out = []
    for r in range(len(ids)):
        root = find(r)
        if root != r:
            kind = "exact" if cluster[r] == cluster[root] and cluster[r] >= 0 else "near"
            out.append({"id": str(ids[r]), "kept": str(ids[root]), "kind": kind})
    return sorted(out, key=lambda d: d["id"])
