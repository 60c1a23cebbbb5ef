"""No existence leak: a caller who may not read a run (or a model version) gets the same answer
whether it exists, in a project the caller cannot read, or does not exist at all: a 403 with the
same words, the reference aside. Every route of the app that takes a run id, a model reference or
a name is asked, by a token with a grant on another project only (the ``outsider``), once with an
existing reference and once with a made-up one. A 404 for one and a 403 for the other would tell
an outsider which ids exist elsewhere; so would a 409 for a running run, or an "ambiguous" answer
that lists other runs' ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import runlock
from runlock import identity
from runlock.tracking.run import pop_run
from runlock.server import create_app
from runlock.server.permissions import PERMISSIONS, V1
from runlock.workspace import init, open_store
from tests.server.conftest import Server, make_server

MADE_UP_RUN = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
MADE_UP_DIGEST = "sha256:" + "e" * 64


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict, dict]]:
    base = tmp_path_factory.mktemp("leak")
    server = make_server(base / "srv")
    store = open_store(base / "srv")
    try:
        run = runlock.start_run("proj", "secret", config={"lr": 0.1}, store=store)
        weights = base / "w.bin"
        weights.write_bytes(b"secret weights")
        art = run.log_artifact(weights, "model")
        run.finish()
        runlock.register_model(run.id, "model", "bot", store=store)
        running = runlock.start_run("proj", "still-running", store=store)   # a 409 would say "it runs"
        pop_run(running)            # left running in the store, but not this process's current run
        identity.create_identity(store, "dora")                             # an identity that exists
    finally:
        store.close()
    server.start()
    try:
        mine = httpx.post(f"{server.url}{V1}/runs", json={"project": "elsewhere"}, headers=server.headers("outsider"))
        assert mine.status_code == 201, mine.text
        real = {"run": run.id, "prefix": run.id[:10], "running": running.id, "model": "model:bot@v1",
                "alias": "model:bot@v1", "name": "bot", "art": f"art:{art.digest}",
                "who": "dora"}
        fake = {"run": MADE_UP_RUN, "prefix": MADE_UP_RUN[:10], "running": "01HYYYYYYYYYYYYYYYYYYYYYYY",
                "model": "model:ghost@v1", "alias": "model:bot@v9", "name": "ghost", "art": f"art:{MADE_UP_DIGEST}",
                "who": "ghost-user"}
        yield server, real, fake, mine.json()["id"]
    finally:
        server.stop()


# every route that takes a reference in its query or body: (method, path) -> the requests, one per
# kind of reference (``{run}``, ``{model}``, … are filled from the real or the made-up references)
BY_REFERENCE: dict[tuple[str, str], list[dict]] = {
    ("POST", f"{V1}/runs/diff"): [{"json": {"a": "{run}", "b": "{run}"}}, {"json": {"a": "{prefix}", "b": "{prefix}"}}],
    ("POST", f"{V1}/runs/compare"): [{"json": {"runs": ["{run}"]}}, {"json": {"runs": ["{running}", "{prefix}"]}}],
    ("POST", f"{V1}/runs/labels"): [{"json": {"ids": ["{run}", "{prefix}0000000000000000"]}}],
    ("POST", f"{V1}/models"): [{"json": {"run": "{run}", "artifact": "model", "name": "stolen"}},
                                {"json": {"run": "{running}", "artifact": "model", "name": "stolen"}}],
    ("GET", f"{V1}/models"): [{"params": {"name": "{name}"}}],
    ("GET", f"{V1}/models/resolve"): [{"params": {"ref": "{model}"}}, {"params": {"ref": "{alias}"}}],
    ("POST", f"{V1}/models/read"): [{"json": {"ref": "{model}"}}, {"json": {"ref": "{alias}"}}],
    ("GET", f"{V1}/models/history"): [{"params": {"name": "{name}"}}],
    ("GET", f"{V1}/models/aliases-at"): [{"params": {"name": "{name}", "at": "2030-01-01"}}],
    ("POST", f"{V1}/runs/{{run_id}}/inputs"): [{"mine": True, "json": {"ref": "{model}"}},
                                               {"mine": True, "json": {"ref": "{alias}"}},
                                               {"mine": True, "json": {"ref": "{art}"}}],
    ("GET", f"{V1}/snapshots"): [{"params": {"name": "{name}"}}],
    ("GET", f"{V1}/snapshots/resolve"): [{"params": {"ref": "ds:{name}"}}],
    ("GET", f"{V1}/splits"): [{"params": {"name": "{name}"}}],
    ("GET", f"{V1}/splits/resolve"): [{"params": {"ref": "split:{name}"}}],
    ("GET", f"{V1}/audit/log"): [{"params": {"target": "{model}"}}],
    ("POST", f"{V1}/splits"): [{"json": {"snapshot": "ds:{name}"}}],
    ("POST", f"{V1}/models/aliases"): [{"json": {"ref": "{model}", "alias": "canary", "reason": "x"}},
                                       {"json": {"ref": "{alias}", "alias": "canary", "reason": "x"}}],
    ("POST", f"{V1}/models/aliases/remove"): [{"json": {"name": "{name}", "alias": "canary", "reason": "x"}}],
    ("GET", f"{V1}/lineage"): [{"params": {"entity": "{model}"}}, {"params": {"entity": "run:{run}"}}],
    ("POST", f"{V1}/splits/import"): [{"json": {"ids": "sha256:" + "0" * 64, "path": "x", "snapshot": "ds:{name}",
                                                "name": "n"}}],
    ("POST", f"{V1}/splits/apply"): [{"json": {"ref": "split:{name}", "snapshot": "ds:{name}"}}],
    ("POST", f"{V1}/splits/check"): [{"json": {"ref": "split:{name}"}}],
    ("POST", f"{V1}/checks"): [{"json": {"target": "{run}", "policy": {"source": "p", "rules": {}}}},
                               {"json": {"target": "{model}", "policy": {"source": "p", "rules": {}}}}],
    ("POST", f"{V1}/compare"): [{"json": {"a": "{run}", "b": "{prefix}", "rtol": 0, "atol": 0, "k": 3}}],
    ("POST", f"{V1}/attestations"): [{"json": {"ref": "{model}", "policy": {"source": "p", "rules": {}}}},
                                     {"json": {"ref": "{run}", "policy": {"source": "p", "rules": {}}}}],
    ("POST", f"{V1}/models/gate"): [{"json": {"model": "{model}", "attestation": "sha256:" + "0" * 64,
                                              "policy": {"source": "p", "rules": {}}}}],
    ("POST", f"{V1}/models/card"): [{"json": {"ref": "{model}"}}, {"json": {"ref": "{alias}"}}],
    ("POST", f"{V1}/snapshots/verify"): [{"json": {"ref": "ds:{name}"}}],
    ("GET", f"{V1}/snapshots/diff"): [{"params": {"old": "ds:{name}", "new": "ds:{name}"}}],
    ("GET", f"{V1}/artifacts"): [{"params": {"run": "{run}"}}, {"params": {"run": "{prefix}", "name": "model"}}],
    ("GET", f"{V1}/artifacts/show"): [{"params": {"ref": "{art}"}}, {"params": {"ref": "{run}/model"}},
                                      {"params": {"ref": "{prefix}/model"}}],
    ("POST", f"{V1}/artifacts/read"): [{"json": {"ref": "{art}"}}, {"json": {"ref": "{run}/model"}}],
    # identities: who exists is an admin's business
    ("POST", f"{V1}/identities"): [{"json": {"name": "{who}"}}],
    ("POST", f"{V1}/identities/disable"): [{"json": {"name": "{who}"}}],
    ("POST", f"{V1}/tokens"): [{"json": {"name": "{who}"}}],
    ("POST", f"{V1}/grants"): [{"json": {"name": "{who}", "role": "viewer"}}],
    ("POST", f"{V1}/grants/revoke"): [{"json": {"name": "{who}"}}],
    ("GET", f"{V1}/tokens"): [{"params": {"user": "{who}"}}],
    ("GET", f"{V1}/grants"): [{"params": {"user": "{who}"}}],
    # a name given to what is made, not a reference: asked all the same
    ("POST", f"{V1}/snapshots"): [{"json": {"name": "{name}", "manifest": {}}}],
    ("POST", f"{V1}/runs"): [],     # the run's name (its project decides, and the refusal names a new id)
}

# the least body each route with a run id in its path accepts (so only the id decides the answer)
BODIES = {
    ("POST", f"{V1}/runs/{{run_id}}/points"): {"json": {"rank": 0, "points": []}},
    ("POST", f"{V1}/runs/{{run_id}}/finish"): {"json": {}},
    ("POST", f"{V1}/runs/{{run_id}}/artifacts"): {"json": {"name": "a", "digest": MADE_UP_DIGEST}},
    ("POST", f"{V1}/runs/{{run_id}}/inputs"): {"json": {"ref": "ds:nothing"}},
    ("POST", f"{V1}/runs/{{run_id}}/summary"): {"json": {"values": {}}},
    ("POST", f"{V1}/runs/{{run_id}}/tags"): {"json": {"set": {"team": "x"}}},
    ("POST", f"{V1}/runs/{{run_id}}/adopt"): {"json": {}},
    ("POST", f"{V1}/runs/{{run_id}}/notes"): {"json": {"text": "x"}},
    ("POST", f"{V1}/runs/{{run_id}}/delete"): {"json": {"reason": "x"}},
}

REFERENCE_FIELDS = {"ref", "run", "runs", "a", "b", "name", "target", "ids", "snapshot", "entity", "model"}


def _fill(value, refs: dict):  # noqa: ANN001, ANN202
    if isinstance(value, str):
        return value.format(**refs)
    if isinstance(value, list):
        return [_fill(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, refs) for k, v in value.items()}
    return value


def _requests(world) -> Iterator[tuple[str, str, dict, dict]]:  # noqa: ANN001
    """(what, method, the real request, the made-up one) for every route that takes a reference."""
    server, real, fake, mine = world
    for (method, path), rule in sorted(PERMISSIONS.items()):
        if "{run_id}" not in path or (method, path) in BY_REFERENCE:
            continue
        for kind in ("run", "prefix", "running"):
            body = BODIES.get((method, path), {})
            yield (f"{method} {path} [{kind}]", method, {"url": path.replace("{run_id}", real[kind]), **body},
                   {"url": path.replace("{run_id}", fake[kind]), **body})
    for (method, path), asks in sorted(BY_REFERENCE.items()):
        for n, ask in enumerate(asks):
            url = path.replace("{run_id}", mine) if ask.get("mine") else path
            kw = {k: v for k, v in ask.items() if k != "mine"}
            yield f"{method} {path} [{n}]", method, {"url": url, **_fill(kw, real)}, {"url": url, **_fill(kw, fake)}


def _answer(server: Server, method: str, request: dict, refs: dict) -> tuple[int, object]:
    r = httpx.request(method, server.url + request.pop("url"), headers=server.headers("outsider"), **request)
    body = r.text
    for key in sorted(refs, key=lambda k: -len(refs[k])):       # the reference itself aside
        body = body.replace(refs[key], "<REF>")
    body = re.sub(r"<REF>[0-9A-Za-z]*", "<REF>", body)
    return r.status_code, body


def test_an_outsider_cannot_tell_an_existing_reference_from_a_made_up_one(world) -> None:  # noqa: ANN001
    server, real, fake, _ = world
    asked = 0
    for what, method, with_real, with_fake in _requests(world):
        status_real, body_real = _answer(server, method, with_real, real)
        status_fake, body_fake = _answer(server, method, with_fake, fake)
        assert (status_real, body_real) == (status_fake, body_fake), what
        assert status_real in (200, 403), f"{what}: {status_real} {body_real}"
        asked += 1
    assert asked >= 30


def test_the_refusal_is_a_403_that_names_no_project(world) -> None:  # noqa: ANN001
    server, real, fake, _ = world
    for refs in (real, fake):
        r = httpx.post(f"{server.url}{V1}/runs/diff", json={"a": refs["run"], "b": refs["run"]},
                       headers=server.headers("outsider"))
        assert r.status_code == 403
        assert r.json() == {"error": f"outsider may not run.read on run:{refs['run']}: it needs the viewer role.",
                            "hint": "Ask an admin to grant it (`runlock roles grant`)."}
        assert "proj" not in r.text


def test_a_reader_of_everything_still_hears_not_found(world) -> None:  # noqa: ANN001
    server, real, fake, _ = world
    h = server.headers("viewer")
    assert httpx.post(f"{server.url}{V1}/runs/diff", json={"a": fake["run"], "b": real["run"]}, headers=h).status_code == 404
    assert httpx.post(f"{server.url}{V1}/runs/diff", json={"a": real["run"], "b": real["run"]}, headers=h).status_code == 200
    assert httpx.get(f"{server.url}{V1}/models/resolve", params={"ref": fake["model"]}, headers=h).status_code == 404
    assert httpx.get(f"{server.url}{V1}/models/resolve", params={"ref": real["model"]}, headers=h).status_code == 200
    assert httpx.get(f"{server.url}{V1}/models/history", params={"name": "ghost"}, headers=h).json() == {"moves": []}


def test_every_route_that_takes_a_reference_is_asked(tmp_path: Path) -> None:
    """The lists above against the app's own OpenAPI: a new route with a run id in its path is asked
    by itself; one that takes a reference in its query or body must be added to BY_REFERENCE."""
    store = init(tmp_path)
    try:
        schema = create_app(store).openapi()
    finally:
        store.close()
    components = schema.get("components", {}).get("schemas", {})
    missing = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                names |= set(components[ref.rsplit("/", 1)[1]].get("properties", {}))
            asked = (method.upper(), path) in BY_REFERENCE or "{run_id}" in path     # the path's id: asked above
            if names & REFERENCE_FIELDS and not asked:
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes taking a reference that the leak test does not ask: {missing}"


def test_labels_are_full_ids_for_a_caller_who_cannot_read_everything(world) -> None:  # noqa: ANN001
    """A shortened label's length says how close another id lies: a search oracle for ids."""
    server, real, fake, _ = world
    near = real["run"][:-1] + ("0" if real["run"][-1] != "0" else "1")
    ask = {"ids": [real["run"], near]}
    out = httpx.post(f"{server.url}{V1}/runs/labels", json=ask, headers=server.headers("outsider")).json()
    assert out == {"labels": {real["run"]: real["run"], near: near}}
    seen = httpx.post(f"{server.url}{V1}/runs/labels", json=ask, headers=server.headers("viewer")).json()
    assert len(seen["labels"][real["run"]]) < 26
