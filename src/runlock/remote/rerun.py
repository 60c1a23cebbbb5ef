"""``RemoteRerunner``: ``rerun``, ``verify`` and ``variance`` of a run a team server holds.

The rerun runs here, where the code is, exactly as against a local store (``verify.rerun``):
the recorded commit checked out in a temporary worktree, the recorded diff applied, every input
rebuilt (where the run found it, too), the recorded knobs and environment variables restored.
What differs is where things come from and go to (``server/routes_rerun.py``):

- the recipe (record, lock, input sources, diff) comes from ``GET /runs/{id}/recipe``; the server
  refuses a run or input edited since it was sealed. The diff is checked against its recorded
  id here before it is applied, and every input byte downloads through ``ServerObjects``, which
  hashes it (a folder artifact's files name their file list, ``?via=``);
- the rerun records to the server: ``python -m runlock.cli.boot --remote SPEC -- ARGV`` starts in
  the worktree, creates the run there (so its lock captures the rerun's own code and
  environment) and either runs the script in that process, which joins the run as under
  ``runlock run``, or runs the wrapped command under ``run_remote_command``; it writes the run's
  id to ``RUNLOCK_RERUN_ID_FILE``. This process then ships what a killed rerun left spooled and
  seals a run left running from the exit status;
- the ``reproduces`` edge, the verification and the spread are made by the server from the runs it
  holds: it compares the rerun with the original itself, so a client never states a tier.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runlock.errors import IntegrityError, InvalidInput, RunlockError
from runlock.hashing import digest_bytes
from runlock.remote.client import Client
from runlock.remote.credentials import SERVER_ENV, TOKEN_ENV
from runlock.remote.http import HttpService, _segment
from runlock.remote.objects import ServerObjects, ServerView
from runlock.remote.spool import drain
from runlock.tracking.records import RunRecord
from runlock.tracking.wrapper import WRITERS_WAIT_S
from runlock.verify import inputs as inputs_mod
from runlock.verify import workdir
from runlock.verify.envlock import env_diff
from runlock.verify.records import Spread, Verification
from runlock.verify.rerun import Prepared, Rerun, RerunPlan, child_env, plan_from, run_rerun

ENV_ID_FILE = "RUNLOCK_RERUN_ID_FILE"


@dataclass
class _Recipe:
    record: RunRecord
    lock: dict
    sources: list[inputs_mod.Source]
    patch: bytes | None


class RerunView(ServerView):
    """The server's objects as ``verify.inputs`` reads them; a folder artifact's files are read
    naming its file list (``for_artifact``), as ``artifacts get`` reads them."""

    def for_artifact(self, art: Any) -> ServerView:
        return ServerView(ServerObjects(self.objects.client, via=art.manifest), self.root, self.actor)


class RemoteRerunner:
    def __init__(self, service: HttpService) -> None:
        self.service = service
        self.client: Client = service.client
        self.where = self.client.url
        self._recipes: dict[str, _Recipe] = {}
        self._nowhere = tempfile.TemporaryDirectory(prefix="runlock-client-")

    def _recipe(self, run: str) -> _Recipe:
        d = self.client.call("GET", f"/runs/{_segment(run.removeprefix('run:'))}/recipe", timeout=600.0)
        rec = _record(d["run"])
        found = _Recipe(rec, d["lock"], [inputs_mod.Source.from_dict(s) for s in d["sources"]],
                        base64.b64decode(d["patch"]) if d.get("patch") is not None else None)
        self._recipes[rec.id] = found
        return found

    def plan(self, run: str, *, isolated: bool) -> RerunPlan:
        got = self._recipe(run)
        view = SimpleNamespace(run=got.record, lock=got.lock)
        drift = env_diff(SimpleNamespace(run_view=lambda _: view), got.record.id)   # type: ignore[arg-type]
        return plan_from(got.record, got.lock, isolated=isolated, drift=drift)

    def record(self, run: str) -> RunRecord:
        return self.service.run_record(run)

    def sources(self, plan: RerunPlan) -> list[inputs_mod.Source]:
        return (self._recipes.get(plan.run_id) or self._recipe(plan.run_id)).sources

    def _view(self) -> RerunView:
        return RerunView(ServerObjects(self.client), Path(self._nowhere.name) / ".runlock", "client")

    def build(self, sources: list[inputs_mod.Source], dest: Path, on_progress: Any) -> dict[str, str]:
        return inputs_mod.build_all(self._view(), sources, dest, on_progress=on_progress)[1]

    def place(self, sources: list[inputs_mod.Source], root: Path, *, replace: bool) -> list[inputs_mod.Placed]:
        return inputs_mod.place_all(self._view(), sources, root, replace=replace)

    def patch(self, digest: str) -> bytes:
        data = next((r.patch for r in self._recipes.values()
                     if ((r.lock.get("code") or {}).get("git") or {}).get("diff") == digest), None)
        if data is None or digest_bytes(data) != digest:
            raise IntegrityError(f"The server sent a diff that does not hash to {digest}, the one the run recorded.",
                                 hint="Run `runlock fsck` on the server.")
        return data

    def recorded_repo(self, plan: RerunPlan) -> Path | None:
        """The repository the run ran in, when it is on this machine at the same path."""
        cwd = self._recipes[plan.run_id].record.context.get("cwd") if plan.run_id in self._recipes else None
        return workdir.find_repo(Path(cwd)) if cwd and Path(cwd).is_dir() else None

    def launch(self, plan: RerunPlan, prep: Prepared, *, argv: list[str], seed: int | None) -> Rerun:
        id_file = Path(tempfile.mkstemp(prefix="rerun-", suffix=".id", dir=prep.folder)[1])
        spec = json.dumps({"project": plan.project, "name": plan.name, "seed": seed, "style": plan.style})
        env = child_env(plan, prep, seed, {SERVER_ENV: self.client.url, ENV_ID_FILE: str(id_file),
                                           **({TOKEN_ENV: self.client.token} if self.client.token else {})},
                        drop=("RUNLOCK_STORE",))
        rc, _ = run_rerun([sys.executable, "-m", "runlock.cli.boot", "--remote", spec, "--", *argv], prep, env,
                          plan.run_id)
        run_id = id_file.read_text().strip()
        if not run_id:
            raise RunlockError(f"The rerun of run {plan.run_id} exited with status {rc} before its run was made "
                               f"on {self.where}.", hint="Check its output above.")
        with warnings.catch_warnings():     # the seal says what was lost
            warnings.simplefilter("ignore", RuntimeWarning)
            lost = drain(self.client, run_id, WRITERS_WAIT_S)
        rec = self.service.run_record(run_id)
        if rec.status == "running":         # the script was killed, or never finished its run
            error = None if rc == 0 else f"Command exited with status {rc}."
            self.client.finish_run(run_id, "finished" if rc == 0 and not lost else "failed", error, lost)
            rec = self.service.run_record(run_id)
        return Rerun(plan.run_id, rec.id, rec.status, rc, plan)

    def link(self, new: str, original: str) -> None:
        self.client.call("POST", f"/runs/{_segment(new)}/reproduces", json={"of": original})

    def verified(self, run: str, *, rerun_id: str | None = None, failure: dict | None = None,
                 rtol: float = 0.0, atol: float = 0.0, k: float = 0.0, rehearsal_id: str | None = None) -> Verification:
        if rehearsal_id is not None:
            raise InvalidInput("An audit rehearsal (verify --sample) runs where the store is, not against a server.",
                               hint="Run it on the server's machine with --store, or verify runs one by one.")
        if rerun_id is not None:
            self.link(rerun_id, run)
        body = {"rerun": rerun_id, "rtol": rtol, "atol": atol, "k": k,
                "failure": None if failure is None else {"error": str(failure.get("error") or ""),
                                                         "hint": failure.get("hint")}}
        d = self.client.call("POST", f"/runs/{_segment(run)}/verifications", json=body, timeout=600.0)
        return Verification(**d)

    def spread(self, run: str, seeds: list[int], runs: list[str]) -> Spread:
        d = self.client.call("POST", f"/runs/{_segment(run)}/spreads", json={"seeds": seeds, "runs": runs},
                             timeout=600.0)
        return Spread(**d)

    def verifications(self, run: str) -> list[Verification]:
        d = self.client.call("GET", f"/runs/{_segment(run.removeprefix('run:'))}/verifications")
        return [Verification(**v) for v in d["verifications"]]

    def verify_reference(self, run: str, reference: str | Path, *, outputs: str | Path | None = None,
                         artifact: str = "outputs") -> Verification:
        """The reference (and outputs) file uploaded as objects; the server compares them."""
        body = {"reference": self._upload(Path(reference), "reference file"), "source": str(reference),
                "artifact": artifact}
        if outputs is not None:
            body.update(outputs=self._upload(Path(outputs), "outputs file"), outputs_source=str(outputs))
        d = self.client.call("POST", f"/runs/{_segment(run.removeprefix('run:'))}/verifications/reference",
                             json=body, timeout=600.0)
        return Verification(**d)

    def _upload(self, path: Path, what: str) -> str:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"Cannot read the {what} {path}: {e.strerror}.") from None
        return self.service.objects.put_bytes(data)


def _record(d: dict) -> RunRecord:
    return RunRecord(**{k: d.get(k) for k in RunRecord.__dataclass_fields__})


def boot_remote(spec: dict, argv: list[str], run_script: Any) -> int:
    """The rerun's own process (``runlock.cli.boot --remote``): make the run on the server here,
    in the rerun's worktree and environment, write its id for the parent, then run the command:
    a script in this process (it joins the run), a wrapped command under ``run_remote_command``."""
    from runlock.remote.run import create_remote_run
    from runlock.remote.wrapper import run_remote_command
    from runlock.tracking.run import ENV_RUN_ID

    client = Client(os.environ[SERVER_ENV], os.environ.get(TOKEN_ENV))
    id_file = Path(os.environ[ENV_ID_FILE])
    if spec.get("style") != "script":
        result = run_remote_command(client, argv, project=spec["project"], name=spec.get("name"),
                                    seed=spec.get("seed"), on_start=id_file.write_text)
        return result.returncode
    record, _ = create_remote_run(client, spec["project"], None, seed=spec.get("seed"), argv=argv)
    id_file.write_text(record["id"])
    os.environ[ENV_RUN_ID] = record["id"]
    client.close()
    run_script(argv)
    return 0

