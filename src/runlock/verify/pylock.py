"""A run's environment as a PEP 751 lock file (``pylock.toml``) and as a CycloneDX SBOM.

Only what the run recorded goes in, plus the wheel hashes an export looked up when asked
(``wheels``, from ``runlock.verify.wheels``): a distribution from a package index gets ``name``,
``version`` and ``index``, and a ``[[packages.wheels]]`` entry with its sha256 only when one was
looked up (none is invented; PEP 751 requires hashes for a wheel); one installed from a VCS gets
``[packages.vcs]`` with the commit; one from a local folder ``[packages.directory]``; one from an
archive whose hash the installer recorded (``direct_url.json``) ``[packages.archive]`` with it.

``read_wheels`` reads the wheel hashes back from such a lock (one exported with ``--hashes``, as a
bundle carries in ``env/RUN/pylock.toml``), so ``env rebuild --pylock`` can ``--require-hashes``
offline.

Both are deterministic: the same environment gives the same bytes. The SBOM's serial number is
derived from the run and its recipe id, and its timestamp is the run's end, never the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from runlock.errors import InvalidInput
from runlock.verify.wheels import Lookup, Wheel

PYPI = "https://pypi.org/simple"
_TORCH_LOCAL = re.compile(r"\+(cu\d+|cpu|rocm[\d.]+)$")


@dataclass(frozen=True)
class LockFile:
    run_id: str
    format: str
    text: str
    packages: int
    hashed: int   # how many distributions carry a hash (recorded, or looked up at export)
    unhashed: dict[str, str] = field(default_factory=dict)   # name -> why it has no hash (with --hashes)

    def to_dict(self) -> dict:
        return {"run": self.run_id, "format": self.format, "packages": self.packages, "hashed": self.hashed,
                "unhashed": self.unhashed, "text": self.text}


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def read_wheels(path: str | Path, packages: dict[str, str]) -> Lookup:
    """The wheel hash of each of ``packages`` (name -> recorded version) in the ``pylock.toml`` at
    ``path``; one pinned there to another version refuses the file (it locks another environment)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidInput(f"Cannot read {p}: {e.strerror}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{p} is not a pylock.toml: {e}.") from None
    listed = doc.get("packages") if isinstance(doc.get("packages"), list) else []
    by_name = {canonicalize_name(str(e.get("name", ""))): e for e in listed if isinstance(e, dict)}
    found, missing = {}, {}
    for name, version in sorted(packages.items()):
        entry = by_name.get(canonicalize_name(name))
        if entry is None:
            missing[name] = f"not in {p.name}"
            continue
        if entry.get("version") not in (None, version):
            raise InvalidInput(f"{p} pins {name} {entry.get('version')}, the run recorded {version}: it locks "
                               "another environment.", hint="Use the pylock.toml exported from this run.")
        hashed = [w for w in entry.get("wheels") or [] if isinstance(w, dict)
                  and _SHA256.match(str((w.get("hashes") or {}).get("sha256", "")))]
        if not hashed:
            missing[name] = f"{p.name} has no wheel hash for it"
            continue
        found[name] = Wheel(str(hashed[0].get("name", "")), str(hashed[0].get("url", "")), hashed[0]["hashes"]["sha256"])
    return Lookup(found, missing)


def index_of(version: str) -> str:
    """The index a recorded version comes from: PyTorch's for ``+cu121``-style builds, else PyPI."""
    m = _TORCH_LOCAL.search(version)
    return f"https://download.pytorch.org/whl/{m.group(1)}" if m else PYPI


