"""``Service``: what the surfaces ask of a store, whether it is a folder here or a team server.

The CLI (and, in time, the Python API) calls these methods and formats what they return; it never
knows which implementation it holds. ``local.LocalService`` wraps the domain functions over an
open ``Store``; ``http.HttpService`` calls ``runlock server``'s ``/api/v1`` and rebuilds the same
typed values from its JSON. Both are held to one conformance suite
(tests/server/test_conformance.py): the same calls give the same values, and the same commands
print the same text.

The values are the domain's own frozen dataclasses (``FoundRun``, ``ModelVersion``,
``VerifyReport``, ``Snapshot``, ``Split``, ``Download``), plus ``RunView`` for ``runs show``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runlock.artifacts import Artifact, ArtifactDetail, Download
    from runlock.audit import InclusionProof, VerifyReport
    from runlock.data.checkout import Checkout
    from runlock.data.diff import SnapshotDiff
    from runlock.data.verify import VerifyReport as DataReport
    from runlock.data.split_ops import Checked, Exported
    from runlock.data.snapshot import Snapshot, SnapshotInfo
    from runlock.data.split import Split, SplitInfo
    from runlock.lineage.entities import LineageView
    from runlock.tracking.diff import RunDiff
    from runlock.attest import Attestation, GateResult
    from runlock.auditlog import Entry
    from runlock.cards import ModelCard
    from runlock.checkpoints import Checkpoint
    from runlock.identity import Grant, Identity, IssuedToken, TokenInfo
    from runlock.keys import PublicKey
    from runlock.verify.checklist import CheckReport, Policy
    from runlock.verify.compare import Comparison as Verdict
    from runlock.registry import AliasMove, AliasState, ModelVersion
    from runlock.tracking.annotations import Note, Tombstone
    from runlock.tracking.query import FoundRun
    from runlock.tracking.records import RunRecord
    from runlock.tracking.series import Comparison, KeySummary, Point


@dataclass(frozen=True)
class RunView:
    """One run as ``runs show`` prints it: record, lock, metric summaries, notes, artifacts."""

    run: RunRecord
    lock: dict | None
    metrics: list[KeySummary]
    notes: list[Note]
    artifacts: list[Artifact]

    def to_dict(self) -> dict:
        return {"run": self.run.to_dict(), "lock": self.lock, "metrics": self.metrics, "notes": self.notes,
                "artifacts": [a.to_dict() for a in self.artifacts]}


@dataclass(frozen=True)
class SplitRequest:
    """The arguments of ``create_split`` that travel (everything but the progress callback)."""

    snapshot: str
    name: str | None = None
    ratios: tuple[float, ...] | None = None
    seed: int = 0
    strategy: str = "random"
    by: str | None = None
    group: str | None = None
    names: tuple[str, ...] | None = None
    dedup: bool = False
    check: bool = True
    text_columns: tuple[str, ...] | None = None
    settings: dict | None = None     # NearDupSettings as a dict; None: the defaults

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class InputUse:
    """An input a run declares (``run.use``): a reference, and where the script reads it.

    ``path`` (relative to the run's project) is what the script named with ``path=``; ``held``
    lists ``[path inside it, sha256]`` of the files found there, which the store checks against
    the input's own files. ``taken`` maps a snapshot id to ``[path, "file"|"folder"]`` where this
    process snapshotted it, so a snapshot (or a split of it) records its path without ``path=``."""

    ref: str
    path: str | None = None
    path_kind: str | None = None
    held: tuple[tuple[str, str], ...] | None = None
    taken: dict | None = None

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class Service(Protocol):
    """What every surface needs of a store; see the module's docstring."""

    where: str      # the store's folder or the server's URL, for messages

    def close(self) -> None: ...

    # runs
    def find_runs(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None, deleted: bool = False) -> list[FoundRun]: ...

    def short_ids(self, ids: list[str]) -> dict[str, str]: ...

    def run_frame(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None) -> Any: ...

    def run_view(self, ref: str) -> RunView: ...

    def run_record(self, ref: str) -> RunRecord: ...

    def metric_summaries(self, ref: str, *, rank: int | None = None) -> list[KeySummary]: ...

    def metric_points(self, ref: str, *, keys: list[str] | None = None, rank: int | None = None) -> Iterator[Point]: ...

    def diff_runs(self, a: str, b: str) -> RunDiff: ...

    def compare_runs(self, refs: list[str], *, only_differences: bool = False) -> Comparison: ...

    def tag_run(self, ref: str, values: dict[str, str], *, remove: list[str] | tuple[str, ...] = ()) -> dict: ...

    def note_run(self, ref: str, text: str) -> Note: ...

    def delete_run(self, ref: str, *, reason: str) -> Tombstone: ...

    # artifacts
    def list_artifacts(self, *, run: str | None = None, kind: str | None = None, name: str | None = None,
                       limit: int | None = None) -> list[Artifact]: ...

    def show_artifact(self, ref: str) -> ArtifactDetail: ...

    def get_artifact(self, ref: str, dest: str | Path, *, force: bool = False,
                     on_progress: Callable[..., None] | None = None) -> Download: ...

    # models
    def list_models(self, name: str | None = None) -> list[ModelVersion]: ...

    def resolve_model(self, ref: str) -> ModelVersion: ...

    def register_model(self, run: str, artifact: str, name: str, meta: dict | None = None) -> ModelVersion: ...

    def get_model(self, ref: str, dest: str | Path, *, force: bool = False,
                  on_progress: Callable[..., None] | None = None) -> Download: ...

    def model_history(self, name: str, alias: str | None = None) -> list[AliasMove]: ...

    def aliases_at(self, name: str, when: str, alias: str | None = None) -> AliasState: ...

    def model_card(self, ref: str, *, limitations: str | None = None) -> ModelCard: ...

    def set_alias(self, ref: str, alias: str, *, reason: str) -> AliasMove: ...

    def remove_alias(self, name: str, alias: str, *, reason: str) -> AliasMove: ...

    # audit
    def audit_log(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                  limit: int | None = 100) -> list[Entry]: ...

    def verify_audit(self, *, deep: bool = False, progress: Callable[[int], None] | None = None,
                     key: Any = None) -> VerifyReport: ...

    def audit_proof(self, seq: int) -> InclusionProof: ...

    def audit_checkpoint(self) -> Checkpoint: ...

    def public_key(self) -> PublicKey: ...

    def whoami(self) -> Identity: ...

    # who may act (users, tokens, roles): an admin's business, except one's own tokens
    def list_identities(self) -> list[Identity]: ...

    def create_identity(self, name: str, kind: str = "user") -> Identity: ...

    def disable_identity(self, name: str) -> Identity: ...

    def issue_token(self, name: str, *, days: int | None, label: str = "") -> IssuedToken: ...

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]: ...

    def revoke_token(self, token_id: str) -> TokenInfo: ...

    def grant_role(self, name: str, role: str, project: str) -> Grant: ...

    def revoke_role(self, name: str, project: str) -> Grant: ...

    def list_grants(self, user: str | None = None) -> list[Grant]: ...

    # verification (what the record alone decides; a rerun runs where the code is)
    def check(self, target: str, policy: Policy) -> CheckReport: ...

    def compare_outputs(self, a: str, b: str, *, rtol: float, atol: float, k: float, stitch: bool = True) -> Verdict: ...

    # attestations (signed with the store's key, which stays where the store is)
    def attest(self, ref: str, output: str | Path, *, policy: Policy) -> Attestation: ...

    def gate(self, model: str, attestation: str | Path, *, policy: Policy, override: str | None = None) -> GateResult: ...

    # data
    def snapshot(self, path: str | Path, name: str | None = None, *, id_column: str | None = None,
                 kind: str | None = None, on_progress: Callable[[Any], None] | None = None,
                 use_cache: bool = True) -> Snapshot: ...

    def split(self, request: SplitRequest, on_progress: Callable[..., None] | None = None) -> Split: ...

    def transform(self, parent: str | Snapshot, fn: Callable, params: dict | None = None,
                  name: str | None = None) -> Snapshot: ...

    def list_snapshots(self, name: str | None = None) -> list[SnapshotInfo]: ...

    def load_snapshot(self, ref: str) -> Snapshot: ...

    def checkout(self, ref: str, dest: str | Path) -> Checkout: ...

    def diff_snapshots(self, old: str, new: str) -> SnapshotDiff: ...

    def verify_snapshots(self, ref: str | None = None, *, path: str | None = None,
                         on_progress: Callable[[int, int], None] | None = None) -> DataReport: ...

    def list_splits(self, name: str | None = None) -> list[SplitInfo]: ...

    def load_split(self, ref: str) -> Split: ...

    def export_split(self, ref: str, path: str | Path) -> Exported: ...

    def import_split(self, path: str | Path, snapshot: str, *, name: str, check: bool = True) -> Split: ...

    def apply_split(self, ref: str, snapshot: str, *, name: str | None = None, check: bool = True) -> Split: ...

    def check_split(self, ref: str, *, settings: dict | None = None, text_columns: tuple[str, ...] | None = None,
                    on_progress: Callable[..., None] | None = None) -> Checked: ...

    # lineage
    def lineage(self, entity: str, direction: str = "upstream", depth: int = 10,
                max_nodes: int = 10_000) -> LineageView: ...

    # a running run (``run.use`` and ``run.set_summary`` of a run on a server)
    def use_input(self, run: str, use: InputUse) -> dict: ...

    def set_summary(self, run: str, values: dict) -> dict: ...
