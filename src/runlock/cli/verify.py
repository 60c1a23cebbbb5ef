"""Reproduce and verify: ``rerun``, ``compare``, ``variance``, ``verify``, ``check``, ``env``.

Each command calls one function of ``runlock.verify`` and prints its result; a rerun's own
output goes to stderr, so ``--json`` on stdout stays machine-readable.
"""

from __future__ import annotations

from pathlib import Path

import typer

from runlock import verify as v
from runlock.cli import common, runids
from runlock.cli.service import remote, service
from runlock.errors import InvalidInput
from runlock.verify.compare import ATOL, K, RTOL, Output
from runlock.tracking import records
from runlock.verify.envlock import NUMERIC
from runlock.verify.records import TIERS, tier_rank

app = typer.Typer(help="Rerun, compare and verify runs; check them against a policy.", no_args_is_help=True)
env_app = typer.Typer(help="The environment a run recorded: export it pinned, diff it with this one, rebuild it.",
                      no_args_is_help=True)
app.add_typer(env_app, name="env")

RUN_ARG = typer.Argument(..., help="Run id (or a unique prefix).")
IN_PLACE = typer.Option(False, "--in-place/--isolated", help="Run in this checkout (it must be the recorded code) "
                        "instead of a temporary git worktree of the recorded commit and diff.")
REPO = typer.Option(None, "--repo", help="Repository to check the recorded commit out of "
                    "(default: the one the run ran in, else the one here).")
RTOL_OPT = typer.Option(RTOL, "--rtol", help="Relative tolerance for the tolerance tier.")
ATOL_OPT = typer.Option(ATOL, "--atol", help="Absolute tolerance for the tolerance and statistical tiers.")
K_OPT = typer.Option(K, "--k", help="Statistical tier: allowed difference in seed-to-seed standard deviations.")
REQUIRE = typer.Option(None, "--require", help=f"Exit with status 1 unless the tier is this or stricter "
                       f"({', '.join(TIERS)}).")


def _rerunner(ctx: typer.Context):  # noqa: ANN202 - a Store or a RemoteRerunner
    """What a rerun records to: the store here, or the team server (``runlock.remote.rerun``)."""
    if remote(ctx):
        from runlock.remote.rerun import RemoteRerunner    # httpx: only for a server
        return RemoteRerunner(service(ctx))  # type: ignore[arg-type]
    return common.store(ctx)


@app.command("rerun")
def rerun(ctx: typer.Context, run: str = RUN_ARG, in_place: bool = IN_PLACE, repo: Path = REPO,
          keep: bool = typer.Option(False, "--keep", help="Keep the temporary worktree and inputs."),
          as_json: bool = common.JSON_OPTION) -> None:
    """Rerun RUN from its lock (exact code, data, seeds, knobs) as a new run linked to it."""
    source = _rerunner(ctx)
    plan = v.plan_rerun(source, run, isolated=not in_place)
    _print_drift(plan.drift, plan.notes)
    with common.progress("preparing the rerun", False if as_json else None, until_done=True) as tick:
        result = v.rerun(source, run, isolated=not in_place, repo=repo, keep=keep, plan=plan, progress=tick)
    common.emit(result, as_json, lambda r: common.console.print(
        f"run:{r.run_id} reran run:{r.original}: [{_colour(r.status)}]{r.status}[/] (exit status {r.returncode}). "
        f"Compare them with `runlock compare {r.original} {r.run_id}`."))
    if result.status != "finished":
        raise typer.Exit(1)


@app.command("compare")
def compare(ctx: typer.Context, run_a: str = typer.Argument(..., help="First run (the original)."),
            run_b: str = typer.Argument(..., help="Second run (e.g. its rerun)."),
            rtol: float = RTOL_OPT, atol: float = ATOL_OPT, k: float = K_OPT, require: str = REQUIRE,
            no_stitch: bool = typer.Option(False, "--no-stitch", help="Compare a resumed run alone, not stitched "
                                           "onto the runs it continues."),
            as_json: bool = common.JSON_OPTION) -> None:
    """Decide at which tier two runs agree (bitwise, tolerance, statistical, different) and why not better."""
    _check_tier(require)
    result = service(ctx).compare_outputs(run_a, run_b, rtol=rtol, atol=atol, k=k, stitch=not no_stitch)
    common.emit(result, as_json, _render_comparison)
    _gate(result.tier, require)


