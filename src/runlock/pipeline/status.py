"""``pipeline status``: per stage, up to date or stale, and why (from what to what).

A stage is up to date when its inputs document hashes to the key of its last finished (or
restored) execution in this pipeline and every out on disk has the bytes recorded then. Files
whose stat has not changed are not re-hashed (the stat cache).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from runlock.errors import InvalidInput
from runlock.pipeline import state
from runlock.pipeline.digests import Hasher
from runlock.pipeline.inputs import changes, document, stage_key
from runlock.pipeline.params import ParamFiles
from runlock.pipeline.spec import Pipeline
from runlock.store import Store


@dataclass(frozen=True)
class StageStatus:
    stage: str
    state: str                     # up-to-date | stale | never-run | failed
    reasons: list[dict] = field(default_factory=list)   # {"what", "name", "from", "to"}
    run_id: str | None = None      # the run whose outs are in place (up to date) or were last
    cached: bool = False           # stale, but the store holds a result for the current inputs
    upstream: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def status(store: Store, pipe: Pipeline, targets: list[str] | None = None) -> list[StageStatus]:
    hasher, params = Hasher(store), ParamFiles(pipe.root)
    out: dict[str, StageStatus] = {}
    for name in pipe.closure(targets):
        out[name] = _one(store, pipe, name, hasher, params, out)
    return list(out.values())


def _one(store: Store, pipe: Pipeline, name: str, hasher: Hasher, params: ParamFiles,
         known: dict[str, StageStatus]) -> StageStatus:
    root = str(pipe.root)
    stale_up = [u for u in pipe.upstream[name] if u in known and known[u].state != "up-to-date"]
    last = state.last(store, root, name)
    failed = state.last(store, root, name, None)
    try:
        doc = document(store, pipe, name, hasher, params)
    except InvalidInput as e:
        return StageStatus(name, "never-run" if last is None else "stale",
                           [{"what": "dep", "name": "missing", "from": None, "to": e.message}],
                           last.made_by if last else None, upstream=stale_up)
    if last is None:
        st = "failed" if failed is not None and failed.status in ("failed", "running") else "never-run"
        return StageStatus(name, st, [], None, state.cached(store, stage_key(doc)) is not None, stale_up)
    reasons = changes(last.inputs, doc)
    for out, info in sorted(last.outs.items()):
        now = hasher.digest(pipe.root / out)
        if now != info["digest"]:
            reasons.append({"what": "out", "name": out, "from": info["digest"], "to": now})
    for up in stale_up:
        reasons.append({"what": "upstream", "name": up, "from": None, "to": known[up].state})
    if not reasons:
        return StageStatus(name, "up-to-date", [], last.made_by)
    hit = not stale_up and state.cached(store, stage_key(doc)) is not None   # upstream reruns change the key
    return StageStatus(name, "stale", reasons, last.made_by, hit, stale_up)
