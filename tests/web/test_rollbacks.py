"""The rollbacks page and its JSON twin over a real store (SQLite and PostgreSQL): recording,
restoring, live SLA clocks, statistics, refusals, escaping and the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from daemon.auth import passwords
from daemon.auth.audit import list_entries
from daemon.auth.tokens import create_token
from daemon.auth.users import add_user
from daemon.board.rollbacks import seed_demo_rollbacks
from daemon.clock import ManualClock
from daemon.config import RollbacksConfig, WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.store.db import open_store, session_scope
from daemon.store.models import Rollback
from tests.web.conftest import EVIL, seeded_state
from web.app import create_app
from web.controllers.rollbacks import human_duration, sla_policy

NOW = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
POLICY = RollbacksConfig.model_validate({"default_target": "4h", "services": {"checkout": "1h"}})


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "DEFAULT_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@dataclass
class Site:
    engine: Engine
    clock: ManualClock
    tokens: dict[str, str]
    app: Litestar

    def login(self, role: str) -> TestClient[Litestar]:
        client = TestClient(app=self.app)
        form = {"username": role, "password": PASSWORD, "_csrf_token": csrf(client)}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client

    def api(self, role: str = "editor") -> TestClient[Litestar]:
        client = TestClient(app=self.app)
        client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def rollbacks(self) -> list[Rollback]:
        with Session(self.engine) as session:
            return list(session.exec(select(Rollback).order_by(Rollback.id)).all())  # type: ignore[arg-type]

    def audit(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        with Session(self.engine) as session:
            return [
                (e.actor, e.action, e.target, e.details)
                for e in reversed(list_entries(session))
                if e.action.startswith("rollback.")
            ]


def csrf(client: TestClient[Litestar]) -> str:
    if "csrftoken" not in client.cookies:
        assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"]


@pytest.fixture
def site(db_url: str) -> Iterator[Site]:
    engine = open_store(db_url)
    tokens = {}
    with session_scope(engine) as session:
        for role in ("viewer", "editor"):
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
        web=WebConfig(),
    )
    services.rollbacks = POLICY
    yield Site(engine, clock, tokens, create_app(services))
    engine.dispose()


def record_form(client: TestClient[Litestar], **fields: str) -> Any:
    form = {
        "service": "checkout",
        "from_version": "v42",
        "to_version": "v41",
        "reason": "p99 doubled",
        "owner": "oncall",
        "incident_url": "https://inc.example/INC-7",
        "started_at": "",
        "sla_target": "",
        "_csrf_token": csrf(client),
        **fields,
    }
    return client.post("/rollbacks", data=form, follow_redirects=False)


def row_html(page: str, rollback_id: int) -> str:
    match = re.search(rf'<tr id="rollback-{rollback_id}".*?</tr>', page, re.S)
    assert match is not None, f"no row for rollback {rollback_id}"
    return match.group(0)


# -- the page -----------------------------------------------------------------------------------


def test_it_shows_an_empty_page_that_refreshes_itself(site: Site) -> None:
    viewer = site.login("viewer")
    page = viewer.get("/rollbacks")
    assert page.status_code == 200
    assert '<meta http-equiv="refresh" content="30">' in page.text
    assert "No rollbacks." in page.text and "No rollbacks in this period." in page.text
    assert "/static/rollbacks.css" in page.text
    assert "Record a rollback" not in page.text  # a viewer cannot write
    assert "Record a rollback" in site.login("editor").get("/rollbacks").text
    assert viewer.get("/static/rollbacks.css").status_code == 200


def test_it_records_a_rollback_from_the_form_with_the_service_target(site: Site) -> None:
    editor = site.login("editor")
    form = editor.get("/rollbacks/new")
    assert form.status_code == 200
    assert 'name="_csrf_token"' in form.text and 'value="2026-08-20T12:00"' in form.text
    assert "checkout=1h" in form.text and 'placeholder="4h"' in form.text
    response = record_form(editor, started_at="2026-08-20T11:30")
    assert response.status_code == 303
    assert response.headers["location"] == "/rollbacks#rollback-1"
    [stored] = site.rollbacks()
    assert (stored.service, stored.sla_target_seconds, stored.created_by) == (
        "checkout",
        3600,
        "user:editor",
    )
    assert stored.started_at == NOW - timedelta(minutes=30)
    assert (stored.owner, stored.incident_url) == ("oncall", "https://inc.example/INC-7")
    row = row_html(editor.get("/rollbacks").text, 1)
    assert (
        '30m</span> of <span class="target">1h 00m' in row
        and "30m left" in row
        and "on track" in row
    )
    assert 'href="https://inc.example/INC-7"' in row and 'rel="noopener' in row
    [(actor, action, target, details)] = site.audit()
    assert (actor, action, target) == ("user:editor", "rollback.create", "rollback:1")
    assert details["sla_target_seconds"] == 3600 and details["service"] == "checkout"


def test_it_uses_the_default_target_and_a_typed_one(site: Site) -> None:
    editor = site.login("editor")
    assert record_form(editor, service="search").status_code == 303
    assert record_form(editor, service="checkout", sla_target="90m").status_code == 303
    assert [r.sla_target_seconds for r in site.rollbacks()] == [4 * 3600, 90 * 60]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"incident_url": "javascript:alert(1)"}, "incident_url: expected an http"),
        ({"service": ""}, "service: required"),
        ({"started_at": "last tuesday"}, "started_at: expected a date and time"),
        ({"started_at": "2026-08-21T12:00"}, "started_at: is in the future"),
        ({"sla_target": "soon"}, 'sla_target: expected a duration like "4h"'),
        ({"sla_target": "10s"}, "sla_target: expected between 1m and 365d"),
    ],
)
def test_it_shows_the_form_again_naming_the_bad_field(
    site: Site, fields: dict[str, str], message: str
) -> None:
    editor = site.login("editor")
    response = record_form(editor, owner="keep me", **fields)
    assert response.status_code == 400
    assert message.replace('"', "&#34;") in response.text
    assert 'value="keep me"' in response.text
    assert site.rollbacks() == [] and site.audit() == []


def test_it_needs_csrf_and_the_editor_role_to_record(site: Site) -> None:
    editor = site.login("editor")
    no_token = editor.post("/rollbacks", data={"service": "x"}, follow_redirects=False)
    assert no_token.status_code == 403
    viewer = site.login("viewer")
    assert record_form(viewer).status_code == 403
    assert site.rollbacks() == []


def test_it_runs_the_clock_from_the_server_time_and_highlights_breaches(site: Site) -> None:
    editor = site.login("editor")
    record_form(editor, started_at="2026-08-20T11:30")  # checkout, 1 h target
    record_form(editor, service="search", started_at="2026-08-20T11:30")  # 4 h target
    site.clock.advance(timedelta(minutes=20))
    page = editor.get("/rollbacks").text
    assert "sla-at_risk" in row_html(page, 1) and "10m left" in row_html(page, 1)
    site.clock.advance(timedelta(minutes=25))
    page = editor.get("/rollbacks").text
    late = row_html(page, 1)
    assert 'class="rollback open sla-breached"' in late
    assert "breached by 15m" in late and '1h 15m</span> of <span class="target">1h 00m' in late
    assert "2h 45m left" in row_html(page, 2)


def test_it_marks_a_rollback_restored_from_the_list_and_the_detail_page(site: Site) -> None:
    editor = site.login("editor")
    record_form(editor, started_at="2026-08-20T11:00")
    record_form(editor, service="search", started_at="2026-08-20T08:00")
    token = csrf(editor)
    now = editor.post("/rollbacks/1/restore", data={"_csrf_token": token}, follow_redirects=False)
    assert now.status_code == 303 and now.headers["location"] == "/rollbacks#rollback-1"
    detail = editor.get("/rollbacks/2")
    assert detail.status_code == 200 and 'id="restore-rollback"' in detail.text
    early = editor.post(
        "/rollbacks/2/restore",
        data={"_csrf_token": token, "restored_at": "2026-08-20T07:00"},
        follow_redirects=False,
    )
    assert early.status_code == 400 and "restored_at: is before the rollback started" in early.text
    later = editor.post(
        "/rollbacks/2/restore",
        data={"_csrf_token": token, "restored_at": "2026-08-20T09:15"},
        follow_redirects=False,
    )
    assert later.status_code == 303
    again = editor.post("/rollbacks/2/restore", data={"_csrf_token": token})
    assert again.status_code == 409 and "already restored" in again.text
    assert editor.post("/rollbacks/99/restore", data={"_csrf_token": token}).status_code == 404
    first, second = site.rollbacks()
    assert (first.restored_at, second.restored_at) == (
        NOW,
        datetime(2026, 8, 20, 9, 15, tzinfo=UTC),
    )
    page = editor.get("/rollbacks").text
    assert "restored in <span" in row_html(page, 1) and ">met</span>" in row_html(page, 1)
    assert '1h 15m</span> of <span class="target">4h 00m' in row_html(page, 2)
    assert "Restored now" not in page
    assert [a[1:3] for a in site.audit()] == [
        ("rollback.create", "rollback:1"),
        ("rollback.create", "rollback:2"),
        ("rollback.restore", "rollback:1"),
        ("rollback.restore", "rollback:2"),
    ]
    assert site.audit()[2][3]["sla"] == "met"


def test_it_lists_open_rollbacks_first_and_filters_them(site: Site) -> None:
    editor = site.login("editor")
    record_form(editor, service="a", started_at="2026-08-20T06:00")
    record_form(editor, service="b", started_at="2026-08-20T10:00")
    editor.post("/rollbacks/1/restore", data={"_csrf_token": csrf(editor)})
    page = editor.get("/rollbacks").text
    assert page.index('id="rollback-2"') < page.index('id="rollback-1"')
    only_a = editor.get("/rollbacks", params={"service": "a"}).text
    assert 'id="rollback-1"' in only_a and 'id="rollback-2"' not in only_a
    open_only = editor.get("/rollbacks", params={"state": "open"}).text
    assert 'id="rollback-2"' in open_only and 'id="rollback-1"' not in open_only
    first = editor.get("/rollbacks", params={"limit": 1}).text
    assert 'rel="next"' in first and 'id="rollback-1"' not in first
    assert editor.get("/rollbacks", params={"limit": 0}).status_code == 400
    assert editor.get("/rollbacks/42").status_code == 404


def test_it_shows_time_to_restore_statistics_per_service(site: Site) -> None:
    with session_scope(site.engine) as session:
        seed_demo_rollbacks(session, NOW)
    page = site.login("viewer").get("/rollbacks", params={"days": 20}).text
    stats = page[page.index('id="rollback-stats"') :]
    assert "last 20 days" in page
    chat = re.search(r"<tr class=\"stats has-breaches\"><td>chat-api</td>.*?</tr>", stats, re.S)
    assert chat is not None  # two in 20 days: the open one and a restored breach
    assert re.findall(r'<td class="num">([^<]*)</td>', chat.group(0))[:3] == ["2", "1", "1"]
    assert "5h 20m" in chat.group(0)  # its only time to restore
    assert "<td>embeddings</td>" in stats and "<td>reranker</td>" not in stats  # 30 days ago
    assert "all services" in stats


# -- JSON ---------------------------------------------------------------------------------------


def test_it_records_and_restores_through_the_api_with_a_token(site: Site) -> None:
    with site.api("editor") as api:
        created = api.post(
            "/api/v1/rollbacks",
            json={
                "service": "checkout",
                "from_version": "v2",
                "to_version": "v1",
                "started_at": "2026-08-20T10:30:00Z",
                "incident_url": "https://inc.example/1",
            },
        )
        assert created.status_code == 201
        body = created.json()
        assert body["id"] == 1 and body["sla_target_seconds"] == 3600
        assert (body["open"], body["breached"], body["sla"]) == (True, True, "breached")
        assert body["breached_by_seconds"] == 1800 and body["remaining_seconds"] is None
        assert body["created_by"] == "token:editor-bot"
        typed = api.post(
            "/api/v1/rollbacks",
            json={
                "service": "s",
                "from_version": "a",
                "to_version": "b",
                "sla_target_seconds": 600,
            },
        )
        assert typed.json()["sla_target_seconds"] == 600
        restored = api.post("/api/v1/rollbacks/1/restore", json={})
        assert restored.status_code == 200
        assert restored.json()["time_to_restore_seconds"] == 5400
        no_body = api.post("/api/v1/rollbacks/2/restore")
        assert no_body.status_code == 200 and no_body.json()["sla"] == "met"
        assert api.post("/api/v1/rollbacks/1/restore").status_code == 409
        assert api.post("/api/v1/rollbacks/9/restore").status_code == 404
    assert [a[:3] for a in site.audit()] == [
        ("token:editor-bot", "rollback.create", "rollback:1"),
        ("token:editor-bot", "rollback.create", "rollback:2"),
        ("token:editor-bot", "rollback.restore", "rollback:1"),
        ("token:editor-bot", "rollback.restore", "rollback:2"),
    ]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"from_version": "a", "to_version": "b"}, "service"),
        ({"service": "s", "from_version": "a", "to_version": "b", "incident_url": "javascript:x"}, "incident_url"),
        ({"service": "s", "from_version": "a", "to_version": "b", "sla_target_seconds": 10}, "sla_target_seconds"),
        ({"service": "s", "from_version": "a", "to_version": "b", "sla_target_seconds": 10**12}, "sla_target_seconds"),
        ({"service": "s", "from_version": "a", "to_version": "b", "started_at": "soon"}, "started_at"),
        ({"service": "s", "from_version": "a", "to_version": "a"}, "to_version"),
        ({"service": "s", "from_version": "a", "to_version": "b", "started_at": "2027-01-01T00:00:00Z"}, "started_at"),
    ],
)  # fmt: skip
def test_it_answers_400_naming_the_bad_field(site: Site, body: dict[str, Any], key: str) -> None:
    with site.api("editor") as api:
        response = api.post("/api/v1/rollbacks", json=body)
    assert response.status_code == 400, response.text
    assert key in response.text
    assert site.rollbacks() == []


def test_it_refuses_a_restore_time_before_the_start(site: Site) -> None:
    with site.api("editor") as api:
        api.post("/api/v1/rollbacks", json={"service": "s", "from_version": "a", "to_version": "b"})
        response = api.post(
            "/api/v1/rollbacks/1/restore", json={"restored_at": "2026-08-20T11:00:00Z"}
        )
    assert response.status_code == 400
    assert response.json()["extra"] == [
        {"key": "restored_at", "message": "is before the rollback started", "source": "body"}
    ]


def test_it_lists_filters_and_paginates_as_json(site: Site) -> None:
    with session_scope(site.engine) as session:
        seed_demo_rollbacks(session, NOW)
    with site.api("viewer") as api:
        everything = api.get("/api/v1/rollbacks").json()
        assert set(everything) == {"items", "total", "limit", "offset", "as_of"}
        assert (everything["total"], everything["limit"], everything["offset"]) == (5, 50, 0)
        assert [r["open"] for r in everything["items"]] == [True, False, False, False, False]
        assert everything["items"][0]["remaining_seconds"] == 600
        page = api.get("/api/v1/rollbacks", params={"limit": 2, "offset": 2}).json()
        assert [r["id"] for r in page["items"]] == [r["id"] for r in everything["items"][2:4]]
        restored = api.get("/api/v1/rollbacks", params={"open": "false", "service": "chat-api"})
        assert restored.json()["total"] == 2
        assert api.get("/api/v1/rollbacks", params={"open": "true"}).json()["total"] == 1
        one = api.get(f"/api/v1/rollbacks/{everything['items'][0]['id']}")
        assert one.status_code == 200 and one.json()["service"] == "chat-api"
        assert api.get("/api/v1/rollbacks/999").status_code == 404
        assert api.get(f"/api/v1/rollbacks/{2**40}").status_code == 400  # not a 500 on PostgreSQL
        assert api.get("/api/v1/rollbacks", params={"offset": 10**20}).status_code == 400
        for params, name in (
            ({"limit": 501}, "limit"),
            ({"open": "maybe"}, "open"),
            ({"service": "a\x00b"}, "service"),
        ):
            bad = api.get("/api/v1/rollbacks", params=params)
            assert bad.status_code == 400 and name in bad.text, bad.text
        stats = api.get("/api/v1/rollbacks/stats").json()
        assert stats["days"] == 90
        assert [s["service"] for s in stats["services"]] == ["chat-api", "embeddings", "reranker"]
        chat = stats["services"][0]
        assert (chat["rollbacks"], chat["open"], chat["restored"], chat["breaches"]) == (3, 1, 2, 1)
        assert chat["median_restore_seconds"] == (320 + 125) * 60 // 2
        assert stats["overall"]["rollbacks"] == 5
        assert api.get("/api/v1/rollbacks/stats", params={"days": 0}).status_code == 400
        schema = api.get("/schema/openapi.json").json()
        assert "/api/v1/rollbacks/{rollback_id}/restore" in schema["paths"]


def test_it_refuses_writes_from_viewers_and_anonymous_callers(site: Site) -> None:
    body = {"service": "s", "from_version": "a", "to_version": "b"}
    with site.api("viewer") as api:
        assert api.post("/api/v1/rollbacks", json=body).status_code == 403
    with TestClient(app=site.app) as anonymous:
        assert anonymous.post("/api/v1/rollbacks", json=body).status_code == 401
        assert anonymous.get("/api/v1/rollbacks").status_code == 401
    assert site.rollbacks() == []


# -- escaping -----------------------------------------------------------------------------------


def test_it_escapes_everything_people_typed(site: Site) -> None:
    editor = site.login("editor")
    fields = {name: EVIL for name in ("service", "from_version", "reason", "owner")}
    assert record_form(editor, **fields).status_code == 303
    bad_link = record_form(editor, **fields, incident_url=f"https://x.example/{EVIL}")
    assert bad_link.status_code == 400  # brackets are refused in links...
    assert "must be percent-encoded" in bad_link.text
    for html in (editor.get("/rollbacks").text, editor.get("/rollbacks/1").text, bad_link.text):
        assert EVIL not in html  # ...and everything else is escaped
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in editor.get("/rollbacks/new").text


# -- helpers ------------------------------------------------------------------------------------


def test_it_prints_durations_coarsely() -> None:
    assert [human_duration(s) for s in (None, 0, 59, 60, 3599, 3600, 13800, 90000)] == [
        "\u2013", "0s", "59s", "1m", "59m", "1h 00m", "3h 50m", "1d 1h",
    ]  # fmt: skip


def test_it_falls_back_to_the_default_policy(site: Site) -> None:
    bare = Services(
        engine=site.engine,
        state=seeded_state(),
        registry=build_registry(seeded_state()),
        now=site.clock.now,
        readiness=lambda: [],
    )
    assert sla_policy(bare) == RollbacksConfig()
    bare.rollbacks = POLICY
    assert sla_policy(bare).target_for("checkout") == timedelta(hours=1)
