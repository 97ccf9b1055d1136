"""Shared fixtures: real databases (SQLite always, PostgreSQL when available)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
IN_CI = os.environ.get("CI") == "true"


def require_tool(found: bool, reason: str) -> None:
    """Skip outside CI when a tool is missing; fail in CI, where it must be installed."""
    if found:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


def _postgres_database() -> Iterator[str]:
    base = os.environ.get("TCOWATCH_TEST_POSTGRES_URL")
    require_tool(bool(base), "TCOWATCH_TEST_POSTGRES_URL is not set: no PostgreSQL to test on")
    assert base is not None
    import psycopg

    url = make_url(base)
    name = f"tcowatch_t_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        require_tool(False, f"PostgreSQL at {url.host}:{url.port} is unreachable: {exc}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield from _postgres_database()
