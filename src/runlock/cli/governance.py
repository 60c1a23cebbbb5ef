"""``runlock users``, ``tokens``, ``roles``, ``keys`` and ``attest``: who may act, and signed evidence."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from runlock import attest as attest_mod
from runlock import identity, keys as keys_mod
from runlock.cli import common
from runlock.cli.service import service
from runlock.verify import checklist as policy_mod

users = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens (only their hashes are stored).", no_args_is_help=True)
roles = typer.Typer(help="Roles per project: viewer, editor, maintainer, admin.", no_args_is_help=True)
keys = typer.Typer(help="The store's Ed25519 signing key.", no_args_is_help=True)


def _svc(ctx: typer.Context):  # noqa: ANN202
    """The store here or the team server (``users add`` has an option named ``service``)."""
    return service(ctx)


def _render_identities(found: list[identity.Identity]) -> None:
    common.console.print(common.table(None, ["identity", "kind", "roles", "owner", "disabled"], [
        (i.name, i.kind, ", ".join(f"{r} on {p}" for p, r in sorted(i.roles.items())) or "-",
         "yes" if i.owner else "", i.disabled_at or "") for i in found]))


# -- users -------------------------------------------------------------------------------
@users.command("add")
def users_add(ctx: typer.Context, name: str = typer.Argument(..., help="User or service account name."),
              service: bool = typer.Option(False, "--service", help="A service account (CI, a server, a bot)."),
              as_json: bool = common.JSON_OPTION) -> None:
    """Register a user or a service account (admin)."""
    who = _svc(ctx).create_identity(name, "service" if service else "user")
    common.emit(who, as_json, lambda i: _render_identities([i]))


@users.command("list")
def users_list(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """List identities with their roles."""
    common.emit(_svc(ctx).list_identities(), as_json, _render_identities)


@users.command("disable")
def users_disable(ctx: typer.Context, name: str = typer.Argument(..., help="Identity to disable."),
                  as_json: bool = common.JSON_OPTION) -> None:
    """Disable an identity: it loses every role and its tokens are refused (admin)."""
    common.emit(_svc(ctx).disable_identity(name), as_json, lambda i: _render_identities([i]))


@users.command("whoami")
def users_whoami(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Show the identity this command acts as (the OS user, or --token / RUNLOCK_TOKEN)."""
    common.emit(service(ctx).whoami(), as_json, lambda i: _render_identities([i]))


# -- tokens ------------------------------------------------------------------------------
def _render_tokens(found: list[identity.TokenInfo]) -> None:
    common.console.print(common.table(None, ["id", "identity", "label", "status", "expires", "created by"], [
        (f"{identity.TOKEN_PREFIX}{t.id}", t.identity, t.label, t.status(), (t.expires_at or "never")[:19],
         t.created_by) for t in found]))


@tokens.command("issue")
def tokens_issue(ctx: typer.Context, name: str = typer.Argument(..., help="Identity the token acts as."),
                 days: int = typer.Option(identity.DEFAULT_TOKEN_DAYS, "--days", help="Expire after this many days."),
                 no_expiry: bool = typer.Option(False, "--no-expiry", help="Never expire (revoke it by hand)."),
                 label: str = typer.Option("", "--label", help="What the token is for."),
                 as_json: bool = common.JSON_OPTION) -> None:
    """Issue an API token. It is printed once and never stored: keep it now."""
    issued = _svc(ctx).issue_token(name, days=None if no_expiry else days, label=label)
    common.emit(issued, as_json, lambda t: (
        common.console.print(t.token, highlight=False, soft_wrap=True),
        common.err_console.print(f"Token {identity.TOKEN_PREFIX}{t.info.id} for {t.info.identity}, expires "
                                 f"{t.info.expires_at or 'never'}. It is shown only now; use it as RUNLOCK_TOKEN.")))


@tokens.command("list")
def tokens_list(ctx: typer.Context, user: str = typer.Option(None, "--user", help="Only this identity's tokens."),
                as_json: bool = common.JSON_OPTION) -> None:
    """List tokens (ids and status; never the secrets)."""
    common.emit(_svc(ctx).list_tokens(user), as_json, _render_tokens)


@tokens.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: str = typer.Argument(..., help="Token id (rlk_<16 hex>)."),
                  as_json: bool = common.JSON_OPTION) -> None:
    """Revoke a token; it is refused from now on."""
    common.emit(_svc(ctx).revoke_token(token_id), as_json, lambda t: _render_tokens([t]))


# -- roles -------------------------------------------------------------------------------
PROJECT_OPTION = typer.Option(identity.ALL_PROJECTS, "--project", "-p", help="Project ('*': every project).")


def _render_grants(found: list[identity.Grant]) -> None:
    common.console.print(common.table(None, ["identity", "project", "role", "since", "by"], [
        (g.identity, g.project, g.role or "(revoked)", g.granted_at[:19], g.granted_by) for g in found]))


