"""The sha256 of each index-installed distribution's wheel, looked up at export time (opt-in).

A run records name and version of a distribution installed from a package index, not the hash of
the wheel pip installed (pip keeps none we could trust). ``lookup`` asks the index for it: the
Simple repository API (PEP 691 JSON, or the PEP 503 HTML page with ``#sha256=`` fragments, so
PyPI, the PyTorch index and private mirrors all answer), keeps the files of the recorded version
that are wheels, and chooses the one whose tags this interpreter ranks highest
(``packaging.tags``; for a recorded Python of another minor version, the CPython tags of that
version on this platform). The index lists the hash of every file it serves; nothing is guessed.

A distribution the index does not answer for (offline, unreachable, unknown, no wheel for this
platform) gets no hash, and ``Lookup.missing`` says why, one reason per name. Distributions from
a VCS checkout, a local folder or an archive URL are not looked up (their source is recorded).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser

from packaging import tags as pkg_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
TIMEOUT_S = 15
WORKERS = 8
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Wheel:
    filename: str
    url: str
    sha256: str

    def to_dict(self) -> dict:
        return {"filename": self.filename, "url": self.url, "sha256": self.sha256}


@dataclass(frozen=True)
class Lookup:
    found: dict[str, Wheel] = field(default_factory=dict)    # name -> the wheel chosen for this platform
    missing: dict[str, str] = field(default_factory=dict)    # name -> why it has no hash

    def to_dict(self) -> dict:
        return {"found": {k: w.to_dict() for k, w in sorted(self.found.items())},
                "missing": dict(sorted(self.missing.items()))}


def lookup(packages: dict[str, str], sources: dict[str, dict], python: str | None,
           index_of: Callable[[str], str], index_url: str | None = None, cache: dict | None = None) -> Lookup:
    """The wheel of each index-installed distribution in ``packages`` (name -> version).

    ``index_of(version)`` names the index a recorded version comes from; ``index_url`` overrides it
    for every distribution. ``cache`` (a dict the caller keeps) saves asking the index twice for
    one project page when several environments are looked up (a bundle's runs)."""
    cache = {} if cache is None else cache
    supported = supported_tags(python)
    todo = {n: v for n, v in packages.items() if not sources.get(n)}
    missing = {n: _why_not_looked_up(sources[n]) for n in packages if sources.get(n)}
    down: dict[str, str] = {}                 # index -> why it could not be reached (asked once)
    lock = threading.Lock()

    def one(item: tuple[str, str]) -> tuple[str, Wheel | str]:
        name, version = item
        index = (index_url or index_of(version)).rstrip("/")
        key = (index, canonicalize_name(name))
        with lock:
            if index in down:
                return name, down[index]
            files = cache.get(key)
        if files is None:
            try:
                files = _files(index, name)
            except _Unreachable as e:
                with lock:
                    down.setdefault(index, f"index {index} unreachable ({e})")
                    return name, down[index]
            except _NotListed as e:
                return name, str(e)
            with lock:
                cache[key] = files
        return name, _choose(name, version, files, supported)

    found: dict[str, Wheel] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for name, result in pool.map(one, sorted(todo.items())):
            if isinstance(result, Wheel):
                found[name] = result
            else:
                missing[name] = result
    return Lookup(dict(sorted(found.items())), dict(sorted(missing.items())))


def supported_tags(python: str | None) -> list[pkg_tags.Tag]:
    """Tags in this interpreter's order of preference; for another recorded minor version of
    CPython, that version's tags on this platform."""
    here = tuple(sys.version_info[:2])
    want = tuple(int(x) for x in (python or "").split(".")[:2] if x.isdigit())
    if len(want) != 2 or want == here or pkg_tags.interpreter_name() != "cp":
        return list(pkg_tags.sys_tags())
    return [*pkg_tags.cpython_tags(python_version=want), *pkg_tags.compatible_tags(python_version=want)]


class _Unreachable(Exception):
    pass


class _NotListed(Exception):
    pass


def _why_not_looked_up(src: dict) -> str:
    if "vcs" in src:
        return "installed from a VCS checkout (its commit is recorded, not a wheel)"
    if "directory" in src:
        return "installed from a local folder (no wheel)"
    return "installed from a URL with no hash recorded"


def _files(index: str, name: str) -> list[tuple[str, str, str]]:
    """(filename, absolute url, sha256) of every file the index lists for ``name``."""
    page = f"{index}/{canonicalize_name(name)}/"
    req = urllib.request.Request(page, headers={"Accept": ACCEPT, "User-Agent": "runlock"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            kind = resp.headers.get_content_type()
            body = resp.read()
            base = resp.geturl()
    except urllib.error.HTTPError as e:
        raise _NotListed(f"the index has no page for it (HTTP {e.code})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _Unreachable(getattr(e, "reason", None) or e) from None
    if kind.endswith("json"):
        try:
            doc = json.loads(body)
            return [(f["filename"], urllib.parse.urljoin(base, f["url"]), (f.get("hashes") or {}).get("sha256", ""))
                    for f in doc.get("files") or []]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _NotListed("the index answered with JSON that is not a PEP 691 project page") from None
    parser = _Anchors()
    parser.feed(body.decode("utf-8", errors="replace"))
    out = []
    for href, text in parser.anchors:
        url, _, frag = urllib.parse.urljoin(base, href).partition("#")
        sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else ""
        out.append((text.strip() or url.rsplit("/", 1)[-1], url, sha))
    return out


def _choose(name: str, version: str, files: list[tuple[str, str, str]],
            supported: list[pkg_tags.Tag]) -> Wheel | str:
    rank = {t: i for i, t in enumerate(supported)}
    try:
        want = Version(version)
    except InvalidVersion:
        return f"recorded version {version!r} is not a PEP 440 version"
    best: tuple[int, str, Wheel] | None = None
    of_version = 0
    for filename, url, sha in files:
        if not filename.endswith(".whl"):
            continue
        try:
            wname, wversion, _build, wtags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if wname != canonicalize_name(name) or wversion != want:
            continue
        of_version += 1
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is None or not _SHA256.match(sha or ""):
            continue
        if best is None or (score, filename) < best[:2]:
            best = (score, filename, Wheel(filename, url, sha))
    if best is not None:
        return best[2]
    if not of_version:
        return f"the index lists no wheel of version {version}"
    return f"none of the {of_version} wheel(s) of version {version} fits this platform (or lists a sha256)"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, "".join(self._text)))
            self._href = None
