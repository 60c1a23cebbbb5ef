"""The environment lock: what a run's environment was, how far today's has drifted, and how to
rebuild it.

``env_diff`` compares a run's recorded environment with the one this process runs in, grouped
into what matters for equality (interpreter, packages, torch/CUDA, GPU, CPU, result-affecting
environment variables) and says what to expect from a rerun here: ``bitwise`` when nothing that
changes numbers differs, else ``tolerance or statistical``.

``export_requirements`` writes every recorded distribution pinned (``name==version``; with
``hashes``, the sha256 of each index wheel looked up at export, ``runlock.verify.wheels``), and
``container_recipe`` a Dockerfile that installs them on the recorded base image (by digest when
the lock recorded one, ``environment.container.{image,digest}``; otherwise on the official Python
image of the recorded version, with a comment saying the digest was not recorded).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from runlock import environment
from runlock.errors import InvalidInput, RunlockError
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import flatten
from runlock.tracking.source import RunSource, run_and_lock
from runlock.verify import pylock, wheels
from runlock.verify.pylock import LockFile

# lock environment field -> the group a person reads it under; the first matching prefix wins
GROUPS = (("python", "interpreter"), ("packages", "packages"), ("sources", "packages"), ("torch.gpus", "gpu"),
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


def env_diff(store: Store | RunSource, run: str, current: dict | None = None, *,
             python: Path | None = None) -> EnvDiff:
    """How the environment of this process (or of the interpreter ``python``) differs from the one
    ``run`` recorded."""
    rec, lock = run_and_lock(store, run)
    recorded = environment_of(rec, lock, local=False)   # as the lock holds it, as capture() gives it
    if current is None:
        current = capture_with(python) if python is not None else environment.capture()
    return EnvDiff(rec.id, diff_environments(recorded, current))


def capture_with(python: Path) -> dict:
    """The environment as the interpreter ``python`` sees it: ``runlock.environment`` (stdlib only)
    is run there in isolated mode, so runlock need not be installed in that environment."""
    if not Path(python).is_file():
        raise InvalidInput(f"--python {python}: no such interpreter.", hint="Name a python executable, "
                           "e.g. .venv-RUN/bin/python.")
    source = Path(environment.__file__).read_text(encoding="utf-8")
    script = source + "\nimport json as _j, sys as _s\n_j.dump(capture(), _s.stdout)\n"
    try:
        done = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise InvalidInput(f"--python {python}: cannot run it ({exc.strerror}).") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunlockError(f"{python} could not capture its environment: {last}")
    return json.loads(done.stdout)


def recorded_environment(store: Store, rec: records.RunRecord, *, local: bool = True) -> dict:
    """The lock's environment; with ``local``, plus the local folder installs that the run record
    keeps beside it (``environment.local_sources``), so an export can name their folders."""
    return environment_of(rec, locks.load(store, rec.recipe_id) if rec.recipe_id else {}, local=local)


def environment_of(rec: records.RunRecord, lock: dict, *, local: bool = True) -> dict:
    """``recorded_environment`` of a lock already read."""
    env = dict(lock.get("environment") or {})
    local = local and (rec.context or {}).get("local_sources")
    if local:
        env["sources"] = {**(env.get("sources") or {}), **local}
    return env


def _recorded(source: Store | RunSource, run: str) -> tuple[dict, records.RunRecord]:
    rec, lock = run_and_lock(source, run)
    return environment_of(rec, lock), rec


def _group(key: str) -> str:
    return next((g for prefix, g in GROUPS if key == prefix or key.startswith(prefix + ".")), "other")


@dataclass(frozen=True)
class RequirementsLock:
    run_id: str
    text: str
    packages: int
    container: str | None = None
    unhashed: dict[str, str] = field(default_factory=dict)   # name -> why it has no hash (with hashes)

    def to_dict(self) -> dict:
        return {"run": self.run_id, "packages": self.packages, "requirements": self.text,
                "container": self.container, "unhashed": self.unhashed}


def wheel_hashes(env: dict, index_url: str | None = None, cache: dict | None = None) -> wheels.Lookup:
    """The sha256 of each index distribution's wheel in ``env``, asked of its index now."""
    return wheels.lookup(env.get("packages") or {}, env.get("sources") or {},
                         (env.get("python") or {}).get("version"), pylock.index_of, index_url, cache)


def _unhashed(env: dict, found: wheels.Lookup | None) -> dict[str, str]:
    """Each distribution with no hash at all (recorded or looked up), and why."""
    if found is None:
        return {}
    sources = env.get("sources") or {}
    return {n: found.missing.get(n, "no hash recorded") for n in sorted(env.get("packages") or {})
            if n not in found.found and not (sources.get(n) or {}).get("sha256")}