@app.command("variance")
def variance(ctx: typer.Context, run: str = RUN_ARG,
             seeds: int = typer.Option(5, "--seeds", help="How many reruns, each with another seed."),
             seed_arg: str = typer.Option("--seed", "--seed-arg", help="The script's option that takes the seed."),
             seed_env: bool = typer.Option(False, "--seed-env", help="Change only RUNLOCK_SEED, not the command line."),
             in_place: bool = IN_PLACE, repo: Path = REPO, as_json: bool = common.JSON_OPTION) -> None:
    """Rerun RUN with different seeds and store the spread of its final metrics."""
    source = _rerunner(ctx)
    with common.progress("reruns", False if as_json else None) as tick:
        spread = v.variance(source, run, seeds=seeds, seed_arg=None if seed_env else seed_arg,
                            isolated=not in_place, repo=repo, progress=tick)
    common.emit(spread, as_json, lambda s: common.console.print(common.table(
        f"seed-to-seed spread of run:{s.run_id} over {len(s.seeds)} seeds", ["metric", "mean", "std", "min", "max"],
        [(key, f"{st['mean']:.6g}", f"{st['std']:.3g}", f"{st['min']:.6g}", f"{st['max']:.6g}")
         for key, st in s.stats.items()])))


@app.command("verify")
def verify(ctx: typer.Context,
           run: str = typer.Argument(None, help="Run to verify (leave out with --sample)."),
           reference: Path = typer.Option(None, "--reference", help="Compare the run's outputs with this JSON file."),
           outputs: Path = typer.Option(None, "--outputs", help="With --reference: the outputs file to check "
                                        "(default: the run's artifact named by --artifact)."),
           artifact: str = typer.Option("outputs", "--artifact", help="With --reference: the outputs artifact."),
           sample: int = typer.Option(None, "--sample", help="Audit rehearsal: verify N random historic runs."),
           project: str = typer.Option(None, "--project", "-p", help="With --sample: only this project."),
           since: str = typer.Option(None, "--since", help="With --sample: only runs started on or after DATE."),
           seed: int = typer.Option(None, "--seed", help="With --sample: the sampling seed (default: random, recorded)."),
           history: bool = typer.Option(False, "--history", help="List RUN's verifications instead."),
           in_place: bool = IN_PLACE, repo: Path = REPO, rtol: float = RTOL_OPT, atol: float = ATOL_OPT,
           k: float = K_OPT, require: str = REQUIRE, as_json: bool = common.JSON_OPTION) -> None:
    """Rerun RUN and compare (stored on the run); or check its outputs against a reference; or rehearse an audit."""
    _check_tier(require)
    if sample is not None:
        if remote(ctx):
            raise InvalidInput("`verify --sample` (an audit rehearsal) runs where the store is, not against a "
                               "team server.", hint="Run it on the server's machine with --store PATH, or verify "
                                                    "the runs one by one: `runlock verify RUN`.")
        store = common.store(ctx)
        with common.progress("verifying", False if as_json else None) as tick:
            done = v.rehearse(store, sample, project=project, since=since, seed=seed, isolated=not in_place,
                              repo=repo, rtol=rtol, atol=atol, k=k, progress=tick)
        ids = {} if as_json else runids.labels(store, [x["run"] for x in done.results], wide=False)
        common.emit(done, as_json, lambda r: _render_rehearsal(r, ids))
        worst = max((r["tier"] for r in done.results), key=tier_rank, default="bitwise")
        # a run that can no longer be rerun fails the rehearsal, regressed or not
        _gate(worst, require, fail=bool(done.regressed) or any(r["tier"] == "failed" for r in done.results))
        return
    if run is None:
        raise InvalidInput("Name a run to verify, or pass --sample N.", hint="See `runlock verify --help`.")
    source = _rerunner(ctx)
    if history:
        found = (source.verifications(run) if remote(ctx)
                 else v.verifications_of(source, records.get(source, run).id))
        ids = {} if as_json else runids.shown(service(ctx), [x.rerun_id for x in found if x.rerun_id], wide=False)
        common.emit(found, as_json, lambda f: _render_history(f, ids))
        return
    if reference is not None:
        found = (source.verify_reference(run, reference, outputs=outputs, artifact=artifact) if remote(ctx)
                 else v.verify_reference(source, run, reference, outputs=outputs, artifact=artifact))
    else:
        plan = v.plan_rerun(source, run, isolated=not in_place) if remote(ctx) else None
        _print_drift(plan.drift if plan else v.env_diff(source, run), [])
        with common.progress("preparing the rerun", False if as_json else None, until_done=True) as tick:
            found = v.verify(source, run, isolated=not in_place, repo=repo, rtol=rtol, atol=atol, k=k, progress=tick)
    common.emit(found, as_json, _render_verification)
    _gate(found.tier, require, fail=found.tier == "failed")