@roles.command("grant")
def roles_grant(ctx: typer.Context, name: str = typer.Argument(..., help="Identity."),
                role: str = typer.Argument(..., help="viewer, editor, maintainer or admin."),
                project: str = PROJECT_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Give an identity a role on a project, replacing its previous one there (admin)."""
    common.emit(_svc(ctx).grant_role(name, role, project), as_json,
                lambda g: _render_grants([g]))


@roles.command("revoke")
def roles_revoke(ctx: typer.Context, name: str = typer.Argument(..., help="Identity."),
                 project: str = PROJECT_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Take an identity's role on a project away (admin)."""
    common.emit(_svc(ctx).revoke_role(name, project), as_json, lambda g: _render_grants([g]))


@roles.command("list")
def roles_list(ctx: typer.Context, user: str = typer.Option(None, "--user", help="Only this identity."),
               as_json: bool = common.JSON_OPTION) -> None:
    """List role grants (the store's owner is an admin without one)."""
    common.emit(_svc(ctx).list_grants(user), as_json, _render_grants)


# -- keys --------------------------------------------------------------------------------
@keys.command("export-public")
def keys_export(ctx: typer.Context,
                output: Path = typer.Option(..., "--output", "-o", help="Where to write the public key (PEM)."),
                force: bool = common.FORCE_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Write the store's public key, for `attest verify` and `audit check-proof` elsewhere."""
    common.output_file(output, force)
    pub = keys_mod.write_public(output, service(ctx).public_key())
    common.emit({"path": str(output), "key_id": pub.keyid}, as_json, lambda d: common.console.print(
        f"Wrote public key {d['key_id']} to {d['path']}."))


@keys.command("show")
def keys_show(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Show the store's public key id and PEM."""
    pub = service(ctx).public_key()
    common.emit({"key_id": pub.keyid, "pem": pub.pem().decode()}, as_json,
                lambda d: common.console.print(f"{d['key_id']}\n{d['pem']}", highlight=False))


# -- attest ------------------------------------------------------------------------------
class _DefaultCreate(TyperGroup):
    """``runlock attest REF -o FILE`` is ``runlock attest create REF -o FILE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


attest = typer.Typer(cls=_DefaultCreate, no_args_is_help=True,
                     help="Signed in-toto attestations (SLSA provenance + checklist result) and the production gate. "
                          "`runlock attest RUN|MODEL -o FILE` is `runlock attest create`.")


@attest.command("create")
def attest_create(ctx: typer.Context, ref: str = typer.Argument(..., help="model:NAME@vN (or @alias), or a run id."),
                  output: Path = typer.Option(..., "--output", "-o", help="Bundle to write (JSON Lines of DSSE envelopes)."),
                  force: bool = common.FORCE_OPTION, as_json: bool = common.JSON_OPTION) -> None:
    """Write a signed attestation bundle for a model version or a run."""
    common.output_file(output, force)
    made = service(ctx).attest(ref, output, policy=policy_mod.load_policy(None))
    common.emit(made, as_json, lambda a: common.console.print(
        f"Attested {a.ref} ({len(a.subjects)} subjects, checklist {a.result}) in {a.path}, signed by {a.key_id}."))


@attest.command("verify")
def attest_verify(file: Path = typer.Argument(..., help="An attestation bundle or envelope."),
                  key: Path = typer.Option(..., "--key", help="The store's public key (PEM)."),
                  root: Path = typer.Option(None, "--root", help="Re-hash every file the attestation names under "
                                            "this folder (a missing one fails the check)."),
                  as_json: bool = common.JSON_OPTION) -> None:
    """Check an attestation offline (no store, no network) and, with --root, re-hash the files it
    names. Exits 1 when a signature or a file does not match, a named file is missing, or the
    bundle lacks its provenance or test-result statement (incomplete)."""
    check = attest_mod.verify_attestation(file, keys_mod.load_public(key), root=root)
    common.emit(check, as_json, _render_check)
    if not check.ok:
        raise typer.Exit(1)


def _render_check(c: attest_mod.AttestationCheck) -> None:
    kinds = ", ".join(s["predicateType"] for s in c.statements)
    if c.ok:
        common.console.print(f"[green]ok[/]: {len(c.statements)} signed statement(s) ({kinds}); "
                             f"{len(c.files)} local file(s) re-hashed and matching.")
        return
    common.console.print("[bold red]attestation does not verify[/]:\n  " + "\n  ".join(c.problems))


@attest.command("gate")
def attest_gate(ctx: typer.Context, model: str = typer.Argument(..., help="model:NAME@vN to promote."),
                attestation: Path = typer.Option(..., "--attestation", help="Its attestation bundle."),
                override: str = typer.Option(None, "--override", help="Admin only: let it through anyway, for this reason."),
                policy: Path = typer.Option(None, "--policy", help="Policy file, as for `runlock check` (default: "
                                            "runlock-policy.toml or .yaml here or above, else the built-in policy)."),
                as_json: bool = common.JSON_OPTION) -> None:
    """Decide (and record) whether a model version may become @production: its attestation must be
    of that exact version with a PASSED checklist, and `runlock check` must pass on it (split leakage
    always checked). Exits 1 when refused."""
    result = service(ctx).gate(model, attestation, policy=policy_mod.load_policy(policy), override=override)
    common.emit(result, as_json, _render_gate)
    if not result.allowed:
        raise typer.Exit(1)


def _render_gate(g: attest_mod.GateResult) -> None:
    if g.passed:
        common.console.print(f"[green]gate passed[/]: {g.model} may be promoted to @production.")
    elif g.overridden:
        common.console.print(f"[yellow]gate overridden[/] for {g.model}: " + "; ".join(g.reasons))
    else:
        common.console.print(f"[bold red]gate refused[/] {g.model}:\n  " + "\n  ".join(g.reasons))
