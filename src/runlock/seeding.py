"""Seeds, determinism settings, derived seed streams and the knobs that change a result.

``seed_everything`` seeds the global generators (Python ``random``, NumPy's legacy global RNG,
torch CPU and every CUDA device), optionally switches torch to deterministic algorithms, and
returns a ``SeedReport`` saying what it did and what it could not do. ``derive_seed`` gives
independent, stable seeds for named streams. ``knobs`` captures the settings that change a result
even when nothing is seeded. torch is optional: it is imported only inside the functions that use
it, and only if it is installed.

Nothing here pretends: ``PYTHONHASHSEED`` is read at interpreter start, so setting it from inside
a running program has no effect. ``hashseed_status`` verifies what is really in force, and
``hashseed_environ`` builds the environment for starting a program with it set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from runlock.canonical import dumps, normalize
from runlock.errors import InvalidInput

DERIVE_DOMAIN = b"runlock/derive_seed/v1\n"
CUBLAS_DETERMINISTIC = ":4096:8"
MAX_SEED = 2**64 - 1
MAX_HASHSEED = 2**32 - 1
KNOB_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED", "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
    "WORLD_SIZE", "RANK", "LOCAL_RANK",
)
PROBE_ENV = "RUNLOCK_PROBE"
HASHSEED_ENV = "RUNLOCK_HASHSEED"  # set by `runlock run --hashseed N` for the command: the hash seed it asked for
_HASH_CANARY = "runlock-hashseed-canary"

# The root seed of the last seed_everything call, for ``root_seed()`` (e.g. runlock.torch.seeded).
_last_root: list[int] = []


@dataclass(frozen=True)
class NotSeeded:
    source: str
    reason: str


@dataclass(frozen=True)
class HashSeedStatus:
    """What PYTHONHASHSEED really is in this interpreter, compared with what was asked for.

    ``actual`` is the value the interpreter started with (``None``: unset or ``random``);
    ``fixed`` says string hashing is reproducible at all; ``effective`` says the requested value is
    the one in force.
    """

    requested: int | None
    actual: int | None
    fixed: bool
    effective: bool
    detail: str


@dataclass(frozen=True)
class SeedReport:
    seed: int
    seeded: tuple[str, ...]
    not_seeded: tuple[NotSeeded, ...]
    deterministic: dict[str, Any]
    hashseed: HashSeedStatus
    cublas_workspace_config: str | None
    threads: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return normalize(asdict(self))


def derive_seed(root: int, stream: str, **coords: int | str) -> int:
    """Return a 64-bit seed for ``stream`` at ``coords``, independent of every other stream.

    Encoding (stable; golden values in tests/test_seeding.py)::

        sha256(b"runlock/derive_seed/v1\\n"
               + canonical_json({"coords": {...}, "root": root, "stream": stream}))

    where canonical JSON is ``runlock.canonical.dumps`` (UTF-8, sorted keys, no whitespace). The
    seed is the first 8 bytes of the digest read as a big-endian unsigned integer. Coordinates are
    ints or strings (``epoch=3, rank=0, worker=1``); an omitted coordinate differs from any value.
    """
    _check_seed(root, "root")
    if not isinstance(stream, str) or not stream:
        raise InvalidInput(f"Seed stream name must be a non-empty string, got {stream!r}.")
    for key, value in coords.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidInput(f"Seed coordinate {key}={value!r} must be an int or a string.")
    payload = dumps({"coords": coords, "root": root, "stream": stream})
    return int.from_bytes(hashlib.sha256(DERIVE_DOMAIN + payload).digest()[:8], "big")


def root_seed() -> int:
    """The seed of the last ``seed_everything`` call in this process."""
    if not _last_root:
        raise InvalidInput("No root seed is set in this process.",
                           hint="Call runlock.seed_everything(seed) first, or pass root= explicitly.")
    return _last_root[-1]


def seed_everything(seed: int, deterministic: bool = True, warn_only: bool = False,
                    hashseed: int | None = None) -> SeedReport:
    """Seed every global generator runlock knows and, if asked, make torch deterministic.

    The hash seed is not the seed: ``PYTHONHASHSEED`` is fixed when the interpreter starts
    (``runlock run --hashseed N``), never here. The report says whether one is in force; a
    warning comes only when the hash seed asked for (``hashseed=``, else the ``--hashseed`` of
    ``runlock run``) is not the one in force, or when ``PYTHONHASHSEED`` was set too late or to
    a bad value to take effect. An unset hash seed that nobody asked for is reported in
    ``not_seeded``, without a warning.

    Under ``runlock probe`` (``RUNLOCK_PROBE`` set) ``warn_only`` is forced on, so that
    nondeterministic kernels are reported instead of raising.
    """
    _check_seed(seed, "seed")
    if os.environ.get(PROBE_ENV):
        warn_only = True
    seeded, missing, warnings = ["python"], [], []
    random.seed(seed)
    _seed_numpy(seed, seeded, missing)
    torch = _import_torch()
    settings: dict[str, Any] = {}
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if torch is None:
        missing.append(NotSeeded("torch", "torch is not installed"))
    else:
        _seed_torch(torch, seed, seeded, missing)
        if deterministic:
            settings = _make_deterministic(torch, warn_only)
            cublas = _set_cublas_workspace(torch, warnings)
    if hashseed is not None and (isinstance(hashseed, bool) or not isinstance(hashseed, int)
                                 or not 0 <= hashseed <= MAX_HASHSEED):
        raise InvalidInput(f"The hash seed must be an integer from 0 to {MAX_HASHSEED}, got {hashseed!r}.")
    asked = hashseed if hashseed is not None else _hashseed_asked()
    status = hashseed_status(hashseed)   # recorded: only what the script asks for (a rerun asks the same)
    mismatch = asked is not None and status.actual != asked
    if not status.fixed or mismatch:
        detail = hashseed_status(asked).detail if mismatch else status.detail
        missing.append(NotSeeded("PYTHONHASHSEED", detail))
        if mismatch or os.environ.get("PYTHONHASHSEED"):   # asked for, or set but not in force
            warnings.append(detail)
    _last_root.append(seed)
    del _last_root[:-1]
    return SeedReport(seed=seed, seeded=tuple(seeded), not_seeded=tuple(missing),
                      deterministic=settings, hashseed=status, cublas_workspace_config=cublas,
                      threads=_threads(torch), warnings=tuple(warnings))


def hashseed_status(requested: int | None) -> HashSeedStatus:
    """Compare the requested hash seed with the one this interpreter really started with.

    The environment can be edited after start-up, so a set ``PYTHONHASHSEED`` is verified: a child
    interpreter started with that value must hash a canary string exactly as this one does.
    """
    raw = os.environ.get("PYTHONHASHSEED")
    actual = int(raw) if raw and raw.isdigit() else None
    if raw is not None and raw != "random" and actual is None:
        detail = f"PYTHONHASHSEED={raw!r} is not a valid value; string hashing is randomised."
        return HashSeedStatus(requested, None, False, False, detail)
    if actual is not None and not _hashseed_in_force(actual):
        detail = (f"PYTHONHASHSEED={actual} was set after this interpreter started, so it has no "
                  f"effect; string hashing is randomised.{_hint(requested)}")
        return HashSeedStatus(requested, None, False, False, detail)
    if actual is None:
        detail = f"PYTHONHASHSEED is unset: str/bytes hashes and set order change every run.{_hint(requested)}"
        return HashSeedStatus(requested, None, False, False, detail)
    if requested is not None and actual != requested:
        detail = f"PYTHONHASHSEED is {actual}, not the requested {requested}.{_hint(requested)}"
        return HashSeedStatus(requested, actual, True, False, detail)
    return HashSeedStatus(requested, actual, True, True, f"PYTHONHASHSEED={actual} is in force.")


def _hashseed_asked() -> int | None:
    raw = os.environ.get(HASHSEED_ENV)
    return int(raw) if raw and raw.isdigit() else None


def hashseed_environ(hashseed: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for starting a child program with ``PYTHONHASHSEED`` set (``runlock run --hashseed``)."""
    if isinstance(hashseed, bool) or not isinstance(hashseed, int) or not 0 <= hashseed <= MAX_HASHSEED:
        raise InvalidInput(f"Hash seed must be an integer from 0 to {MAX_HASHSEED}, got {hashseed!r}.")
    env = dict(os.environ if base is None else base)
    env["PYTHONHASHSEED"] = str(hashseed)
    return env


