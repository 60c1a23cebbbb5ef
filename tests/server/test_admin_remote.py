"""`runlock users`, `tokens` and `roles` against a team server (issue 14, item 2): an admin runs
a team from a laptop, with the output a local store gives, and the rules stay the domain's: only
an admin manages identities and roles, anyone manages their own tokens and nobody else's."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli.main import app
from tests.server.conftest import Server


def _cli(server: Server, args: list[str], *, token: str | None = None, local: bool = False) -> tuple[int, str]:
    env = {"COLUMNS": "200", "RUNLOCK_STORE": None, "RUNLOCK_SERVER": None if local else server.url,
           "RUNLOCK_TOKEN": None if local else token or server.tokens["admin"]}
    argv = ["--store", str(server.folder.parent), *args] if local else args
    result = CliRunner().invoke(app, argv, env=env, prog_name="runlock")
    return result.exit_code, result.output


def test_an_admin_runs_the_team_from_a_client(server: Server, tmp_path: Path) -> None:
    code, out = _cli(server, ["users", "add", "carol"])
    assert code == 0 and "carol" in out, out
    assert _cli(server, ["roles", "grant", "carol", "editor", "-p", "vision"])[0] == 0
    code, out = _cli(server, ["tokens", "issue", "carol", "--days", "7", "--label", "laptop", "--json"])
    assert code == 0, out
    issued = json.loads(out)
    carol = issued["token"]
    assert issued["identity"] == "carol" and issued["label"] == "laptop" and carol.startswith("rlk_")

    code, out = _cli(server, ["users", "whoami", "--json"], token=carol)
    assert code == 0 and json.loads(out)["roles"] == {"vision": "editor"}, out
    # carol manages her own tokens, and only hers
    code, out = _cli(server, ["tokens", "issue", "carol", "--json"], token=carol)
    assert code == 0, out
    second = json.loads(out)["id"]
    code, out = _cli(server, ["tokens", "list", "--json"], token=carol)
    assert code == 0 and {t["identity"] for t in json.loads(out)} == {"carol"} and len(json.loads(out)) == 2
    code, out = _cli(server, ["tokens", "list", "--user", "admin"], token=carol)
    assert code == 3 and "carol may not token.list on user:admin" in out
    assert _cli(server, ["tokens", "revoke", second], token=carol)[0] == 0
    # and nothing of the admin's
    for args in (["users", "add", "mallory"], ["roles", "grant", "carol", "admin"], ["users", "list"],
                 ["tokens", "issue", "admin"], ["users", "disable", "admin"]):
        code, out = _cli(server, args, token=carol)
        assert code == 3 and "carol may not" in out and "Traceback" not in out, (args, out)
    code, out = _cli(server, ["roles", "list", "--json"], token=carol)
    assert code == 0 and [(g["identity"], g["project"]) for g in json.loads(out)] == [("carol", "vision")]

    # the admin's view, as a local store prints it
    for args in (["users", "list"], ["roles", "list"], ["tokens", "list", "--user", "carol"]):
        assert _cli(server, args) == _cli(server, args, local=True), args
    code, out = _cli(server, ["users", "disable", "carol"])
    assert code == 0
    code, out = _cli(server, ["users", "whoami"], token=carol)
    assert code == 3 and "Traceback" not in out                       # her tokens stop working
    code, out = _cli(server, ["audit", "log", "--actor", "carol", "--json"])
    assert {e["action"] for e in json.loads(out)} == {"token.issue", "token.revoke"}


def test_bad_admin_input_gets_the_local_words(server: Server) -> None:
    for args in (["users", "add", "../x"], ["roles", "grant", "editor", "superuser"],
                 ["tokens", "issue", "editor", "--days", "0"], ["tokens", "revoke", "rlk_0123456789abcdef"]):
        remote, local = _cli(server, args), _cli(server, args, local=True)
        assert remote == local and remote[0] != 0 and "Traceback" not in remote[1], (args, remote, local)
