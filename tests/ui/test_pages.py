"""Every page and its JSON twin, through the ASGI app: what each shows, escaping, paging, errors."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

import pytest
from starlette.testclient import TestClient

from runlock.store import Store
from runlock.audit import audit_log
from runlock.errors import PermissionDenied
from runlock.ui import create_app
from runlock.ui.app import RULES
from tests.ui.conftest import EVIL, build, denying


def test_runs_page_and_twin_list_the_same_runs(client: TestClient, run_ids: dict) -> None:
    page = client.get("/runs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert set(run_ids) == {"base", "tuned", "tuned-again", EVIL}
    for run_id in run_ids.values():
        assert f'href="/runs/{run_id}"' in page.text
    twin = client.get("/runs.json").json()
    assert [r["status"] for r in twin["runs"]] == ["finished"] * 4
    assert all(r["recipe_id"].startswith("sha256:") for r in twin["runs"])
    assert {r["name"]: r["verified"] for r in twin["runs"]}["tuned"] == "bitwise"
    assert {r["name"]: r["verified"] for r in twin["runs"]}["base"] is None
    assert '<span class="badge tier-bitwise">bitwise</span>' in page.text


def test_a_script_tag_is_shown_as_text_everywhere(client: TestClient, run_ids: dict) -> None:
    evil = run_ids[EVIL]
    tuned = run_ids["tuned"]
    for url in ["/runs", f"/runs/{evil}", f"/compare?run={evil}&run={tuned}", f"/runs/{tuned}",
                "/registry?name=bot", f"/lineage?entity=run:{evil}", "/audit"]:
        text = client.get(url).text
        assert "<script>alert" not in text, url
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in client.get("/runs").text
    assert "best so far &lt;script&gt;" in client.get(f"/runs/{tuned}").text
    assert "passed review &lt;script&gt;" in client.get("/registry?name=bot").text


def test_filter_and_sort_use_the_cli_language(client: TestClient) -> None:
    got = client.get("/runs.json", params={"where": "config.lr < 0.05", "sort": "name"}).json()
    assert [r["name"] for r in got["runs"]] == ["tuned", "tuned-again"]
    desc = client.get("/runs.json", params={"sort": "-config.lr"}).json()
    assert [r["name"] for r in desc["runs"]][:2] == [EVIL, "base"]


def test_a_bad_filter_is_a_400_with_the_message_not_a_trace(client: TestClient) -> None:
    r = client.get("/runs.json", params={"where": "config.lr >"})
    assert r.status_code == 400 and "Cannot parse filter" in r.json()["error"]
    page = client.get("/runs", params={"where": "config.lr >"})
    assert page.status_code == 400 and "Cannot parse filter" in page.text and "Traceback" not in page.text


@pytest.mark.parametrize("sort", ["", "name", "-config.lr", "metrics.loss,-name", "-last_step"])
def test_keyset_pages_cover_every_run_once_in_order(client: TestClient, sort: str) -> None:
    whole = [r["id"] for r in client.get("/runs.json", params={"sort": sort, "limit": 500}).json()["runs"]]
    seen, after = [], ""
    while True:
        got = client.get("/runs.json", params={"sort": sort, "limit": 1, "after": after}).json()
        seen += [r["id"] for r in got["runs"]]
        if not got["next"]:
            break
        after = got["next"]
    assert seen == whole and len(whole) == 4


def test_a_forged_cursor_is_refused(client: TestClient) -> None:
    r = client.get("/runs.json", params={"after": "bm90IGpzb24"})
    assert r.status_code == 400 and "not valid" in r.json()["error"]


def test_opt_in_columns_show_config_and_metric_extremes(client: TestClient, run_ids: dict) -> None:
    got = client.get("/runs.json", params={"col": "config.lr,metrics.loss:min,metrics.loss:max,metrics.acc"}).json()
    by = {r["name"]: r["values"] for r in got["runs"]}
    assert by["base"]["config.lr"] == 0.1
    assert by["base"]["metrics.loss:max"] == pytest.approx(1.1)
    assert by["base"]["metrics.loss:min"] == pytest.approx(1 / 300 + 0.1)
    assert by["tuned"]["metrics.acc"] == pytest.approx(299 / 300)
    assert "metrics.loss:min" in client.get("/runs", params={"col": "metrics.loss:min"}).text
    assert client.get("/runs.json", params={"col": "config.lr:max"}).status_code == 400


def test_run_page_shows_lock_metrics_artifacts_notes_audit(client: TestClient, run_ids: dict) -> None:
    tuned = run_ids["tuned"]
    data = client.get(f"/runs/{tuned}.json").json()
    assert data["lock"]["config"] == {"lr": 0.01, "optim": "adam"} and data["lock"]["seed"] == 1
    assert {m["key"]: m["latest"] for m in data["metrics"]} == {"loss": pytest.approx(1 / 300), "acc": 299 / 300}
    stats = client.get(f"/runs/{tuned}/metrics.json").json()["metrics"]
    assert [(m["key"], m["points"], m["min"]) for m in stats] == [("acc", 300, 0.0), ("loss", 300, pytest.approx(1 / 300))]
    fragment = client.get(f"/runs/{tuned}/metrics", headers={"HX-Request": "true"}).text
    assert fragment.lstrip().startswith('<div id="metric-stats">') and "<html" not in fragment
    art = data["artifacts"][0]
    assert art["name"] == "model" and art["size"] == 101 and art["digest"].startswith("sha256:")
    assert data["notes"][0]["text"].startswith("best so far")
    assert [(v["kind"], v["tier"], v["rerun_id"]) for v in data["verifications"]] == \
        [("rerun", "bitwise", run_ids["tuned-again"])]
    assert any(e["action"] == "run.create" or e["target"] == f"run:{tuned}" for e in data["audit"])
    page = client.get(f"/runs/{tuned}").text
    assert art["digest"] in page and 'data-key="loss"' in page


def test_series_is_downsampled_and_zoom_gives_finer_points(client: TestClient, run_ids: dict) -> None:
    base = run_ids["base"]
    whole = client.get(f"/runs/{base}/series.json", params={"key": "loss", "buckets": 50}).json()
    assert whole["points"] == 300 and whole["downsampled"] and len(whole["steps"]) <= 100
    assert max(whole["values"]) == pytest.approx(1.1) and min(whole["values"]) == pytest.approx(1 / 300 + 0.1)
    assert whole["steps"] == sorted(whole["steps"])
    zoom = client.get(f"/runs/{base}/series.json", params={"key": "loss", "buckets": 50, "start": 10, "end": 59}).json()
    assert not zoom["downsampled"] and zoom["steps"] == list(range(10, 60))
    assert client.get(f"/runs/{base}/series.json", params={"key": "loss", "start": 9, "end": 3}).status_code == 400
    assert client.get(f"/runs/{base}/series.json").status_code == 400


def test_compare_shows_differences_only_by_default(client: TestClient, run_ids: dict) -> None:
    a, b = run_ids["tuned"], run_ids["tuned-again"]
    diff = client.get(f"/compare.json?run={a}&run={b}").json()
    assert diff["hidden"] > 0 and all(r["differs"] for r in diff["rows"])
    assert not any(r["key"] == "config.lr" for r in diff["lock_rows"])       # same lr: hidden
    assert {c["key"]: c["identical"] for c in diff["curves"]} == {"acc": True, "loss": True}
    assert diff["compare"]["tier"] == "bitwise"
    every = client.get(f"/compare.json?run={a}&run={b}&all=1").json()
    assert any(r["key"] == "config.lr" for r in every["lock_rows"]) and every["hidden"] == 0
    other = client.get(f"/compare.json?run={a}&run={run_ids['base']}").json()
    assert {c["key"]: c["identical"] for c in other["curves"]}["loss"] is False
    assert any(r["key"] == "config.lr" and r["values"] == [0.01, 0.1] for r in other["lock_rows"])
    page = client.get(f"/compare?run={a}&run={b}").text
    assert "identical</span>" in page and 'id="show-all"' in page


def test_compare_gives_each_run_its_verdict_against_the_first(client: TestClient, run_ids: dict) -> None:
    base, tuned, again, evil = (run_ids[n] for n in ("base", "tuned", "tuned-again", EVIL))
    got = client.get("/compare.json", params={"run": [tuned, again, base, evil]}).json()
    verdicts = got["verdicts"]
    assert [(v["a"], v["b"]) for v in verdicts] == [(tuned, again), (tuned, base), (tuned, evil)]
    assert verdicts[0]["tier"] == "bitwise" and got["compare"] == verdicts[0]
    assert all(v["tier"] != "bitwise" for v in verdicts[1:])
    assert all(v["first_divergence"] for v in verdicts[1:])         # the loss curves part at step 0
    assert [v["name"] for v in verdicts] == ["tuned-again", "base", EVIL]
    page = client.get("/compare", params={"run": [tuned, again, base, evil]}).text
    for i, v in enumerate(verdicts, 1):
        assert f'id="tier-{i}">{v["tier"]}</span>' in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; vs tuned" in page and "<script>alert" not in page


def test_compare_needs_two_to_ten_runs(client: TestClient, run_ids: dict) -> None:
    assert client.get(f"/compare.json?run={run_ids['base']}").status_code == 400
    assert client.get("/compare").status_code == 200                       # the how-to page
    eleven = "&".join(f"run={run_ids['base']}" for _ in range(11))
    assert client.get(f"/compare.json?{eleven}").status_code == 400


def test_data_page_lists_snapshots_diffs_and_the_split_report(client: TestClient) -> None:
    data = client.get("/data.json", params={"old": "ds:tickets@v1", "new": "ds:tickets@v2",
                                            "split": "split:tickets@v1"}).json()
    assert [s["ref"] for s in data["snapshots"]] == ["ds:tickets@v1", "ds:tickets@v2"]
    assert len(data["diff"]["records"]["removed"]) == 5
    sp = data["split"]
    assert sum(sp["counts"].values()) == 41 and set(sp["counts"]) == {"train", "validation"}
    pair = sp["leakage"]["pairs"][0]
    assert {pair["a"], pair["b"]} == {"dup", "r3"} and not sp["leakage"]["passed"]
    assert sp["records"]["dup"]["text"] == sp["records"]["r3"]["text"] == "ticket number 3"
    page = client.get("/data", params={"split": "split:tickets@v1"}).text
    assert "Leakage report" in page and "validation" in page and page.count("ticket number 3") == 2


def test_lineage_draws_an_svg_and_a_table(client: TestClient, run_ids: dict) -> None:
    got = client.get("/lineage.json", params={"entity": "model:bot@v1"}).json()
    assert got["svg"].startswith("<svg") and f"run:{run_ids['tuned']}" in got["graph"]["nodes"]
    page = client.get("/lineage", params={"entity": "model:bot@v1"}).text
    assert "<svg" in page and f'href="/runs/{run_ids["tuned"]}"' in page
    assert client.get("/lineage.json", params={"entity": "run:nosuch"}).status_code == 404


def test_registry_shows_versions_alias_history_and_card(client: TestClient) -> None:
    got = client.get("/registry.json", params={"name": "bot"}).json()
    assert got["models"][0]["aliases"] == ["staging"]
    assert got["history"][0]["alias"] == "staging" and got["history"][0]["to_version"] == 1
    assert got["card"] and "bot" in got["card"]
    assert client.get("/registry.json", params={"name": "nope"}).status_code == 404


def test_audit_filters_and_verify(client: TestClient, run_ids: dict) -> None:
    everything = client.get("/audit.json").json()["entries"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 5
    mine = client.get("/audit.json", params={"target": f"run:{run_ids['base']}"}).json()["entries"]
    assert mine and all(e["target"] == f"run:{run_ids['base']}" for e in mine)
    verdict = client.post("/audit/verify.json").json()
    assert verdict["ok"] and verdict["entries"] >= len(seqs) and not verdict["problems"]
    fragment = client.post("/audit/verify", headers={"HX-Request": "true"}).text
    assert fragment.lstrip().startswith('<div class="verify ok"') and "<html" not in fragment


def test_audit_pages_by_keyset_through_the_whole_log_with_filters(client: TestClient, run_ids: dict) -> None:
    everything = [e["seq"] for e in client.get("/audit.json", params={"limit": 1000}).json()["entries"]]
    seen, before, pages_ = [], None, 0
    while True:
        got = client.get("/audit.json", params={"limit": 7, **({"before": before} if before else {})}).json()
        assert len(got["entries"]) <= 7
        seen += [e["seq"] for e in got["entries"]]
        pages_ += 1
        before = got["next"]
        if before is None:
            break
    assert seen == everything and pages_ == -(-len(everything) // 7)     # every entry once, newest first
    target = f"run:{run_ids['base']}"
    first = client.get("/audit.json", params={"target": target, "limit": 1}).json()
    second = client.get("/audit.json", params={"target": target, "limit": 1, "before": first["next"]}).json()
    assert first["next"] == first["entries"][0]["seq"]
    assert second["entries"][0]["seq"] < first["entries"][0]["seq"]
    assert all(e["target"] == target for e in first["entries"] + second["entries"])
    page = client.get("/audit", params={"target": target, "limit": 1}).text
    assert f'href="/audit?target=run%3A{run_ids["base"]}&amp;actor=&amp;action=&amp;limit=1&amp;before={first["next"]}"' in page
    assert client.get("/audit.json", params={"before": "0"}).status_code == 400
    assert client.get("/audit.json", params={"before": "x"}).status_code == 400


def test_verify_reports_a_tampered_log(tmp_path: Path) -> None:
    store = build(tmp_path)
    client = TestClient(create_app(lambda: store))
    with store.db.write() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"))
    verdict = client.post("/audit/verify.json").json()
    assert not verdict["ok"] and verdict["first_bad"] == 2
    assert "does NOT verify" in client.post("/audit/verify").text
    store.close()


def test_every_route_has_a_rule_and_a_refusal_is_403(ui_store: Store, run_ids: dict) -> None:
    app = create_app(lambda: ui_store, authorize=denying(set()))
    c = TestClient(app)
    rid = run_ids["base"]
    gets = ["/runs", "/runs.json", f"/runs/{rid}", f"/runs/{rid}.json", f"/runs/{rid}/series.json?key=loss",
            f"/runs/{rid}/metrics", f"/runs/{rid}/metrics.json",
            f"/compare?run={rid}&run={rid}", "/data", "/data.json", "/lineage", "/registry", "/audit", "/audit.json"]
    for url in gets:
        r = c.get(url)
        assert r.status_code == 403, url
        assert "ticket" not in r.text and "base" not in r.text.replace("database", "")
    assert c.post("/audit/verify").status_code == 403
    paths = {getattr(r, "path", "").removesuffix(".json") for r in app.routes}
    assert paths - {"", "/", "/static"} <= set(RULES) | {"/runs/{run_id}/series"}
    assert all(rule in RULES for rule in [*paths - {"", "/", "/static", "/runs/{run_id}/series"}])


def test_a_reader_of_runs_cannot_open_the_audit_log(ui_store: Store, run_ids: dict) -> None:
    c = TestClient(create_app(lambda: ui_store, authorize=denying({"run.read"})))
    assert c.get("/runs.json").status_code == 200
    assert c.get(f"/compare.json?run={run_ids['base']}&run={run_ids['tuned']}").status_code == 200
    assert c.get("/audit.json").status_code == 403
    assert c.post("/audit/verify.json").status_code == 403


def test_compare_checks_each_run(ui_store: Store, run_ids: dict) -> None:
    secret = run_ids["base"]

    def authorize(request, action: str, target: str) -> None:  # noqa: ANN001
        if target == f"run:{secret}":
            raise PermissionDenied("viewer", action, target, "a role in the project")
    c = TestClient(create_app(lambda: ui_store, authorize=authorize))
    assert c.get(f"/compare.json?run={run_ids['tuned']}&run={secret}").status_code == 403


def test_vendored_scripts_are_served_by_runlock(client: TestClient) -> None:
    page = client.get("/runs").text
    assert "https://" not in page.split("<body")[0]                         # no CDN
    for path in ["/static/vendor/htmx/htmx.min.js", "/static/vendor/uplot/uPlot.iife.min.js", "/static/app.js"]:
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 1000, path
    assert "htmx.org 2.0.11" in client.get("/static/vendor/VERSIONS").text


def test_a_sealed_runs_series_is_served_from_the_cache(ui_store: Store, run_ids: dict) -> None:
    app_client = TestClient(create_app(lambda: ui_store))
    url = f"/runs/{run_ids['base']}/series.json?key=loss&buckets=10"
    first = app_client.get(url).json()
    with ui_store.db.write() as conn:   # behind the app's back: only a cache can still answer the same
        conn.execute(sa.text("UPDATE metrics SET value = value + 1 WHERE run_id = :r AND key = 'loss'"),
                     {"r": run_ids["base"]})
    try:
        assert app_client.get(url).json() == first
        assert TestClient(create_app(lambda: ui_store)).get(url).json() != first   # a new app reads again
    finally:
        with ui_store.db.write() as conn:
            conn.execute(sa.text("UPDATE metrics SET value = value - 1 WHERE run_id = :r AND key = 'loss'"),
                         {"r": run_ids["base"]})


def test_unknown_run_is_a_404_page(client: TestClient) -> None:
    r = client.get(f"/runs/{quote('nosuchrun')}")
    assert r.status_code == 404 and "<html" in r.text