def export_requirements(store: Store | RunSource, run: str, *, exclude: tuple[str, ...] = (), hashes: bool = False,
                        index_url: str | None = None) -> RequirementsLock:
    """The run's environment as a pip requirements file with every distribution pinned (VCS ones
    to their commit, archives with the hash the installer recorded; with ``hashes``, index
    distributions with their wheel's sha256 looked up on the index now)."""
    env, rec = _recorded(store, run)
    packages = {k: v for k, v in (env.get("packages") or {}).items() if k not in exclude}
    env = {**env, "packages": packages}
    found = wheel_hashes(env, index_url) if hashes else None
    reqs, hashed = requirement_lines(packages, env.get("sources") or {}, found.found if found else None)
    py, torch = env.get("python") or {}, env.get("torch") or {}
    install = ("pip install --no-deps --require-hashes -r THIS_FILE" if hashed
               else "pip install --no-deps -r THIS_FILE  (hashes were not recorded)")
    lines = [f"# Exact environment of run:{rec.id}, written by `runlock env export`.",
             f"# python {py.get('version')} ({py.get('implementation')}); os {_os_line(env)}",
             f"# torch {torch.get('version')}; cuda {torch.get('cuda')}; cudnn {torch.get('cudnn')}"
             if torch else "# torch: not installed",
             f"# Install with: {install}"]
    indexes = sorted({m.group(1) for v in packages.values() if (m := _LOCAL_VERSION.search(v))})
    lines += [f"--extra-index-url https://download.pytorch.org/whl/{tag}" for tag in indexes]
    lines += reqs
    return RequirementsLock(rec.id, "\n".join(lines) + "\n", len(packages),
                            container_recipe(env, require_hashes=hashed), _unhashed(env, found))


def requirement_lines(packages: dict[str, str], sources: dict[str, dict],
                      wheels_found: dict[str, wheels.Wheel] | None = None) -> tuple[list[str], bool]:
    """One pip requirement per distribution, and whether every one carries a hash, recorded or
    looked up (only then can pip run with ``--require-hashes``)."""
    wheels_found = wheels_found or {}
    lines, all_hashed = [], bool(packages)
    for name, version in sorted(packages.items()):
        src = sources.get(name) or {}
        if "vcs" in src:
            sub = f"#subdirectory={src['subdirectory']}" if src.get("subdirectory") else ""
            lines.append(f"{name} @ {src['vcs']}+{src['url']}@{src.get('commit')}{sub}")
        elif "directory" in src:
            lines.append(f"-e {src['directory']}" if src.get("editable") else f"{name} @ file://{src['directory']}")
        elif src.get("url"):
            lines.append(f"{name} @ {src['url']}" + (f" --hash=sha256:{src['sha256']}" if src.get("sha256") else ""))
        elif name in wheels_found:
            lines.append(f"{name}=={version} --hash=sha256:{wheels_found[name].sha256}")
        else:
            lines.append(f"{name}=={version}")
        all_hashed = all_hashed and bool(src.get("sha256") or (not src and name in wheels_found))
    if not all_hashed:   # one --hash puts pip in hash-checking mode for every line: keep the known ones as notes
        lines = [_HASH_OPTION.sub(lambda m: "  # sha256:" + m.group(0).rsplit(":", 1)[1], line) for line in lines]
    return lines, all_hashed


def export_lockfile(store: Store | RunSource, run: str, fmt: str, *, hashes: bool = False, index_url: str | None = None,
                    cache: dict | None = None) -> LockFile:
    """The run's environment as ``pylock`` (PEP 751 ``pylock.toml``) or ``cyclonedx`` (an SBOM);
    with ``hashes``, each index distribution's wheel sha256 looked up on the index now."""
    if fmt not in ("pylock", "cyclonedx"):
        raise InvalidInput(f"--format {fmt!r} is not known; use requirements, pylock or cyclonedx.")
    if fmt == "cyclonedx" and not pylock.sbom_available():
        raise InvalidInput("--format cyclonedx needs cyclonedx-python-lib.",
                           hint="Install it with `pip install 'runlock[sbom]'`.")
    env, rec = _recorded(store, run)
    found = wheel_hashes(env, index_url, cache) if hashes else None
    wheels_found = found.found if found else None
    if fmt == "pylock":
        out = pylock.pylock(rec.id, env, wheels_found)
    else:
        out = pylock.cyclonedx(rec.id, env, recipe_id=rec.recipe_id, at=rec.ended_at or rec.started_at,
                               wheels=wheels_found)
    return dataclasses.replace(out, unhashed=_unhashed(env, found))


