"""``runlock ui``: the web UI over the store of the current folder, in this process, on loopback."""

from __future__ import annotations

import socket

import typer
import uvicorn

from runlock.cli import common
from runlock.errors import InvalidInput
from runlock.ui import create_app


def ui(
    ctx: typer.Context,
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (the UI has no login: keep it "
                             "on loopback; `runlock server` serves it to a team)."),
) -> None:
    """Browse runs, compare them, and see data, lineage, the registry and the audit log in a browser."""
    store = common.store(ctx)
    _check_free(host, port)
    common.err_console.print(f"runlock ui: {store.root} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(create_app(lambda: store), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)


def _check_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's log when the address cannot be used."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise InvalidInput(f"Cannot listen on {host}:{port}: {e.strerror or e}.",
                           hint="Pick another port with --port.") from None
