"""``runlock server`` (serve a store to a team over HTTP) and ``runlock login URL`` (keep a token)."""

from __future__ import annotations

import typer

from runlock.cli import common
from runlock.remote import client as remote_client
from runlock.remote import credentials
from runlock.server.serve import open_for_serving, serve


def server(
    database: str = typer.Option(None, "--database", help="Metadata database URL (postgresql://…); default: the "
                                 "store of the current folder."),
    objects: str = typer.Option(None, "--objects", help="Object store (s3://BUCKET/PREFIX or a folder)."),
    path: str = typer.Option(None, "--store", help="The store folder the server keeps (default: found from here)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve a store to a team over HTTP (/api/v1, OpenAPI at /openapi.json): tokens and roles enforced here."""
    store = open_for_serving(path, database=database, objects=objects)
    common.err_console.print(f"runlock server: serving {store.root} on http://{host}:{port} (Ctrl-C stops)")
    try:
        serve(store, host, port)
    finally:
        store.close()


def login(
    url: str = typer.Argument(..., help="The server, http://HOST:PORT."),
    token: str = typer.Option(None, "--token", help="The API token (default: read from stdin, not echoed)."),
) -> None:
    """Check a token against a server and keep it for that server (0600 file under ~/.config/runlock)."""
    url = credentials.normalize_url(url)
    if token is None:
        token = typer.prompt("API token", hide_input=True).strip()
    client = remote_client.Client(url, token)
    try:
        who = client.whoami()
    finally:
        client.close()
    path = credentials.save_token(url, token)
    common.err_console.print(f"logged in to {url} as {who.get('name')}; token kept in {path}")
    common.err_console.print(f"use it: export RUNLOCK_SERVER={url}")
