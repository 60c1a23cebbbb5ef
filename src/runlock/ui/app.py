"""The web UI as an ASGI app: server-rendered pages (Jinja2, autoescaped), each with a JSON twin.

``create_app(open_store, authorize=None)`` builds it. ``open_store(request)`` gives the store a
request reads (``runlock ui`` hands the one store it opened; ``runlock server`` a handle acting
as the signed-in user). ``authorize(request, action, target)`` raises ``PermissionDenied`` (or
any ``RunlockError``) to refuse; it is asked before every page and fragment with the rule that
``RULES`` names for its route, and a route missing from ``RULES`` is refused to everyone (deny by
default). ``None`` allows everything: the local UI of one's own store. ``projects(request, action)``
names the projects whose runs a list may show (``None``: every project); the server gives the
projects where the signed-in identity may read runs, so a viewer of one project lists only its runs.

Every page ``/X`` answers ``/X.json`` with the same data (datasette's habit), so every view is
a shareable URL and scriptable. Errors are a page (or JSON) with the message and its hint and a
4xx status, never a trace.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from runlock._version import __version__
from runlock.errors import (Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, RunlockError,
                            StoreBusy, StoreError)
from runlock.store import Store
from runlock.ui import charts, pages

HERE = Path(__file__).parent
Authorize = Callable[[Request, str, str], None]
Projects = Callable[[Request, str], "set[str] | None"]
# route path -> (action, target template over the path parameters); the permission table
RULES: dict[str, tuple[str, str]] = {
    "/runs": ("run.read", "*"),
    "/runs/{run_id}": ("run.read", "run:{run_id}"),
    "/runs/{run_id}/series.json": ("run.read", "run:{run_id}"),
    "/runs/{run_id}/metrics": ("run.read", "run:{run_id}"),
    "/compare": ("run.read", "*"),          # and each compared run, checked in the route
    "/data": ("snapshot.read", "*"),
    "/lineage": ("lineage.read", "*"),
    "/registry": ("model.read", "*"),
    "/audit": ("audit.read", "*"),
    "/audit/verify": ("audit.verify", "*"),
}
_STATUS = ((PermissionDenied, 403), (NotFound, 404), (Conflict, 409), (IntegrityError, 400), (InvalidInput, 400),
           (StoreBusy, 503), (StoreError, 503))


def templates() -> Environment:
    """The pages' Jinja2 environment (autoescaped); the server renders its login page with it."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = lambda v, n=12: "" if v is None else str(v)[:n]
    env.filters["size"] = _size
    env.filters["value"] = _value
    env.globals["version"] = __version__
    return env


