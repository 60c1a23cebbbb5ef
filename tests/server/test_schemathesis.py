"""Schemathesis against the served /openapi.json, with a token and without: no 5xx, and every
response conforms to the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ST = shutil.which("st", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize("role", ["admin", "viewer", None])
def test_schemathesis_finds_no_server_error(server, role: str | None, tmp_path: Path) -> None:
    assert ST, "schemathesis is part of the test extra (pip install schemathesis)"
    auth = ["-H", f"Authorization: Bearer {server.tokens[role]}"] if role else []
    r = subprocess.run([ST, "run", f"{server.url}/openapi.json", *auth,
                        "-c", "not_a_server_error,response_schema_conformance,content_type_conformance",
                        "--max-examples", "25",
                        "--generation-deterministic", "--request-timeout", "20"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
