"""The governance CLI, in-process: users, roles, tokens, audit, keys, attest; clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import Store

runner = CliRunner()
GROUPS = ("audit", "users", "tokens", "roles", "keys", "attest")


def cli(store: Store, *args: str, token: str | None = None) -> object:
    extra = ["--token", token] if token else []
    return runner.invoke(app, ["--store", str(store.root), *extra, *args], catch_exceptions=False)


def test_every_governance_command_has_help() -> None:
    root = typer.main.get_command(app)
    for group in GROUPS:
        sub = root.commands[group]
        assert sub.help
        for name, command in sub.commands.items():
            assert (command.help or "").strip(), f"runlock {group} {name} has no help"
            shown = runner.invoke(app, [group, name, "--help"])
            assert shown.exit_code == 0 and "Usage" in shown.output, (group, name)


def test_users_roles_tokens_and_acting_as_a_token(store: Store) -> None:
    assert cli(store, "users", "add", "ci", "--service").exit_code == 0
    assert cli(store, "roles", "grant", "ci", "viewer", "--project", "bot").exit_code == 0
    issued = json.loads(cli(store, "tokens", "issue", "ci", "--days", "7", "--json").output)
    token = issued["token"]
    who = json.loads(cli(store, "users", "whoami", "--json", token=token).output)
    assert who["name"] == "ci" and who["roles"] == {"bot": "viewer"}
    denied = cli(store, "users", "add", "eve", token=token)
    assert denied.exit_code == 3 and "needs the admin role" in denied.output
    assert "Traceback" not in denied.output and token not in denied.output
    listed = cli(store, "tokens", "list", "--json").output
    assert issued["id"] in listed and token.split("_", 2)[2] not in listed
    assert cli(store, "tokens", "revoke", issued["id"]).exit_code == 0
    refused = cli(store, "users", "whoami", token=token)
    assert refused.exit_code == 3 and "revoked" in refused.output and token not in refused.output
    grants = json.loads(cli(store, "roles", "list", "--json").output)
    assert [(g["identity"], g["project"], g["role"]) for g in grants] == [("ci", "bot", "viewer")]


def test_audit_log_verify_proof_and_offline_check(store: Store, tmp_path: Path) -> None:
    cli(store, "users", "add", "a")
    cli(store, "roles", "grant", "a", "editor")
    entries = json.loads(cli(store, "audit", "log", "--json").output)
    assert [e["action"] for e in entries] == ["user.create", "role.grant"]
    assert json.loads(cli(store, "audit", "log", "--actor", "nobody", "--json").output) == []
    ok = cli(store, "audit", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"]
    assert cli(store, "audit", "checkpoint").exit_code == 0
    assert cli(store, "keys", "export-public", "-o", str(tmp_path / "store.pub")).exit_code == 0
    assert cli(store, "audit", "proof", "2", "-o", str(tmp_path / "p.json")).exit_code == 0
    checked = runner.invoke(app, ["audit", "check-proof", str(tmp_path / "p.json"), "--key", str(tmp_path / "store.pub")])
    assert checked.exit_code == 0 and "entry 2 is in the signed tree" in checked.output
    with store.db.write() as conn:
        conn.exec_driver_sql("UPDATE audit_log SET target = 'user:zed' WHERE seq = 1")
    bad = cli(store, "audit", "verify")
    assert bad.exit_code == 1 and "first bad entry 1" in bad.output


def test_attest_create_verify_and_gate(store: Store, make_world, tmp_path: Path) -> None:  # noqa: ANN001
    w = make_world(store)
    out, pub = tmp_path / "statement.dsse.json", tmp_path / "store.pub"
    made = cli(store, "attest", w.model.ref, "-o", str(out), "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["result"] == "PASSED"
    cli(store, "keys", "export-public", "-o", str(pub))
    ok = runner.invoke(app, ["attest", "verify", str(out), "--key", str(pub), "--root", str(w.repo / "out")])
    assert ok.exit_code == 0 and "2 signed statement(s)" in ok.output
    promote = cli(store, "attest", "gate", w.model.ref, "--attestation", str(out))
    assert promote.exit_code == 0 and "gate passed" in promote.output


@pytest.mark.parametrize("args", [["attest", "verify", "nope.json", "--key", "nope.pub"],
                                  ["audit", "check-proof", "nope.json", "--key", "nope.pub"]])
def test_offline_commands_fail_cleanly_without_a_store(args: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "Traceback" not in result.output and "No runlock store" not in result.output
