"""``runlock ui``: a port that cannot be used is one line and exit status 2, before any serving."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import Store


def test_a_busy_port_is_one_clear_line(store: Store) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["--store", str(store.root.parent), "ui", "--port", str(port)])
    assert result.exit_code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.output and "Pick another port" in result.output
    assert "Traceback" not in result.output


def test_ui_has_help() -> None:
    result = CliRunner().invoke(app, ["ui", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
