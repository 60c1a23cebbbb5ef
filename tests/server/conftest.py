"""A real `runlock server` (uvicorn on a loopback port, in a subprocess) over a real store, with
one token per role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from runlock import identity
from runlock.workspace import init, open_store
from tests.net import free_port

ROLES = ("viewer", "editor", "maintainer", "admin")


@dataclass
class Server:
    folder: Path
    port: int
    env: dict
    tokens: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    args: tuple = ()                     # more options of `runlock server`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        code = "from runlock.cli.entry import main; main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "server", "--store", str(self.folder),
                                      "--port", str(self.port), *self.args], cwd=self.folder, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def headers(self, role: str | None) -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}


def make_server(folder: Path, *, database: str | None = None, objects: str | None = None,
                env: dict | None = None) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    store = init(folder, database=database, objects=objects)
    tokens = {}
    try:
        for role in ROLES:
            identity.create_identity(store, role)
            identity.grant_role(store, role, role)
            tokens[role] = identity.issue_token(store, role, days=1).token
        identity.create_identity(store, "outsider")           # a grant on another project only
        identity.grant_role(store, "outsider", "admin", "elsewhere")
        tokens["outsider"] = identity.issue_token(store, "outsider", days=1).token
    finally:
        store.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}, **(env or {})}
    args = (*(("--database", database) if database else ()), *(("--objects", objects) if objects else ()))
    return Server(folder / ".runlock", free_port(), env, tokens, args=args)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests that only ask it questions whose answers nothing else
    changes (refusals, 4xx), so each need not start its own."""
    s = make_server(tmp_path_factory.mktemp("shared") / "srv").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path / "srv").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client_env(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    """This process as a client of ``server`` (as the editor), in a folder with no store."""
    work = tmp_path / "client"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    monkeypatch.setenv("RUNLOCK_SERVER", server.url)
    monkeypatch.setenv("RUNLOCK_TOKEN", server.tokens["editor"])
    monkeypatch.setenv("RUNLOCK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return server


def scoped_token(folder: Path, name: str, role: str, project: str) -> str:
    """A token of a new identity ``name`` holding ``role`` on ``project`` only, in the store of
    ``folder`` (a server may be serving it)."""
    store = open_store(folder)
    try:
        identity.create_identity(store, name)
        identity.grant_role(store, name, role, project)
        return identity.issue_token(store, name, days=1).token
    finally:
        store.close()
