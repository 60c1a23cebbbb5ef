"""``runlock audit``: read the audit log, verify it, and prove an entry is in it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn

from runlock import audit, keys
from runlock.cli import common
from runlock.cli.service import service
from runlock.errors import InvalidInput

app = typer.Typer(help="The tamper-evident audit log: list, verify, checkpoint, prove.", no_args_is_help=True)

KEY_OPTION = typer.Option(None, "--key", help="Public key to trust (PEM from `runlock keys export-public`); "
                                             "default: this store's own key.")


@app.command("log")
def log_(
    ctx: typer.Context,
    target: str = typer.Option(None, "--target", help="Only entries about this target (e.g. model:NAME@v2)."),
    actor: str = typer.Option(None, "--actor", help="Only entries by this identity."),
    action: str = typer.Option(None, "--action", help="Only this action; '*' matches anything (model.*)."),
    limit: int = typer.Option(100, "--limit", "-L", help="At most the last N matching entries (0: all)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """List audit entries, oldest first."""
    entries = service(ctx).audit_log(target=target, actor=actor, action=action, limit=limit or None)
    common.emit(entries, as_json, lambda es: common.console.print(common.table(
        None, ["seq", "time", "actor", "action", "target", "after"],
        [(e.seq, e.time[:19], e.actor, e.action, e.target, common.short(e.after)) for e in es])))


@app.command("verify")
def verify(ctx: typer.Context, key: Path = KEY_OPTION,
           deep: bool = typer.Option(False, "--deep", help="Also recompute every sealed record (run, model "
                                     "version, alias move, snapshot, split) and name each one that changed."),
           as_json: bool = common.JSON_OPTION) -> None:
    """Recompute the hash chain and the Merkle tree, check every signed checkpoint (one is required
    every 256 entries) and every gate.pass's attestation, and name the first entry that was altered,
    removed, reordered or cut off. Exits 1 when the log (or, with --deep, a sealed record) is not intact."""
    svc = service(ctx)
    trusted = keys.load_public(key) if key else None
    with Progress(TextColumn("verifying audit log"), BarColumn(), TextColumn("{task.completed} entries"),
                  console=common.err_console, transient=True,
                  disable=as_json or not common.err_console.is_terminal) as bar:
        task = bar.add_task("verify", total=None)
        report = svc.verify_audit(key=trusted, deep=deep, progress=lambda n: bar.update(task, completed=n))
    common.emit(report, as_json, _render_verify)
    if not report.ok:
        raise typer.Exit(1)


def _render_verify(r: audit.VerifyReport) -> None:
    head = (f"{r.entries} entries, root {common.short(r.root_hash, 23)}; "
            f"{r.checkpoints_checked} checkpoint(s), {r.signed_checkpoints} signed by {common.short(r.key_id, 23)}")
    if r.ok:
        common.console.print(f"[green]ok[/]: {head}.")
        return
    where = f"first bad entry {r.first_bad}" if r.first_bad is not None else f"{len(r.problems)} problem(s)"
    common.console.print(f"[bold red]audit log NOT intact[/]: {where}. {head}.")
    common.console.print(common.table(None, ["entry", "problem", "detail"],
                                      [(p.seq if p.seq is not None else "-", p.kind, p.message) for p in r.problems]))


@app.command("checkpoint")
def checkpoint(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Record and sign a checkpoint (tree size + root) at the log's current size. Run it from cron
    or CI: cutting entries off the end is detectable only against a later checkpoint."""
    cp = service(ctx).audit_checkpoint()
    common.emit(cp, as_json, lambda c: common.console.print(
        f"Checkpoint at {c.tree_size} entries, root {c.root_hash}, signed by {c.key_id}."))


@app.command("proof")
def proof(
    ctx: typer.Context,
    entry: int = typer.Argument(..., help="Sequence number of the entry."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the proof here (default: stdout)."),
    as_json: bool = typer.Option(False, "--json", help="The proof is JSON; with --output, print where it went "
                                 "as JSON too."),
    force: bool = common.FORCE_OPTION,
) -> None:
    """Write an inclusion proof of ENTRY against a signed checkpoint, checkable offline with
    `runlock audit check-proof FILE --key store.pub`."""
    common.output_file(output, force)
    found = service(ctx).audit_proof(entry).to_dict()
    data = json.dumps(found, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(data)
        return
    common.write_output(output, data, force)
    if as_json:
        common.print_json({"entry": entry, "output": str(output), "tree_size": found.get("tree_size")})
    else:
        common.err_console.print(f"Wrote the inclusion proof of entry {entry} to {output}.")


@app.command("check-proof")
def check_proof(
    proof_file: Path = typer.Argument(..., help="A proof written by `runlock audit proof`."),
    key: Path = typer.Option(..., "--key", help="The store's public key (PEM)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Check an inclusion proof offline: no store, no network. Exits 1 when it does not hold."""
    try:
        data = json.loads(proof_file.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise InvalidInput(f"Cannot read the proof {proof_file}: {e}.") from e
    result = audit.check_proof(data, keys.load_public(key))
    common.emit(result, as_json, lambda r: common.console.print(
        f"[green]ok[/]: entry {r.seq} is in the signed tree of {r.tree_size} entries." if r.ok
        else "[bold red]proof does not hold[/]: " + "; ".join(r.reasons)))
    if not result.ok:
        raise typer.Exit(1)
