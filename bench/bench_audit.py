"""Audit log cost: append per write, and `audit verify` over 1,000,000 entries.

    .venv/bin/python bench/bench_audit.py [--small]

Side by side in one process, on SQLite in a temporary folder:
  * append: N write transactions that each append one audit entry through ``audit.append``
    (permission check, hash chain, a Merkle checkpoint every 256 entries) versus the same
    transactions inserting the same row into a plain table with no chain and no check
    (what MLflow / DVC / W&B record: none of them keeps a tamper-evident log).
  * verify: ``audit.verify`` (chain + RFC 6962 tree + every checkpoint) over ``M`` entries versus
    a plain pass that reads every row and hashes its canonical bytes once (the floor).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from runlock import audit
from runlock.workspace import init


def bench_append(store, n: int) -> tuple[float, float]:  # noqa: ANN001
    with store.db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE plain_log (seq INTEGER PRIMARY KEY, time TEXT, actor TEXT, "
                             "action TEXT, target TEXT, details TEXT)")
    t = time.perf_counter()
    for i in range(n):
        store.db.run_write(lambda c, i=i: audit.append(c, store.actor, "bench.write", f"x:{i}", details={"i": i}))
    ours = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        store.db.run_write(lambda c, i=i: c.exec_driver_sql(
            "INSERT INTO plain_log (time, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
            ("2026-01-01T00:00:00Z", store.actor, "bench.write", f"x:{i}", f'{{"i":{i}}}')))
    plain = (time.perf_counter() - t) / n
    return ours, plain


def fill(store, m: int, batch: int = 50_000) -> None:  # noqa: ANN001
    """Grow the log to ``m`` entries quickly: rows chained exactly as ``append`` chains them,
    bulk-inserted 50,000 a transaction (the per-write path is what ``bench_append`` measures),
    then one signed checkpoint over all of them."""
    last = audit.log(store, limit=1)
    seq, prev = (last[0].seq, last[0].entry_hash) if last else (0, audit.GENESIS)
    while seq < m:
        rows = []
        for _ in range(min(batch, m - seq)):
            seq += 1
            row = {"seq": seq, "time": "2026-01-01T00:00:00.000000Z", "actor": store.actor,
                   "action": "bench.write", "target": f"y:{seq}", "before": None, "after": None,
                   "details": {"i": seq}, "prev_hash": prev}
            row["entry_hash"] = prev = audit.entry_hash(row)
            rows.append(row)
        store.db.run_write(lambda c, rows=rows: c.execute(audit.audit_log.insert(), rows))
        print(f"  filled {seq:,}/{m:,}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    audit.checkpoint(store)


def plain_pass(store) -> float:  # noqa: ANN001
    t = time.perf_counter()
    with store.db.read() as conn:
        for r in audit.iter_rows(conn):
            hashlib.sha256(audit.body_bytes(r)).digest()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", action="store_true", help="300 appends and 100,000 entries (a quick check)")
    a = ap.parse_args()
    n, m = (300, 100_000) if a.small else (2_000, 1_000_000)
    with tempfile.TemporaryDirectory() as d:
        store = init(Path(d))
        ours, plain = bench_append(store, n)
        print(f"append, {n} write transactions: runlock {ours * 1e6:.0f} us/write, plain insert "
              f"{plain * 1e6:.0f} us/write, ratio {ours / plain:.2f}x")
        t = time.perf_counter()
        fill(store, m)
        fill_s = time.perf_counter() - t
        print(f"filled to {m:,} entries in {fill_s:.0f} s (bulk insert, same chain)")
        audit.sign_pending(store)
        t = time.perf_counter()
        report = audit.verify(store)
        verify_s = time.perf_counter() - t
        floor = plain_pass(store)
        assert report.ok, report.problems[:3]
        print(f"verify {report.entries:,} entries, {report.signed_checkpoints} signed checkpoint(s): "
              f"runlock {verify_s:.1f} s ({report.entries / verify_s:,.0f} entries/s); read+hash floor "
              f"{floor:.1f} s; ratio {verify_s / floor:.2f}x")
        with store.db.read() as conn:
            size = conn.execute(sa.select(sa.func.count()).select_from(audit.audit_checkpoints)).scalar()
        print(f"checkpoints recorded: {size}")
        store.close()


if __name__ == "__main__":
    main()
