"""The web UI on the team server: the same pages as ``runlock ui``, behind a sign-in and the roles.

``pages(store)`` is an ASGI app the server mounts at ``/``, after its ``/api/v1`` routes. A
request acts as the identity of its token, taken from ``Authorization: Bearer rlk_…`` (scripts
reading the ``.json`` twins) or from the ``runlock_token`` cookie that ``POST /login`` sets
(HttpOnly, SameSite=Strict, Secure over https; ``POST /logout`` clears it). Without a valid token a
page redirects to ``/login`` and a ``.json`` twin, an htmx fragment or a bearer request answers
401. Each page's rule in ``runlock.ui.app.RULES`` is then checked with ``authz.allowed`` for that
identity, as the API's routes are: the runs list and compare need ``run.read`` on some project and
list only the projects where it holds; everything on ``*`` (data, lineage, registry, audit) needs a
role on ``*``. Pages read through a copy of the store acting as that identity. ``/static`` (the
vendored scripts and the stylesheet) is public; ``/api/…`` never reaches the pages.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, quote

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from runlock import identity
from runlock.authz import ALL_PROJECTS, allowed, needed_role, role_grants
from runlock.errors import PermissionDenied
from runlock.store import Store
from runlock.ui import create_app
from runlock.ui.app import templates

COOKIE = "runlock_token"
MAX_FORM = 8192
_OPEN = ("/login", "/logout")        # and everything under /static/


def pages(store: Store) -> ASGIApp:
    """The UI over ``store`` for signed-in identities (see the module's docstring)."""
    env = templates()
    ui = create_app(lambda request: request.state.ui_store, authorize=_authorize, projects=_projects)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _login_page(env, request, _next(request.query_params.get("next", "")))
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return _login_page(env, request, "/runs", "Sign in from this site's own page.", 403)
        body = await request.body()
        form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"))
        token, target = (form.get("token") or [""])[0].strip(), _next((form.get("next") or [""])[0])
        try:
            await run_in_threadpool(identity.authenticate, store, token)
        except identity.TokenRefused as e:
            return _login_page(env, request, target, f"{e.message} {e.hint or ''}".strip(), 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    app = Starlette(routes=[Route("/login", login, methods=["GET", "POST"]),
                            Route("/logout", logout, methods=["POST"]), Mount("/", ui)])
    return _SignedIn(app, store)


class _SignedIn:
    """Who is asking: the token of the bearer header or the cookie, or no page at all."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _OPEN or path.startswith("/static/"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if path.startswith("/api/"):      # an API route that does not exist: the API's own answer
            return await JSONResponse({"error": f"No route {path}.", "hint": None}, 404)(scope, receive, send)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
        actor, why = None, "Sign in with a token."
        if token:
            try:
                actor = (await run_in_threadpool(identity.authenticate, self.store, token)).name
            except identity.TokenRefused as e:
                why = e.message
        if actor is None:
            return await _refuse(request, why, bool(bearer))(scope, receive, send)
        state = scope.setdefault("state", {})
        state["ui_store"] = dataclasses.replace(self.store, actor=actor)
        state["signed_in"] = actor
        return await self.app(scope, receive, send)


def _refuse(request: Request, why: str, bearer: bool) -> Response:
    path = request.url.path
    if bearer or path.endswith(".json") or request.headers.get("hx-request") == "true" or request.method != "GET":
        return JSONResponse({"error": why, "hint": "Sign in at /login, or send 'Authorization: Bearer rlk_…'."},
                            status_code=401, headers={"WWW-Authenticate": "Bearer", "HX-Redirect": "/login"})
    wanted = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(wanted, safe='')}", status_code=303)


def _next(target: str) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/login"):
        return "/runs"
    return target


def _login_page(env, request: Request, target: str, message: str = "", status: int = 200) -> HTMLResponse:  # noqa: ANN001
    html = env.get_template("login.html").render(request=request, query=request.query_params, next=target,
                                                 message=message)
    return HTMLResponse(html, status_code=status)


def _authorize(request: Request, action: str, target: str) -> None:
    store: Store = request.state.ui_store
    with store.db.read() as conn:
        ok = allowed(conn, store.actor, action, target)
        if not ok and target == ALL_PROJECTS and action == "run.read":
            ok = bool(_readable(conn, store.actor, action))      # a list of the projects it may read
    if not ok:
        raise PermissionDenied(store.actor, action, target, needed_role(store.actor, action, target, {}))


def _projects(request: Request, action: str) -> set[str] | None:
    store: Store = request.state.ui_store
    with store.db.read() as conn:
        if allowed(conn, store.actor, action, ALL_PROJECTS):
            return None
        return _readable(conn, store.actor, action)


def _readable(conn: sa.Connection, actor: str, action: str) -> set[str]:
    granted = conn.execute(sa.select(role_grants.c.project).where(role_grants.c.identity == actor)).scalars()
    return {p for p in granted if p != ALL_PROJECTS
            and allowed(conn, actor, action, ALL_PROJECTS, {"project": p})}
