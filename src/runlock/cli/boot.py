"""The first code a rerun's process runs: restore the recorded knobs, then hand over.

    python -m runlock.cli.boot SCRIPT ARGS...           a script that called start_run
    python -m runlock.cli.boot --wrap SPEC -- CMD...    a command `runlock run` wrapped
    python -m runlock.cli.boot --remote SPEC -- ARGV... either, recording to a team server

``RUNLOCK_REPLAY`` (JSON) carries the recorded ``knobs``: when torch was imported before the
original run started, torch is imported here too and its thread counts and determinism flags
are set to the recorded values (only those that differ), before any user code runs. Then the
script runs as ``python SCRIPT ARGS`` would run it (same ``sys.argv``, its folder first on
``sys.path``, as ``__main__``), or the command runs under a new wrapper run.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

from runlock.api import open_for_writing
from runlock.tracking.wrapper import run_command
from runlock.verify.rerun import ENV_REPLAY

_FLAGS = {  # recorded knob -> (object path under torch, attribute)
    "cudnn_deterministic": ("backends.cudnn", "deterministic"),
    "cudnn_benchmark": ("backends.cudnn", "benchmark"),
    "cudnn_enabled": ("backends.cudnn", "enabled"),
    "cudnn_allow_tf32": ("backends.cudnn", "allow_tf32"),
    "cuda_matmul_allow_tf32": ("backends.cuda.matmul", "allow_tf32"),
}


def restore_knobs(knobs: dict) -> list[str]:
    """Set torch's threads and determinism flags to the recorded ones; return what changed."""
    flags, threads = knobs.get("torch"), knobs.get("threads") or {}
    if not flags:
        return []
    import torch  # optional: only when the original run had torch imported before it started

    changed = []
    if threads.get("torch_intra_op") and torch.get_num_threads() != threads["torch_intra_op"]:
        torch.set_num_threads(threads["torch_intra_op"])
        changed.append("torch_intra_op")
    if threads.get("torch_inter_op") and torch.get_num_interop_threads() != threads["torch_inter_op"]:
        try:
            torch.set_num_interop_threads(threads["torch_inter_op"])
            changed.append("torch_inter_op")
        except RuntimeError:
            pass  # already fixed by this torch build; the lock will show the difference
    det, warn = flags.get("deterministic_algorithms"), flags.get("deterministic_warn_only")
    if det is not None and (torch.are_deterministic_algorithms_enabled(), 
                            torch.is_deterministic_algorithms_warn_only_enabled()) != (det, bool(warn)):
        torch.use_deterministic_algorithms(det, warn_only=bool(warn))
        changed.append("deterministic_algorithms")
    if flags.get("float32_matmul_precision") and torch.get_float32_matmul_precision() != flags["float32_matmul_precision"]:
        torch.set_float32_matmul_precision(flags["float32_matmul_precision"])
        changed.append("float32_matmul_precision")
    for knob, (path, attr) in _FLAGS.items():
        obj = torch
        for part in path.split("."):
            obj = getattr(obj, part)
        if flags.get(knob) is not None and bool(getattr(obj, attr)) != flags[knob]:
            setattr(obj, attr, flags[knob])
            changed.append(knob)
    return changed


def main(args: list[str]) -> int:
    restore_knobs(json.loads(os.environ.get(ENV_REPLAY) or "{}"))
    if args[:1] == ["--remote"]:    # a rerun recording to a team server (runlock.remote.rerun)
        from runlock.remote.rerun import boot_remote
        return boot_remote(json.loads(args[1]), args[3:], _run_script)
    if args[:1] == ["--wrap"]:
        spec = json.loads(args[1])
        store = open_for_writing()
        result = run_command(store, args[3:], project=spec["project"], name=spec["name"], seed=spec.get("seed"))
        return result.returncode
    _run_script(args)
    return 0


def _run_script(args: list[str]) -> None:
    """Run ``args[0]`` as ``python SCRIPT ARGS`` would: same ``sys.argv``, its folder first on
    ``sys.path``, as ``__main__``."""
    sys.argv = list(args)
    sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
    runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
