"""Security: roles decide who may write, through the one check in every audited write; tokens
are refused once revoked or expired; a token never appears in clear anywhere."""

from __future__ import annotations

import sqlalchemy as sa
import pytest

import runlock
from runlock import audit, authz, identity, registry
from runlock.data import create_snapshot
from runlock.errors import PermissionDenied
from runlock.identity import TokenRefused
from runlock.store import METADATA, Store


def test_a_viewer_cannot_create_register_or_promote(any_store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(any_store)
    viewer = w.as_role("viewer")
    assert viewer.actor == "viewer-user"
    before = len(audit.log(any_store, limit=None))
    with pytest.raises(PermissionDenied, match="editor"):
        runlock.start_run(project="bot", store=viewer)
    with pytest.raises(PermissionDenied):
        create_snapshot(viewer, w.repo / "data", name="rows2")
    with pytest.raises(PermissionDenied, match="maintainer"):
        registry.register(viewer, w.run_id, "adapter", "other")
    with pytest.raises(PermissionDenied, match="admin"):
        registry.set_alias(viewer, w.model.ref, "production", reason="ship")
    assert len(audit.log(any_store, limit=None)) == before        # a refused write leaves nothing
    assert [m.version for m in registry.list_models(any_store, "other")] == []
    viewer.close()


def test_a_viewer_may_read_a_model_and_the_read_is_audited(store: Store, make_world, tmp_path) -> None:  # noqa: ANN001
    any_store = store
    w = make_world(store)
    viewer = w.as_role("viewer")
    registry.get(viewer, w.model.ref, tmp_path / "dl")
    last = audit.log(any_store, limit=1)[0]
    assert (last.action, last.actor, last.target) == ("model.read", "viewer-user", w.model.ref)
    viewer.close()


def test_an_editor_creates_runs_but_cannot_register_or_promote(store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(store)
    editor = w.as_role("editor")
    with runlock.start_run(project="bot", store=editor) as run:
        run.log({"loss": 1.0}, step=0)
        run.log_artifact(w.model_dir, name="adapter", kind="model")
    with pytest.raises(PermissionDenied, match="maintainer"):
        registry.register(editor, run.id, "adapter", "x")
    with pytest.raises(PermissionDenied, match="admin"):
        registry.set_alias(editor, w.model.ref, "production", reason="ship")
    editor.close()


def test_a_maintainer_moves_staging_but_not_production(store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(store)
    m = w.as_role("maintainer")
    assert registry.set_alias(m, w.model.ref, "staging", reason="try").to_version == w.model.version
    with pytest.raises(PermissionDenied, match="admin"):
        registry.set_alias(m, w.model.ref, "production", reason="ship")
    with pytest.raises(PermissionDenied, match="admin"):
        identity.grant_role(m, "viewer-user", "admin")
    m.close()


def test_roles_are_scoped_to_projects(store: Store) -> None:
    identity.create_identity(store, "pat")
    identity.grant_role(store, "pat", "editor", project="alpha")
    store.actor = "pat"
    with runlock.start_run(project="alpha", store=store):
        pass
    with pytest.raises(PermissionDenied, match="project beta"):
        runlock.start_run(project="beta", store=store)
    with store.db.read() as conn:
        assert authz.role_of(conn, "pat", "alpha") == "editor"
        assert authz.role_of(conn, "pat", "beta") is None


def test_an_os_user_who_did_not_create_the_store_has_no_role(store: Store) -> None:
    store.actor = "stranger"
    with pytest.raises(PermissionDenied):
        runlock.start_run(project="p", store=store)


def test_a_disabled_identity_loses_its_roles_and_tokens(store: Store) -> None:
    identity.create_identity(store, "ex")
    identity.grant_role(store, "ex", "admin")
    token = identity.issue_token(store, "ex").token
    identity.grant_role(store, "ex", "editor", project="bot")
    identity.disable_identity(store, "ex")
    assert identity.list_grants(store, "ex") == []   # `roles list` no longer shows a role it lost
    assert identity.get_identity(store, "ex").roles == {}
    revoked = audit.log(store, target="user:ex", action="role.revoke")
    assert sorted(e.details["previous"] for e in revoked) == ["admin", "editor"]   # each loss is audited
    with pytest.raises(TokenRefused, match="disabled"):
        runlock.open_store(store.root, token=token)
    store.actor = "ex"
    with pytest.raises(PermissionDenied):
        identity.create_identity(store, "new")


def test_a_revoked_or_expired_token_is_refused(any_store: Store) -> None:
    identity.create_identity(any_store, "ci", "service")
    identity.grant_role(any_store, "ci", "editor")
    revoked, expired = identity.issue_token(any_store, "ci"), identity.issue_token(any_store, "ci", days=1)
    assert runlock.open_store(any_store.root, token=revoked.token).actor == "ci"
    identity.revoke_token(any_store, revoked.info.id)
    with pytest.raises(TokenRefused, match="revoked"):
        runlock.open_store(any_store.root, token=revoked.token)
    with any_store.db.write() as conn:     # a day later
        conn.execute(identity.tokens.update().where(identity.tokens.c.id == expired.info.id)
                     .values(expires_at="2000-01-01T00:00:00.000000Z"))
    with pytest.raises(TokenRefused, match="expired"):
        runlock.open_store(any_store.root, token=expired.token)
    wrong_secret = expired.token[:-4] + ("aaaa" if not expired.token.endswith("aaaa") else "bbbb")
    with pytest.raises(TokenRefused, match="unknown"):
        identity.authenticate(any_store, wrong_secret)
    with pytest.raises(TokenRefused, match="malformed"):
        identity.authenticate(any_store, "hunter2")


def test_the_token_env_var_is_honoured(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    identity.create_identity(store, "bot", "service")
    monkeypatch.setenv("RUNLOCK_TOKEN", identity.issue_token(store, "bot").token)
    s = runlock.open_store(store.root)
    assert s.actor == "bot"
    s.close()


def test_anyone_may_manage_their_own_tokens_but_not_others(store: Store) -> None:
    for name in ("u1", "u2"):
        identity.create_identity(store, name)
        identity.grant_role(store, name, "viewer")
    other = identity.issue_token(store, "u2")
    store.actor = "u1"
    mine = identity.issue_token(store, "u1")
    identity.revoke_token(store, mine.info.id)
    with pytest.raises(PermissionDenied):
        identity.revoke_token(store, other.info.id)
    with pytest.raises(PermissionDenied):
        identity.issue_token(store, "u2")


def test_a_token_never_appears_in_clear(any_store: Store, make_world) -> None:  # noqa: ANN001
    w = make_world(any_store)
    secrets_ = list(w.tokens.values())
    identity.revoke_token(any_store, secrets_[0].split("_")[1])
    try:
        runlock.open_store(any_store.root, token=secrets_[0])
    except TokenRefused as e:
        message = str(e)
    assert secrets_[0].split("_")[1] in message            # names the token by its public id
    dump = []
    with any_store.db.read() as conn:
        for table in METADATA.sorted_tables:
            if sa.inspect(conn).has_table(table.name):
                dump += [repr(tuple(r)) for r in conn.execute(sa.select(table))]
    text = "\n".join(dump) + message
    if any_store.db.is_sqlite:
        text += (any_store.root / "runlock.db").read_bytes().decode("latin-1")
    for tok in secrets_:
        secret = tok.split("_", 2)[2]
        assert secret not in text and tok not in text
    assert (tok_hash := identity.list_tokens(any_store)[0]) and "secret" not in tok_hash.to_dict()


def test_the_system_actor_may_only_mark_runs_crashed(store: Store) -> None:
    with store.db.read() as conn:
        assert authz.allowed(conn, authz.SYSTEM_ACTOR, "run.crashed", "run:x")
        assert not authz.allowed(conn, authz.SYSTEM_ACTOR, "run.create", "run:x")
        assert not authz.allowed(conn, authz.SYSTEM_ACTOR, "role.grant", "user:x")


def test_the_action_table(store: Store) -> None:
    need = lambda action, target="x", **d: authz.needed_role("me", action, target, d)  # noqa: E731
    assert need("model.read") == "viewer" and need("artifact.read") == "viewer"
    assert need("run.create") == need("snapshot.create") == need("split.create") == "editor"
    assert need("model.register") == need("model.alias", "model:m@staging") == "maintainer"
    assert need("model.alias", "model:m@production") == "admin"
    assert need("model.alias.import", "model:m@staging") == "maintainer"   # a bundle's moves, as a move here
    assert need("model.alias.import", "model:m@production") == "admin"
    assert need("model.delete") == need("store.gc") == need("role.grant") == need("gate.override") == "admin"
    assert need("token.issue", identity="me") == "viewer" and need("token.issue", identity="you") == "admin"
