"""``HttpService``: the ``Service`` of a team server, over its ``/api/v1``.

Each method makes the call ``server/routes_service.py`` answers and rebuilds the domain's own
typed value from the JSON, so the surfaces format it exactly as they format a local one. Bytes
travel by sha256 only: a snapshot hashes its files here into ``ServerObjects`` (which uploads
only what the server lacks; the server re-hashes and then checks the manifest against the
objects); a model download goes through ``artifacts.download`` with the server's objects, so
the path checks of ``runlock.paths`` and the hash check of every byte run here, on the client.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runlock import artifacts, canonical
from runlock.attest import Attestation, GateResult, read_attestation
from runlock.audit import InclusionProof, Problem, VerifyReport
from runlock.cards import ModelCard
from runlock.checkpoints import Checkpoint
from runlock.data.checkout import Checkout, checkout
from runlock.data.diff import Changes, SnapshotDiff
from runlock.data.verify import Problem as DataProblem, VerifyReport as DataReport, verify as data_verify, verify_path
from runlock.data.leakage import LeakageReport
from runlock.data.snapshot import Snapshot, SnapshotInfo, build_manifest, default_name, took
from runlock.data.transform import apply as apply_fn, default_name as derived_name, recipe_for
from runlock.data.split import Split, SplitInfo
from runlock.data.split_ops import Checked, Exported, read_ids, write_ids
from runlock.errors import IntegrityError, InvalidInput, NotFound
from runlock.hashing import digest_bytes
from runlock.identity import Grant, Identity, IssuedToken, TokenInfo
from runlock.keys import PublicKey, public_from_pem
from runlock.lineage import Edge, Graph
from runlock.lineage.entities import LineageView, NodeInfo
from runlock.refs import check_name
from runlock.auditlog import Entry
from runlock.registry import AliasMove, AliasState, ModelVersion
from runlock.remote.client import Client
from runlock.remote.interface import InputUse, RunView, SplitRequest
from runlock.remote.objects import ServerObjects, ServerView
from runlock.tracking.annotations import Note, Tombstone
from runlock.tracking.query import FoundRun, frame_of
from runlock.tracking.records import MIN_PREFIX, RunRecord
from runlock.tracking.diff import Change, MetricDelta, RunDiff
from runlock.tracking.series import Comparison, CompareRow, KeySummary, Point
from runlock.verify.checklist import CheckReport, Policy, RuleResult
from runlock.verify.compare import Comparison as Verdict, Output, check_tolerances

MAX_LIST = 10_000


class HttpService:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.where = client.url
        self.objects = ServerObjects(client)

    def close(self) -> None:
        self.client.close()

    # -- runs --------------------------------------------------------------------------------------
    def find_runs(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None, deleted: bool = False) -> list[FoundRun]:
        if limit is not None and not 0 < limit <= MAX_LIST:
            raise InvalidInput(f"A server lists at most {MAX_LIST} runs at a time; pass --limit 1 to {MAX_LIST}.")
        rows = self.client.call("GET", "/runs", params={k: v for k, v in {
            "project": project, "status": status, "where": where, "sort": sort, "limit": limit or MAX_LIST,
            "deleted": "true" if deleted else None}.items() if v is not None})["runs"]
        return [FoundRun(_record(r), _fields(r.get("fields") or {})) for r in rows]

    def run_frame(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None) -> Any:
        """``runlock.runs()``: the runs the token may read, every field of each, as a DataFrame."""
        if limit is not None and not 0 < limit <= MAX_LIST:
            raise InvalidInput(f"A server lists at most {MAX_LIST} runs at a time; pass limit 1 to {MAX_LIST}.")
        rows = self.client.call("GET", "/runs", params={k: v for k, v in {
            "project": project, "status": status, "where": where, "sort": sort, "limit": limit or MAX_LIST,
            "all_fields": "true"}.items() if v is not None})["runs"]
        return frame_of([FoundRun(_record(r), _fields(r.get("fields") or {})) for r in rows])

    def short_ids(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        return self.client.call("POST", "/runs/labels", json={"ids": ids})["labels"]

    def run_record(self, ref: str) -> RunRecord:
        return _record(self.client.call("GET", f"/runs/{_segment(ref)}"))

    def run_view(self, ref: str) -> RunView:
        d = self.client.call("GET", f"/runs/{_segment(ref)}/view")
        return RunView(_record(d["run"]), d["lock"], [_summary(m) for m in d["metrics"]],
                       [Note(**n) for n in d["notes"]], [_artifact(a) for a in d["artifacts"]])

    def metric_summaries(self, ref: str, *, rank: int | None = None) -> list[KeySummary]:
        params = {"rank": rank} if rank is not None else {}
        return [_summary(m) for m in self.client.call("GET", f"/runs/{_segment(ref)}/metrics", params=params)["metrics"]]

    def metric_points(self, ref: str, *, keys: list[str] | None = None, rank: int | None = None) -> Iterator[Point]:
        """Every point, streamed (one per line) as the server reads them: memory stays flat
        however long the run."""
        params = {"key": list(keys or []), "stream": True, **({"rank": rank} if rank is not None else {})}
        rows = (json.loads(line) for line in self.client.stream_lines(f"/runs/{_segment(ref)}/points", params=params))
        found = (Point(k, step, float(v), r, t) for k, step, v, r, t in rows)
        first = next(found, None)       # asked now: a refusal or a missing run raises here, not mid-write
        return iter(()) if first is None else itertools.chain([first], found)

    def diff_runs(self, a: str, b: str) -> RunDiff:
        d = self.client.call("POST", "/runs/diff", json={"a": a, "b": b})
        return RunDiff(d["a"], d["b"], d["same_recipe"],
                       {s: [Change(**c) for c in cs] for s, cs in d["changes"].items()},
                       [MetricDelta(**{k: _float(v) for k, v in m.items()}) for m in d["metrics"]])

    def compare_runs(self, refs: list[str], *, only_differences: bool = False) -> Comparison:
        d = self.client.call("POST", "/runs/compare", json={"runs": refs, "only_differences": only_differences})
        rows = [CompareRow(r["section"], r["key"], [_float(v) for v in r["values"]] if r["section"] == "metrics"
                           else r["values"], r["differs"]) for r in d["rows"]]
        return Comparison(d["runs"], rows, d["names"], d["hidden"])

    def tag_run(self, ref: str, values: dict[str, str], *, remove: list[str] | tuple[str, ...] = ()) -> dict:
        return self.client.call("POST", f"/runs/{_segment(ref)}/tags",
                                json={"set": values, "remove": list(remove)})["tags"]

    def note_run(self, ref: str, text: str) -> Note:
        return Note(**self.client.call("POST", f"/runs/{_segment(ref)}/notes", json={"text": text}))

    def delete_run(self, ref: str, *, reason: str) -> Tombstone:
        return Tombstone(**self.client.call("POST", f"/runs/{_segment(ref)}/delete", json={"reason": reason}))

    # -- artifacts ---------------------------------------------------------------------------------
    def list_artifacts(self, *, run: str | None = None, kind: str | None = None, name: str | None = None,
                       limit: int | None = None) -> list[artifacts.Artifact]:
        if limit is not None and not 0 <= limit <= MAX_LIST:
            raise InvalidInput(f"A server lists at most {MAX_LIST} artifacts at a time; pass --limit 1 to {MAX_LIST}.")
        params = {k: v for k, v in {"run": run, "kind": kind, "name": name}.items() if v is not None}
        rows = self.client.call("GET", "/artifacts", params={**params, "limit": limit or MAX_LIST})["artifacts"]
        return [_artifact(a) for a in rows]

    def show_artifact(self, ref: str) -> artifacts.ArtifactDetail:
        d = self.client.call("GET", "/artifacts/show", params={"ref": ref})
        return artifacts.ArtifactDetail(_artifact(d), d["producers"], d["models"], d["entries"])

    def get_artifact(self, ref: str, dest: str | Path, *, force: bool = False,
                     on_progress: Callable[..., None] | None = None) -> artifacts.Download:
        """Ask the server for the artifact (it checks and audits the read), then write its bytes
        here through ``artifacts.download``: every path checked, every byte hashed."""
        target = os.path.abspath(dest)
        artifacts.refuse_existing(target, force)        # before the server records a read
        return self._download(_artifact(self.client.call("POST", "/artifacts/read", json={"ref": ref, "dest": target})),
                              target, force, on_progress)

    def _download(self, art: artifacts.Artifact, target: str, force: bool,
                  on_progress: Callable[..., None] | None) -> artifacts.Download:
        with tempfile.TemporaryDirectory(prefix="runlock-client-") as nowhere:
            view = ServerView(ServerObjects(self.client, via=art.manifest), Path(nowhere) / ".runlock", "client")
            return artifacts.download(view, art, target, force=force, on_progress=on_progress)  # type: ignore[arg-type]

    # -- models ------------------------------------------------------------------------------------
    def list_models(self, name: str | None = None) -> list[ModelVersion]:
        if name is not None:
            check_name(name, "model name")
        params = {"name": name} if name is not None else {}
        return [_model(m) for m in self.client.call("GET", "/models", params=params)["models"]]

    def resolve_model(self, ref: str) -> ModelVersion:
        return _model(self.client.call("GET", "/models/resolve", params={"ref": ref}))

    def register_model(self, run: str, artifact: str, name: str, meta: dict | None = None) -> ModelVersion:
        return _model(self.client.call("POST", "/models", json={"run": run, "artifact": artifact, "name": name,
                                                                "meta": meta or {}}))

    def get_model(self, ref: str, dest: str | Path, *, force: bool = False,
                  on_progress: Callable[..., None] | None = None) -> artifacts.Download:
        """Ask the server for the version (it checks and audits the read), then write its bytes
        here through ``artifacts.download``: every path checked, every byte hashed."""
        target = os.path.abspath(dest)
        artifacts.refuse_existing(target, force)        # before the server records a read
        d = self.client.call("POST", "/models/read", json={"ref": ref, "dest": target})
        mv = _model(d["version"])
        result = self._download(_artifact(d["artifact"]), target, force, on_progress)
        return artifacts.Download(mv.ref, mv.digest, result.dest, result.files, result.size)

    def model_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        params = {"name": check_name(name, "model name"), **({"alias": alias} if alias is not None else {})}
        return [AliasMove(**m) for m in self.client.call("GET", "/models/history", params=params)["moves"]]

    def aliases_at(self, name: str, when: str, alias: str | None = None) -> AliasState:
        params = {"name": check_name(name, "model name"), "at": when, **({"alias": alias} if alias is not None else {})}
        d = self.client.call("GET", "/models/aliases-at", params=params)
        return AliasState(d["name"], d["at"], d["aliases"])

    def model_card(self, ref: str, *, limitations: str | None = None) -> ModelCard:
        d = self.client.call("POST", "/models/card", json={"ref": ref, "limitations": limitations})
        return ModelCard(d["ref"], d["digest"], d["front_matter"], d["text"])

    def set_alias(self, ref: str, alias: str, *, reason: str) -> AliasMove:
        d = self.client.call("POST", "/models/aliases", json={"ref": ref, "alias": alias, "reason": reason})
        return AliasMove(**d)

    def remove_alias(self, name: str, alias: str, *, reason: str) -> AliasMove:
        d = self.client.call("POST", "/models/aliases/remove",
                             json={"name": check_name(name, "model name"), "alias": alias, "reason": reason})
        return AliasMove(**d)

    # -- audit -------------------------------------------------------------------------------------
    def audit_log(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                  limit: int | None = 100) -> list[Entry]:
        params = {k: v for k, v in {"target": target, "actor": actor, "action": action}.items() if v is not None}
        rows = self.client.call("GET", "/audit/log", params={**params, "limit": limit or 0}, timeout=600.0)["entries"]
        return [Entry(**e) for e in rows]

    def verify_audit(self, *, deep: bool = False, progress: Callable[[int], None] | None = None,
                     key: Any = None) -> VerifyReport:
        if key is not None:
            raise InvalidInput("--key checks the log against a key you trust, so it needs the log's rows: run "
                               "`runlock audit verify --key` where the store is, not through a server.")
        d = self.client.call("GET", "/audit/verify", params={"deep": "true" if deep else "false"},
                             timeout=600.0)
        report = VerifyReport(d["entries"], d["root_hash"], d["checkpoints_checked"], d["signed_checkpoints"],
                              d["key_id"], [Problem(p["seq"], p["kind"], p["message"]) for p in d["problems"]])
        if progress is not None:
            progress(report.entries)
        return report

    def audit_proof(self, seq: int) -> InclusionProof:
        d = self.client.call("POST", "/audit/proof", json={"seq": seq})
        return InclusionProof(d["entry"], d["leaf_index"], d["tree_size"], d["path"], d["checkpoint"])

    def audit_checkpoint(self) -> Checkpoint:
        return Checkpoint(**self.client.call("POST", "/audit/checkpoint"))

    def whoami(self) -> Identity:
        return Identity(**self.client.whoami())

    # -- users, tokens, roles (server/routes_admin.py) ------------------------------------------------
    def list_identities(self) -> list[Identity]:
        return [Identity(**i) for i in self.client.call("GET", "/identities")["identities"]]

    def create_identity(self, name: str, kind: str = "user") -> Identity:
        return Identity(**self.client.call("POST", "/identities", json={"name": name, "kind": kind}))

    def disable_identity(self, name: str) -> Identity:
        return Identity(**self.client.call("POST", "/identities/disable", json={"name": name}))

    def issue_token(self, name: str, *, days: int | None, label: str = "") -> IssuedToken:
        d = self.client.call("POST", "/tokens", json={"name": name, "days": days, "label": label})
        return IssuedToken(d["token"], _token(d["info"]))

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        params = {"user": user} if user is not None else {}
        return [_token(t) for t in self.client.call("GET", "/tokens", params=params)["tokens"]]

    def revoke_token(self, token_id: str) -> TokenInfo:
        return _token(self.client.call("POST", "/tokens/revoke", json={"id": token_id}))

    def grant_role(self, name: str, role: str, project: str) -> Grant:
        return Grant(**self.client.call("POST", "/grants", json={"name": name, "role": role, "project": project}))

    def revoke_role(self, name: str, project: str) -> Grant:
        return Grant(**self.client.call("POST", "/grants/revoke", json={"name": name, "project": project}))

    def list_grants(self, user: str | None = None) -> list[Grant]:
        params = {"user": user} if user is not None else {}
        return [Grant(**g) for g in self.client.call("GET", "/grants", params=params)["grants"]]

    def public_key(self) -> PublicKey:
        """The key the server signs with, as it reports it (an auditor should get it out of band)."""
        return public_from_pem(self.client.call("GET", "/keys/public")["pem"].encode(), f"the key {self.where} sent")

    # -- verification ------------------------------------------------------------------------------
    def check(self, target: str, policy: Policy) -> CheckReport:
        d = self.client.call("POST", "/checks", json={"target": target,
                                                      "policy": {"source": policy.source, "rules": policy.rules}},
                             timeout=600.0)
        return CheckReport(d["target"], d["run"], d["policy"], [RuleResult(**r) for r in d["results"]])

    def compare_outputs(self, a: str, b: str, *, rtol: float, atol: float, k: float, stitch: bool = True) -> Verdict:
        check_tolerances(rtol=rtol, atol=atol, k=k)
        d = self.client.call("POST", "/compare", json={"a": a, "b": b, "rtol": rtol, "atol": atol, "k": k,
                                                       "stitch": stitch}, timeout=600.0)
        outputs = [Output(o["name"], o["tier"], *(_float(v) if o["name"].startswith("metric:") else v
                                                   for v in (o["a"], o["b"])), o["detail"]) for o in d["outputs"]]
        return Verdict(d["a"], d["b"], d["tier"], d["first_divergence"], d["diagnosis"], outputs, d["tolerances"],
                       d["notes"])

    # -- attestations ------------------------------------------------------------------------------
    def attest(self, ref: str, output: str | Path, *, policy: Policy) -> Attestation:
        """The server checks, signs with the key it holds and records; the bundle is written here."""
        d = self.client.call("POST", "/attestations", json={"ref": ref, "policy": _policy(policy)}, timeout=600.0)
        data = d["bundle"].encode()
        if digest_bytes(data) != d["attestation"]["digest"]:
            raise IntegrityError("The server sent an attestation whose bytes do not match its digest.")
        out = Path(output)
        try:
            out.write_bytes(data)
        except OSError as e:
            raise InvalidInput(f"Cannot write the attestation to {out}: {e.strerror}.") from e
        return Attestation(**{**d["attestation"], "path": str(out)})

    def gate(self, model: str, attestation: str | Path, *, policy: Policy, override: str | None = None) -> GateResult:
        """The attestation goes up as an object (by its sha256); the server decides and records."""
        digest = self.objects.put_bytes(read_attestation(attestation))
        d = self.client.call("POST", "/models/gate", json={"model": model, "attestation": digest, "source": str(attestation),
                                                           "override": override, "policy": _policy(policy)},
                             timeout=600.0)
        return GateResult(**{k: d[k] for k in GateResult.__dataclass_fields__})

    # -- data --------------------------------------------------------------------------------------
    def snapshot(self, path: str | Path, name: str | None = None, *, id_column: str | None = None,
                 kind: str | None = None, on_progress: Callable[[Any], None] | None = None,
                 use_cache: bool = True) -> Snapshot:
        """Hash ``path`` here, upload what the server lacks, and have the server name it."""
        p = Path(path).absolute()
        name = check_name(name or default_name(p))
        manifest = build_manifest(self.objects, p, id_column=id_column, kind=kind, on_progress=on_progress)
        snap = self._named(manifest, name, str(p))
        took(snap.id, p)        # a remote run's ``use`` of it (or of a split of it) records the path
        return snap

    def _named(self, manifest: dict, name: str, source: str | None) -> Snapshot:
        """Have the server check ``manifest`` against its objects and name it ``ds:NAME``."""
        d = self.client.call("POST", "/snapshots", json={"name": name, "manifest": manifest, "source": source},
                             timeout=600.0)
        return Snapshot(d["id"], d["kind"], d["manifest"], d["name"], d["version"], d["created"])

    def split(self, request: SplitRequest, on_progress: Callable[..., None] | None = None) -> Split:
        return _split(self.client.call("POST", "/splits", json=request.to_dict(), timeout=600.0))

    def transform(self, parent: str | Snapshot, fn: Callable, params: dict | None = None,
                  name: str | None = None) -> Snapshot:
        """``runlock.transform`` with the data on the server: the parent is read from the server's
        objects (each byte hashed here), ``fn`` runs here, and the output goes up as a snapshot
        naming its parent and recipe; a recipe the server has already seen is not applied again."""
        base = parent if isinstance(parent, Snapshot) else self.load_snapshot(parent)
        recipe = recipe_for(base.id, fn, params or {})
        name = check_name(name or derived_name(base, fn), "dataset name")
        done = self.client.call("GET", "/snapshots/derived", params={"recipe": canonical.digest(recipe)})["id"]
        if done is not None:
            return self._named(self.load_snapshot(done).manifest, name, None)
        with tempfile.TemporaryDirectory(prefix="runlock-derive-") as tmp:
            view = ServerView(ServerObjects(self.client), Path(tmp) / "nowhere" / ".runlock", "client")
            out, id_column = apply_fn(view, base, fn, params or {}, Path(tmp))
            manifest = build_manifest(self.objects, out, id_column=id_column, parent=base.id, recipe=recipe)
        return self._named(manifest, name, None)

    def list_snapshots(self, name: str | None = None) -> list[SnapshotInfo]:
        params = {"name": check_name(name, "dataset name")} if name is not None else {}
        return [SnapshotInfo(**i) for i in self.client.call("GET", "/snapshots", params=params)["snapshots"]]

    def load_snapshot(self, ref: str) -> Snapshot:
        d = self.client.call("GET", "/snapshots/resolve", params={"ref": ref})
        return Snapshot(d["id"], d["kind"], d["manifest"], d["name"], d["version"], False)

    def checkout(self, ref: str, dest: str | Path) -> Checkout:
        """The snapshot's manifest from the server, then its files through ``data.checkout`` here:
        every path checked (``runlock.paths``) before a byte is written, every byte hashed, and the
        folder renamed into place only when complete."""
        snap = self.load_snapshot(ref)
        with tempfile.TemporaryDirectory(prefix="runlock-client-") as nowhere:
            view = ServerView(ServerObjects(self.client), Path(nowhere) / ".runlock", "client")
            return checkout(view, snap, dest)  # type: ignore[arg-type]

    def diff_snapshots(self, old: str, new: str) -> SnapshotDiff:
        d = self.client.call("GET", "/snapshots/diff", params={"old": old, "new": new}, timeout=600.0)
        return SnapshotDiff(d["old"], d["new"], d["old_id"], d["new_id"], Changes(**d["files"]),
                            Changes(**d["records"]) if d["records"] is not None else None)

    def verify_snapshots(self, ref: str | None = None, *, path: str | None = None,
                         on_progress: Callable[[int, int], None] | None = None) -> DataReport:
        """With ``path``: the folder re-hashed here against the snapshot the server holds; else the
        server re-hashes its objects (``POST /snapshots/verify``)."""
        if path is not None:
            if ref is None:
                return data_verify(None, None, path=path)       # the domain's own refusal
            return verify_path(None, self.load_snapshot(ref), Path(path), on_progress=on_progress)
        d = self.client.call("POST", "/snapshots/verify", json={"ref": ref}, timeout=3600.0)
        return DataReport(d["snapshots"], d["objects"], [DataProblem(**p) for p in d["problems"]])

    def list_splits(self, name: str | None = None) -> list[SplitInfo]:
        params = {"name": check_name(name, "split name")} if name is not None else {}
        return [SplitInfo(**i) for i in self.client.call("GET", "/splits", params=params)["splits"]]

    def load_split(self, ref: str) -> Split:
        d = self.client.call("GET", "/splits/resolve", params={"ref": ref})
        report = LeakageReport.from_dict(d["leakage"]) if d["leakage"] else None
        return Split(d["id"], d["manifest"], d["name"], d["version"], report, False)

    def bind(self, sp: Split) -> Split:
        """``sp`` able to read its records (``records``, ``to_arrow``, ``to_pandas``) from the
        server's objects, each hash-checked here, while this service's client is open."""
        view = ServerView(ServerObjects(self.client), Path(tempfile.gettempdir()) / "runlock-client" / ".runlock",
                          "client")
        return dataclasses.replace(sp, store=view, source=self.load_snapshot(sp.snapshot_id))

    def export_split(self, ref: str, path: str | Path) -> Exported:
        """The split's manifest from the server, its ids written here as ``splits_v1.json``."""
        return write_ids(self.load_split(ref), path)

    def import_split(self, path: str | Path, snapshot: str, *, name: str, check: bool = True) -> Split:
        """The file goes up as an object (by sha256); the server parses it as a local import
        does, in this path's words, and checks every id against the snapshot it holds."""
        digest = self.objects.put_bytes(read_ids(path))
        return _split(self.client.call("POST", "/splits/import", json={
            "ids": digest, "path": str(path), "snapshot": snapshot, "name": name, "check": check}, timeout=600.0))

    def apply_split(self, ref: str, snapshot: str, *, name: str | None = None, check: bool = True) -> Split:
        return _split(self.client.call("POST", "/splits/apply", json={"ref": ref, "snapshot": snapshot, "name": name,
                                                                      "check": check}, timeout=600.0))

    def check_split(self, ref: str, *, settings: dict | None = None, text_columns: tuple[str, ...] | None = None,
                    on_progress: Callable[..., None] | None = None) -> Checked:
        d = self.client.call("POST", "/splits/check", json={
            "ref": ref, "settings": settings, "text_columns": list(text_columns) if text_columns else None},
            timeout=600.0)
        return Checked(d["split"], LeakageReport.from_dict(d["report"]))

    # -- lineage ---------------------------------------------------------------------------------
    def lineage(self, entity: str, direction: str = "upstream", depth: int = 10,
                max_nodes: int = 10_000) -> LineageView:
        d = self.client.call("GET", "/lineage", params={"entity": entity, "direction": direction, "depth": depth,
                                                        "max_nodes": max_nodes}, timeout=600.0)
        graph = Graph(d["root"], d["direction"], d["depth"], d["nodes"], tuple(Edge(**e) for e in d["edges"]),
                      d["truncated"])
        return LineageView(graph, {k: NodeInfo(**{**v, "names": tuple(v["names"])}) for k, v in d["described"].items()})

    # -- a running run -----------------------------------------------------------------------------
    def use_input(self, run: str, use: InputUse) -> dict:
        return self.client.call("POST", f"/runs/{_segment(run)}/inputs", json=use.to_dict())

    def set_summary(self, run: str, values: dict) -> dict:
        return self.client.call("POST", f"/runs/{_segment(run)}/summary", json={"values": values})["summary"]