def knobs(**declared: Any) -> dict[str, Any]:
    """Capture the settings that change a result, plus those the caller declares.

    Declared knobs are things runlock cannot see: ``num_workers``, ``batch_size``,
    ``grad_accum``, ``world_size``, ``autocast_dtype``… A torch dtype is recorded as its name.
    torch flags are read only if torch is already imported (importing it here would cost seconds
    in programs that never use it); ``torch`` is then ``None``.
    """
    torch = sys.modules.get("torch")
    env = {name: os.environ.get(name) for name in KNOB_ENV_VARS}
    return normalize({
        "env": env,
        "threads": _threads(torch),
        "torch": _torch_flags(torch) if torch is not None else None,
        "declared": {key: _plain(value) for key, value in sorted(declared.items())},
    })


def _check_seed(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise InvalidInput(f"The {name} must be an integer from 0 to 2**64-1, got {value!r}.")


def _hint(requested: int | None) -> str:
    n = 0 if requested is None else requested
    return f" Start the program with `runlock run --hashseed {n} -- …` to fix it."


def _hashseed_in_force(value: int) -> bool:
    env = hashseed_environ(value)
    code = f"print(hash({_HASH_CANARY!r}))"
    try:
        out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.strip() == str(hash(_HASH_CANARY))


def _seed_numpy(seed: int, seeded: list[str], missing: list[NotSeeded]) -> None:
    if importlib.util.find_spec("numpy") is None:
        missing.append(NotSeeded("numpy", "numpy is not installed"))
        return
    import numpy as np

    # The legacy seed takes 32 bits; a larger seed is given as two 32-bit words (low, high).
    np.random.seed(seed if seed <= MAX_HASHSEED else [seed & MAX_HASHSEED, seed >> 32])
    seeded.append("numpy")


def _import_torch() -> Any:
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _seed_torch(torch: Any, seed: int, seeded: list[str], missing: list[NotSeeded]) -> None:
    torch.manual_seed(seed)
    seeded.append("torch")
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        seeded.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    else:
        missing.append(NotSeeded("cuda", "no CUDA device is available"))


def _make_deterministic(torch: Any, warn_only: bool) -> dict[str, Any]:
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    return {"use_deterministic_algorithms": True, "warn_only": warn_only,
            "cudnn_deterministic": True, "cudnn_benchmark": False, "intra_op_threads": threads}


def _set_cublas_workspace(torch: Any, warnings: list[str]) -> str | None:
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current is not None:
        return current
    if torch.cuda.is_initialized():
        warnings.append("CUDA is already initialised, so setting CUBLAS_WORKSPACE_CONFIG now has no "
                        "effect and cuBLAS may be nondeterministic. Set it before the first CUDA call, "
                        f"or start the program with CUBLAS_WORKSPACE_CONFIG={CUBLAS_DETERMINISTIC}.")
        return None
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
    return CUBLAS_DETERMINISTIC


def _threads(torch: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu_count": os.cpu_count()}
    if torch is not None:
        out["torch_intra_op"] = torch.get_num_threads()
        out["torch_inter_op"] = torch.get_num_interop_threads()
    return out


def _torch_flags(torch: Any) -> dict[str, Any]:
    cuda = torch.backends.cuda.matmul
    cudnn = torch.backends.cudnn
    return {
        "version": str(torch.__version__),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": bool(cuda.allow_tf32),
        "cuda_matmul_fp16_reduced_precision": bool(cuda.allow_fp16_reduced_precision_reduction),
        "cuda_matmul_bf16_reduced_precision": bool(cuda.allow_bf16_reduced_precision_reduction),
        "cudnn_enabled": bool(cudnn.enabled),
        "cudnn_allow_tf32": bool(cudnn.allow_tf32),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cudnn_benchmark": bool(cudnn.benchmark),
        "fp32_precision": {  # the torch >= 2.9 precision API; None where this torch lacks it
            "generic": getattr(torch.backends, "fp32_precision", None),
            "cuda_matmul": getattr(cuda, "fp32_precision", None),
            "cudnn": getattr(cudnn, "fp32_precision", None),
        },
        "default_dtype": str(torch.get_default_dtype()),
        "autocast": {device: _autocast(torch, device) for device in ("cpu", "cuda")},
        "cuda_available": torch.cuda.is_available(),
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }


def _autocast(torch: Any, device: str) -> dict[str, Any]:
    """Autocast state for ``device`` right now (inside an autocast block it is enabled)."""
    try:
        return {"enabled": torch.is_autocast_enabled(device), "dtype": str(torch.get_autocast_dtype(device))}
    except (AttributeError, TypeError, RuntimeError):  # torch < 2.4 has per-device getters only
        return {"enabled": None, "dtype": None}


def _plain(value: Any) -> Any:
    """Declared knob values: JSON types as they are, dtypes and enums by name."""
    if value is None or isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return value
    if type(value).__module__.startswith("torch") and type(value).__name__ == "dtype":
        return str(value)
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    return value  # normalize() raises, naming the knob, for anything else


def find_rngs(obj: Any, *, depth: int = 3) -> dict[str, Any]:
    """RNG objects held by ``obj`` and the objects it holds, by attribute path (``"rng"``,
    ``"transform.rng"``, ``"datasets[1].gen"``): ``random.Random``, NumPy ``Generator`` and
    ``RandomState``, and ``torch.Generator`` when torch is imported. Modules are not entered."""
    found: dict[str, Any] = {}
    _walk(obj, "", depth, found, set())
    return found


def reseed_rngs(obj: Any, seed: int) -> tuple[str, ...]:
    """Reseed every RNG ``find_rngs`` sees in ``obj``, each from ``derive_seed(seed, "held-rng",
    path=PATH)``, in place; return the paths reseeded."""
    _check_seed(seed, "seed")
    rngs = find_rngs(obj)
    for path, rng in rngs.items():
        _reseed(rng, derive_seed(seed, "held-rng", path=path))
    return tuple(sorted(rngs))


def _rng_types() -> tuple[type, ...]:
    types: list[type] = [random.Random]
    np = sys.modules.get("numpy")
    if np is not None:
        types += [np.random.Generator, np.random.RandomState]
    torch = sys.modules.get("torch")
    if torch is not None:
        types.append(torch.Generator)
    return tuple(types)


def _walk(obj: Any, path: str, depth: int, found: dict[str, Any], seen: set[int]) -> None:
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    if isinstance(obj, _rng_types()):
        found[path or "."] = obj
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj[:64]):
            _walk(item, f"{path}[{i}]", depth - 1, found, seen)
        return
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict) or isinstance(obj, type) or type(obj).__name__ == "module":
        return
    for name, value in list(attrs.items()):
        _walk(value, f"{path}.{name}" if path else name, depth - 1, found, seen)


def _reseed(rng: Any, seed: int) -> None:
    if isinstance(rng, random.Random):
        rng.seed(seed)
    elif hasattr(rng, "bit_generator"):  # numpy Generator: same bit generator type, new seed
        rng.bit_generator.state = type(rng.bit_generator)(seed).state
    elif hasattr(rng, "get_state") and hasattr(rng, "seed"):  # numpy RandomState
        rng.seed([seed & MAX_HASHSEED, seed >> 32])
    else:  # torch.Generator
        rng.manual_seed(seed)