@app.command("check")
def check(ctx: typer.Context, target: str = typer.Argument(..., help="Run id, or model:NAME@vN."),
          policy: Path = typer.Option(None, "--policy", help="Policy file (default: runlock-policy.toml or "
                                      ".yaml here or above, else the built-in policy)."),
          as_json: bool = common.JSON_OPTION) -> None:
    """Evaluate the reproducibility checklist on a run or model; exit status 1 if any rule fails."""
    report = service(ctx).check(target, v.load_policy(policy))
    common.emit(report, as_json, _render_check)
    if not report.ok:
        raise typer.Exit(1)


INDEX_URL_OPT = typer.Option(None, "--index-url", help="With --hashes: the index to ask (a PEP 503/691 simple "
                             "API URL; default: PyPI, or PyTorch's for +cuXXX builds).")


@env_app.command("export")
def env_export(ctx: typer.Context, run: str = RUN_ARG,
               output: Path = typer.Option(None, "-o", "--output", help="Write the lock here (default: stdout)."),
               fmt: str = typer.Option("requirements", "--format", help="requirements (pinned pip requirements), "
                                       "pylock (a PEP 751 pylock.toml) or cyclonedx (a CycloneDX JSON SBOM)."),
               container: Path = typer.Option(None, "--container", help="Also write a Dockerfile here that installs "
                                              "the pinned requirements (with --require-hashes when all are hashed)."),
               hashes: bool = typer.Option(False, "--hashes", help="Look up the sha256 of each index distribution's "
                                           "wheel for this platform on the package index now (needs the network; "
                                           "what it cannot find is named and left without a hash)."),
               index_url: str = INDEX_URL_OPT,
               force: bool = common.FORCE_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Write RUN's environment as exactly pinned requirements, a PEP 751 lock or an SBOM (and a container recipe)."""
    if fmt not in ("requirements", "pylock", "cyclonedx"):
        raise InvalidInput(f"--format {fmt!r} is not known; use requirements, pylock or cyclonedx.")
    if container is not None and fmt != "requirements":
        raise InvalidInput("--container goes with --format requirements (the Dockerfile installs that file).")
    if index_url is not None and not hashes:
        raise InvalidInput("--index-url goes with --hashes (it names the index the hashes are looked up on).")
    common.output_file(output, force)
    common.output_file(container, force, option="--container")
    svc = service(ctx)
    found = (v.export_requirements(svc, run, hashes=hashes, index_url=index_url) if fmt == "requirements"
             else v.export_lockfile(svc, run, fmt, hashes=hashes, index_url=index_url))
    if output is not None:
        common.write_output(output, found.text, force)
    if container is not None:
        common.write_output(container, found.container.replace(
            "requirements.lock", output.name if output else "requirements.lock"), force, option="--container")
    if found.unhashed:
        common.err_console.print(f"No hash for {len(found.unhashed)} distribution(s): " + _by_reason(found.unhashed),
                                 highlight=False)
    if as_json or output is None:
        common.emit(found, as_json, lambda f: common.console.out(f.text, end="", highlight=False))
    else:
        common.err_console.print(f"Wrote {found.packages} pinned packages to {output}.")


@env_app.command("diff")
def env_diff(ctx: typer.Context, run: str = RUN_ARG,
             python: Path = typer.Option(None, "--python", help="Compare the environment of this interpreter "
                                         "(e.g. .venv-RUN/bin/python) instead of runlock's own."),
             as_json: bool = common.JSON_OPTION) -> None:
    """Show how this environment (or that of --python) differs from the one RUN recorded."""
    found = v.env_diff(service(ctx), run, python=python)
    common.emit(found, as_json, lambda d: _print_drift(d, [], out=common.console))


@env_app.command("rebuild")
def env_rebuild(ctx: typer.Context, run: str = RUN_ARG,
                output: Path = typer.Option(..., "-o", "--output", help="The new virtual environment's folder."),
                hashes: bool = typer.Option(False, "--hashes", help="Look up the sha256 of each index distribution's "
                                            "wheel on the package index now, as `env export --hashes` does, and "
                                            "install with pip --require-hashes (nothing is built if one has none)."),
                index_url: str = INDEX_URL_OPT,
                lockfile: Path = typer.Option(None, "--pylock", help="Take each wheel's sha256 from this pylock.toml "
                                              "(`env export --format pylock --hashes`, or a bundle's "
                                              "env/RUN/pylock.toml) and install with pip --require-hashes."),
                as_json: bool = common.JSON_OPTION) -> None:
    """Create a venv with exactly the distributions RUN recorded (it needs the recorded Python version)."""
    if index_url is not None and not hashes:
        raise InvalidInput("--index-url goes with --hashes (it names the index the hashes are looked up on).")
    found = v.rebuild(service(ctx), run, output, hashes=hashes, index_url=index_url, lockfile=lockfile)
    common.emit(found, as_json, lambda r: common.console.print(
        f"Rebuilt run:{r.run_id}'s {r.packages} distributions in {r.path} "
        + ("with --require-hashes" + (f" ({r.looked_up} wheel hashes from {'the pylock' if lockfile else 'the index'})."
                                       if r.looked_up else ".")
           if r.require_hashes else
           "pinned by version (not every hash was recorded, so not --require-hashes).")
        + f" Check it: `runlock env diff {r.run_id} --python {r.python}`.", highlight=False))


# -- rendering ------------------------------------------------------------------------------
def _by_reason(unhashed: dict[str, str]) -> str:
    """``a, b (why); c (another reason)``: the names grouped by the reason they have no hash."""
    groups: dict[str, list[str]] = {}
    for name, why in unhashed.items():
        groups.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in groups.items()) + "."


