"""Conformance of the run annotations (``runs tag/note/delete``), the artifact catalog
(``artifacts list/show/get``), ``data diff`` and ``split export`` against a real ``runlock server``:
the same text from the folder and from the server, the same state left behind, the same audit
entries (with the token's identity), and the project's roles as the boundary."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import runlock
from runlock import auditlog, checkpoints, keys
from runlock.errors import RunlockError
from runlock.remote.client import Client
from runlock.remote.http import HttpService
from runlock.remote.local import LocalService
from runlock.server.permissions import V1
from runlock.verify.checklist import Policy, load_policy
from runlock.workspace import open_store
from tests.server.conftest import scoped_token
from tests.server.test_conformance import World, _cli, _named, refused, world  # noqa: F401 (the module's fixture)


def _flat(text: str) -> str:
    """Output as one line: the console wraps at its width, which differs between terminals and CI."""
    return " ".join(text.split())


def _fresh_runs(world: World, n: int, project: str = "proj") -> list[str]:
    """``n`` finished runs, each with a file artifact ``model`` and a folder artifact ``checkpoint``."""
    store = open_store(world.root)
    ids = []
    try:
        for i in range(n):
            run = runlock.start_run(project, f"annotated{i}", config={"i": i}, store=store)
            run.log({"loss": 1.0}, step=0)
            out = world.data / "fresh" / run.id
            (out / "ckpt" / "deep").mkdir(parents=True)
            (out / "w.bin").write_bytes(b"weights " + run.id.encode())
            (out / "ckpt" / "a.json").write_text('{"a": 1}')
            (out / "ckpt" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 4)
            run.log_artifact(out / "w.bin", "model")
            run.log_artifact(out / "ckpt", "checkpoint")
            run.finish()
            ids.append(run.id)
    finally:
        store.close()
    return ids


def _same(remote: tuple[int, str], local: tuple[int, str], a: str, b: str, *, as_json: bool) -> None:
    """The same text, each run's id aside; with --json, what may differ by who and when aside."""
    (code_r, out_r), (code_l, out_l) = remote, local
    assert code_r == code_l == 0, f"server:\n{out_r}\nlocal:\n{out_l}"
    out_r, out_l = out_r.replace(a, "RUN"), out_l.replace(b, "RUN")
    if as_json:
        drop = {"created_at", "created_by", "deleted_at", "deleted_by"}
        out_r, out_l = ({k: v for k, v in json.loads(o).items() if k not in drop} for o in (out_r, out_l))
    assert out_r == out_l


def test_tag_note_and_delete_print_the_same_text_and_leave_the_same_state(world: World) -> None:
    a, b = _fresh_runs(world, 2)
    steps = [(["runs", "tag", "RUN", "team=nlp", "stage=ablation"], False),
             (["runs", "tag", "RUN", "--remove", "stage", "--json"], True),
             (["runs", "note", "RUN", "looks overfit after step 3"], False),
             (["runs", "note", "RUN", "second note", "--json"], True)]
    for args, as_json in steps:
        _same(_cli(world, [x.replace("RUN", a) for x in args], remote=True),
              _cli(world, [x.replace("RUN", b) for x in args], remote=False), a, b, as_json=as_json)
    store = open_store(world.root)
    try:
        local = LocalService(store)
        there, here = local.run_view(a), local.run_view(b)
        assert there.run.tags == here.run.tags == {"team": "nlp"}
        assert [n.text for n in there.notes] == [n.text for n in here.notes] == ["looks overfit after step 3",
                                                                                "second note"]
        entries = auditlog.log(store, target=f"run:{a}", limit=None)
    finally:
        store.close()
    mine = [(e.action, e.actor) for e in entries if e.action in ("run.tag", "run.note")]
    assert mine == [("run.tag", "admin")] * 2 + [("run.note", "admin")] * 2      # the token's identity
    _same(_cli(world, ["runs", "delete", a, "--reason", "duplicate"], remote=True),
          _cli(world, ["runs", "delete", b, "--reason", "duplicate"], remote=False), a, b, as_json=False)
    for remote in (True, False):
        listed = _cli(world, ["runs", "list", "--project", "proj", "--wide"], remote=remote)[1]
        gone = _cli(world, ["runs", "list", "--project", "proj", "--deleted", "--wide"], remote=remote)[1]
        assert a not in listed and b not in listed and a in gone and b in gone