def create_app(open_store: Callable[..., Store], authorize: Authorize | None = None,
               projects: Projects | None = None) -> Starlette:
    env = templates()
    takes_request = bool(inspect.signature(open_store).parameters)
    ui = _Ui(env, (lambda r: open_store(r)) if takes_request else (lambda r: open_store()), authorize, projects)
    routes = [
        Route("/", lambda r: RedirectResponse("/runs")),
        Route("/runs", ui.page("/runs", "runs.html", ui.runs)),
        Route("/runs.json", ui.page("/runs", "runs.html", ui.runs)),
        Route("/runs/{run_id}/series.json", ui.page("/runs/{run_id}/series.json", None, ui.series)),
        Route("/runs/{run_id}/metrics", ui.page("/runs/{run_id}/metrics", "metrics.html", _metrics)),
        Route("/runs/{run_id}/metrics.json", ui.page("/runs/{run_id}/metrics", "metrics.html", _metrics)),
        Route("/runs/{run_id}", ui.page("/runs/{run_id}", "run.html", _run)),
        Route("/compare", ui.page("/compare", "compare.html", ui.compare)),
        Route("/compare.json", ui.page("/compare", "compare.html", ui.compare)),
        Route("/data", ui.page("/data", "data.html", _data)),
        Route("/data.json", ui.page("/data", "data.html", _data)),
        Route("/lineage", ui.page("/lineage", "lineage.html", _lineage)),
        Route("/lineage.json", ui.page("/lineage", "lineage.html", _lineage)),
        Route("/registry", ui.page("/registry", "registry.html", _registry)),
        Route("/registry.json", ui.page("/registry", "registry.html", _registry)),
        Route("/audit", ui.page("/audit", "audit.html", _audit)),
        Route("/audit.json", ui.page("/audit", "audit.html", _audit)),
        Route("/audit/verify", ui.page("/audit/verify", "verify.html", _verify), methods=["POST"]),
        Route("/audit/verify.json", ui.page("/audit/verify", "verify.html", _verify), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)


class _Ui:
    def __init__(self, env: Environment, store_of: Callable[[Request], Store], authorize: Authorize | None,
                 projects: Projects | None) -> None:
        self.env, self.store_of, self.authorize, self.projects = env, store_of, authorize, projects
        self.cache = charts.SeriesCache()

    def allow(self, request: Request, rule: str) -> None:
        if rule not in RULES:
            raise PermissionDenied("?", "use", request.url.path, "a route in the UI's permission table")
        action, target = RULES[rule]
        self.check(request, action, target.format(**{k: _plain(v) for k, v in request.path_params.items()}))

    def check(self, request: Request, action: str, target: str) -> None:
        if self.authorize is not None:
            self.authorize(request, action, target)

    def page(self, rule: str, template: str | None, build: Callable[[Request, Store], dict]) -> Callable:
        def endpoint(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
            as_json = template is None or request.url.path.endswith(".json")
            try:
                self.allow(request, rule)
                data = build(request, self.store_of(request))
            except RunlockError as e:
                return self.error(request, e, as_json)
            if as_json:
                return JSONResponse(data)
            partial = request.headers.get("hx-request") == "true" and template in ("verify.html", "metrics.html")
            html = self.env.get_template(template).render(data=data, request=request, query=request.query_params,
                                                          partial=partial)
            return HTMLResponse(html)
        return endpoint

    def runs(self, request: Request, store: Store) -> dict:
        q = request.query_params
        columns = [c for text in q.getlist("col") for c in text.split(",")]
        readable = self.projects(request, "run.read") if self.projects is not None else None
        return pages.runs_page(store, where=q.get("where", ""), sort=q.get("sort", ""), project=q.get("project", ""),
                               status=q.get("status", ""), after=q.get("after", ""), limit=_int(request, "limit", 50),
                               columns=columns, projects=readable)

    def compare(self, request: Request, store: Store) -> dict:
        refs = request.query_params.getlist("run")
        for ref in refs:
            self.check(request, "run.read", f"run:{ref}")
        return pages.compare_page(store, refs, all_rows=request.query_params.get("all") == "1")

    def series(self, request: Request, store: Store) -> dict:
        key = request.query_params.get("key", "")
        if not key:
            raise InvalidInput("Name the metric: ?key=NAME.")
        return pages.series_data(store, request.path_params["run_id"], key, start=_int(request, "start", None),
                                 end=_int(request, "end", None), buckets=_int(request, "buckets", charts.BUCKETS),
                                 cache=self.cache)

    def error(self, request: Request, e: RunlockError, as_json: bool) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(e, kind)), 400)
        message, hint = str(e), getattr(e, "hint", None)
        if as_json:
            return JSONResponse({"error": message, "hint": hint}, status_code=status)
        html = self.env.get_template("error.html").render(message=message, hint=hint, status=status,
                                                          request=request, query=request.query_params)
        return HTMLResponse(html, status_code=status)


def _plain(value: str) -> str:
    return value.removesuffix(".json")


def _int(request: Request, name: str, default: int | None) -> int | None:
    text = request.query_params.get(name, "")
    if not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {text!r}.") from None


def _run(request: Request, store: Store) -> dict:
    return pages.run_page(store, _plain(request.path_params["run_id"]))


def _metrics(request: Request, store: Store) -> dict:
    return pages.metrics_summary(store, _plain(request.path_params["run_id"]))


def _data(request: Request, store: Store) -> dict:
    q = request.query_params
    return pages.data_page(store, old=q.get("old", ""), new=q.get("new", ""), split=q.get("split", ""))


def _lineage(request: Request, store: Store) -> dict:
    q = request.query_params
    return pages.lineage_page(store, q.get("entity", ""), direction=q.get("direction", "upstream"),
                              depth=_int(request, "depth", 10))


def _registry(request: Request, store: Store) -> dict:
    return pages.registry_page(store, request.query_params.get("name", ""))


def _audit(request: Request, store: Store) -> dict:
    q = request.query_params
    return pages.audit_page(store, target=q.get("target", ""), actor=q.get("actor", ""), action=q.get("action", ""),
                            limit=_int(request, "limit", 100), before=_int(request, "before", None))


def _verify(request: Request, store: Store) -> dict:
    return pages.audit_verify(store)


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)
