"""Lineage in other people's formats: Graphviz DOT (and PNG), W3C PROV-JSON, OpenLineage events.

All three are pure functions of a ``LineageView`` (only PNG runs Graphviz's ``dot``), and all
are deterministic: the same record gives the same bytes.

PROV-JSON: snapshots, splits, artifacts, models and evaluations are ``entity``s, runs are
``activity``s (with start and end times) associated with the person who ran them (``agent``);
``used`` -> ``used``, ``generated_by`` -> ``wasGeneratedBy``, ``derived_from`` ->
``wasDerivedFrom``, ``reproduces`` and ``resumes`` -> ``wasInformedBy``. Node keys are kept as qualified names
(the node type is the prefix), so ``snapshot:sha256:…`` reads the same in both worlds.

OpenLineage (spec 2-0-2): each run is a job run with a START event and, once it ended, a
COMPLETE (finished), FAIL (failed) or ABORT (crashed) event; its inputs are what it ``used`` and
its outputs what was ``generated_by`` it. Each derivation (a transform, a split, a model
registration) is a one-step job run of its own, START and COMPLETE at the time it was recorded.
Datasets are named stably (``ds:tickets``, ``model:support-bot``) and carry their content id in
the ``version`` facet. Run ids are the ULIDs as UUIDs; derivations get a UUID5 of their edges.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import uuid
from pathlib import Path

from ulid import ULID

from runlock import canonical
from runlock.errors import InvalidInput, RunlockError
from runlock.lineage import Edge, draw
from runlock.lineage.entities import LineageView, NodeInfo

FORMATS = ("tree", "json", "dot", "png", "prov-json", "openlineage")
OPENLINEAGE_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACET = "https://openlineage.io/spec/facets/{}#/$defs/{}"
PROV_NS = "https://runlock.dev/ns/prov#"
_UUID_NS = uuid.UUID("4f1e7f3c-2d8a-5b7e-9c1a-6a0d3e2b8f41")
_SHAPES = {"run": "box", "snapshot": "folder", "split": "tab", "artifact": "note", "model": "component",
           "evaluation": "hexagon"}


def version() -> str:
    try:
        return importlib.metadata.version("runlock")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def producer() -> str:
    return f"https://github.com/runlock/runlock/tree/v{version()}"


# -- Graphviz -----------------------------------------------------------------------------------
def _q(*lines: str) -> str:
    """A DOT string literal; several lines are joined with DOT's line break."""
    return '"' + "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