@pytest.mark.parametrize("args", [
    ["runs", "tag", "RUN", "novalue"],                    # refused by the client's own parser
    ["runs", "tag", "RUN", "bad key=1"],
    ["runs", "note", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "x"],
    ["runs", "delete", "MODELRUN", "--reason", "x"],        # a registered model was built from it
    ["runs", "tag", "..", "a=1"],
])
def test_a_refused_annotation_says_the_same_either_way(world: World, args: list[str]) -> None:
    run = _fresh_runs(world, 1)[0]
    args = [x.replace("MODELRUN", world.runs[0]).replace("RUN", run) for x in args]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local and remote[0] != 0 and "Traceback" not in remote[1], f"{remote}\n{local}"


def test_annotations_hold_to_the_project_s_roles(world: World) -> None:
    run = _fresh_runs(world, 1)[0]
    token = scoped_token(world.root, "proj-viewer", "viewer", "proj")
    asks = [("tags", {"set": {"team": "x"}}), ("notes", {"text": "x"}), ("delete", {"reason": "x"})]
    for who in ("viewer", "outsider"):
        for path, body in asks:
            r = httpx.post(f"{world.server.url}{V1}/runs/{run}/{path}", json=body, headers=world.server.headers(who))
            assert r.status_code == 403, (who, path, r.text)
    for path, body in asks:
        r = httpx.post(f"{world.server.url}{V1}/runs/{run}/{path}", json=body,
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403, (path, r.text)
    for path, body in asks[:2]:         # an editor tags and notes
        r = httpx.post(f"{world.server.url}{V1}/runs/{run}/{path}", json=body, headers=world.server.headers("editor"))
        assert r.status_code in (200, 201), (path, r.text)
    for who, status in (("editor", 403), ("admin", 200)):     # deleting takes an admin, as locally
        r = httpx.post(f"{world.server.url}{V1}/runs/{run}/delete", json={"reason": "x"},
                       headers=world.server.headers(who))
        assert r.status_code == status, (who, r.text)
    assert httpx.get(f"{world.server.url}{V1}/runs", params={"project": "proj", "deleted": "true"},
                     headers=world.server.headers("viewer")).json()["runs"][0]["id"] == run


def test_artifacts_get_writes_the_same_bytes_and_text_from_both(world: World, tmp_path: Path) -> None:
    run = _fresh_runs(world, 1)[0]
    for name in ("model", "checkpoint"):
        there, here = tmp_path / f"r-{name}", tmp_path / f"l-{name}"
        remote = _cli(world, ["artifacts", "get", f"{run}/{name}", str(there)], remote=True)
        local = _cli(world, ["artifacts", "get", f"{run}/{name}", str(here)], remote=False)
        assert remote[0] == local[0] == 0, (remote, local)
        assert remote[1].replace(str(there), "DEST") == local[1].replace(str(here), "DEST")
        source = world.data / "fresh" / run / ("w.bin" if name == "model" else "ckpt")
        for got in (there, here):
            if name == "model":
                assert got.read_bytes() == source.read_bytes()
            else:
                assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*")) == ["a.json", "deep", "deep/b.bin"]
                assert (got / "deep" / "b.bin").read_bytes() == (source / "deep" / "b.bin").read_bytes()
    again = _cli(world, ["artifacts", "get", f"{run}/model", str(tmp_path / "r-model")], remote=True)
    assert again[0] != 0 and "already exists" in _flat(again[1])
    store = open_store(world.root)
    try:
        reads = [e for e in auditlog.log(store, action="artifact.read", limit=None) if e.details.get("run") == run]
    finally:
        store.close()
    assert sorted((e.actor, Path(e.details["dest"]).name) for e in reads if e.actor == "admin") == \
        [("admin", "r-checkpoint"), ("admin", "r-model")]


def test_artifacts_hold_to_the_project_s_roles(world: World, tmp_path: Path) -> None:
    mine, theirs = _fresh_runs(world, 1, "proj")[0], _fresh_runs(world, 1, "other")[0]
    token = scoped_token(world.root, "proj-reader", "viewer", "proj")
    reader = HttpService(Client(world.server.url, token))
    try:
        listed = {a.run_id for a in reader.list_artifacts(limit=None)}
        assert mine in listed and theirs not in listed
        assert reader.show_artifact(f"{mine}/checkpoint").entries
        got = reader.get_artifact(f"{mine}/checkpoint", tmp_path / "ok")      # a folder: its files by ?via=
        assert got.files == 2 and (tmp_path / "ok" / "deep" / "b.bin").exists()
        refused(lambda: reader.show_artifact(f"{theirs}/model"),
                lambda: reader.get_artifact(f"{theirs}/model", tmp_path / "no"),
                lambda: reader.list_artifacts(run=theirs))
        assert not (tmp_path / "no").exists()
    finally:
        reader.close()


def test_split_export_writes_the_same_file_from_both(world: World, tmp_path: Path) -> None:
    _named(world)
    there, here = tmp_path / "r.json", tmp_path / "l.json"
    remote = _cli(world, ["split", "export", "split:cat-tickets", "-o", str(there)], remote=True)
    local = _cli(world, ["split", "export", "split:cat-tickets", "-o", str(here)], remote=False)
    assert remote[0] == local[0] == 0 and remote[1].replace(str(there), "F") == local[1].replace(str(here), "F")
    assert there.read_bytes() == here.read_bytes() and sum(map(len, json.loads(there.read_text()).values())) == 300
    refused = _cli(world, ["split", "export", "split:cat-tickets", "-o", str(there)], remote=True)
    assert refused[0] != 0 and there.read_bytes() == here.read_bytes()        # no overwrite without --force


# -- what the record alone decides: check, compare, checkpoints -------------------------------------
@pytest.mark.parametrize("args", [
    ["check", "RUN0"],
    ["check", "model:bot@v1", "--json"],
    ["check", "RUN1", "--policy", "POLICY"],
    ["check", "model:nobody"],
    ["check", "RUN0", "--policy", "BADPOLICY"],
    ["compare", "RUN0", "RUN1"],
    ["compare", "RUN0", "RUN0", "--json"],
    ["compare", "RUN0", "RUN2", "--rtol", "0.5", "--atol", "0.01", "--no-stitch", "--json"],
    ["compare", "RUN1", "RUN2", "--require", "tolerance"],
    ["compare", "RUN0", "RUN1", "--rtol", "nan"],
    ["compare", "RUN0", "01HZZZZZZZZZZZZZZZZZZZZZZZ"],
])
def test_check_and_compare_print_the_same_text(world: World, args: list[str], tmp_path: Path) -> None:
    policy, bad = tmp_path / "policy.toml", tmp_path / "bad.toml"
    policy.write_text('[check]\nrules = ["inputs-pinned", "metrics-complete", "seeds-recorded"]\n'
                      '[check.inputs-pinned]\nrequire_inputs = false\n')
    bad.write_text('[check]\nrules = ["inputs-pinned"]\n[check.inputs-pinned]\nrequire_inputs = "no"\n')
    args = [a.replace("RUN0", world.runs[0]).replace("RUN1", world.runs[1][:10]).replace("RUN2", world.runs[2])
            .replace("BADPOLICY", str(bad)).replace("POLICY", str(policy)) for a in args]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local, f"server:\n{remote[1]}\nlocal:\n{local[1]}"
    assert "Traceback" not in local[1] and local[1].strip()
    if args[0] == "check" and "nobody" not in args[1] and "bad" not in args[-1]:
        assert local[0] in (0, 1) and ("code-committed" in local[1] or "inputs-pinned" in local[1])
    if args[:2] == ["compare", world.runs[0]] and args[2] == world.runs[0]:
        assert local[0] == 0 and json.loads(local[1])["tier"] == "bitwise"


def test_a_policy_the_server_refuses_is_checked_there_too(world: World) -> None:
    """A client that skips its own checks gets the server's: unknown rules and options of the wrong
    type are refused (400) before any rule runs."""
    url, h = f"{world.server.url}{V1}/checks", world.server.headers("admin")
    for rules in ({"no-such-rule": {}}, {"inputs-pinned": {"require_inputs": "no"}}, {"rules": {}},
                  {"verified": {"min_tier": 3}}):
        r = httpx.post(url, json={"target": world.runs[0], "policy": {"source": "mine", "rules": rules}}, headers=h)
        assert r.status_code == 400 and "policy" in r.json()["error"], (rules, r.text)
    ok = httpx.post(url, json={"target": world.runs[0], "policy": {"source": "mine", "rules": {"metrics-complete": {}}}},
                    headers=h)
    assert ok.status_code == 200 and ok.json()["policy"] == "mine" and len(ok.json()["results"]) == 1


def test_check_and_compare_hold_to_the_project_s_roles(world: World) -> None:
    outsider = HttpService(Client(world.server.url, world.server.tokens["outsider"]))
    viewer = HttpService(Client(world.server.url, world.server.tokens["viewer"]))
    try:
        rules = load_policy(None, start="/")        # the built-in policy
        assert viewer.check(world.runs[0], rules).results
        assert viewer.compare_outputs(world.runs[0], world.runs[1], rtol=0, atol=0, k=3).tier
        refused(lambda: outsider.check(world.runs[0], rules), lambda: outsider.check("model:bot@v1", rules),
                lambda: outsider.compare_outputs(world.runs[0], world.runs[1], rtol=0, atol=0, k=3),
                lambda: outsider.check("01HZZZZZZZZZZZZZZZZZZZZZZZ", rules), viewer.audit_checkpoint,
                outsider.audit_checkpoint)
    finally:
        outsider.close()
        viewer.close()


def test_audit_checkpoint_is_signed_on_the_server(world: World) -> None:
    remote = _cli(world, ["audit", "checkpoint"], remote=True)
    local = _cli(world, ["audit", "checkpoint"], remote=False)
    said = _flat(remote[1])
    assert remote == local and remote[0] == 0 and "signed by" in said
    store = open_store(world.root)
    try:
        latest = checkpoints.checkpoints(store)[-1]
        assert latest.signature_ok(keys.public_key(store)) and f"at {latest.tree_size} entries" in said
    finally:
        store.close()


# -- attestations: signed where the key is ------------------------------------------------------------
def test_attest_and_gate_print_the_same_text_and_verify(world: World, tmp_path: Path) -> None:
    there, here, pub = tmp_path / "r.intoto.jsonl", tmp_path / "l.intoto.jsonl", tmp_path / "store.pub"
    remote = _cli(world, ["attest", "model:bot@v1", "-o", str(there)], remote=True)
    local = _cli(world, ["attest", "model:bot@v1", "-o", str(here)], remote=False)
    assert remote[0] == local[0] == 0, (remote, local)
    assert remote[1].replace(str(there), "F") == local[1].replace(str(here), "F") and "signed by" in _flat(remote[1])
    got = _cli(world, ["keys", "export-public", "-o", str(pub)], remote=True)       # the key the server holds
    mine = _cli(world, ["keys", "export-public", "-o", str(tmp_path / "local.pub")], remote=False)
    assert got[0] == 0 and got[1].replace(str(pub), "K") == mine[1].replace(str(tmp_path / "local.pub"), "K")
    assert pub.read_bytes() == (tmp_path / "local.pub").read_bytes()
    assert _cli(world, ["keys", "show", "--json"], remote=True) == _cli(world, ["keys", "show", "--json"], remote=False)
    for made in (there, here):
        checked = _cli(world, ["attest", "verify", str(made), "--key", str(pub)], remote=False)
        assert checked[0] == 0 and "ok" in checked[1], checked
    for args in (["attest", "gate", "model:bot@v1", "--attestation", "ATT"],
                 ["attest", "gate", "model:bot@v1", "--attestation", "ATT", "--json"],
                 ["attest", "gate", "model:bot@v1", "--attestation", "ATT", "--override", "known gap"]):
        r = _cli(world, [a.replace("ATT", str(there)) for a in args], remote=True)
        l_ = _cli(world, [a.replace("ATT", str(here)) for a in args], remote=False)
        if "--json" in args:
            r, l_ = (r[0], {k: v for k, v in json.loads(r[1]).items() if k != "audit_seq"}), \
                (l_[0], {k: v for k, v in json.loads(l_[1]).items() if k != "audit_seq"})
        assert r == l_, f"server:\n{r}\nlocal:\n{l_}"
        assert r[0] == (0 if "--override" in args else 1)      # the built-in checklist fails here (no git)
        assert "--json" in args or ("gate overridden" if "--override" in args else "gate refused") in _flat(r[1])
    store = open_store(world.root)
    try:
        made = [(e.action, e.actor) for e in auditlog.log(store, target="model:bot@v1", limit=None)
                if e.action in ("attestation.create", "gate.override")]
    finally:
        store.close()
    assert ("attestation.create", "admin") in made and ("gate.override", "admin") in made


def test_a_gate_that_passes_through_the_server_lets_production_move(world: World, tmp_path: Path) -> None:
    policy = Policy("team policy", {"metrics-complete": {}})
    token = scoped_token(world.root, "release", "maintainer", "proj")
    store = open_store(world.root)
    try:
        mv = runlock.register_model(world.runs[2], "model", "gated", store=store)
    finally:
        store.close()
    editor = HttpService(Client(world.server.url, world.server.tokens["editor"]))
    release = HttpService(Client(world.server.url, token))
    try:
        made = editor.attest(mv.ref, tmp_path / "a.jsonl", policy=policy)      # attesting takes an editor
        assert made.result == "PASSED" and (tmp_path / "a.jsonl").read_bytes()
        with pytest.raises(RunlockError) as e:            # an editor may not pass the gate
            editor.gate(mv.ref, tmp_path / "a.jsonl", policy=policy)
        assert e.value.exit_code == 3
        passed = release.gate(mv.ref, tmp_path / "a.jsonl", policy=policy)
        assert passed.passed and passed.audit_seq
        with pytest.raises(RunlockError):                 # production needs an admin, gate or not
            release.set_alias(mv.ref, "production", reason="gated")
        admin = HttpService(Client(world.server.url, world.server.tokens["admin"]))
        try:
            assert admin.set_alias(mv.ref, "production", reason="gated").alias == "production"
        finally:
            admin.close()
    finally:
        editor.close()
        release.close()


def test_attestations_hold_to_the_project_s_roles(world: World, tmp_path: Path) -> None:
    rules = load_policy(None, start="/")
    for who in ("viewer", "outsider"):
        svc = HttpService(Client(world.server.url, world.server.tokens[who]))
        try:
            refused(lambda: svc.attest("model:bot@v1", tmp_path / "x", policy=rules),
                    lambda: svc.attest(world.runs[0], tmp_path / "x", policy=rules))
            assert not (tmp_path / "x").exists()
        finally:
            svc.close()
    r = httpx.post(f"{world.server.url}{V1}/models/gate", headers=world.server.headers("admin"),
                   json={"model": "model:bot@v1", "attestation": "sha256:" + "a" * 64,
                         "policy": {"source": "p", "rules": {}}})
    assert r.status_code == 400 and "Upload it first" in r.json()["hint"]


def test_plot_draws_the_same_png_from_both(world: World, tmp_path: Path) -> None:
    args = ["plot", world.runs[0], world.runs[1][:10], "--key", "loss", "--key", "acc", "--key", "nothing", "-o"]
    remote = _cli(world, [*args, str(tmp_path / "r.png")], remote=True)
    local = _cli(world, [*args, str(tmp_path / "l.png")], remote=False)
    assert remote[0] == local[0] == 0 and remote[1].replace("r.png", "X") == local[1].replace("l.png", "X")
    assert "no run logged 'nothing'" in _flat(remote[1])
    assert (tmp_path / "r.png").read_bytes() == (tmp_path / "l.png").read_bytes()
    missing = ["plot", world.runs[0], "--key", "los", "-o", str(tmp_path / "m.png")]
    assert _cli(world, missing, remote=True) == _cli(world, missing, remote=False)


# -- split import / apply / check: computed where the data is ------------------------------------------
def test_split_import_apply_and_check_print_the_same_text(world: World, tmp_path: Path) -> None:
    _named(world)
    ids = tmp_path / "splits_v1.json"
    assert _cli(world, ["split", "export", "split:cat-tickets", "-o", str(ids)], remote=False)[0] == 0
    for args in (["split", "import", str(ids), "ds:cat-tickets", "--name", "NAME"],
                 ["split", "import", str(ids), "ds:cat-tickets", "--name", "NAME-nc", "--no-check", "--json"],
                 ["split", "apply", "split:cat-tickets", "ds:cat-edit@v2", "--name", "NAME-applied"],
                 ["split", "apply", "split:cat-tickets", "ds:cat-edit@v2", "--name", "NAME-applied-j", "--json"]):
        remote = _cli(world, [a.replace("NAME", "imp-r") for a in args], remote=True)
        local = _cli(world, [a.replace("NAME", "imp-l") for a in args], remote=False)
        assert remote[0] == local[0] == 0, (remote, local)
        assert remote[1].replace("imp-r", "N") == local[1].replace("imp-l", "N"), f"{remote[1]}\n{local[1]}"
    store = open_store(world.root)
    try:
        svc = LocalService(store)
        assert svc.load_split("split:imp-r").manifest == svc.load_split("split:imp-l").manifest
        assert svc.load_split("split:imp-r").counts == svc.load_split("split:cat-tickets").counts
        applied = svc.load_split("split:imp-r-applied")
        assert applied.manifest == svc.load_split("split:imp-l-applied").manifest
        assert sum(applied.counts.values()) == 300          # one record gone, one new
    finally:
        store.close()
    for args in (["split", "check", "split:cat-tickets"], ["split", "check", "split:imp-r", "--json", "--bands", "20"],
                 ["split", "check", "split:cat-tickets", "--text", "text", "--threshold", "0.9"]):
        remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
        assert remote == local and remote[0] in (0, 1) and "Traceback" not in remote[1], f"{remote}\n{local}"


@pytest.mark.parametrize("content", [None, "not json", '{"train": ["t0000", "nobody"]}', '{"train": ["t0000"], "x": ["t0000"]}',
                                     '["t0000"]', '{"": ["t0000"]}'])
def test_a_refused_split_import_says_the_same_either_way(world: World, tmp_path: Path, content: str | None) -> None:
    _named(world)
    ids = tmp_path / "ids.json"
    if content is not None:
        ids.write_text(content)
    args = ["split", "import", str(ids), "ds:cat-tickets", "--name", "refused"]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local and remote[0] == 2 and "Traceback" not in remote[1], f"{remote}\n{local}"
    assert _cli(world, ["split", "show", "split:refused"], remote=False)[0] != 0      # nothing was named


def test_split_writes_hold_to_roles(world: World, tmp_path: Path) -> None:
    _named(world)
    ids = tmp_path / "ids.json"
    ids.write_text('{"train": ["t0000"]}')
    for who in ("viewer", "outsider"):
        svc = HttpService(Client(world.server.url, world.server.tokens[who]))
        try:
            refused(lambda: svc.import_split(ids, "ds:cat-tickets", name="nope"),
                    lambda: svc.apply_split("split:cat-tickets", "ds:cat-edit@v2", name="nope"),
                    lambda: svc.check_split("split:cat-tickets"))
        finally:
            svc.close()


# -- env: the recorded environment, read from the server, used here -----------------------------------
@pytest.mark.parametrize("args", [
    ["env", "export", "RUN0"],
    ["env", "export", "RUN1", "--format", "pylock"],
    ["env", "export", "RUN0", "--format", "cyclonedx", "--json"],
    ["env", "diff", "RUN0"],
    ["env", "diff", "RUN2", "--json"],
    ["env", "diff", "01HZZZZZZZZZZZZZZZZZZZZZZZ"],
    ["env", "rebuild", "RUN0", "-o", "BUSY"],
])
def test_env_commands_print_the_same_text(world: World, args: list[str], tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("taken")
    args = [a.replace("RUN0", world.runs[0]).replace("RUN1", world.runs[1][:10]).replace("RUN2", world.runs[2])
            .replace("BUSY", str(tmp_path / "busy")) for a in args]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local, f"server:\n{remote[1]}\nlocal:\n{local[1]}"
    assert (local[0] == 0) == ("ZZZZ" not in args[2] and "rebuild" not in args), local
    if args[1] == "export" and local[0] == 0:
        assert world.runs[0][:8] in local[1] or world.runs[1][:8] in local[1] or "bom" in local[1].lower()


def test_whoami_prints_the_same_identity_from_both(world: World) -> None:
    """The token's identity from the server, the store's owner here: the same shape either way."""
    remote = _cli(world, ["users", "whoami", "--json"], remote=True)
    assert remote[0] == 0 and json.loads(remote[1])["name"] == "admin"
    assert json.loads(remote[1])["roles"] == {"*": "admin"}
    local = _cli(world, ["users", "whoami", "--json"], remote=False)
    assert set(json.loads(local[1])) == set(json.loads(remote[1]))
    shown = _cli(world, ["users", "whoami"], remote=True)
    assert shown[0] == 0 and "admin" in shown[1]


@pytest.mark.parametrize("args, code", [
    (["data", "verify", "ds:cat-docs"], 0),
    (["data", "verify", "--json"], 0),
    (["data", "verify", "ds:cat-docs", "--path", "DATA/files"], 0),
    (["data", "verify", "ds:cat-docs", "--path", "DATA/edited", "--json"], 1),     # another folder's files
    (["data", "verify", "--path", "DATA/files"], 2),
    (["data", "verify", "ds:nothing"], 1),
])
def test_data_verify_prints_the_same_text(world: World, args: list[str], code: int) -> None:
    _named(world)
    args = [a.replace("DATA", str(world.data)) for a in args]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local, f"server:\n{remote[1]}\nlocal:\n{local[1]}"
    assert local[0] == code, local


@pytest.mark.parametrize("args", [["config", "explain", "RUN0"], ["config", "explain", "RUN1", "--json"],
                                  ["config", "explain", "01HZZZZZZZZZZZZZZZZZZZZZZZ"]])
def test_config_explain_prints_the_same_text(world: World, args: list[str]) -> None:
    args = [a.replace("RUN0", world.runs[0]).replace("RUN1", world.runs[1][:10]) for a in args]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local, f"server:\n{remote[1]}\nlocal:\n{local[1]}"
    assert (local[0] == 0) == ("ZZZZ" not in args[2]) and ("ZZZZ" in args[2] or "lr" in local[1])


def test_registry_card_writes_the_same_card_from_both(world: World, tmp_path: Path) -> None:
    args = ["registry", "card", "model:bot@v1", "--limitations", "toy data only", "--json", "-o"]
    remote = _cli(world, [*args, str(tmp_path / "r.md")], remote=True)
    local = _cli(world, [*args, str(tmp_path / "l.md")], remote=False)
    assert remote[0] == local[0] == 0, (remote, local)
    assert remote[1].replace("r.md", "X") == local[1].replace("l.md", "X")
    assert (tmp_path / "r.md").read_text() == (tmp_path / "l.md").read_text() and "toy data only" in \
        (tmp_path / "r.md").read_text()
    again = _cli(world, ["registry", "card", "model:bot@v1", "-o", str(tmp_path / "r.md")], remote=True)
    assert again == _cli(world, ["registry", "card", "model:bot@v1", "-o", str(tmp_path / "r.md")], remote=False)
    assert again[0] != 0 and "already exists" in _flat(again[1])
    outsider = HttpService(Client(world.server.url, world.server.tokens["outsider"]))
    try:
        with pytest.raises(RunlockError) as e:
            outsider.model_card("model:bot@v1")
        assert e.value.exit_code == 3
    finally:
        outsider.close()


def test_a_file_that_is_no_attestation_is_refused_in_the_same_words(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "not-an-attestation.jsonl"
    bad.write_text("secret text that must not be echoed\n")
    args = ["attest", "gate", "model:bot@v1", "--attestation", str(bad)]
    remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
    assert remote == local and remote[0] != 0 and str(bad) in remote[1], f"{remote}\n{local}"
    assert "secret text" not in remote[1]
