"""A stage's inputs document: everything its result depends on, by value or by digest.

Its sha256 is the stage key, the run-cache's key: the command, the seed, each param's value
(only the declared keys, so editing another key of params.yaml changes nothing), every dep by
content id (files and folders through the stat cache; ``ds:``/``split:``/``model:`` refs by the id
they resolve to; upstream outs by what is on disk now) and the environment that decides results
(Python, OS, machine, every installed distribution). The git commit is not part of it: code
counts through the files a stage declares as deps, so a commit elsewhere in the repository does
not invalidate every stage (the run's own lock still records the commit).
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache

from runlock import canonical, environment, refs, registry
from runlock.errors import InvalidInput
from runlock.hashing import digest_bytes
from runlock.pipeline.digests import Hasher
from runlock.pipeline.params import ParamFiles
from runlock.pipeline.spec import Pipeline, is_ref
from runlock.store import Store

SCHEMA = "runlock.stage/v1"


@lru_cache(maxsize=1)
def environment_fields() -> dict:
    """The parts of this environment a stage's result may depend on (read once per process)."""
    return canonical.normalize({
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "system": platform.system(), "machine": platform.machine(), "packages": packages()})


def packages() -> dict[str, str]:
    """Installed distributions, name -> version, as ``environment.distributions`` finds them, read
    from folder names: a ``.dist-info`` folder's name holds both (milliseconds, where reading every
    METADATA file takes most of a second); an ``.egg-info`` (a ``pip install -e .`` of a src
    layout leaves one on sys.path) has its PKG-INFO headers read. importlib.metadata's order is kept
    (sys.path order; in each folder, dist-info before egg-info; the last one of a name wins), and
    anything this cannot read sends it to ``environment.distributions``."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        eggs = []
        for n in names:
            if n.endswith(".dist-info") and "-" in n:
                name, _, version = n[: -len(".dist-info")].partition("-")
                found[_normalise(name)] = version
            elif n.endswith(".egg-info"):
                eggs.append(os.path.join(entry or ".", n))
        for path in eggs:
            head = _pkg_info(path)
            if head is None:
                return environment.distributions()
            found[_normalise(head[0])] = head[1]
    return dict(sorted(found.items()))


def _pkg_info(path: str) -> tuple[str, str] | None:
    """(Name, Version) from an ``.egg-info`` file or folder's PKG-INFO headers; None if unreadable."""
    try:
        with open(os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path, encoding="utf-8") as f:
            head: dict[str, str] = {}
            for line in f:
                if not line.strip():
                    break
                key, sep, value = line.partition(":")
                if sep and key in ("Name", "Version"):
                    head.setdefault(key, value.strip())
    except (OSError, UnicodeDecodeError):
        return None
    return (head["Name"], head["Version"]) if "Name" in head and "Version" in head else None


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def resolve_ref(store: Store, text: str) -> str:
    """The content id a ``ds:``/``split:``/``model:`` ref names now."""
    ns = text.split(":", 1)[0]
    if ns == "model":
        return registry.resolve(store, text).digest
    return refs.resolve(store, text, ns).target


def document(store: Store, pipe: Pipeline, name: str, hasher: Hasher, params: ParamFiles) -> dict:
    stage = pipe.stages[name]
    deps: dict[str, dict] = {}
    for dep in stage.deps:
        if is_ref(dep):
            deps[dep] = {"kind": "ref", "digest": resolve_ref(store, dep)}
            continue
        up = pipe.producer_of(dep)
        digest = hasher.digest(pipe.root / dep, stable=up is None)
        if digest is None:
            raise InvalidInput(f"Stage {name!r}: dep {dep} does not exist" +
                               (f" (stage {up!r} should have written it)." if up else "."),
                               hint="Run `runlock repro` for the whole pipeline." if up else "Create it.")
        entry = {"kind": "out" if up else ("folder" if (pipe.root / dep).is_dir() else "file"), "digest": digest}
        if up:
            entry["stage"] = up
        deps[dep] = entry
    return {"schema": SCHEMA, "cmd": stage.cmd, "seed": stage.seed,
            "params": {p.text: params.value(p) for p in stage.params},
            "deps": deps, "outs": list(stage.outs), "environment": environment_fields()}


def stage_key(doc: dict) -> str:
    return digest_bytes(canonical.dumps(doc))


def changes(old: dict, new: dict) -> list[dict]:
    """What differs between two inputs documents: ``{"what", "name", "from", "to"}`` each."""
    out: list[dict] = []
    for field in ("cmd", "seed"):
        if old.get(field) != new.get(field):
            out.append({"what": field, "name": field, "from": old.get(field), "to": new.get(field)})
    for kind in ("params", "deps"):
        a, b = old.get(kind) or {}, new.get(kind) or {}
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if kind == "deps":
                va, vb = (va or {}).get("digest"), (vb or {}).get("digest")
            if va != vb:
                out.append({"what": "param" if kind == "params" else "dep", "name": key, "from": va, "to": vb})
    if old.get("outs") != new.get("outs"):
        out.append({"what": "outs", "name": "outs", "from": old.get("outs"), "to": new.get("outs")})
    ea, eb = old.get("environment") or {}, new.get("environment") or {}
    for key in sorted(set(ea) | set(eb)):
        if key == "packages":
            pa, pb = ea.get(key) or {}, eb.get(key) or {}
            for pkg in sorted(set(pa) | set(pb)):
                if pa.get(pkg) != pb.get(pkg):
                    out.append({"what": "environment", "name": f"package {pkg}", "from": pa.get(pkg), "to": pb.get(pkg)})
        elif ea.get(key) != eb.get(key):
            out.append({"what": "environment", "name": key, "from": ea.get(key), "to": eb.get(key)})
    return out
