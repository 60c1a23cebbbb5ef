"""System metrics: CPU, memory and GPU use, sampled in the background while a run trains.

``start_run(..., system_metrics=True, system_interval=N)`` starts a ``SystemSampler`` thread that
every ``N`` seconds reads the machine and the process and logs one point per key under
``system/``, at the run's latest step (so a curve lines up with the loss of the same step):

    system/cpu_percent              every CPU of the machine (100 = all of them busy)
    system/memory_percent           memory of the machine in use
    system/process_cpu_percent      this process (100 = one core busy)
    system/process_rss_mb           this process's resident memory
    system/gpuI/memory_allocated_mb   tensors torch holds on device I (per device this process uses)
    system/gpuI/memory_reserved_mb    torch's caching allocator on device I
    system/gpuI/memory_used_percent   device I as a whole (every process on it)
    system/gpuI/utilization_percent   when torch can read it (it needs NVML: ``pip install nvidia-ml-py``)

GPUs are read only through torch, only when the program has imported torch and initialised CUDA
itself (the sampler never creates a CUDA context, and never imports torch). The training loop
pays nothing: sampling runs on its own thread, and its points go to the run's metric writer.
System metrics describe the machine, not the result, so ``runlock compare`` and ``verify``
leave ``system/`` keys out.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import psutil

from runlock.errors import InvalidInput

SYSTEM_PREFIX = "system/"
MIN_INTERVAL_S = 0.01
MB = 2**20


class SystemSampler:
    """A daemon thread that calls ``emit({key: value})`` every ``interval`` seconds until ``stop``."""

    def __init__(self, emit: Callable[[dict[str, float]], None], interval: float) -> None:
        self.interval = check_interval(interval)
        self.samples = 0
        self._emit = emit
        self._stop = threading.Event()
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)        # the first reading of each counter is a baseline
        self._process.cpu_percent(interval=None)
        self._thread = threading.Thread(target=self._loop, name="runlock-system-metrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                values = sample(self._process)
            except Exception:  # noqa: BLE001 - a reading that fails is skipped, never fatal
                continue
            if self._stop.is_set():
                return
            self._emit(values)
            self.samples += 1


def sample(process: psutil.Process) -> dict[str, float]:
    """One reading of the machine, this process and the GPUs torch uses here."""
    with process.oneshot():
        out = {
            "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
            "system/memory_percent": float(psutil.virtual_memory().percent),
            "system/process_cpu_percent": float(process.cpu_percent(interval=None)),
            "system/process_rss_mb": process.memory_info().rss / MB,
        }
    out.update(gpu_sample(sys.modules.get("torch")))
    return out


def gpu_sample(torch: Any) -> dict[str, float]:
    """GPU memory and utilisation of each device this process uses; {} without torch or CUDA."""
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    out: dict[str, float] = {}
    current = torch.cuda.current_device()
    for i in range(torch.cuda.device_count()):
        reserved = torch.cuda.memory_reserved(i)
        if not reserved and i != current:
            continue   # a device this process does not use: reading it would create a context
        key = f"system/gpu{i}/"
        out[key + "memory_allocated_mb"] = torch.cuda.memory_allocated(i) / MB
        out[key + "memory_reserved_mb"] = reserved / MB
        free, total = torch.cuda.mem_get_info(i)
        out[key + "memory_used_percent"] = 100.0 * (total - free) / total if total else 0.0
        try:
            out[key + "utilization_percent"] = float(torch.cuda.utilization(i))
        except Exception:  # noqa: BLE001 - needs NVML (nvidia-ml-py); skipped without it
            pass
    return out


def check_interval(interval: Any) -> float:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= MIN_INTERVAL_S \
            or interval == float("inf"):
        raise InvalidInput(f"system_interval must be a number of seconds of at least {MIN_INTERVAL_S}, "
                           f"got {interval!r}.")
    return float(interval)