def _print_drift(drift: v.EnvDiff | None, notes: list[str], out=None) -> None:  # noqa: ANN001
    out = out or common.err_console
    if drift is None:
        return
    if not drift.drift:
        out.print("environment: identical to the recorded one; expect [green]bitwise[/] equality.")
    else:
        out.print(common.table(f"environment drift from run:{drift.run_id}", ["group", "field", "recorded", "here"],
                               [(d.group, d.field, d.recorded, d.current) for d in drift.drift]))
        out.print(_expectation(drift), highlight=False)
    for note in notes:
        out.print(f"[yellow]note:[/] {note}")


def _expectation(drift: v.EnvDiff) -> str:
    """What the drift means for the comparison to come, said without overpromising either way."""
    if drift.expectation == "bitwise":
        return ("expect: bitwise. Nothing that changed computes numbers (interpreter, numeric packages, "
                "CUDA, GPU and CPU are as recorded).")
    numeric = sorted({d.group for d in drift.drift if d.group in NUMERIC})
    return (f"expect: bitwise if the run never reaches what changed ({', '.join(numeric)}), else tolerance or "
            "statistical: a different kernel, library version or device can round floating-point results "
            "differently. Comparing the two runs says which happened.")


def _render_comparison(c: v.Comparison) -> None:
    tier = "nothing to compare" if c.tier == "nothing" else c.tier
    common.console.print(f"run:{c.a} vs run:{c.b}: [{_tier_colour(c.tier)}]{tier}[/]")
    for note in c.notes:
        common.console.print(f"note: {note}", highlight=False)
    if c.first_divergence:
        common.console.print(f"first divergence: {common.to_jsonable(c.first_divergence)}")
    rows = [(o.name, o.tier, o.a, o.b) for o in c.outputs if o.tier != "bitwise"]
    if rows:
        common.console.print(common.table("outputs that are not bitwise equal", ["output", "tier", "A", "B"], rows))
    files = [(o.name, f["path"], _file_change(f)) for o in c.outputs for f in (o.detail or {}).get("files", [])]
    if files:
        common.console.print(common.table("files that differ", ["artifact", "file", "how"], files))
    unrecorded = [d for d in c.diagnosis if d["kind"] == "unrecorded"]
    recorded = [d for d in c.diagnosis if d["kind"] != "unrecorded"]
    if recorded:
        common.console.print(common.table("diagnosis: lock fields that differ", ["kind", "field", "A", "B"],
                                          [(d["kind"], d["field"], d["a"], d["b"]) for d in recorded]))
    for d in unrecorded:
        common.console.print(common.styled(f"diagnosis: {d['message']}", "yellow"))


