"""What one probed run leaves behind: fingerprints of every RNG state, exact metrics and tensor
hashes after each step, in a JSON-safe trace that two runs can be compared by.

Streams are named ``python`` (the global ``random``), ``numpy`` (NumPy's legacy global RNG),
``torch``, ``cuda:N``, ``generator:NAME`` (passed in by the caller) and, for generators created
without a seed while the probe watched, ``numpy.random.default_rng() at FILE:LINE`` or
``random.Random() at FILE:LINE`` (see ``runlock.probe.watch``).
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Callable, Mapping
from typing import Any


class Trace:
    """Fingerprints of one run: RNG states at the start and after each step, metrics, tensors,
    and the unseeded generators created during it (``created``: name -> creation state + step)."""

    def __init__(self, generators: Callable[[], Mapping[str, Any]], *, started: bool = True,
                 tracked: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.generators = generators
        self.tracked = tracked
        start = self._fingerprints() if started else None
        self.data: dict[str, Any] = {"start": start, "steps": [], "kernels": [], "created": {}}
        self._last = start

    def _fingerprints(self) -> dict[str, str]:
        return {**rng_fingerprints(self.generators()), **{n: fingerprint(rng_object_state(g))
                                                          for n, g in self.tracked().items()}}

    def add(self, step: int, metrics: Any, params: Any) -> None:
        rngs = self._fingerprints()
        if self._last is None:  # recording began after this step had run
            consumed = ["unknown"]
        else:
            consumed = sorted(k for k in set(rngs) & set(self._last) if rngs[k] != self._last[k])
            consumed += sorted(k for k in set(rngs) - set(self._last)
                               if k in self.data["created"] and rngs[k] != self.data["created"][k]["state"])
        self.data["steps"].append({"step": step, "rng": rngs, "consumed": sorted(consumed),
                                   "metrics": metrics_of(metrics), "params": params_of(params)})
        self._last = rngs


# --- fingerprints -------------------------------------------------------------------------------

def rng_fingerprints(generators: Mapping[str, Any]) -> dict[str, str]:
    """Fingerprints of the global streams (those loaded) and of the named generators."""
    out = {"python": fingerprint(random.getstate())}
    np = sys.modules.get("numpy")
    if np is not None:
        out["numpy"] = fingerprint(np.random.get_state(legacy=False))
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = fingerprint(torch.get_rng_state())
        if torch.cuda.is_initialized():
            out.update((f"cuda:{i}", fingerprint(s)) for i, s in enumerate(torch.cuda.get_rng_state_all()))
    out.update((f"generator:{k}", fingerprint(rng_object_state(g))) for k, g in generators.items())
    return out


def rng_object_state(rng: Any) -> Any:
    for attr in ("getstate", "get_state"):
        if callable(getattr(rng, attr, None)):
            return getattr(rng, attr)()
    return rng.bit_generator.state


def fingerprint(value: Any) -> str:
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:32]


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            h.update(f"k{key!s}:".encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"l{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif hasattr(value, "detach"):  # torch tensor: dtype, shape and exact bytes
        t = value.detach().cpu().contiguous()
        h.update(f"t{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(sys.modules["torch"].uint8).numpy().tobytes())
    elif hasattr(value, "tobytes") and hasattr(value, "dtype"):  # numpy array or scalar
        h.update(f"a{value.dtype}{getattr(value, 'shape', ())}:".encode())
        h.update(value.tobytes())
    else:
        h.update(f"v{value!r};".encode())


def metrics_of(metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        metrics = {"value": metrics}
    return {str(k): _exact(v) for k, v in metrics.items()}


def _exact(value: Any) -> Any:
    """A metric as an exact, comparable JSON value (floats as hex, tensors with >1 element hashed)."""
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return "sha256:" + fingerprint(value)
    if isinstance(value, float):
        return value.hex()
    return value if value is None or isinstance(value, (bool, int, str)) else repr(value)


def params_of(params: Any) -> dict[str, str]:
    if params is None:
        return {}
    if hasattr(params, "state_dict"):
        params = params.state_dict()
    if not isinstance(params, Mapping):
        params = {"value": params}
    return {str(k): fingerprint(v) for k, v in params.items()}


def show(value: Any) -> str:
    """A recorded metric as people read it (hex floats back to decimal)."""
    return repr(float.fromhex(value)) if isinstance(value, str) and value.startswith(("0x", "-0x")) else repr(value)
