"""What the environment was: interpreter, every installed distribution, OS, CPU, accelerators.

``capture()`` returns a JSON-safe dict for the lock. Nothing here changes the environment;
torch is looked at only if it is importable, and CUDA is queried only if torch already
initialised it or a GPU is visible, so capturing never starts a CUDA context by surprise.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import urllib.parse

RESULT_ENV_VARS = (
    "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
    "TF_CPP_MIN_LOG_LEVEL", "NVIDIA_TF32_OVERRIDE", "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE", "WORLD_SIZE", "RANK", "LOCAL_RANK", "PYTORCH_CUDA_ALLOC_CONF",
)


def distributions() -> dict[str, str]:
    """Every installed distribution, normalised name -> version."""
    return dict(_installed()[0])


def sources() -> dict[str, dict]:
    """Where each distribution not installed from a package index came from (PEP 610 ``direct_url.json``).

    ``{"vcs": "git", "url": …, "commit": …}``, ``{"directory": PATH, "editable": bool}`` or
    ``{"url": …, "sha256": …}`` (an archive; the hash only when the installer recorded it). A
    distribution from an index has no entry, so identical environments keep their recipe id; no
    wheel hash is ever guessed."""
    return {name: dict(source) for name, source in _installed()[1].items()}


def portable_sources() -> dict[str, dict]:
    """The sources that mean the same on every machine (VCS commits, archives), as the lock keeps
    them. A local folder install (``pip install -e .`` of the project itself, most often) names a
    path on this machine, not content: in the lock it would give the same code checked out at two
    paths two recipe ids. The project's code is pinned by the lock's ``code`` section instead."""
    return {name: src for name, src in sources().items() if "directory" not in src}


def local_sources() -> dict[str, dict]:
    """The local folder installs that ``portable_sources`` leaves out of the lock: kept in the run
    record instead (who ran it where), so an export can still name the folder."""
    return {name: src for name, src in sources().items() if "directory" in src}


# Reading every distribution's metadata costs tens of milliseconds, and a process that starts
# many runs would pay it for each. The answer is kept for the installation it was read from:
# sys.path and the metadata folders named in each entry of it (installing, upgrading or removing
# a distribution adds or removes one), so it is read again whenever the set of installed
# distributions may have changed.
_read: dict[tuple, tuple[dict[str, str], dict[str, dict]]] = {}


def _installed() -> tuple[dict[str, str], dict[str, dict]]:
    key = tuple((p, _metadata_names(p)) for p in sys.path)
    if key not in _read:
        _read.clear()
        _read[key] = _read_installed()
    return _read[key]


_listed: dict[str, tuple[int | None, frozenset[str]]] = {}


def _metadata_names(path: str) -> frozenset[str]:
    """The ``*.dist-info`` / ``*.egg-info`` names in ``path`` (a version is part of the name, so an
    install, upgrade or removal changes them), listed again only when the folder's modification
    time moved: a script that writes its outputs beside itself does not cause a re-read."""
    mtime = _mtime(path)
    seen = _listed.get(path)
    if seen is None or seen[0] != mtime:
        try:
            with os.scandir(path or ".") as it:
                names = frozenset(e.name for e in it if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            names = frozenset()
        _listed[path] = seen = (mtime, names)
    return seen[1]


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None


def _read_installed() -> tuple[dict[str, str], dict[str, dict]]:
    """(name -> version, name -> source) of every installed distribution, in one pass."""
    versions: dict[str, str] = {}
    direct: dict[str, dict] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            versions[_normalise(name)] = dist.version
        try:
            raw = dist.read_text("direct_url.json")
        except OSError:
            raw = None
        if not raw or not name:
            continue
        try:
            source = _source(json.loads(raw))
        except (ValueError, TypeError, AttributeError):
            continue  # an unreadable record says nothing; it must not stop a run from being recorded
        if source:
            direct[_normalise(name)] = source
    return dict(sorted(versions.items())), dict(sorted(direct.items()))


def _source(d: dict) -> dict | None:
    url = d.get("url")
    if not isinstance(url, str):
        return None
    if isinstance(d.get("vcs_info"), dict):
        vcs = d["vcs_info"]
        return {"vcs": vcs.get("vcs"), "url": url, "commit": vcs.get("commit_id"),
                **({"subdirectory": d["subdirectory"]} if d.get("subdirectory") else {})}
    if isinstance(d.get("dir_info"), dict):
        path = urllib.parse.unquote(urllib.parse.urlparse(url).path) if url.startswith("file:") else url
        return {"directory": path, "editable": bool(d["dir_info"].get("editable"))}
    archive = d.get("archive_info") if isinstance(d.get("archive_info"), dict) else {}
    hashes = archive.get("hashes") if isinstance(archive.get("hashes"), dict) else {}
    sha = hashes.get("sha256")
    if not sha and str(archive.get("hash", "")).startswith("sha256="):
        sha = archive["hash"].split("=", 1)[1]
    return {"url": url, **({"sha256": sha} if sha else {})}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def python_info() -> dict:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable_prefix": sys.prefix == sys.base_prefix and "system" or "venv",
    }


def os_info() -> dict:
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "libc": "-".join(platform.libc_ver()) if platform.system() == "Linux" else None}


def cpu_info() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "count": os.cpu_count(), "usable": affinity}


def torch_info() -> dict | None:
    """torch, CUDA, cuDNN and GPU names, or None when torch is not installed."""
    try:
        import torch  # optional extra: looked at only when installed
    except ImportError:
        return None

    info: dict = {"version": torch.__version__, "cuda": torch.version.cuda,
                  "num_threads": torch.get_num_threads(),
                  "num_interop_threads": torch.get_num_interop_threads(),
                  "cudnn": None, "gpus": []}
    try:
        cuda_ok = torch.cuda.is_available()
    except Exception:  # a broken driver must not stop a run from being recorded
        cuda_ok = False
    if cuda_ok:
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpus"] = [_gpu(torch, i) for i in range(torch.cuda.device_count())]
        info["driver"] = _nvidia_driver()
    return info


def _gpu(torch, i: int) -> dict:  # noqa: ANN001
    p = torch.cuda.get_device_properties(i)
    return {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory": p.total_memory}


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip()
    except OSError:
        return None


IMAGE_VAR = "RUNLOCK_IMAGE"   # the container image the run is in: NAME[:TAG]@sha256:DIGEST, set by the user


def container_info() -> dict | None:
    """The image named by ``RUNLOCK_IMAGE`` (``python:3.12-slim@sha256:…``), or None when unset.

    Absent from the lock when the variable is unset, so identical environments keep their recipe id."""
    ref = (os.environ.get(IMAGE_VAR) or "").strip()
    if not ref:
        return None
    image, _, digest = ref.partition("@")
    return {"image": image, "digest": digest if digest.startswith("sha256:") else None, "ref": ref}


def env_vars() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in RESULT_ENV_VARS}


def capture() -> dict:
    """The environment part of a lock."""
    return {
        "python": python_info(),
        "os": os_info(),
        "cpu": cpu_info(),
        "torch": torch_info(),
        "env": env_vars(),
        "packages": distributions(),
        **({"sources": s} if (s := portable_sources()) else {}),
        **({"container": c} if (c := container_info()) else {}),
    }