def _file_change(f: dict) -> str:
    """One line saying how a file of an artifact differs."""
    if f["change"] != "differs":
        return f["change"]
    if f.get("kind") == "text":
        return f.get("note") or f"line {f['line']}: {f['a']!r} vs {f['b']!r}"
    if f.get("kind") == "tensors":
        shown = ", ".join(f"{t['name']} ({_tensor_change(t)})" for t in f["tensors"][:3])
        more = f" and {f['tensors_differing'] - 3} more" if f["tensors_differing"] > 3 else ""
        verdict = "within tolerance" if f["within_tolerance"] else "beyond tolerance"
        return f"{f['tensors_differing']} tensor(s) differ, {verdict}: {shown}{more}"
    return f.get("note") or "bytes differ"


def _tensor_change(t: dict) -> str:
    if t["change"] == "values":
        return f"max abs {t['max_abs']:.3g}, max rel {t['max_rel']:.3g}"
    return t["change"] if "a" not in t else f"{t['a']} vs {t['b']}"


def _render_verification(found: v.Verification) -> None:
    common.console.print(f"verification {found.id} of run:{found.run_id} ({found.kind}): "
                         f"[{_tier_colour(found.tier)}]{found.tier}[/]")
    if found.tier == "failed":
        common.console.print(f"[red]{found.report.get('error')}[/] {found.report.get('hint') or ''}")
    elif found.kind == "rerun":
        report = found.report
        _render_comparison(v.Comparison(
            report["a"], report["b"], report["tier"], report["first_divergence"], report["diagnosis"],
            [Output(o["name"], o["tier"], o["a"], o["b"], o.get("detail")) for o in report.get("outputs", [])],
            report.get("tolerances", {}), report.get("notes", [])))
    else:
        bad = [c for c in found.report["cases"] if c["tier"] == "different"]
        common.console.print(f"{found.report['counts']}" + (f"; first mismatches: {bad[:5]}" if bad else ""))


def _render_rehearsal(r: v.Rehearsal, ids: dict[str, str]) -> None:
    common.console.print(common.table(f"rehearsal {r.id} (seed {r.seed}): {r.counts}",
                                      ["run", "tier", "previous", "regressed", "error"],
                                      [(ids.get(x["run"], x["run"]), x["tier"], x["previous"],
                                        "yes" if x["regressed"] else "", x["error"]) for x in r.results]))


def _render_history(found: list[v.Verification], ids: dict[str, str]) -> None:
    common.console.print(common.table(None, ["verification", "when", "kind", "tier", "rerun"],
                                      [(x.id, x.created_at[:16].replace("T", " "), x.kind, x.tier,
                                        ids.get(x.rerun_id, x.rerun_id)) for x in found]))


def _render_check(r: v.CheckReport) -> None:
    common.console.print(common.table(f"{r.target} (run:{r.run_id}) against {r.policy}", ["rule", "result", "evidence"],
                                      [(x.rule, common.styled("pass", "green") if x.passed else common.styled("FAIL", "red"), x.detail)
                                       for x in r.results]))


def _colour(status: str) -> str:
    return "green" if status == "finished" else "red"


def _tier_colour(tier: str) -> str:
    return {"bitwise": "green", "tolerance": "green", "statistical": "yellow"}.get(tier, "red")


def _check_tier(tier: str | None) -> None:
    if tier is not None and tier not in TIERS:
        raise InvalidInput(f"--require {tier!r} is not a tier; use one of {', '.join(TIERS)}.")


def _gate(tier: str, require: str | None, *, fail: bool = False) -> None:
    if fail or (require is not None and tier_rank(tier) > tier_rank(require)):
        raise typer.Exit(1)
