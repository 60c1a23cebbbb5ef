"""``runlock bundle``: a model's whole upstream in one signed file; verify it offline; import it."""

from __future__ import annotations

from pathlib import Path

import typer

from runlock import bundle, keys
from runlock.cli import common
from runlock.errors import InvalidInput

app = typer.Typer(help="Signed reproduction bundles: export a model's whole upstream, verify it offline, "
                       "import it anywhere.", no_args_is_help=True)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="model:NAME@vN, model:NAME@ALIAS, or a run id (prefix)."),
    output: Path = typer.Option(..., "--output", "-o", help="The bundle file to write (FILE.rlb)."),
    no_data: bool = typer.Option(False, "--no-data", help="Leave the data files out: snapshot and split "
                                 "manifests only (the bundle still verifies; a rerun needs the data)."),
    hashes: bool = typer.Option(False, "--hashes", help="Look up each index distribution's wheel sha256 for "
                                "this platform on the package index now, for the environment locks and SBOMs "
                                "(needs the network; what it cannot find is named in the manifest)."),
    index_url: str = typer.Option(None, "--index-url", help="With --hashes: the index to ask (PEP 503/691 "
                                  "simple API URL; default: PyPI, or PyTorch's for +cuXXX builds)."),
    force: bool = common.FORCE_OPTION,
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Write REF's whole upstream lineage (runs, locks, metrics, code as git bundles, data, each run's
    environment as a PEP 751 lock and a CycloneDX SBOM, audit entries with inclusion proofs, alias
    history, the public key) as one deterministic bundle signed by the store's key."""
    if index_url is not None and not hashes:
        raise InvalidInput("--index-url goes with --hashes (it names the index the hashes are looked up on).")
    out = common.output_file(output, force)
    result = bundle.export(common.store(ctx), ref, out, data=not no_data, hashes=hashes, index_url=index_url)
    for note in result.notes:
        common.err_console.print(f"note: {note}", highlight=False)
    common.emit(result, as_json, lambda r: common.console.print(
        f"Wrote {r.path} ({r.bytes:,} bytes): {len(r.runs)} run(s), {len(r.snapshots)} snapshot(s), "
        f"{len(r.splits)} split(s), {len(r.models)} model version(s), {r.objects} object(s)"
        + (f", {r.omitted} data object(s) left out" if r.omitted else "")
        + f", {r.environment_files} environment file(s)"
        + f", {r.audit_entries} audit entries with proofs, {r.attestations} attestation(s)."))


@app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="The bundle (FILE.rlb)."),
    key: Path = typer.Option(..., "--key", help="The store's public key (PEM, `runlock keys export-public`)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Check a bundle offline, with no store: the manifest's signature, every member's sha256, every
    audit inclusion proof, every attestation (signature and subjects), every sealed record, and that the lineage inside is complete. Names the
    first part that fails and exits 1."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file.", param_hint="PATH")
    result = bundle.verify(path, keys.load_public(key))
    common.emit(result, as_json, _render)
    if not result.ok:
        raise typer.Exit(1)


def _render(r: bundle.BundleCheck) -> None:
    if r.ok:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in r.checked.items())
        common.console.print(f"[green]ok[/]: {r.path} (root {r.root}): {counts}.")
    else:
        common.console.print(f"[bold red]bundle NOT intact[/]: {r.part}: {r.reason}.")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="The bundle (FILE.rlb)."),
    key: Path = typer.Option(None, "--key", help="The store's public key to verify it with (default: the key "
                             "the bundle carries, which proves integrity but not origin)."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Verify a bundle and import it into this store, keeping every id; `runlock rerun RUN` then
    rebuilds code, data and inputs from it alone. Recorded in the audit log."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file.", param_hint="PATH")
    result = bundle.load(common.store(ctx), path, key=keys.load_public(key) if key else None)
    common.emit(result, as_json, lambda r: common.console.print(
        f"Imported {r.bundle}: {len(r.runs)} run(s), {len(r.snapshots)} snapshot(s), {len(r.splits)} split(s), "
        f"{len(r.models)} model version(s), {r.objects} object(s), {len(r.commits)} commit(s), "
        f"{r.alias_moves} alias move(s), {r.attestations} attestation(s) "
        f"({r.new_records} new record(s)); verified with key {r.key_id}"
        + ("" if r.key_given else " (the bundle's own: pass --key to check who signed it)") + "."))