def pylock(run_id: str, env: dict, wheels: dict[str, Wheel] | None = None) -> LockFile:
    """``pylock.toml`` text for the ``environment`` section of a lock (and the wheels looked up)."""
    packages, sources = env.get("packages") or {}, env.get("sources") or {}
    wheels = wheels or {}
    py = (env.get("python") or {}).get("version")
    lines = [f"# The environment of run:{run_id}, written by `runlock env export --format pylock`.",
             "# Wheel hashes were looked up on the index at export time (--hashes), for this platform."
             if wheels else "# Distributions from an index carry no wheel hash: the run did not record one.",
             'lock-version = "1.0"']
    if py:
        lines.append(f"requires-python = {_s('==' + py)}")
    lines += [f"created-by = {_s('runlock')}", ""]
    hashed = 0
    for name, version in sorted(packages.items()):
        src = sources.get(name) or {}
        lines += ["[[packages]]", f"name = {_s(name)}"]
        if "vcs" in src:
            lines += [f"# recorded version {version}; a source tree's version is not part of the lock (PEP 751)",
                      "[packages.vcs]", f"type = {_s(src['vcs'] or 'git')}", f"url = {_s(src['url'])}",
                      f"commit-id = {_s(src.get('commit') or '')}"]
            if src.get("subdirectory"):
                lines.append(f"subdirectory = {_s(src['subdirectory'])}")
        elif "directory" in src:
            lines += [f"# recorded version {version}; a source tree's version is not part of the lock (PEP 751)",
                      "[packages.directory]", f"path = {_s(src['directory'])}",
                      f"editable = {'true' if src.get('editable') else 'false'}"]
        elif src.get("url") and src.get("sha256"):
            hashed += 1
            lines += [f"version = {_s(version)}", "[packages.archive]", f"url = {_s(src['url'])}",
                      f"hashes = {{sha256 = {_s(src['sha256'])}}}"]
        else:
            lines.append(f"version = {_s(version)}")
            if src.get("url"):
                lines.append(f"# installed from {src['url']} with no hash recorded")
            else:
                lines.append(f"index = {_s(index_of(version))}")
            if name in wheels:
                hashed += 1
                w = wheels[name]
                lines += ["[[packages.wheels]]", f"name = {_s(w.filename)}", f"url = {_s(w.url)}",
                          f"hashes = {{sha256 = {_s(w.sha256)}}}"]
        lines.append("")
    return LockFile(run_id, "pylock", "\n".join(lines), len(packages), hashed)


def serial(run_id: str, recipe_id: str | None) -> uuid.UUID:
    """The SBOM's serial number: a UUID derived from the run and its recipe id, never random."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"runlock:run:{run_id}:{recipe_id or ''}")


def sbom_available() -> bool:
    """Whether cyclonedx-python-lib (the ``sbom`` extra) can be imported."""
    try:
        import cyclonedx.output.json  # noqa: F401 - an optional extra, looked at only here
        import packageurl  # noqa: F401
    except ImportError:
        return False
    return True


def cyclonedx(run_id: str, env: dict, *, recipe_id: str | None = None, at: str | None = None,
              wheels: dict[str, Wheel] | None = None) -> LockFile:
    """A CycloneDX 1.6 JSON SBOM: one library component per recorded distribution (purl
    ``pkg:pypi/NAME@VERSION``, with the VCS url and commit, or the archive or wheel hash, where
    known). ``at`` (the run's end, store time format) is its timestamp; its serial number is
    ``serial(run_id, recipe_id)``."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    packages, sources = env.get("packages") or {}, env.get("sources") or {}
    wheels = wheels or {}
    bom = Bom(serial_number=serial(run_id, recipe_id))
    bom.metadata.timestamp = _time(at)
    root = bom.metadata.component = Component(name=f"run:{run_id}", type=ComponentType.APPLICATION,
                                              bom_ref=f"run:{run_id}")
    hashed = 0
    for name, version in sorted(packages.items()):
        src = sources.get(name) or {}
        qualifiers = {"vcs_url": f"{src['vcs']}+{src['url']}@{src.get('commit')}"} if "vcs" in src else {}
        hashes, refs = [], []
        sha = src.get("sha256") or (wheels[name].sha256 if name in wheels else None)
        if sha:
            hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=sha))
            hashed += 1
        if "vcs" in src:
            refs.append(ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(src["url"]),
                                          comment=f"commit {src.get('commit')}"))
        elif src.get("url") or name in wheels:
            refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION,
                                          url=XsUri(src.get("url") or wheels[name].url)))
        component = Component(
            name=name, version=version, type=ComponentType.LIBRARY, bom_ref=f"{name}=={version}",
            purl=PackageURL("pypi", name=name, version=version, qualifiers=qualifiers or None),
            hashes=hashes, external_references=refs)
        bom.components.add(component)
        bom.register_dependency(root, [component])   # the run had every one installed; no graph was recorded
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    return LockFile(run_id, "cyclonedx", text + "\n", len(packages), hashed)


def _time(at: str | None) -> dt.datetime:
    """The store's time text as a UTC datetime; the epoch when the run recorded none."""
    try:
        return dt.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc) if at else _EPOCH
    except ValueError:
        return _EPOCH


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value), ensure_ascii=False)
