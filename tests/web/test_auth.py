"""The board's access layer through Litestar's test client: login, sessions, tokens, CSRF,
guards on every route, and the audit log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar, Request, delete, post
from litestar.params import FromPath
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.auth import passwords
from daemon.auth.audit import list_entries, record
from daemon.auth.tokens import create_token, list_tokens, revoke_token
from daemon.auth.users import add_user, get_user, set_password
from daemon.clock import ManualClock
from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.store.db import open_store, session_scope
from tests.web.conftest import EVIL, seeded_state
from tests.web.guard_table import guard_table
from web.app import create_app
from web.auth import audit_write, requires_role

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SECRET = "s" * 40
ROLES = ("viewer", "editor", "admin")
PUBLIC_WRITES = {("POST", "/login"), ("POST", "/logout")}


@post("/api/v1/_probe", status_code=201, sync_to_thread=False)
def api_probe() -> dict[str, str]:
    """An API write with no guard of its own: the app-wide rule must cover it."""
    return {"ok": "yes"}


@delete("/api/v1/_probe/{item_id:int}", status_code=204, sync_to_thread=False)
def api_probe_delete(item_id: FromPath[int]) -> None:
    """A write with a path parameter."""


@post("/_probe/form", status_code=201, sync_to_thread=True)
def form_probe(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A form write that records itself in the audit log."""
    services: Services = request.app.state["probe_services"]
    with session_scope(services.engine) as session:
        audit_write(request, session, "probe.write", "thing", {"note": EVIL})
    return {"ok": "yes"}


@post("/_probe/admin", status_code=201, guards=[requires_role("admin")], sync_to_thread=False)
def admin_probe() -> dict[str, str]:
    """A config-like write: admin only."""
    return {"ok": "yes"}


PROBES = [api_probe, api_probe_delete, form_probe, admin_probe]


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "DEFAULT_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@dataclass
class Board:
    """A store with one user and one token per role, and a way to build apps on it."""

    engine: Engine
    clock: ManualClock
    tokens: dict[str, str]

    def services(self, **web: Any) -> Services:
        state = seeded_state()
        return Services(
            engine=self.engine,
            state=state,
            registry=build_registry(state),
            now=self.clock.now,
            readiness=lambda: [],
            title="tcowatch test",
            web=WebConfig(**web),
        )

    def app(self, **web: Any) -> Litestar:
        services = self.services(**web)
        app = create_app(services, extra_handlers=PROBES)
        app.state["probe_services"] = services
        return app


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    engine = open_store(f"sqlite:///{tmp_path / 'board.db'}")
    tokens = {}
    with session_scope(engine) as session:
        for role in ROLES:
            add_user(session, role, PASSWORD, role, now=NOW)
            tokens[role] = create_token(
                session, f"{role}-bot", role, created_by="cli", now=NOW
            ).secret
    yield Board(engine, ManualClock(NOW), tokens)
    engine.dispose()


@pytest.fixture
def app(board: Board) -> Litestar:
    return board.app()


def client_for(app: Litestar, **kwargs: Any) -> TestClient[Litestar]:
    return TestClient(app=app, **kwargs)


def csrf(client: TestClient[Litestar]) -> str:
    """The CSRF token of ``client`` (fetched from the login page when it has none yet)."""
    if "csrftoken" not in client.cookies:
        assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"]


def login(
    client: TestClient[Litestar], username: str, password: str = PASSWORD, **extra: str
) -> Any:
    form = {"username": username, "password": password, "_csrf_token": csrf(client), **extra}
    return client.post("/login", data=form, follow_redirects=False)


@pytest.fixture
def logged_in(app: Litestar) -> Callable[[str], TestClient[Litestar]]:
    """Clients logged in as a role. They do not run the app's lifespan (the test's own client
    may), as two lifespans of one app at once leave anyio streams open."""

    def make(role: str) -> TestClient[Litestar]:
        client = client_for(app)
        assert login(client, role).status_code == 303
        return client

    return make


def entries(board: Board) -> list[tuple[str, str, str]]:
    with Session(board.engine) as session:
        return [(e.actor, e.action, e.target) for e in reversed(list_entries(session))]


# -- reading ------------------------------------------------------------------------------------


