"""Pipelines: ``runlock repro`` vs ``dvc repro`` (DVC 3) on the same 10-stage pipeline.

    .venv/bin/python bench/bench_pipeline.py [--mb 200] [--files 2000] [--rounds 3] [--dir DIR]

The pipeline: a raw data folder (``--files`` files, ``--mb`` MB in all; the issue asks for 2 GB,
pass ``--mb 2000 --files 10000`` on a machine with the disk and time) and 10 stages
``s0 … s9``; each depends on the raw folder, its own script and the previous stage's small out,
and writes one small out (so the time measured is each tool's own work, not the commands').
Both tools run as command-line programs in a fresh folder, without git (``dvc init --no-scm``).

1. first ``repro`` (10 stages run);
2. no-op ``repro`` (nothing changed; the median of ``--rounds``): DVC checks every dep and out
   by its state cache (inode, mtime, size), runlock by its folder and stat caches (every file
   stat'ed, none listed or read again) plus a database lookup and a cache-hit row per stage;
3. one stage changed (a param of s9 edited): one stage runs;
4. four independent stages (``p0 … p3``, each a 1 s command) in a second pipeline:
   ``runlock repro --jobs 2`` vs ``dvc repro`` (serial: DVC cannot run stages in parallel).

Each figure is given twice: wall time, and CPU time (user + system of the command and its
children, from ``getrusage``), which other jobs on a shared machine disturb much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
STAGES = 10

SCRIPT = '''import hashlib, sys, yaml
i = int(sys.argv[1])
p = yaml.safe_load(open("params.yaml"))["s%d" % i]
prev = open("out/s%d.txt" % (i - 1)).read() if i else ""
open("out/s%d.txt" % i, "w").write(hashlib.sha256((prev + str(p)).encode()).hexdigest())
'''
SLEEP = '''import sys, time
time.sleep(1.0)
open("par/%s.txt" % sys.argv[1], "w").write(sys.argv[1])
'''


def _write_project(d: Path, files: int, mb: int) -> None:
    raw = d / "raw"
    raw.mkdir(parents=True)
    size = mb * 1024 * 1024 // files
    for i in range(files):
        (raw / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    (d / "stage.py").write_text(SCRIPT)
    (d / "out").mkdir()
    (d / "params.yaml").write_text("".join(f"s{i}: {{k: {i}}}\n" for i in range(STAGES)))


def _runlock_yaml(d: Path) -> None:
    lines = ["stages:"]
    for i in range(STAGES):
        deps = ["raw", "stage.py"] + ([f"out/s{i - 1}.txt"] if i else [])
        lines += [f"  s{i}:", f"    cmd: python stage.py {i}", f"    deps: [{', '.join(deps)}]",
                  f"    params: [s{i}.k]", f"    outs: [out/s{i}.txt]"]
    (d / "runlock.yaml").write_text("\n".join(lines) + "\n")


def _dvc_yaml(d: Path) -> None:
    lines = ["stages:"]
    for i in range(STAGES):
        deps = ["raw", "stage.py"] + ([f"out/s{i - 1}.txt"] if i else [])
        lines += [f"  s{i}:", f"    cmd: python stage.py {i}", "    deps:"] + [f"      - {x}" for x in deps]
        lines += ["    params:", f"      - s{i}.k", "    outs:", f"      - out/s{i}.txt"]
    (d / "dvc.yaml").write_text("\n".join(lines) + "\n")


def _par(d: Path, dvc: bool) -> None:
    (d / "sleep.py").write_text(SLEEP)
    (d / "par").mkdir()
    lines = ["stages:"]
    for i in range(4):
        if dvc:
            lines += [f"  p{i}:", f"    cmd: python sleep.py p{i}", "    deps:", "      - sleep.py",
                      "    outs:", f"      - par/p{i}.txt"]
        else:
            lines += [f"  p{i}:", f"    cmd: python sleep.py p{i}", "    deps: [sleep.py]", f"    outs: [par/p{i}.txt]"]
    (d / ("dvc.yaml" if dvc else "runlock.yaml")).write_text("\n".join(lines) + "\n")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RUNLOCK_STORE": str(cwd)}
    t, c = time.perf_counter(), _cpu()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took, cpu = time.perf_counter() - t, _cpu() - c
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{p.stdout}\n{p.stderr}")
    return took, cpu


def _median(cmd: list[str], cwd: Path, rounds: int) -> tuple[float, float]:
    runs = [_timed(cmd, cwd) for _ in range(rounds)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def _edit_param(d: Path) -> None:
    text = (d / "params.yaml").read_text()
    (d / "params.yaml").write_text(text.replace(f"s{STAGES - 1}: {{k: {STAGES - 1}}}", f"s{STAGES - 1}: {{k: 99}}"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="Where to build the projects (default: a temporary folder).")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=a.dir))
    rl, dv = base / "runlock", base / "dvc"
    try:
        _write_project(rl, a.files, a.mb)
        shutil.copytree(rl, dv)
        _runlock_yaml(rl)
        _dvc_yaml(dv)
        _timed([str(BIN / "runlock"), "init", "."], rl)
        _timed([str(BIN / "dvc"), "init", "--no-scm", "-q"], dv)
        rows = []
        r1, d1 = _timed(["runlock", "repro"], rl), _timed(["dvc", "repro"], dv)
        rows.append(("first repro (10 stages run)", r1, d1))
        rn, dn = _median(["runlock", "repro"], rl, a.rounds), _median(["dvc", "repro"], dv, a.rounds)
        rows.append((f"no-op repro (median of {a.rounds})", rn, dn))
        rs, ds = _median(["runlock", "repro", "--dry"], rl, a.rounds), _median(["dvc", "status"], dv, a.rounds)
        rows.append((f"status / --dry (median of {a.rounds})", rs, ds))
        _edit_param(rl), _edit_param(dv)
        rows.append(("one stage changed (s9's param)", _timed(["runlock", "repro"], rl), _timed(["dvc", "repro"], dv)))
        pr, pd = base / "par-runlock", base / "par-dvc"
        pr.mkdir(), pd.mkdir()
        _par(pr, dvc=False), _par(pd, dvc=True)
        _timed([str(BIN / "runlock"), "init", "."], pr)
        _timed([str(BIN / "dvc"), "init", "--no-scm", "-q"], pd)
        rows.append(("4 independent 1 s stages: runlock --jobs 2 vs dvc (serial)",
                     _timed(["runlock", "repro", "--jobs", "2"], pr), _timed(["dvc", "repro"], pd)))
        print(f"10-stage pipeline over {a.files} files, {a.mb} MB of raw data; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'':60} {'wall: runlock':>13} {'dvc':>8} {'dvc/rl':>7}   {'CPU: runlock':>12} {'dvc':>8} {'dvc/rl':>7}")
        for label, (rw, rc), (dw, dc) in rows:
            print(f"{label:60} {rw:12.2f}s {dw:7.2f}s {dw / rw:6.2f}x   {rc:11.2f}s {dc:7.2f}s {dc / rc:6.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
