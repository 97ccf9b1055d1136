"""A board app over a real store (SQLite or PostgreSQL, from ``db_url``) with one user and one
API token per role, and clients logged in as each: for page tests that read and write the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from daemon.auth import passwords
from daemon.auth.audit import list_entries
from daemon.auth.tokens import create_token
from daemon.auth.users import add_user
from daemon.clock import ManualClock
from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.store.db import open_store, session_scope
from tests.web.conftest import seeded_state
from web.app import create_app

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ROLES = ("viewer", "editor", "admin")
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class StoreBoard:
    """The store, its clock, the tokens by role, and the app over them."""

    engine: Engine
    clock: ManualClock
    tokens: dict[str, str]
    app: Litestar

    def client(self, role: str | None = None) -> TestClient[Litestar]:
        """A client, logged in through the form as ``role`` (anonymous when ``None``). It does
        not run the app's lifespan (the board's Services have none)."""
        client = TestClient(app=self.app)
        if role is not None:
            form = {"username": role, "password": PASSWORD, "_csrf_token": csrf(client)}
            assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client

    def api(self, role: str) -> TestClient[Litestar]:
        """A client that sends ``role``'s bearer token."""
        client = TestClient(app=self.app)
        client.headers.update({"Authorization": f"Bearer {self.tokens[role]}"})
        return client

    def audit(self) -> list[tuple[str, str, str]]:
        """``(actor, action, target)`` of every audit entry but logins, oldest first."""
        with session_scope(self.engine) as session:
            return [
                (e.actor, e.action, e.target)
                for e in reversed(list_entries(session, 500))
                if not e.action.startswith("auth.")
            ]


def csrf(client: TestClient[Litestar]) -> str:
    """The client's CSRF token (fetched from the login page when it has none yet)."""
    if "csrftoken" not in client.cookies:
        assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"]


def form(client: TestClient[Litestar], path: str, **data: Any) -> Any:
    """POST a form with the CSRF token, without following the redirect."""
    return client.post(path, data={**data, "_csrf_token": csrf(client)}, follow_redirects=False)


@contextmanager
def store_board(db_url: str, **web: Any) -> Iterator[StoreBoard]:
    """Open the store at ``db_url``, add the users and tokens, build the app; clean up after."""
    original = passwords.DEFAULT_HASHER
    passwords.DEFAULT_HASHER = FAST_HASHER
    engine = open_store(db_url)
    tokens = {}
    with session_scope(engine) as session:
        for role in ROLES:
            add_user(session, role, PASSWORD, role, now=NOW)
            tokens[role] = create_token(
                session, f"{role}-bot", role, created_by="cli", now=NOW
            ).secret
    clock = ManualClock(NOW)
    state = seeded_state()
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=clock.now,
        readiness=lambda: [],
        title="tcowatch test",
        web=WebConfig(**web),
    )
    board = StoreBoard(engine, clock, tokens, create_app(services))
    try:
        yield board
    finally:
        passwords.DEFAULT_HASHER = original
        engine.dispose()