def test_it_sends_anonymous_browsers_to_the_login_form(app: Litestar) -> None:
    with client_for(app) as client:
        page = client.get("/?x=1", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2F%3Fx%3D1"
        api = client.get("/api/v1/overview")
        assert api.status_code == 401
        assert api.headers["www-authenticate"].startswith("Bearer")
        assert "log in" in api.json()["detail"]


def test_it_keeps_probes_metrics_and_static_files_public(app: Litestar) -> None:
    with client_for(app) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/static/board.css", "/login"):
            assert client.get(path).status_code == 200, path


def test_it_opens_reading_to_anonymous_visitors_only_when_configured(board: Board) -> None:
    with client_for(board.app(anonymous_read=True)) as client:
        assert client.get("/").status_code == 200
        assert client.get("/api/v1/overview").status_code == 200
        assert 'href="/login?next=/"' in client.get("/").text
        headers = {"x-csrftoken": csrf(client)}
        assert client.post("/api/v1/_probe").status_code == 401
        assert client.post("/_probe/form", headers=headers).status_code == 401
        assert client.get("/api/v1/audit").status_code == 401


# -- login and sessions -------------------------------------------------------------------------


def test_it_logs_in_with_a_csrf_protected_form_and_a_safe_cookie(
    app: Litestar, board: Board
) -> None:
    with client_for(app) as client:
        form = client.get("/login?next=/api/v1/overview")
        assert 'name="_csrf_token"' in form.text
        assert 'value="/api/v1/overview"' in form.text
        response = login(client, "Editor", next="/api/v1/overview")
        assert response.status_code == 303
        assert response.headers["location"] == "/api/v1/overview"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("tcowatch_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert "Secure" not in cookie
        assert PASSWORD not in cookie and "editor" not in cookie
        page = client.get("/")
        assert page.status_code == 200
        assert '<span id="signed-in">editor' in page.text
        assert 'action="/logout"' in page.text
    assert entries(board) == [("user:editor", "auth.login", "editor")]


def test_it_marks_cookies_secure_over_https_or_when_configured(board: Board) -> None:
    with client_for(board.app(), base_url="https://board.example") as client:
        assert "Secure" in login(client, "viewer").headers["set-cookie"]
        assert client.get("/").status_code == 200
    with client_for(board.app(secure_cookies=True)) as client:  # plain http: a TLS proxy's view
        first = client.get("/login")
        assert "Secure" in first.headers["set-cookie"]  # the CSRF cookie
        token = first.cookies["csrftoken"]
        form = {"username": "viewer", "password": PASSWORD, "_csrf_token": token}
        cookie = {"cookie": f"csrftoken={token}"}
        response = client.post("/login", data=form, headers=cookie, follow_redirects=False)
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_it_refuses_a_login_without_csrf_token(app: Litestar) -> None:
    with client_for(app) as client:
        client.get("/login")
        response = client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert response.status_code == 403
        assert "tcowatch_session" not in response.headers.get("set-cookie", "")


def test_it_gives_one_generic_message_and_never_logs_the_password(
    app: Litestar, board: Board, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with client_for(app) as client:
        wrong = login(client, "admin", "not the password at all")
        unknown = login(client, "nobody", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Invalid username or password." in response.text
        assert "tcowatch_session" not in response.headers.get("set-cookie", "")
    assert 'value="nobody"' in unknown.text
    assert "not the password at all" not in caplog.text
    assert "failed login for 'admin'" in caplog.text
    assert entries(board) == []


def test_it_limits_failed_logins_per_username_and_address(board: Board) -> None:
    app = board.app(login_attempts=3, login_lockout="10m")
    with client_for(app) as client:
        for _ in range(3):
            assert login(client, "admin", "wrong password here").status_code == 401
        blocked = login(client, "admin")  # even the right password
        assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
        assert login(client, "editor").status_code == 303  # another username is not blocked
        board.clock.advance(timedelta(minutes=10))
        assert login(client, "admin").status_code == 303


def test_it_redirects_only_to_local_paths(app: Litestar) -> None:
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:x"):
        with client_for(app) as client:
            assert login(client, "viewer", next=target).headers["location"] == "/"


def test_it_logs_out_and_records_it(app: Litestar, board: Board) -> None:
    with client_for(app) as client:
        login(client, "viewer")
        assert client.post("/logout", follow_redirects=False).status_code == 403  # no CSRF token
        out = client.post("/logout", data={"_csrf_token": csrf(client)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/", follow_redirects=False).status_code == 303
    assert entries(board)[-1] == ("user:viewer", "auth.logout", "viewer")


def test_it_ends_sessions_when_the_password_changes_or_the_user_goes(
    app: Litestar, board: Board
) -> None:
    admin = client_for(app)  # no second lifespan (see logged_in)
    with client_for(app) as alice:
        login(alice, "editor")
        login(admin, "admin")
        with session_scope(board.engine) as session:
            set_password(session, "editor", "another long passphrase")
            get_user(session, "admin").disabled = True
        for client in (alice, admin):
            response = client.get("/", follow_redirects=False)
            assert response.status_code == 303
            cleared = response.headers["set-cookie"]
            assert cleared.startswith("tcowatch_session=null;") and "expires=" in cleared


def test_it_keeps_sessions_across_restarts_only_with_a_session_secret(board: Board) -> None:
    first, second = board.app(session_secret=SECRET), board.app(session_secret=SECRET)
    with client_for(first) as client:
        login(client, "viewer")
        cookie = client.cookies["tcowatch_session"]
    with client_for(second) as client:
        client.cookies.set("tcowatch_session", cookie)
        assert client.get("/api/v1/overview").status_code == 200
    with client_for(board.app()) as client:
        client.cookies.set("tcowatch_session", cookie)
        assert client.get("/api/v1/overview").status_code == 401


# -- bearer tokens and CSRF on writes -----------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_it_accepts_active_bearer_tokens_and_records_their_use(app: Litestar, board: Board) -> None:
    board.clock.advance(timedelta(minutes=5))
    with client_for(app) as client:
        assert (
            client.get("/api/v1/overview", headers=bearer(board.tokens["viewer"])).status_code
            == 200
        )
        assert (
            client.post("/api/v1/_probe", headers=bearer(board.tokens["editor"])).status_code == 201
        )
    with Session(board.engine) as session:
        used = {t.name: t.last_used_at for t in list_tokens(session)}
    assert used == {
        "viewer-bot": NOW + timedelta(minutes=5),
        "editor-bot": NOW + timedelta(minutes=5),
        "admin-bot": None,
    }


def test_it_refuses_bad_tokens_even_where_anonymous_reading_is_open(board: Board) -> None:
    with session_scope(board.engine) as session:
        revoke_token(session, "viewer-bot", now=NOW)
    app = board.app(anonymous_read=True)
    with client_for(app) as client:
        for token in (board.tokens["viewer"], "tcw_" + "A" * 43, "garbage"):
            response = client.get("/api/v1/overview", headers=bearer(token))
            assert response.status_code == 401, token
            assert "revoked" in response.json()["detail"]


def test_it_never_lets_a_session_cookie_write_to_the_api(
    logged_in: Callable[[str], TestClient[Litestar]],
) -> None:
    admin = logged_in("admin")
    assert admin.get("/api/v1/overview").status_code == 200  # reading with the cookie is fine
    assert admin.post("/api/v1/_probe").status_code == 401
    assert admin.post("/api/v1/_probe", headers={"x-csrftoken": csrf(admin)}).status_code == 401
    assert admin.post("/_probe/form", headers={"x-csrftoken": csrf(admin)}).status_code == 201


def test_it_needs_csrf_for_form_writes_and_audits_them(
    logged_in: Callable[[str], TestClient[Litestar]], board: Board
) -> None:
    editor = logged_in("editor")
    assert editor.post("/_probe/form").status_code == 403
    assert editor.post("/_probe/form", data={"_csrf_token": csrf(editor)}).status_code == 201
    with Session(board.engine) as session:
        entry = list_entries(session)[0]
    assert (entry.actor, entry.action, entry.target) == ("user:editor", "probe.write", "thing")
    assert entry.remote == "testclient" and entry.at == NOW


def test_it_keeps_admin_writes_to_admins(
    logged_in: Callable[[str], TestClient[Litestar]], app: Litestar, board: Board
) -> None:
    editor = logged_in("editor")
    assert editor.post("/_probe/admin", headers={"x-csrftoken": csrf(editor)}).status_code == 403
    with client_for(app) as client:
        assert (
            client.post("/_probe/admin", headers=bearer(board.tokens["editor"])).status_code == 403
        )


def test_it_tells_a_browser_why_a_write_was_refused_in_a_page(
    logged_in: Callable[[str], TestClient[Litestar]], app: Litestar, board: Board
) -> None:
    editor = logged_in("editor")
    page = editor.post(
        "/_probe/admin",
        headers={"x-csrftoken": csrf(editor), "accept": "text/html,application/xhtml+xml"},
    )
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "Not allowed" in page.text and "<script" not in page.text
    with client_for(app) as client:
        api = client.post(
            "/_probe/admin", headers={**bearer(board.tokens["editor"]), "accept": "text/html"}
        )
    assert api.status_code == 403 and api.json()["status_code"] == 403


# -- every route --------------------------------------------------------------------------------


def test_it_refuses_anonymous_and_viewer_writes_on_every_route(
    app: Litestar, board: Board, logged_in: Callable[[str], TestClient[Litestar]]
) -> None:
    table = guard_table(app)
    writes = [case for case in table if case.writes]
    assert {(c.method, c.route) for c in writes if c.public} == PUBLIC_WRITES, (
        "a new public write route: add it to PUBLIC_WRITES only if anyone may call it"
    )
    checked = [case for case in writes if not case.public]
    assert len(checked) >= len(PROBES)
    viewer, admin = logged_in("viewer"), logged_in("admin")
    with client_for(app) as anonymous:
        for case in checked:
            name = f"{case.method} {case.route}"
            token = csrf(anonymous)
            refused = anonymous.request(case.method, case.path, headers={"x-csrftoken": token})
            assert refused.status_code == 401, name
            assert anonymous.request(case.method, case.path).status_code in (401, 403), name
            by_session = viewer.request(
                case.method, case.path, headers={"x-csrftoken": csrf(viewer)}
            )
            # a session cookie does not count for API writes (401); elsewhere the role is too low
            assert by_session.status_code == (401 if case.route.startswith("/api/") else 403), name
            by_token = anonymous.request(
                case.method, case.path, headers=bearer(board.tokens["viewer"])
            )
            assert by_token.status_code == 403, name
            allowed = admin.request(
                case.method,
                case.path,
                headers={"x-csrftoken": csrf(admin)}
                | (bearer(board.tokens["admin"]) if case.route.startswith("/api/") else {}),
            )
            assert allowed.status_code not in (401, 403), name


def test_it_refuses_anonymous_reads_on_every_private_route(app: Litestar) -> None:
    with client_for(app) as client:
        for case in guard_table(app):
            if case.writes or case.public:
                continue
            response = client.request(case.method, case.path, follow_redirects=False)
            name = f"{case.method} {case.route}"
            if case.route.startswith("/api/"):
                assert response.status_code == 401, name
            else:
                assert response.status_code == 303, name
                assert response.headers["location"].startswith("/login?next="), name


# -- audit log ----------------------------------------------------------------------------------


def _seed_audit(board: Board, count: int) -> None:
    with session_scope(board.engine) as session:
        for i in range(count):
            actor = "user:editor" if i % 2 else "token:deploy-bot"
            record(
                session, actor, "silence.create", f"s{i}", {"i": i}, at=NOW + timedelta(minutes=i)
            )
        record(session, "cli", "user.add", EVIL, {"why": EVIL}, at=NOW + timedelta(hours=1))


def test_it_shows_the_audit_log_to_admins_only(
    logged_in: Callable[[str], TestClient[Litestar]], board: Board
) -> None:
    _seed_audit(board, 3)
    editor, admin = logged_in("editor"), logged_in("admin")
    assert editor.get("/admin/audit").status_code == 403
    assert editor.get("/api/v1/audit").status_code == 403
    page = admin.get("/admin/audit")
    assert page.status_code == 200
    assert page.text.count("<tr data-id=") == 3 + 1 + 2  # seeded, the CLI's, two logins
    assert EVIL not in page.text and "&lt;script&gt;" in page.text
    assert 'href="/admin/audit"' in page.text


def test_it_paginates_and_filters_the_audit_log_as_json(app: Litestar, board: Board) -> None:
    _seed_audit(board, 7)
    with client_for(app) as client:
        client.headers.update(bearer(board.tokens["admin"]))
        body = client.get(
            "/api/v1/audit", params={"limit": 2, "offset": 1, "action": "silence.create"}
        ).json()
        assert body["total"] == 7 and body["limit"] == 2 and body["offset"] == 1
        assert [e["target"] for e in body["entries"]] == ["s5", "s4"]
        mine = client.get("/api/v1/audit", params={"actor": "user:editor"}).json()
        assert [e["target"] for e in mine["entries"]] == ["s5", "s3", "s1"]
        top = client.get("/api/v1/audit", params={"limit": 1}).json()["entries"][0]
        assert top["actor"] == "cli" and top["details"] == {"why": EVIL}
        bad = client.get("/api/v1/audit", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.text
        page = client.get("/admin/audit", params={"limit": 2, "offset": 2})
        assert 'href="/admin/audit?limit=2&amp;offset=0"' in page.text
        assert 'href="/admin/audit?limit=2&amp;offset=4"' in page.text