def to_dot(view: LineageView) -> str:
    lines = ["digraph lineage {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    for key in sorted(view.graph.nodes):
        info = view.nodes[key]
        label = _q(info.label) if info.label == key else _q(info.label, _short(key))
        extra = ", penwidth=2" if key == view.graph.root else ""
        colour = {"failed": "red", "crashed": "red", "running": "orange"}.get(info.status or "", "black")
        lines.append(f"  {_q(key)} [label={label}, "
                     f"shape={_SHAPES.get(info.type, 'ellipse')}, color={colour}{extra}];")
    for e in view.graph.edges:
        lines.append(f"  {_q(e.src)} -> {_q(e.dst)} [label={_q(e.kind)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _short(key: str) -> str:
    kind, _, ident = key.partition(":")
    return f"{kind}:{ident[:19]}…" if len(ident) > 26 else key


def to_png(view: LineageView) -> bytes:
    """Render with Graphviz's ``dot`` when it is on PATH, else with the pure-Python layout in
    ``lineage.draw`` (matplotlib), so a picture never needs a system package."""
    dot = shutil.which("dot")
    if dot is None:
        return draw.to_png(view)
    done = subprocess.run([dot, "-Tpng"], input=to_dot(view).encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RunlockError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


# -- W3C PROV-JSON ------------------------------------------------------------------------------
_PROV_RELATION = {"used": ("used", "prov:activity", "prov:entity"),
                  "generated_by": ("wasGeneratedBy", "prov:entity", "prov:activity"),
                  "derived_from": ("wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity"),
                  "reproduces": ("wasInformedBy", "prov:informed", "prov:informant"),
                  "resumes": ("wasInformedBy", "prov:informed", "prov:informant")}


def to_prov(view: LineageView) -> dict:
    doc: dict = {"prefix": {"runlock": PROV_NS, "agent": "urn:runlock:agent:",
                            **{t: f"urn:runlock:{t}:" for t in sorted({i.type for i in view.nodes.values()})}}}
    for key in sorted(view.graph.nodes):
        info = view.nodes[key]
        attrs = {"prov:label": info.label, "runlock:id": info.id,
                 **{f"runlock:{k}": v for k, v in sorted(info.attrs.items()) if isinstance(v, (str, int))}}
        if info.type == "run":
            attrs.update({"prov:startTime": info.started_at, "runlock:status": info.status})
            if info.ended_at:
                attrs["prov:endTime"] = info.ended_at
            doc.setdefault("activity", {})[key] = attrs
            who = f"agent:{info.attrs.get('created_by') or 'unknown'}"
            doc.setdefault("agent", {})[who] = {"prov:type": "prov:Person"}
            doc.setdefault("wasAssociatedWith", {})[f"_:assoc-{info.id}"] = {
                "prov:activity": key, "prov:agent": who}
        else:
            doc.setdefault("entity", {})[key] = {"prov:type": f"runlock:{info.type}", **attrs}
    for n, e in enumerate(view.graph.edges, 1):
        relation, a, b = _PROV_RELATION[e.kind]
        doc.setdefault(relation, {})[f"_:{e.kind}-{n}"] = {a: e.src, b: e.dst}
    return doc


# -- OpenLineage --------------------------------------------------------------------------------
def to_openlineage(view: LineageView) -> list[dict]:
    """OpenLineage RunEvents for every stage in the view, ordered by time."""
    events: list[dict] = []
    by_run: dict[str, tuple[list[str], list[str]]] = {}
    derivations: dict[str, list[Edge]] = {}
    for e in view.graph.edges:
        if e.kind == "used":
            by_run.setdefault(e.src, ([], []))[0].append(e.dst)
        elif e.kind == "generated_by":
            by_run.setdefault(e.dst, ([], []))[1].append(e.src)
        elif e.kind == "derived_from":
            derivations.setdefault(e.src, []).append(e)
    for key in view.graph.of_type("run"):
        inputs, outputs = by_run.get(key, ([], []))
        events += _run_events(view, view.nodes[key], sorted(inputs), sorted(outputs))
    for child, parents in sorted(derivations.items()):
        events += _derivation_events(view, child, parents)
    return sorted(events, key=lambda ev: (ev["eventTime"], ev["eventType"] != "START", ev["job"]["name"]))


def _run_events(view: LineageView, run: NodeInfo, inputs: list[str], outputs: list[str]) -> list[dict]:
    run_id = str(ULID.from_str(run.id).to_uuid()) if _is_ulid(run.id) else _uuid(run.key)
    job = {"namespace": f"runlock/{run.attrs.get('project', 'unknown')}",
           "name": str(run.attrs.get("name", run.id)), "facets": {"jobType": _job_type("TRAINING")}}
    facets = {"processing_engine": _processing_engine(),
              "runlock": {**_base("https://runlock.dev/spec/RunlockRunFacet.json"), "run": run.key,
                          "recipeId": run.attrs.get("recipe_id"), "status": run.status}}
    ins = [_dataset(view.nodes[k]) for k in inputs]
    start = _event("START", run.started_at, run_id, facets, job, ins, [])
    end_type = {"finished": "COMPLETE", "failed": "FAIL", "crashed": "ABORT"}.get(run.status or "")
    if end_type is None or not run.ended_at:
        return [start]
    end_facets = dict(facets)
    if end_type != "COMPLETE":
        end_facets["errorMessage"] = {**_base(_FACET.format("1-0-1/ErrorMessageRunFacet.json",
                                                            "ErrorMessageRunFacet")),
                                      "message": f"run {run.status}", "programmingLanguage": "PYTHON"}
    return [start, _event(end_type, run.ended_at, run_id, end_facets, job, ins,
                          [_dataset(view.nodes[k]) for k in outputs])]


def _derivation_events(view: LineageView, child: str, parents: list[Edge]) -> list[dict]:
    info = view.nodes[child]
    verb = {"snapshot": "transform", "split": "split", "model": "register"}.get(info.type, "derive")
    run_id = _uuid("|".join([child, *sorted(e.dst for e in parents)]))
    job = {"namespace": "runlock", "name": f"{verb}:{_stable_name(info)}",
           "facets": {"jobType": _job_type(verb.upper())}}
    facets = {"processing_engine": _processing_engine()}
    when = min(e.created_at for e in parents)
    ins = [_dataset(view.nodes[e.dst]) for e in sorted(parents, key=lambda e: e.dst)]
    return [_event("START", when, run_id, facets, job, ins, []),
            _event("COMPLETE", when, run_id, facets, job, ins, [_dataset(info)])]


def _event(kind: str, when: str | None, run_id: str, facets: dict, job: dict, inputs: list, outputs: list) -> dict:
    return {"eventType": kind, "eventTime": when, "producer": producer(), "schemaURL": OPENLINEAGE_SCHEMA,
            "run": {"runId": run_id, "facets": facets}, "job": job, "inputs": inputs, "outputs": outputs}


def _dataset(info: NodeInfo) -> dict:
    kind = {"model": "MODEL", "artifact": "FILE", "snapshot": "DATASET", "split": "DATASET"}.get(info.type, "FILE")
    content = info.attrs.get("digest") if info.type == "model" else info.id
    return {"namespace": "runlock", "name": _stable_name(info), "facets": {
        "version": {**_base(_FACET.format("1-0-1/DatasetVersionDatasetFacet.json", "DatasetVersionDatasetFacet")),
                    "datasetVersion": content or info.id},
        "datasetType": {**_base(_FACET.format("1-0-1/DatasetTypeDatasetFacet.json", "DatasetTypeDatasetFacet")),
                        "datasetType": kind}}}


def _stable_name(info: NodeInfo) -> str:
    """A dataset's name across its versions: ``ds:tickets``, ``model:support-bot``, ``RUN/NAME``."""
    if info.type in ("snapshot", "split", "model") and "name" in info.attrs:
        prefix = {"snapshot": "ds", "split": "split", "model": "model"}[info.type]
        return f"{prefix}:{info.attrs['name']}"
    if info.type == "artifact" and "run" in info.attrs:
        return f"run:{info.attrs['run']}/{info.attrs['name']}"
    return info.key


def _base(schema_url: str) -> dict:
    return {"_producer": producer(), "_schemaURL": schema_url}


def _job_type(kind: str) -> dict:
    return {**_base(_FACET.format("2-0-4/JobTypeJobFacet.json", "JobTypeJobFacet")),
            "processingType": "BATCH", "integration": "RUNLOCK", "jobType": kind}


def _processing_engine() -> dict:
    return {**_base(_FACET.format("1-1-1/ProcessingEngineRunFacet.json", "ProcessingEngineRunFacet")),
            "name": "runlock", "version": version()}


def _is_ulid(text: str) -> bool:
    try:
        ULID.from_str(text)
        return True
    except ValueError:
        return False


def _uuid(text: str) -> str:
    return str(uuid.uuid5(_UUID_NS, text))


# -- one entry point ----------------------------------------------------------------------------
def render(view: LineageView, fmt: str) -> bytes:
    """``view`` in ``fmt`` (dot, png, prov-json, openlineage as JSON lines, json) as bytes."""
    if fmt == "dot":
        return to_dot(view).encode()
    if fmt == "png":
        return to_png(view)
    if fmt == "prov-json":
        return canonical.dumps(to_prov(view)) + b"\n"
    if fmt == "openlineage":
        return b"".join(canonical.dumps(ev) + b"\n" for ev in to_openlineage(view))
    if fmt == "json":
        return canonical.dumps(view.to_dict()) + b"\n"
    raise InvalidInput(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")


def write(view: LineageView, fmt: str, dest: str | Path) -> Path:
    dest = Path(dest)
    try:
        dest.write_bytes(render(view, fmt))
    except OSError as e:
        raise InvalidInput(f"Cannot write {dest}: {e.strerror}.") from e
    return dest
