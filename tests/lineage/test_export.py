"""Lineage exports checked by other people's tools: the `prov` package reads our PROV-JSON, the
published OpenLineage JSON schemas accept our events, and Graphviz draws our DOT."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import prov.model
import pytest
from referencing import Registry, Resource

from runlock.lineage import entities, export
from runlock.store import Store
from runlock.tracking.run import start_run

# The published schemas, kept in the repository as test data (source, version, licence: README.md there).
SCHEMAS = Path(__file__).resolve().parent / "schemas" / "openlineage"


def openlineage_registry() -> Registry:
    if not (SCHEMAS / "OpenLineage.json").is_file():
        pytest.fail(f"The published OpenLineage schemas are missing from {SCHEMAS}; "
                    "these tests validate against them and cannot run without them.")
    resources = []
    for path in [SCHEMAS / "OpenLineage.json", *sorted((SCHEMAS / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def validator(registry: Registry, uri: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": uri}, registry=registry,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_prov_json_is_read_back_by_the_prov_package(store: Store, make_world) -> None:
    w = make_world(store)
    view = entities.view(store, w.model.ref, "upstream")
    doc = prov.model.ProvDocument.deserialize(io.StringIO(export.render(view, "prov-json").decode()), format="json")
    records = {str(r.identifier): r for r in doc.get_records() if r.identifier is not None}
    assert isinstance(records[f"run:{w.lora.id}"], prov.model.ProvActivity)
    for node in (w.raw.lineage_node, w.clean.lineage_node, w.split.lineage_node, w.model.ref):
        assert isinstance(records[node], prov.model.ProvEntity)
    relations = {(type(r).__name__, str(r.formal_attributes[0][1]), str(r.formal_attributes[1][1]))
                 for r in doc.get_records(prov.model.ProvRelation)}
    assert ("ProvUsage", f"run:{w.lora.id}", w.split.lineage_node) in relations
    assert ("ProvGeneration", f"artifact:{w.model.digest}", f"run:{w.lora.id}") in relations
    assert ("ProvDerivation", w.clean.lineage_node, w.raw.lineage_node) in relations
    assert ("ProvDerivation", w.model.ref, f"artifact:{w.model.digest}") in relations
    assert ("ProvAssociation", f"run:{w.lora.id}", f"agent:{store.actor}") in relations
    run = records[f"run:{w.lora.id}"]
    assert run.get_startTime() is not None and run.get_endTime() is not None


def test_openlineage_events_validate_against_the_published_schema(store: Store, make_world) -> None:
    w = make_world(store)
    with pytest.raises(RuntimeError):
        with start_run(project="support-bot", name="broken", store=store) as broken:
            broken.use(w.split)
            raise RuntimeError("out of memory")
    reg = openlineage_registry()
    run_event = validator(reg, "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    view = entities.view(store, "ds:tickets@v1", "downstream")
    lines = export.render(view, "openlineage").decode().splitlines()
    events = [json.loads(line) for line in lines]
    for ev in events:
        run_event.validate(ev)
        facets = [*ev["run"]["facets"].values(), *ev["job"]["facets"].values(),
                  *[f for d in ev["inputs"] + ev["outputs"] for f in d["facets"].values()]]
        for facet in facets:            # every standard facet also against its own schema
            if facet["_schemaURL"].startswith("https://openlineage.io/"):
                validator(reg, facet["_schemaURL"]).validate(facet)
    by_run: dict[str, list[str]] = {}
    for ev in events:
        by_run.setdefault(ev["run"]["runId"], []).append(ev["eventType"])
    assert sorted(by_run.values()) == sorted([["START", "COMPLETE"]] * 5 + [["START", "FAIL"]])
    lora = [e for e in events if e["job"]["name"] == "lora" and e["eventType"] == "COMPLETE"][0]
    assert lora["inputs"][0]["name"] == "split:tickets"
    assert lora["inputs"][0]["facets"]["version"]["datasetVersion"] == w.split.id
    assert lora["outputs"][0]["facets"]["version"]["datasetVersion"] == w.model.digest
    register = [e for e in events if e["job"]["name"] == "register:model:support-bot"][-1]
    assert register["outputs"][0]["facets"]["version"]["datasetVersion"] == w.model.digest
    transform = [e for e in events if e["job"]["name"] == "transform:ds:tickets-clean"][-1]
    assert transform["inputs"][0]["facets"]["version"]["datasetVersion"] == w.raw.id
    assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)


def test_a_changed_event_is_rejected_by_the_schema(store: Store, make_world) -> None:
    """The validation above has teeth: the same schema refuses a broken event."""
    w = make_world(store)
    event = export.to_openlineage(entities.view(store, w.model.ref, "upstream"))[0]
    run_event = validator(openlineage_registry(), "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    for broken in ({**event, "eventType": "DONE"}, {**event, "run": {"runId": w.lora.id}},
                   {k: v for k, v in event.items() if k != "producer"}):
        with pytest.raises(jsonschema.ValidationError):
            run_event.validate(broken)


def test_dot_renders_with_graphviz(store: Store, make_world, tmp_path: Path) -> None:
    w = make_world(store)
    view = entities.view(store, w.model.ref, "upstream")
    dot = export.to_dot(view)
    assert f'"{w.model.ref}"' in dot and "derived_from" in dot
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
    assert b"<svg" in svg and b"ds:tickets@v1" in svg
    png = export.write(view, "png", tmp_path / "lineage.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_exports_are_byte_identical_across_processes(store: Store, make_world) -> None:
    w = make_world(store)
    code = ("import sys; from runlock.workspace import open_store; from runlock.lineage import entities, export; "
            "s = open_store(sys.argv[1]); v = entities.view(s, sys.argv[2], 'both');"
            "sys.stdout.buffer.write(b''.join(export.render(v, f) for f in ('prov-json', 'openlineage', 'dot', 'json')))")
    outs = [subprocess.run([sys.executable, "-c", code, str(store.root), w.split.ref], capture_output=True,
                           check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and len(outs[0]) > 1000
