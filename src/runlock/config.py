"""Hierarchical configuration: layers of YAML/JSON files and ``key=value`` overrides, merged by
OmegaConf into one frozen, canonical config, with the origin of every value.

    cfg = runlock.config.resolve(["conf/project.yaml", "conf/exp/lora.yaml"], ["lr=3e-4", "lora.r=16"])
    with runlock.start_run(project="bot", config=cfg) as run: ...

Later layers win: a project's defaults, then an experiment file, then command-line overrides
(OmegaConf's dot-list syntax; values parse as YAML: ``3e-4`` is a float, ``[1,2]`` a list,
``null`` is None). Nested mappings merge key by key; a list or a scalar replaces what was
there. ``${other.key}`` interpolations are resolved before the config is frozen.

The lock holds only the resolved values (so moving a file does not change the recipe id);
the provenance — each source file with its sha256, and the layer that set each leaf key — goes
into the run record, where ``runlock config explain RUN`` shows it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from runlock import canonical, hashing
from runlock.errors import InvalidInput, NotFound
from runlock.store import Store
from runlock.tracking.source import RunSource, run_and_lock
from runlock.tracking.fields import flatten

if TYPE_CHECKING:
    from omegaconf import DictConfig

CODE_ORIGIN = "start_run(config=...)"


@dataclass(frozen=True)
class Source:
    label: str                  # the file (relative to the working directory), "override lr=3e-4", "defaults"
    kind: str                   # file | override | mapping
    digest: str | None = None   # sha256 of a file's bytes

    def to_dict(self) -> dict:
        return {"label": self.label, "kind": self.kind, "digest": self.digest}


@dataclass(frozen=True)
class ResolvedConfig:
    """A merged config: ``values`` (canonical JSON) and the source of each leaf (``origins``)."""

    values: dict
    origins: dict[str, str]
    sources: tuple[Source, ...] = field(default_factory=tuple)

    @property
    def digest(self) -> str:
        return canonical.digest(self.values)

    def leaves(self) -> dict[str, object]:
        """``{"lora.r": 16, ...}``: every leaf value by its dotted key."""
        return flatten(self.values)

    def provenance(self) -> dict:
        return {"sources": [s.to_dict() for s in self.sources], "origins": dict(self.origins)}

    def to_dict(self) -> dict:
        return {"values": copy.deepcopy(self.values), "digest": self.digest, **self.provenance()}


@dataclass(frozen=True)
class Explained:
    key: str
    value: object
    origin: str


@dataclass(frozen=True)
class Explanation:
    run_id: str
    keys: list[Explained]
    sources: list[dict]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "sources": self.sources, "keys": [k.__dict__ for k in self.keys]}


def resolve(files: Sequence[str | Path] = (), overrides: Sequence[str] = (), *,
            defaults: dict | None = None) -> ResolvedConfig:
    """Merge ``defaults`` (a mapping from code), then ``files`` in order, then ``overrides``."""
    from omegaconf import OmegaConf  # heavy: loaded only to resolve a config

    layers: list[tuple[Source, DictConfig]] = []
    if defaults:
        layers.append((Source("defaults", "mapping"), _guard("defaults", lambda: OmegaConf.create(defaults))))
    for f in files:
        layers.append(_load(Path(f)))
    for text in overrides:
        if "=" not in text or not text.split("=", 1)[0].strip():
            raise InvalidInput(f"Override {text!r} is not KEY=VALUE.", hint="Write e.g. lr=3e-4 or lora.r=16.")
        layers.append((Source(f"override {text}", "override"),
                       _guard(text, lambda t=text: OmegaConf.from_dotlist([t]))))
    merged = _guard("the merged config", lambda: OmegaConf.to_container(
        OmegaConf.merge(*(c for _, c in layers)) if layers else OmegaConf.create({}), resolve=True))
    try:
        values = canonical.normalize(merged)
    except InvalidInput as e:
        raise InvalidInput(f"The merged config cannot be recorded: {e.message}", hint=e.hint) from None
    return ResolvedConfig(values, _origins(layers, values), tuple(s for s, _ in layers))


def _load(path: Path) -> tuple[Source, DictConfig]:
    from omegaconf import DictConfig, OmegaConf

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read config file {path}: {e.strerror}.") from None
    conf = _guard(str(path), lambda: OmegaConf.create(data.decode("utf-8")))
    if not isinstance(conf, DictConfig):
        raise InvalidInput(f"Config file {path} does not hold a mapping at its top level.")
    return Source(_label(path), "file", hashing.digest_bytes(data)), conf


def _label(path: Path) -> str:
    """A file's path relative to the working directory when it lies inside it."""
    full, cwd = path.resolve(), Path.cwd().resolve()
    return str(full.relative_to(cwd)) if full.is_relative_to(cwd) else str(full)


def _guard(what: str, fn):  # noqa: ANN001, ANN202
    from omegaconf.errors import OmegaConfBaseException

    try:
        return fn()
    except (RecursionError, OmegaConfBaseException, yaml.YAMLError, ValueError, UnicodeDecodeError) as e:
        # PyYAML's loader (as OmegaConf 2.4 uses it) stops at 1,000 levels with a ScannerError; other parsers
        # recurse until Python stops them
        if isinstance(e, RecursionError) or "maximum nesting depth" in str(e):
            raise InvalidInput(f"Cannot use {_clip(what)} as config: it nests too deeply.",
                               hint="Flatten it; a config is a mapping of a few levels.") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput(f"Cannot use {_clip(what)} as config: {_clip(first, 200)}") from None


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _origins(layers: list[tuple[Source, DictConfig]], values: dict) -> dict[str, str]:
    """The label of the last layer that set each leaf of ``values``."""
    from omegaconf import OmegaConf

    origins: dict[str, str] = {}
    for source, conf in layers:
        for key in flatten(OmegaConf.to_container(conf, resolve=False)):
            for old in [k for k in origins if k.startswith(key + ".") or key.startswith(k + ".")]:
                del origins[old]   # a scalar replaced a mapping, or a mapping replaced a scalar
            origins[key] = source.label
    leaves = flatten(values)
    return {k: origins.get(k, "") for k in sorted(leaves)}


def explain(store: Store | RunSource, ref: str) -> Explanation:
    """Which file or override set each key of a run's config (from a store, or a team server)."""
    rec, lock = run_and_lock(store, ref)
    if not rec.recipe_id:
        raise NotFound("lock of run", rec.id)
    prov = rec.context.get("config") or {}
    origins = prov.get("origins", {})
    keys = [Explained(k, v, origins.get(k) or CODE_ORIGIN) for k, v in sorted(flatten(lock["config"]).items())]
    return Explanation(rec.id, keys, prov.get("sources", []))
