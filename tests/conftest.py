"""Shared fixtures: stores on SQLite and on a real PostgreSQL server, as factories."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runlock.store import Store
from runlock.workspace import init
from tests.pg import PostgresServer, new_database
from tests.s3 import S3Server, set_credentials


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (or RUNLOCK_TEST_PG_URL)."""
    given = os.environ.get("RUNLOCK_TEST_PG_URL")
    if given:
        yield given.rstrip("/")
        return
    server = PostgresServer().start()
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Factory: ``make_store()`` gives a fresh SQLite store in its own folder."""
    made: list[Store] = []

    def factory(name: str = "ws", database: str | None = None) -> Store:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        s = init(d, database=database)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    """A fresh SQLite store."""
    return make_store()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, make_store: Callable[..., Store]) -> Store:
    """The same test on SQLite and on PostgreSQL: the conformance fixture."""
    if request.param == "sqlite":
        return make_store("sqlite")
    base = request.getfixturevalue("pg_base_url")
    return make_store("pg", database=new_database(base))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server process (moto) on loopback for the whole session."""
    set_credentials()
    server = S3Server().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket; returns its s3:// URL with a prefix."""
    import uuid

    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}/store"
