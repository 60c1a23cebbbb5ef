"""``runlock ui``: the web UI over the store of the current folder, in this process, on loopback."""

from __future__ import annotations

import typer
import uvicorn

from runlock.cli import common
from runlock.ui import create_app


def ui(
    ctx: typer.Context,
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (the UI has no login: keep it "
                             "on loopback; `runlock server` serves it to a team)."),
) -> None:
    """Browse runs, compare them, and see data, lineage, the registry and the audit log in a browser."""
    store = common.store(ctx)
    common.err_console.print(f"runlock ui: {store.root} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(create_app(lambda: store), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)
