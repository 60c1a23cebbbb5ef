"""The reproducibility checklist: a policy of rules, each passed or failed with its evidence.

A policy is a TOML or YAML file in the repository (``runlock-policy.toml``, ``.yaml`` or
``.yml``, found in the working directory or a parent up to the repository root), or the
built-in default: every rule on with the options below. A ``[check]`` table lists the rules to
run and sets their options::

    [check]
    rules = ["code-committed", "inputs-pinned", "verified"]   # default: every rule
    [check.verified]
    min_tier = "bitwise"

Rules and their options (defaults):

    code-committed        allow_recorded_diff = true   the code is a commit; a dirty tree passes
                                                       only if its diff is recorded and stored
    inputs-pinned         require_inputs = true        every input is pinned by a content id the
                                                       store holds (a folder artifact or model: its
                                                       file list and every file)
    split-leakage         require_split = false        every split used has a passed leakage report
                                                       (its latest one, ``runlock split check``)
    seeds-recorded        require_seeding_report = true, require_deterministic = false,
                          require_hashseed = false     a seed, and how seeding was done
    environment-complete  (none)                       interpreter, OS, packages, knobs; torch and
                                                       GPUs when torch is installed
    verified              min_tier = "tolerance"       the latest verification at that tier or stricter
    test-evaluation       prefixes = ["test/", "test_", "test.", "eval/test"]
                                                       a metric or summary value of the test partition
    metrics-complete      (none)                       every metric point logged was stored (no
                                                       ``lost_points``, no writer that never reported)
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from runlock import artifacts, refs
from runlock.data.split import load as load_split
from runlock.errors import IntegrityError, InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store import Store
from runlock.store.schema import edges
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import metric_series
from runlock.verify.records import TIERS, best_tier, latest_verification, tier_rank

POLICY_FILES = ("runlock-policy.toml", "runlock-policy.yaml", "runlock-policy.yml")


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckReport:
    target: str
    run_id: str
    policy: str
    results: list[RuleResult]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict:
        return {"target": self.target, "run": self.run_id, "policy": self.policy, "ok": self.ok,
                "results": [r.__dict__ for r in self.results]}


@dataclass(frozen=True)
class Policy:
    source: str
    rules: dict[str, dict]


@dataclass(frozen=True)
class _Ctx:
    store: Store
    rec: records.RunRecord
    lock: dict


def check(store: Store, target: str, policy: Policy | None = None) -> CheckReport:
    """Evaluate ``policy`` (default: the repository's, else the built-in one) on a run or model."""
    policy = policy or load_policy()
    rec = records.get(store, run_of(store, target))
    ctx = _Ctx(store, rec, locks.load(store, rec.recipe_id) if rec.recipe_id else {})
    return CheckReport(target, rec.id, policy.source,
                       [RULES[name][0](ctx, opts) for name, opts in policy.rules.items()])


def run_of(store: Store, target: str) -> str:
    """The run a target names: a run id, or ``model:NAME@vN`` (the run that produced it)."""
    if not target.startswith("model:"):
        return target
    ref = refs.resolve(store, target, "model")
    if ref.meta.get("run"):
        return ref.meta["run"]
    with store.db.read() as conn:
        art = conn.execute(sa.select(edges.c.dst).where(edges.c.kind == "derived_from", edges.c.src == ref.ref)).scalar()
        run = conn.execute(sa.select(edges.c.dst).where(edges.c.kind == "generated_by", edges.c.src == art)).scalar()
    if not run:
        raise NotFound("run that produced", ref.ref, hint="Register models from runs (`runlock registry add`).")
    return run.split(":", 1)[1]


def load_policy(path: str | Path | None = None, start: str | Path | None = None) -> Policy:
    """The policy in ``path``, else the nearest policy file upward from ``start``, else the default."""
    found = Path(path) if path else _find_policy(Path(start or Path.cwd()).resolve())
    if found is None:
        return Policy("built-in default", {name: dict(r[1]) for name, r in RULES.items()})
    try:
        text = found.read_text(encoding="utf-8")
        doc = yaml.safe_load(text) if found.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except OSError as e:
        raise InvalidInput(f"Cannot read the policy {found}: {e.strerror}.") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"The policy {found} is not UTF-8 text.", hint="A policy is a TOML or YAML file.") from None
    except (RecursionError, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        # PyYAML's loader (as OmegaConf 2.4 uses it) stops at 1,000 levels with a ScannerError; other parsers
        # recurse until Python stops them
        if isinstance(e, RecursionError) or "maximum nesting depth" in str(e):
            raise InvalidInput(f"The policy {found} nests too deeply to be a policy.") from None
        raise InvalidInput(f"Cannot read the policy {found}: {str(e).splitlines()[0] if str(e) else e!r}.") from None
    section = (doc or {}).get("check") or {} if isinstance(doc, dict) or doc is None else None
    return checked_policy(str(found), section)


def checked_policy(found: str, section: Any) -> Policy:
    """The policy a ``[check]`` table describes (``{"rules": [names], name: {options}}``), each
    rule known and each option of the default's type; ``found`` names where it came from (a
    team server checks a client's policy with this too)."""
    names = section.get("rules", list(RULES)) if isinstance(section, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
            or not all(isinstance(section.get(n) or {}, dict) for n in names):
        raise InvalidInput(f"The policy {found} is not a policy: expected a [check] table with a list of rule "
                           "names (rules = [...]) and one table of options per rule.",
                           hint="See docs/verify.md (the checklist) for an example.")
    unknown = [n for n in [*names, *(k for k in section if k != "rules")] if n not in RULES]
    if unknown:
        raise InvalidInput(f"The policy {found} names unknown rules {unknown}.", hint=f"Known rules: {', '.join(RULES)}.")
    rules = {}
    for name in names:
        opts = section.get(name) or {}
        bad = sorted(set(opts) - set(RULES[name][1]))
        if bad:
            raise InvalidInput(f"The policy {found} gives rule {name} unknown options {bad}.",
                               hint=f"It takes: {', '.join(RULES[name][1]) or 'no options'}.")
        wrong = sorted(k for k, v in opts.items() if type(v) is not type(RULES[name][1][k]))
        if wrong:
            raise InvalidInput(f"The policy {found} gives rule {name} options of the wrong type: {wrong}.",
                               hint="Defaults: " + ", ".join(f"{k} = {RULES[name][1][k]!r}" for k in wrong) + ".")
        rules[name] = {**RULES[name][1], **opts}
    return Policy(found, rules)


def _find_policy(start: Path) -> Path | None:
    for d in (start, *start.parents):
        for name in POLICY_FILES:
            if (d / name).is_file():
                return d / name
        if (d / ".git").exists():
            return None
    return None


# -- the rules ------------------------------------------------------------------------------
def code_committed(ctx: _Ctx, opts: dict) -> RuleResult:
    code = ctx.lock.get("code") or {}
    git = code.get("git")
    if not git or not git.get("commit"):
        why = ("the git repository had no commit yet" if git else code.get("reason")) or "no code section"
        return RuleResult("code-committed", False, f"no commit recorded ({why})", code)
    ev = {"commit": git["commit"], "dirty": git.get("dirty"), "diff": git.get("diff")}
    if not git.get("dirty"):
        return RuleResult("code-committed", True, f"commit {git['commit'][:12]}, no uncommitted changes", ev)
    stored = bool(git.get("diff")) and ctx.store.objects.has(git["diff"])
    ok = opts["allow_recorded_diff"] and stored
    why = "the diff is recorded and stored" if stored else "the diff is not in the store"
    return RuleResult("code-committed", ok, f"commit {git['commit'][:12]} with uncommitted changes; {why}"
                      + ("" if opts["allow_recorded_diff"] else "; the policy wants a clean commit"), ev)


def inputs_pinned(ctx: _Ctx, opts: dict) -> RuleResult:
    ins = ctx.lock.get("inputs") or []
    ev = {"inputs": [{"ref": i.get("ref"), "id": i.get("id"), "kind": i.get("kind"),
                      "stored": _input_stored(ctx.store, i)} for i in ins]}
    loose = [e["ref"] for e in ev["inputs"] if not e["stored"]]
    if not ins:
        return RuleResult("inputs-pinned", not opts["require_inputs"], "the run declared no inputs (run.use)", ev)
    return RuleResult("inputs-pinned", not loose, f"{len(ins)} input(s) pinned by content id"
                      if not loose else f"not pinned or not stored: {', '.join(map(str, loose))}", ev)


def _input_stored(store: Store, entry: dict) -> bool:
    """Whether the store holds every byte an input names. A snapshot or split id is its manifest
    object; an artifact or model version is named by its content digest, which for a folder is the
    digest over its files (not an object): then the folder's file list and each file must be
    stored. A content id the catalog does not know is looked up as a plain object."""
    ident = str(entry.get("id"))
    if not is_digest(ident):
        return False
    if entry.get("kind") in ("snapshot", "split"):
        return store.objects.has(ident)
    try:
        art = artifacts.find(store, f"art:{ident}")
    except NotFound:
        return store.objects.has(ident)
    if art.manifest is None:
        return store.objects.has(art.digest)
    if not store.objects.has(art.manifest):
        return False
    try:
        files = artifacts.folder_entries(store, art)
    except IntegrityError:
        return False
    return all(store.objects.has(f["digest"]) for f in files)


def split_leakage(ctx: _Ctx, opts: dict) -> RuleResult:
    splits = [i for i in ctx.lock.get("inputs") or [] if i.get("kind") == "split"]
    if not splits:
        return RuleResult("split-leakage", not opts["require_split"], "the run used no split", {})
    ev = {i.get("ref") or i["id"]: _leakage_passed(ctx.store, i["id"]) for i in splits}
    bad = [k for k, v in ev.items() if v is not True]
    return RuleResult("split-leakage", not bad, "every split's leakage check passed" if not bad
                      else f"no passed leakage report for {', '.join(bad)}", {"passed": ev})


def _leakage_passed(store: Store, split_id: str) -> bool | None:
    """Whether the split's latest leakage report passed (None: no report, or no such split)."""
    try:
        report = load_split(store, split_id).leakage
    except (NotFound, InvalidInput):
        return None
    return None if report is None else report.passed


def seeds_recorded(ctx: _Ctx, opts: dict) -> RuleResult:
    seeding = ctx.lock.get("seeding") or {}
    torch_knobs = (ctx.lock.get("knobs") or {}).get("torch") or {}
    ev = {"seed": ctx.lock.get("seed"), "seeding_report": bool(seeding),
          "deterministic": bool((seeding.get("deterministic") or {}).get("use_deterministic_algorithms")
                                or torch_knobs.get("deterministic_algorithms")),
          "hashseed": bool((seeding.get("hashseed") or {}).get("effective"))}
    needs = (("seed", "a seed", True), ("seeding_report", "a seeding report", opts["require_seeding_report"]),
             ("deterministic", "deterministic algorithms", opts["require_deterministic"]),
             ("hashseed", "a fixed PYTHONHASHSEED", opts["require_hashseed"]))
    missing = [label for key, label, need in needs
               if need and (ev[key] is None if key == "seed" else not ev[key])]
    return RuleResult("seeds-recorded", not missing, f"seed {ev['seed']} recorded" if not missing
                      else f"missing: {', '.join(missing)}", ev)


def environment_complete(ctx: _Ctx, opts: dict) -> RuleResult:
    env = ctx.lock.get("environment") or {}
    packages = env.get("packages") or {}
    missing = [k for k in ("python", "os", "packages") if not env.get(k)]
    missing += ["knobs"] if not ctx.lock.get("knobs") else []
    if "torch" in packages and not env.get("torch"):
        missing.append("torch (installed but not described)")
    ev = {"python": (env.get("python") or {}).get("version"), "packages": len(packages),
          "torch": (env.get("torch") or {}).get("version"), "gpus": len((env.get("torch") or {}).get("gpus") or [])}
    return RuleResult("environment-complete", not missing, f"{len(packages)} packages pinned, python {ev['python']}"
                      if not missing else f"missing: {', '.join(missing)}", ev)


def verified(ctx: _Ctx, opts: dict) -> RuleResult:
    want = opts["min_tier"]
    if want not in TIERS:
        raise InvalidInput(f"Rule verified: min_tier {want!r} is not one of {', '.join(TIERS)}.")
    # The latest verification decides: a run that reproduced once and no longer does is not verified.
    latest = latest_verification(ctx.store, ctx.rec.id)
    tier = latest.tier if latest else None
    ok = tier is not None and tier_rank(tier) <= tier_rank(want)
    when = f" ({latest.created_at[:10]})" if latest else ""
    best = best_tier(ctx.store, ctx.rec.id)
    also = f"; best ever: {best}" if best and best != tier else ""
    return RuleResult("verified", ok, f"latest verification{when}: {tier or 'none'}{also}; the policy wants {want} "
                      "or stricter", {"latest": tier, "best": best, "min_tier": want})


def test_evaluation(ctx: _Ctx, opts: dict) -> RuleResult:
    keys = set(ctx.rec.summary) | set(metric_series(ctx.store, ctx.rec.id))
    hits = sorted(k for k in keys if any(k.startswith(p) for p in opts["prefixes"]))
    return RuleResult("test-evaluation", bool(hits), f"test metrics: {', '.join(hits)}" if hits
                      else f"no metric starts with {', '.join(opts['prefixes'])}", {"keys": hits})


def metrics_complete(ctx: _Ctx, opts: dict) -> RuleResult:
    lost = int(ctx.rec.context.get("lost_points") or 0)
    unflushed = ctx.rec.context.get("unflushed_writers") or []
    ev = {"lost_points": lost, "unflushed_writers": unflushed}
    if not lost and not unflushed:
        return RuleResult("metrics-complete", True, "every metric point logged was stored", ev)
    what = [f"{lost} metric point(s) logged were not stored"] if lost else []
    what += [f"{len(unflushed)} process(es) never reported their metrics stored"] if unflushed else []
    return RuleResult("metrics-complete", False, "; ".join(what), ev)


RULES: dict[str, tuple[Callable[[_Ctx, dict], RuleResult], dict]] = {
    "code-committed": (code_committed, {"allow_recorded_diff": True}),
    "inputs-pinned": (inputs_pinned, {"require_inputs": True}),
    "split-leakage": (split_leakage, {"require_split": False}),
    "seeds-recorded": (seeds_recorded, {"require_seeding_report": True, "require_deterministic": False,
                                        "require_hashseed": False}),
    "environment-complete": (environment_complete, {}),
    "verified": (verified, {"min_tier": "tolerance"}),
    "test-evaluation": (test_evaluation, {"prefixes": ["test/", "test_", "test.", "eval/test"]}),
    "metrics-complete": (metrics_complete, {}),
}
