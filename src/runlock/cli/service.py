"""Which ``Service`` a command talks to: the team server when ``RUNLOCK_SERVER`` is set (and no
``--store`` is on the command line), else the store of this folder.

The HTTP client (httpx, msgpack) is imported only when a server is configured, so a local
command starts as fast as before. A command that does not call ``service(ctx)`` opens a local
store through ``plain.store``, which refuses, in one line, while a server is configured: no
command silently acts on a local store instead of the server.
"""

from __future__ import annotations

import importlib

import typer

from runlock.cli import plain
from runlock.cli.group import state
from runlock.remote.interface import Service

_KEY = "runlock.service"


def service(ctx: typer.Context) -> Service:
    """The service this command acts on, made once per command (and closed with it)."""
    root = ctx.find_root()
    if _KEY not in root.meta:
        url = plain.server_for(ctx)
        if url is None:
            local = importlib.import_module("runlock.remote.local")
            root.meta[_KEY] = local.LocalService(plain.store(ctx))
        else:
            client = importlib.import_module("runlock.remote.client")    # httpx: only for a server
            http = importlib.import_module("runlock.remote.http")
            svc = http.HttpService(client.Client(url, state(ctx).token))
            root.call_on_close(svc.close)
            root.meta[_KEY] = svc
    return root.meta[_KEY]


def remote(ctx: typer.Context) -> bool:
    """Is this command talking to a server?"""
    return plain.server_for(ctx) is not None
