"""The one permission table: every route of the server names what it needs, or it is refused.

A rule is ``PUBLIC`` (no token: the health check and the OpenAPI schema), ``SIGNED_IN`` (any
valid token: ``whoami``), or an action checked by ``runlock.authz`` against a target built from
the route's path parameters (``run:{run_id}``: the run's project decides; ``*`` otherwise), or
on any project for objects, which belong to none.
``guard`` looks the matched route up here; a route missing from the table answers 403 to
everyone, and tests/server/test_permissions.py fails for it (deny by default, twice).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    action: str | None          # an authz action; None for PUBLIC / SIGNED_IN
    target: str | None = "*"    # a template over the path parameters, e.g. "run:{run_id}";
    #                             None: the target is in the body, and the domain checks the action
    #                             there (``audit.append`` calls ``authz.require`` before any write)
    signed_in: bool = True      # False: no token needed
    any_project: bool = False   # the role is needed on some project, not on the target's

    def target_for(self, params: dict) -> str:
        return (self.target or "*").format(**params)


PUBLIC = Rule(None, signed_in=False)
SIGNED_IN = Rule(None)
V1 = "/api/v1"

PERMISSIONS: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", f"{V1}/health"): PUBLIC,
    ("GET", f"{V1}/whoami"): SIGNED_IN,
    ("GET", f"{V1}/runs"): SIGNED_IN,                 # filtered to the projects the caller may read
    ("POST", f"{V1}/runs"): Rule("run.create", None),  # the body names the project
    ("GET", f"{V1}/runs/{{run_id}}"): Rule("run.read", "run:{run_id}"),
    ("GET", f"{V1}/runs/{{run_id}}/metrics"): Rule("run.read", "run:{run_id}"),
    ("GET", f"{V1}/runs/{{run_id}}/points"): Rule("run.read", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/points"): Rule("run.log", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/finish"): Rule("run.seal", "run:{run_id}"),
    ("GET", f"{V1}/runs/{{run_id}}/artifacts"): Rule("artifact.read", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/artifacts"): Rule("artifact.create", "run:{run_id}"),
    # objects belong to no project: uploading one needs an editor anywhere (it is immutable and
    # grants no access by itself); reading one needs a viewer anywhere, and the handler then
    # requires a viewer on ``*`` or on the project of a run whose artifact the object is
    ("POST", f"{V1}/objects/missing"): Rule("object.put", any_project=True),
    ("PUT", f"{V1}/objects/{{digest}}"): Rule("object.put", any_project=True),
    ("GET", f"{V1}/objects/{{digest}}"): Rule("object.read", any_project=True),
    # what the CLI's commands ask (server/routes_service.py, remote/http.py)
    ("POST", f"{V1}/runs/labels"): SIGNED_IN,            # the shortest unique prefix of given ids
    ("GET", f"{V1}/runs/{{run_id}}/view"): Rule("run.read", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/inputs"): Rule("run.log", "run:{run_id}"),    # run.use
    ("POST", f"{V1}/runs/{{run_id}}/summary"): Rule("run.log", "run:{run_id}"),   # run.set_summary
    ("GET", f"{V1}/models"): SIGNED_IN,                  # filtered to the projects the caller may read
    ("GET", f"{V1}/models/resolve"): SIGNED_IN,          # the handler requires run.read on its run's project
    ("POST", f"{V1}/models"): Rule("model.register", None),   # the run in the body names the project
    ("POST", f"{V1}/models/read"): Rule("model.read", None),  # registry.prepare_read checks the version's project
    ("GET", f"{V1}/audit/verify"): Rule("audit.verify", "*"),
    ("POST", f"{V1}/snapshots"): Rule("snapshot.create", "*"),   # snapshots belong to no project
    ("POST", f"{V1}/splits"): Rule("split.create", "*"),
    ("POST", f"{V1}/splits/import"): Rule("split.import", "*"),
    ("POST", f"{V1}/splits/apply"): Rule("split.apply", "*"),
    ("POST", f"{V1}/splits/check"): Rule("split.check", "*"),
    # what the reading commands ask (server/routes_read.py)
    ("POST", f"{V1}/runs/diff"): SIGNED_IN,              # the handler requires run.read on each run's project
    ("POST", f"{V1}/runs/compare"): SIGNED_IN,           # the same
    ("GET", f"{V1}/snapshots"): Rule("snapshot.read", "*"),
    ("GET", f"{V1}/snapshots/resolve"): Rule("snapshot.read", "*"),
    ("GET", f"{V1}/splits"): Rule("split.read", "*"),
    ("GET", f"{V1}/splits/resolve"): Rule("split.read", "*"),
    ("GET", f"{V1}/models/history"): SIGNED_IN,          # the handler requires run.read on each version's run
    ("GET", f"{V1}/models/aliases-at"): SIGNED_IN,       # the same
    ("GET", f"{V1}/audit/log"): Rule("audit.read", "*"),
    ("GET", f"{V1}/lineage"): SIGNED_IN,     # a viewer on * sees it all; others their projects' nodes
    # registry alias set/remove: the move's transaction checks model.alias on the version's project
    # (admin for production), as a local move does; the handler first refuses a model it may not read
    ("POST", f"{V1}/models/aliases"): Rule("model.alias", None),
    ("POST", f"{V1}/models/aliases/remove"): Rule("model.alias", None),
    ("POST", f"{V1}/audit/proof"): Rule("audit.read", "*"),   # signing a checkpoint for it: audit.checkpoint
    ("GET", f"{V1}/snapshots/diff"): Rule("snapshot.read", "*"),
    ("GET", f"{V1}/snapshots/derived"): Rule("snapshot.read", "*"),     # runlock.transform's cache
    ("POST", f"{V1}/snapshots/verify"): Rule("snapshot.verify", "*"),   # re-hashes every object: an editor
    # runs tag/note/delete and artifacts (server/routes_runs.py): annotations are the domain's
    # own, on the run's project; an artifact's handler requires run.read on its run's project
    ("POST", f"{V1}/runs/{{run_id}}/adopt"): Rule("run.log", "run:{run_id}"),   # runlock run's script joins
    ("GET", f"{V1}/runs/{{run_id}}/seq"): Rule("run.log", "run:{run_id}"),      # where a joining rank numbers on
    ("POST", f"{V1}/runs/{{run_id}}/resumes"): Rule("run.resume", "run:{run_id}"),   # and run.read on the one it continues
    ("POST", f"{V1}/runs/{{run_id}}/tags"): Rule("run.tag", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/notes"): Rule("run.note", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/delete"): Rule("run.delete", "run:{run_id}"),
    ("POST", f"{V1}/models/card"): SIGNED_IN,            # the handler requires run.read on the model's project
    ("GET", f"{V1}/artifacts"): SIGNED_IN,               # filtered to the projects the caller may read
    ("GET", f"{V1}/artifacts/show"): SIGNED_IN,          # the handler requires run.read on its run's project
    ("POST", f"{V1}/artifacts/read"): Rule("artifact.read", None),   # artifacts.prepare_read checks the project
    # check, compare, audit checkpoint (server/routes_verify.py)
    ("POST", f"{V1}/checks"): SIGNED_IN,                 # the handler requires run.read on the target's project
    ("POST", f"{V1}/compare"): SIGNED_IN,                # the same, for both runs
    ("POST", f"{V1}/audit/checkpoint"): Rule("audit.checkpoint", None),   # checkpoints.checkpoint checks it
    ("GET", f"{V1}/keys/public"): SIGNED_IN,             # public by design: what verifiers check against
    ("POST", f"{V1}/attestations"): Rule("attestation.create", None),     # the handler checks it on the target
    ("POST", f"{V1}/models/gate"): Rule("gate.pass", None),   # the decision's audit entry checks gate.pass/override
    # rerun, verify, variance (server/routes_rerun.py): the rerun runs on the client; the handlers
    # also require run.read on every run the body names
    ("GET", f"{V1}/runs/{{run_id}}/recipe"): Rule("run.read", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/reproduces"): Rule("run.reproduce", "run:{run_id}"),   # the rerun's project
    ("POST", f"{V1}/runs/{{run_id}}/verifications"): Rule("verification.create", "run:{run_id}"),
    ("GET", f"{V1}/runs/{{run_id}}/verifications"): Rule("run.read", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/verifications/reference"): Rule("verification.create", "run:{run_id}"),
    ("POST", f"{V1}/runs/{{run_id}}/spreads"): Rule("variance.create", "run:{run_id}"),
    # users, tokens, roles (server/routes_admin.py): each write's audit entry checks the action
    # (an admin; one's own tokens: anyone); listing tokens or grants shows a non-admin their own
    ("GET", f"{V1}/identities"): Rule("user.list", "*"),
    ("POST", f"{V1}/identities"): Rule("user.create", None),
    ("POST", f"{V1}/identities/disable"): Rule("user.disable", None),
    ("POST", f"{V1}/tokens"): Rule("token.issue", None),
    ("GET", f"{V1}/tokens"): SIGNED_IN,
    ("POST", f"{V1}/tokens/revoke"): Rule("token.revoke", None),
    ("POST", f"{V1}/grants"): Rule("role.grant", None),
    ("POST", f"{V1}/grants/revoke"): Rule("role.revoke", None),
    ("GET", f"{V1}/grants"): SIGNED_IN,
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route (its path template, as FastAPI matched it), or None: refuse."""
    return PERMISSIONS.get((method.upper(), path))
