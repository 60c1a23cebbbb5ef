"""The environment lock: what a run's environment was, how far today's has drifted, and how to
rebuild it.

``env_diff`` compares a run's recorded environment with the one this process runs in, grouped
into what matters for equality (interpreter, packages, torch/CUDA, GPU, CPU, result-affecting
environment variables) and says what to expect from a rerun here: ``bitwise`` when nothing that
changes numbers differs, else ``tolerance or statistical``.

``export_requirements`` writes every recorded distribution pinned (``name==version``), and
``container_recipe`` a Dockerfile that installs them on the recorded base image (by digest when
the lock recorded one, ``environment.container.{image,digest}``; otherwise on the official Python
image of the recorded version, with a comment saying the digest was not recorded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runlock import environment
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import flatten

# lock environment field -> the group a person reads it under; the first matching prefix wins
GROUPS = (("python", "interpreter"), ("packages", "packages"), ("torch.gpus", "gpu"),
          ("torch.driver", "gpu"), ("torch", "torch/cuda"), ("cpu", "cpu"), ("os", "os"), ("env", "env"))
# groups whose drift can change numbers; os release and env vars the rerun sets are not among them
NUMERIC = ("interpreter", "packages", "torch/cuda", "gpu", "cpu")
_LOCAL_VERSION = re.compile(r"\+(cu\d+|cpu|rocm[\d.]+)$")


@dataclass(frozen=True)
class Drift:
    group: str
    field: str
    recorded: object
    current: object


@dataclass(frozen=True)
class EnvDiff:
    run_id: str
    drift: list[Drift] = field(default_factory=list)

    @property
    def expectation(self) -> str:
        """``bitwise`` if nothing that changes numbers differs, else ``tolerance or statistical``."""
        return "tolerance or statistical" if any(d.group in NUMERIC for d in self.drift) else "bitwise"

    def to_dict(self) -> dict:
        return {"run": self.run_id, "expectation": self.expectation, "same": not self.drift,
                "drift": [d.__dict__ for d in self.drift]}


def diff_environments(recorded: dict, current: dict) -> list[Drift]:
    """Field-by-field differences between two ``environment`` sections of a lock."""
    fa, fb = flatten(recorded), flatten(current)
    out = []
    for key in sorted(set(fa) | set(fb)):
        a, b = fa.get(key, "<absent>"), fb.get(key, "<absent>")
        if a != b:
            out.append(Drift(_group(key), key, a, b))
    return out


def env_diff(store: Store, run: str, current: dict | None = None) -> EnvDiff:
    """How the environment of this process differs from the one ``run`` recorded."""
    rec = records.get(store, run)
    recorded = recorded_environment(store, rec)
    return EnvDiff(rec.id, diff_environments(recorded, current if current is not None else environment.capture()))


def recorded_environment(store: Store, rec: records.RunRecord) -> dict:
    return (locks.load(store, rec.recipe_id) if rec.recipe_id else {}).get("environment") or {}


def _group(key: str) -> str:
    return next((g for prefix, g in GROUPS if key == prefix or key.startswith(prefix + ".")), "other")


@dataclass(frozen=True)
class RequirementsLock:
    run_id: str
    text: str
    packages: int
    container: str | None = None

    def to_dict(self) -> dict:
        return {"run": self.run_id, "packages": self.packages, "requirements": self.text,
                "container": self.container}


def export_requirements(store: Store, run: str, *, exclude: tuple[str, ...] = ()) -> RequirementsLock:
    """The run's environment as a pip requirements file with every distribution pinned."""
    rec = records.get(store, run)
    env = recorded_environment(store, rec)
    packages = {k: v for k, v in (env.get("packages") or {}).items() if k not in exclude}
    py, torch = env.get("python") or {}, env.get("torch") or {}
    lines = [f"# Exact environment of run:{rec.id}, written by `runlock env export`.",
             f"# python {py.get('version')} ({py.get('implementation')}); os {_os_line(env)}",
             f"# torch {torch.get('version')}; cuda {torch.get('cuda')}; cudnn {torch.get('cudnn')}"
             if torch else "# torch: not installed",
             "# Install with: pip install --no-deps -r THIS_FILE  (hashes were not recorded)"]
    indexes = sorted({m.group(1) for v in packages.values() if (m := _LOCAL_VERSION.search(v))})
    lines += [f"--extra-index-url https://download.pytorch.org/whl/{tag}" for tag in indexes]
    lines += [f"{name}=={version}" for name, version in sorted(packages.items())]
    return RequirementsLock(rec.id, "\n".join(lines) + "\n", len(packages), container_recipe(env))


def container_recipe(env: dict, requirements: str = "requirements.lock") -> str:
    """A Dockerfile that rebuilds the recorded environment from ``requirements``."""
    container = env.get("container") or {}
    version = (env.get("python") or {}).get("version") or "3"
    if container.get("image") and container.get("digest"):
        base = f"FROM {container['image']}@{container['digest']}"
    else:
        base = (f"# The run recorded no base image digest: pin this one with @sha256:… before relying on it.\n"
                f"FROM python:{version}-slim")
    return (f"{base}\n"
            f"COPY {requirements} /tmp/{requirements}\n"
            f"RUN pip install --no-cache-dir --no-deps -r /tmp/{requirements}\n")


def _os_line(env: dict) -> str:
    o = env.get("os") or {}
    return " ".join(str(v) for v in (o.get("system"), o.get("release"), o.get("machine"), o.get("libc")) if v)