def container_recipe(env: dict, requirements: str = "requirements.lock", *, require_hashes: bool = False) -> str:
    """A Dockerfile that rebuilds the recorded environment from ``requirements``."""
    container = env.get("container") or {}
    version = (env.get("python") or {}).get("version") or "3"
    if container.get("image") and container.get("digest"):
        base = f"FROM {container['image']}@{container['digest']}"
    else:
        base = (f"# The run recorded no base image digest: pin this one with @sha256:… before relying on it.\n"
                f"FROM python:{version}-slim")
    flags = "--no-deps --require-hashes" if require_hashes else "--no-deps"
    note = "" if require_hashes else "# Not every distribution has a recorded hash, so pip cannot --require-hashes.\n"
    return (f"{base}\n"
            f"COPY {requirements} /tmp/{requirements}\n"
            f"{note}RUN pip install --no-cache-dir {flags} -r /tmp/{requirements}\n")


@dataclass(frozen=True)
class Rebuilt:
    run_id: str
    path: str
    python: str
    packages: int
    require_hashes: bool
    removed: list[str]
    looked_up: int = 0                     # wheel hashes found: on the index (--hashes), in the file (--pylock)

    def to_dict(self) -> dict:
        return {"run": self.run_id, "path": self.path, "python": self.python, "packages": self.packages,
                "require_hashes": self.require_hashes, "removed": self.removed, "looked_up": self.looked_up}


_HASH_OPTION = re.compile(r" --hash=sha256:[0-9a-f]{64}$")


def rebuild(store: Store | RunSource, run: str, target: Path, *, hashes: bool = False, index_url: str | None = None,
            lockfile: Path | None = None) -> Rebuilt:
    """A new virtual environment at ``target`` with exactly the distributions ``run`` recorded.

    It needs this interpreter to be the recorded Python version. pip installs each distribution
    pinned without resolving (``--no-deps``), with ``--require-hashes`` when every one has a hash:
    recorded, or, with ``hashes``, its wheel's sha256 looked up on the index now (as ``env export
    --hashes`` does) or, with ``lockfile``, read from a ``pylock.toml`` exported with them (a
    bundle's ``env/RUN/pylock.toml``: no network needed); when one is still left without a hash,
    nothing is built. pip
    checks hashes for all or for none, so without every hash none is given and each is pinned by
    version. What the fresh venv brought that the run did not have (pip, setuptools) is then
    uninstalled. On failure the half-built venv is removed."""
    env, rec = _recorded(store, run)
    want = (env.get("python") or {}).get("version")
    if not want or not env.get("packages"):
        raise InvalidInput(f"run:{rec.id} recorded no interpreter or packages to rebuild.")
    have = platform.python_version()
    if want != have:
        raise InvalidInput(f"run:{rec.id} recorded Python {want}; runlock runs on Python {have}.",
                           hint=f"Run `runlock env rebuild` from a runlock installed under Python {want}.")
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"-o {target} already exists and is not an empty folder.",
                           hint="Name a new folder for the environment (nothing is replaced).")
    if hashes and lockfile is not None:
        raise InvalidInput("--hashes looks the hashes up and --pylock reads them from a file: give one of them.")
    found = (wheel_hashes(env, index_url) if hashes else
             pylock.read_wheels(lockfile, env["packages"]) if lockfile is not None else None)
    unhashed = _unhashed(env, found)
    if unhashed:
        names = ", ".join(f"{n} ({why})" for n, why in unhashed.items())
        raise InvalidInput(f"{'--hashes' if hashes else '--pylock'}: {len(unhashed)} distribution(s) of run:{rec.id} have no hash, so pip cannot "
                           f"--require-hashes: {names}.", hint="Nothing was built. Rebuild without --hashes to "
                           "install them pinned by version only.")
    lines, hashed = requirement_lines(env["packages"], env.get("sources") or {}, found.found if found else None)
    if not hashed:
        lines = [_HASH_OPTION.sub("", line) for line in lines]     # one --hash would make pip want all
    python = target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    try:
        _call([sys.executable, "-m", "venv", str(target)], "create the venv")
        reqs = target / "runlock-requirements.txt"
        reqs.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _call([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
               *(["--require-hashes"] if hashed else []), "-r", str(reqs)], "install the recorded distributions")
        extra = sorted(set(capture_with(python).get("packages") or {}) - set(env["packages"]),
                       key=lambda n: n == "pip")   # pip last: it does the uninstalling
        if extra:
            _call([str(python), "-m", "pip", "uninstall", "--quiet", "-y", *extra], "remove what the run did not have")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Rebuilt(rec.id, str(target), str(python), len(env["packages"]), hashed, extra,
                   len(found.found) if found else 0)


def _call(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RunlockError(f"could not {what}: {tail}")


def _os_line(env: dict) -> str:
    o = env.get("os") or {}
    return " ".join(str(v) for v in (o.get("system"), o.get("release"), o.get("machine"), o.get("libc")) if v)