def _segment(ref: str) -> str:
    """A run reference as a path segment; one that cannot name a run (ids are 26 letters and
    digits) is refused here in the words a local store uses (``records.get``)."""
    text = ref.removeprefix("run:").strip()
    if len(text) < MIN_PREFIX:
        raise InvalidInput(f"Run reference {ref!r} is too short; give at least {MIN_PREFIX} characters of the id.")
    if len(text) > 26 or not text.isascii() or not text.isalnum():
        raise NotFound("run", ref, hint="List runs with `runlock runs list`.")
    return text


def _split(d: dict) -> Split:
    report = LeakageReport.from_dict(d["leakage"]) if d["leakage"] else None
    return Split(d["id"], d["manifest"], d["name"], d["version"], report, d["created"])


def _policy(policy: Policy) -> dict:
    return {"source": policy.source, "rules": policy.rules}


def _float(v: Any) -> Any:
    """A metric value as the server sent it ("nan", "inf", "-inf" for what JSON cannot carry)."""
    return float(v) if v in ("nan", "inf", "-inf") else v


def _fields(d: dict) -> dict:
    """A run's flat fields: metric values are floats, so "nan" there is a NaN (a config or tag
    string "nan" stays a string: canonical JSON refuses NaN there)."""
    return {k: _float(v) if k.startswith("metrics.") else v for k, v in d.items()}


def _record(d: dict) -> RunRecord:
    return RunRecord(**{k: d.get(k) for k in RunRecord.__dataclass_fields__})


def _summary(d: dict) -> KeySummary:
    return KeySummary(**{k: _float(d.get(k)) for k in KeySummary.__dataclass_fields__})


def _artifact(d: dict) -> artifacts.Artifact:
    return artifacts.Artifact(**{k: d.get(k) for k in artifacts.Artifact.__dataclass_fields__})


def _token(d: dict) -> TokenInfo:
    return TokenInfo(**{k: d.get(k) for k in TokenInfo.__dataclass_fields__})


def _model(d: dict) -> ModelVersion:
    values = {k: d.get(k) for k in ModelVersion.__dataclass_fields__}
    return ModelVersion(**{**values, "aliases": tuple(values["aliases"] or ())})
