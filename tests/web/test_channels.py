"""The channels page and its JSON twins, over a real store (SQLite and PostgreSQL) and real
local HTTP receivers (``pytest_httpserver``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from daemon.auth import passwords
from daemon.auth.audit import list_entries
from daemon.auth.tokens import create_token
from daemon.auth.users import add_user
from daemon.board.channels import channel_rows
from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.notify.channels.base import Channel
from daemon.notify.channels.config import (
    SlackChannelConfig,
    WebhookChannelConfig,
    build_channel,
)
from daemon.notify.outbox import enqueue
from daemon.services import Services
from daemon.store.db import open_store, session_scope
from daemon.store.models import ChannelState, Outbox
from tests.web.conftest import EVIL, seeded_state
from web.app import create_app

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ROLES = ("viewer", "editor", "admin")
SECRET_PATH = "/hooks/T0SECRET42/B0TOKEN4242/xoxb-very-secret-token"
SIGNING_SECRET = "signing-secret-do-not-show"


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "DEFAULT_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@dataclass
class Board:
    engine: Engine
    tokens: dict[str, str]
    app: Litestar
    channels: dict[str, Channel]
    secrets: tuple[str, ...]

    def client(self, role: str) -> TestClient[Litestar]:
        client = TestClient(app=self.app)
        form = {"username": role, "password": PASSWORD, "_csrf_token": csrf(client)}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client

    def api(self, role: str) -> TestClient[Litestar]:
        client = TestClient(app=self.app)
        client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def health(self, name: str) -> ChannelState | None:
        with Session(self.engine) as session:
            return session.get(ChannelState, name)

    def audit(self) -> list[tuple[str, str, str]]:
        with Session(self.engine) as session:
            return [(e.actor, e.action, e.target) for e in list_entries(session)]

    def assert_no_secret(self, text: str) -> None:
        for secret in self.secrets:
            assert secret not in text
        assert "T0SECRET42" not in text and "xoxb-very-secret-token" not in text


def csrf(client: TestClient[Litestar]) -> str:
    if "csrftoken" not in client.cookies:
        assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"]


@pytest.fixture
def board(db_url: str, httpserver: HTTPServer) -> Iterator[Board]:
    ops_url = httpserver.url_for(SECRET_PATH)
    gone_url = httpserver.url_for("/gone/T0SECRET42/xoxb-very-secret-token")
    configs = [
        WebhookChannelConfig(name="ops", url=SecretStr(ops_url), secret=SecretStr(SIGNING_SECRET)),
        SlackChannelConfig(type="slack", name="chat", url=SecretStr(gone_url)),
    ]
    channels = {c.name: build_channel(c, clock=lambda: NOW) for c in configs}
    engine = open_store(db_url)
    tokens: dict[str, str] = {}
    with session_scope(engine) as session:
        for role in ROLES:
            add_user(session, role, PASSWORD, role, now=NOW)
            tokens[role] = create_token(
                session, f"{role}-bot", role, created_by="cli", now=NOW
            ).secret
        for minutes, name in ((10, "chat"), (4, "chat"), (1, "ops")):
            enqueue(
                session, channel=name, group_key="g", payload={"n": minutes},
                now=NOW - timedelta(minutes=minutes),
            )  # fmt: skip
        sent = enqueue(
            session, channel="ops", group_key="g", payload={}, now=NOW - timedelta(hours=1)
        )
        sent.status = "sent"
        session.add(
            ChannelState(
                name="chat",
                disabled=True,
                last_success_at=NOW - timedelta(days=1),
                last_error_at=NOW - timedelta(minutes=10),
                # a careless message that quotes the URL must still not reach the page
                last_error=f"slack chat: HTTP 404 from {gone_url}: {EVIL}",
            )
        )
    state = seeded_state()
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW,
        readiness=lambda: [],
        title="tcowatch test",
        csrf_secret="test-secret",
        web=WebConfig(external_url="https://board.example/"),
        channels=channels,
        notify_receiver="sre",
    )
    yield Board(engine, tokens, create_app(services), channels, (ops_url, gone_url, SIGNING_SECRET))
    for channel in channels.values():
        getattr(channel, "close", lambda: None)()
    engine.dispose()


# -- reading ------------------------------------------------------------------------------------


def test_it_lists_each_channels_health_and_backlog(board: Board) -> None:
    with Session(board.engine) as session:
        rows = {r.name: r for r in channel_rows(session, board.channels, now=NOW)}
    assert list(rows) == ["chat", "ops"]
    chat, ops = rows["chat"], rows["ops"]
    assert (chat.type, chat.enabled, chat.pending) == ("slack", False, 2)
    assert chat.oldest_pending_age_seconds == 600.0
    assert chat.last_success_at == NOW - timedelta(days=1)
    assert chat.rate_limit_per_minute == 60
    assert (ops.type, ops.enabled, ops.pending, ops.oldest_pending_age_seconds) == (
        "webhook",
        True,
        1,
        60.0,
    )
    assert ops.last_error is None and ops.last_success_at is None

    page = board.client("viewer").get("/channels")
    assert page.status_code == 200
    assert 'id="channel-chat" class="channel disabled"' in page.text
    assert 'id="channel-ops" class="channel enabled"' in page.text
    assert "10m 0s" in page.text and "slack chat: HTTP 404" in page.text
    assert "/static/channels.css" in page.text
    assert "Send a test" not in page.text  # viewers get no write buttons

    body = board.api("viewer").get("/api/v1/channels", params={"limit": 1, "offset": 1}).json()
    assert (body["total"], body["limit"], body["offset"]) == (2, 1, 1)
    assert [(c["name"], c["pending"]) for c in body["items"]] == [("ops", 1)]


def test_it_never_shows_a_channels_url_or_secret(board: Board) -> None:
    page = board.client("admin").get("/channels").text
    api = board.api("viewer").get("/api/v1/channels").text
    for text in (page, api):
        board.assert_no_secret(text)
        assert "<url>" in text or "&lt;url&gt;" in text  # the URL was redacted, not dropped
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert json.loads(api)["items"][0]["last_error"].endswith(EVIL)  # JSON carries it raw


def test_it_needs_a_login_to_read_when_anonymous_reading_is_off(board: Board) -> None:
    with TestClient(app=board.app) as anonymous:
        assert anonymous.get("/api/v1/channels").status_code == 401
        response = anonymous.get("/channels", follow_redirects=False)
        assert response.status_code == 303


# -- test send ----------------------------------------------------------------------------------


def test_it_sends_a_test_notification_and_shows_the_outcome(
    board: Board, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_data("ok")
    editor = board.client("editor")
    response = editor.post(
        "/channels/ops/test", data={"_csrf_token": csrf(editor)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/channels?tested=ops&result=ok#channel-ops"
    (request, _) = httpserver.log[0]
    payload = request.get_json()
    assert payload["receiver"] == "sre"
    assert payload["alerts"][0]["labels"]["alertname"] == "TcowatchTest"
    assert payload["externalURL"] == "https://board.example"
    assert request.headers.get("X-Tcowatch-Signature")
    health = board.health("ops")
    assert health is not None and health.last_success_at == NOW and not health.disabled
    assert ("user:editor", "channel.test", "ops") in board.audit()
    page = editor.get(response.headers["location"]).text
    assert 'id="test-outcome"' in page and "Test notification sent to <strong>ops</strong>" in page
    with Session(board.engine) as session:  # straight to the channel: the outbox is untouched
        assert len(session.exec(select(Outbox)).all()) == 4


def test_it_reports_a_failed_test_send_without_disabling_the_channel(
    board: Board, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_data(
        f"no such hook {SECRET_PATH}", status=404
    )
    api = board.api("editor")
    response = api.post("/api/v1/channels/ops/test")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["permanent"] is True
    assert body["channel"] == "ops" and body["type"] == "webhook"
    assert "HTTP 404" in body["error"]
    board.assert_no_secret(response.text)
    health = board.health("ops")
    assert health is not None and not health.disabled
    assert health.last_error is not None and health.last_error.startswith("test send: webhook ops")
    assert ("token:editor-bot", "channel.test", "ops") in board.audit()
    editor = board.client("editor")
    form = editor.post("/channels/ops/test", data={"_csrf_token": csrf(editor)})
    assert form.status_code == 200  # followed the 303
    assert "Test notification to <strong>ops</strong> failed" in form.text
    board.assert_no_secret(form.text)


def test_it_answers_404_for_an_unknown_channel(board: Board) -> None:
    api = board.api("admin")
    missing = api.post("/api/v1/channels/nope/test")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"] and "chat, ops" in missing.json()["detail"]
    assert api.post("/api/v1/channels/nope/enable").status_code == 404
    admin = board.client("admin")
    assert admin.post("/channels/nope/test", data={"_csrf_token": csrf(admin)}).status_code == 404


# -- re-enable ----------------------------------------------------------------------------------


def test_it_lets_only_admins_re_enable_a_disabled_channel(board: Board) -> None:
    editor = board.client("editor")
    assert (
        editor.post("/channels/chat/enable", data={"_csrf_token": csrf(editor)}).status_code == 403
    )
    assert board.api("editor").post("/api/v1/channels/chat/enable").status_code == 403
    editor_page = editor.get("/channels").text
    assert "an admin can re-enable it" in editor_page and "Re-enable" not in editor_page
    health = board.health("chat")
    assert health is not None and health.disabled

    admin = board.client("admin")
    assert "Re-enable</button>" in admin.get("/channels").text
    response = admin.post(
        "/channels/chat/enable", data={"_csrf_token": csrf(admin)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/channels?enabled=chat#channel-chat"
    health = board.health("chat")
    assert health is not None and not health.disabled
    assert health.last_error is not None  # kept for the board
    assert ("user:admin", "channel.enable", "chat") in board.audit()
    page = admin.get(response.headers["location"]).text
    assert "2 held notifications go out now" in page
    again = board.api("admin").post("/api/v1/channels/chat/enable")
    assert again.status_code == 200
    assert again.json() == {"channel": "chat", "was_disabled": False, "held": 2}
