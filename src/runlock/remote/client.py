"""``Client``: the server's ``/api/v1`` as typed calls; HTTP errors become runlock errors here.

Status codes map where they enter (401 → ``NotSignedIn``, 403 → ``Refused``, 404 → ``NotFound``,
400/413/422 → ``InvalidInput``, 409 → ``Conflict``, 5xx and connection failures →
``ServerUnavailable``), so callers see the same error kinds as against a local store.
Objects travel by sha256 only: ``upload`` asks which are missing and streams only those;
``download`` checks the hash of what arrives before it keeps it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack

from runlock.errors import Conflict, InvalidInput, IntegrityError, NotFound, RunlockError, StoreError
from runlock.remote.credentials import normalize_url, server_url, token_for


SEAL_TIMEOUT_S = 600.0


class ServerUnavailable(StoreError):
    """The server did not answer, or answered 5xx: try again later (points stay spooled)."""


class NotSignedIn(RunlockError):
    exit_code = 3


class Refused(RunlockError):
    """403: the same exit status as a local ``PermissionDenied``."""
    exit_code = 3


class Missing(NotFound):
    """404 from the server: its message already says what is missing."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        RunlockError.__init__(self, message, hint=hint)
        self.kind, self.ref = "resource", ""


class Client:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        self.token = token if token is not None else token_for(self.url)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- plumbing ----------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"The runlock server at {self.url} did not answer ({type(e).__name__}).",
                                    hint="Is `runlock server` running there? Check RUNLOCK_SERVER.") from None
        if r.status_code >= 400:
            raise _error(r, self.url)
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content

    def stream_lines(self, path: str, *, params: dict | None = None) -> Iterator[str]:
        """The lines of a streamed answer, as they arrive (an error status raises first)."""
        try:
            with self.http.stream("GET", path, params=params, timeout=600.0) as r:
                if r.status_code >= 400:
                    r.read()
                    raise _error(r, self.url)
                for line in r.iter_lines():
                    if line:
                        yield line
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"The runlock server at {self.url} did not answer ({type(e).__name__}).",
                                    hint="Is `runlock server` running there? Check RUNLOCK_SERVER.") from None

    # -- identity and runs ---------------------------------------------------------------------
    def whoami(self) -> dict:
        return self.call("GET", "/whoami")

    def create_run(self, body: dict) -> dict:
        return self.call("POST", "/runs", json=body)

    def get_run(self, ref: str) -> dict:
        return self.call("GET", f"/runs/{_segment(ref.removeprefix('run:'))}")

    def list_runs(self, **params: Any) -> list[dict]:
        return self.call("GET", "/runs", params={k: v for k, v in params.items() if v is not None})["runs"]

    def metrics(self, ref: str) -> list[dict]:
        return self.call("GET", f"/runs/{_segment(ref.removeprefix('run:'))}/metrics")["metrics"]

    def points(self, ref: str, key: str | None = None) -> list[list]:
        params = {"key": key} if key else {}
        return self.call("GET", f"/runs/{_segment(ref.removeprefix('run:'))}/points", params=params)["points"]

    def send_points(self, run_id: str, rank: int, points: list[list]) -> int:
        body = gzip.compress(msgpack.packb({"rank": rank, "points": points}), compresslevel=1)
        return self.call("POST", f"/runs/{_segment(run_id)}/points", content=body, headers={
            "Content-Type": "application/msgpack", "Content-Encoding": "gzip"})["stored"]

    def finish_run(self, run_id: str, status: str, error: str | None = None, lost_points: int = 0) -> dict:
        """Seal the run (the server hashes every series: allow it time; a retry after a lost
        answer finds the run sealed already and returns it)."""
        body = {"status": status, "error": error, "lost_points": lost_points}
        try:
            return self.call("POST", f"/runs/{_segment(run_id)}/finish", json=body, timeout=SEAL_TIMEOUT_S)
        except ServerUnavailable:
            time.sleep(1)
        try:
            return self.call("POST", f"/runs/{_segment(run_id)}/finish", json=body, timeout=SEAL_TIMEOUT_S)
        except Conflict:
            rec = self.get_run(run_id)
            if rec["status"] in ("finished", "failed"):
                return rec
            raise

    def artifacts(self, run_id: str) -> list[dict]:
        return self.call("GET", f"/runs/{_segment(run_id)}/artifacts")["artifacts"]

    def record_artifact(self, run_id: str, body: dict) -> dict:
        return self.call("POST", f"/runs/{_segment(run_id)}/artifacts", json=body)

    # -- objects --------------------------------------------------------------------------------
    def missing(self, digests: list[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(digests), 5000):
            out += self.call("POST", "/objects/missing", json={"digests": digests[i:i + 5000]})["missing"]
        return out

    def put_object(self, digest: str, path: Path) -> None:
        with open(path, "rb") as f:
            self.call("PUT", f"/objects/{digest}", content=_chunks(f),
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(os.fstat(f.fileno()).st_size)})

    def put_bytes(self, digest: str, data: bytes) -> None:
        self.call("PUT", f"/objects/{digest}", content=data, headers={"Content-Type": "application/octet-stream"})

    def download(self, digest: str, dest: str | Path, *, via: str | None = None) -> Path:
        """Write object ``digest`` to ``dest`` atomically, only if its bytes hash to ``digest``;
        ``via``: the folder artifact's file list that names it (what a project's viewer may read)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                try:
                    with self.http.stream("GET", f"/objects/{digest}", params={"via": via} if via else None) as r:
                        if r.status_code >= 400:
                            r.read()
                            raise _error(r, self.url)
                        for chunk in r.iter_bytes():
                            h.update(chunk)
                            out.write(chunk)
                except httpx.HTTPError as e:
                    raise ServerUnavailable(f"Download of {digest} from {self.url} failed ({type(e).__name__}).") from None
            actual = f"sha256:{h.hexdigest()}"
            if actual != digest:
                raise IntegrityError(f"The server sent bytes that hash to {actual}, not {digest}; nothing was kept.",
                                     expected=digest, actual=actual)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


def connect(url: str | None = None, token: str | None = None) -> Client:
    """A client of ``url`` (default ``RUNLOCK_SERVER``)."""
    url = url or server_url()
    if not url:
        raise InvalidInput("No server given.", hint="Set RUNLOCK_SERVER=http://HOST:PORT or pass the URL.")
    return Client(url, token)


def _segment(text: str) -> str:
    if not text or "/" in text or text in (".", "..") or len(text) > 200:
        raise InvalidInput(f"{text[:80]!r} is not a run id.")
    return text


def _chunks(f, size: int = 1 << 20):  # noqa: ANN001, ANN202
    while chunk := f.read(size):
        yield chunk


def _error(r: httpx.Response, url: str) -> RunlockError:
    try:
        doc = r.json()
        message, hint = doc.get("error") or r.text, doc.get("hint")
    except ValueError:
        message, hint = r.text[:300] or r.reason_phrase, None
    code = r.status_code
    if code == 401:
        return NotSignedIn(message, hint=hint or f"Run `runlock login {url}` or set RUNLOCK_TOKEN.")
    if code == 403:
        return Refused(message, hint=hint or "Ask an admin for a role that allows it (`runlock roles grant`).")
    if code == 404:
        return Missing(message, hint)
    if code == 409:
        return Conflict(message, hint=hint)
    if code < 500:
        return InvalidInput(message, hint=hint)
    return ServerUnavailable(f"The server failed ({code}): {message}", hint=hint)
