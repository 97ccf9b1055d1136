"""The alerts and silences page and its JSON twins, over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

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
from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.store.db import open_store, session_scope
from daemon.store.models import Alert, Silence
from tests.web.conftest import EVIL, seeded_state
from web.app import create_app

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ROLES = ("viewer", "editor", "admin")
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "DEFAULT_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def _alert(fingerprint: str, name: str, state: str, minutes: int, **labels: str) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        alertname=name,
        labels={"alertname": name, **labels},
        annotations={"summary": f"{name} for {minutes + 30}m", "runbook_url": "https://x/rb"},
        state=state,
        value=0.125,
        active_at=NOW - timedelta(minutes=minutes + 30),
        resolved_at=NOW - timedelta(minutes=minutes) if state == "inactive" else None,
    )


@dataclass
class Board:
    engine: Engine
    tokens: dict[str, str]
    app: Litestar

    def client(self, role: str | None = None) -> TestClient[Litestar]:
        """A client logged in as ``role`` (anonymous for ``None``); no lifespan."""
        client = TestClient(app=self.app)
        if role is not None:
            form = {"username": role, "password": PASSWORD, "_csrf_token": csrf(client)}
            assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client

    def api(self, role: str) -> TestClient[Litestar]:
        client = TestClient(app=self.app)
        client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def silences(self) -> list[Silence]:
        with Session(self.engine) as session:
            return list(session.exec(select(Silence)).all())

    def audit(self) -> list[tuple[str, str, str]]:
        with Session(self.engine) as session:
            return [(e.actor, e.action, e.target) for e in list_entries(session)]


def csrf(client: TestClient[Litestar]) -> str:
    if "csrftoken" not in client.cookies:
        assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"]


@pytest.fixture
def board(db_url: str) -> Iterator[Board]:
    engine = open_store(db_url)
    tokens: dict[str, str] = {}
    with session_scope(engine) as session:
        for role in ROLES:
            add_user(session, role, PASSWORD, role, now=NOW)
            tokens[role] = create_token(
                session, f"{role}-bot", role, created_by="cli", now=NOW
            ).secret
        session.add(_alert("f1", "GPUIdle", "firing", 0, severity="warning", gpu="1", team=EVIL))
        session.add(_alert("f2", "BudgetBurn", "firing", 60, severity="critical"))
        session.add(_alert("p1", "CacheHitLow", "pending", 0, severity="warning"))
        session.add(_alert("r1", "GPUIdle", "inactive", 5, severity="warning", gpu="2"))
        session.add(_alert("r2", "GPUIdle", "inactive", 30, severity="warning", gpu="3"))
        evil = _alert("e1", "Injected", "firing", 1, note=EVIL)
        evil.annotations = {"summary": EVIL, "runbook_url": "javascript:alert(1)"}
        session.add(evil)
    state = seeded_state()
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW,
        readiness=lambda: [],
        title="tcowatch test",
        csrf_secret="test-secret",
        web=WebConfig(),
    )
    yield Board(engine, tokens, create_app(services))
    engine.dispose()


@pytest.fixture
def editor(board: Board) -> TestClient[Litestar]:
    return board.client("editor")


def _rows(html: str) -> list[str]:
    """The fingerprints of the alert rows on the page, in order."""
    marker = 'data-fingerprint="'
    return [part.split('"', 1)[0] for part in html.split(marker)[1:]]


# -- the page -----------------------------------------------------------------------------------


def test_it_lists_alerts_with_labels_and_annotations_escaped(board: Board) -> None:
    page = board.client("viewer").get("/alerts")
    assert page.status_code == 200
    assert _rows(page.text) == ["f2", "e1", "f1", "p1", "r1"]  # r2 resolved 30 min ago: gone
    assert EVIL not in page.text
    assert page.text.count(ESCAPED) >= 3  # a label, an annotation, a label on another alert
    assert 'href="javascript:' not in page.text
    assert '<a href="https://x/rb"' in page.text
    assert "0.125" in page.text
    assert "2026-08-20 09:30:00 UTC" in page.text and "30m 0s ago" in page.text
    assert "/static/alerts.css" in page.text


def test_it_offers_actions_to_editors_only(board: Board, editor: TestClient[Litestar]) -> None:
    viewer_page = board.client("viewer").get("/alerts").text
    assert "/debt/from-alert/" not in viewer_page and "Expire</button>" not in viewer_page
    page = editor.get("/alerts").text
    assert 'action="/debt/from-alert/f1"' in page
    assert 'href="/alerts/silences/new?fingerprint=f1"' in page
    assert 'href="/alerts/silences/new?fingerprint=r1"' not in page  # resolved: nothing to mute
    assert page.count('name="_csrf_token"') >= 6


def test_it_filters_by_state_and_label_matchers(board: Board) -> None:
    client = board.client("viewer")
    critical = client.get("/alerts", params={"filter": 'severity="critical"'})
    assert _rows(critical.text) == ["f2"]
    pending = client.get("/alerts", params={"state": "pending"})
    assert _rows(pending.text) == ["p1"]
    regex = client.get("/alerts", params={"state": "firing", "filter": 'alertname=~"GPU.*"'})
    assert _rows(regex.text) == ["f1"]
    bad = client.get("/alerts", params={"filter": "severity=~(", "state": "firing"})
    assert bad.status_code == 400
    assert "filter:" in bad.text and "invalid regular expression" in bad.text
    assert _rows(bad.text) == []
    assert client.get("/alerts", params={"state": "burning"}).status_code == 400


def test_it_prefills_the_silence_form_from_an_alert(editor: TestClient[Litestar]) -> None:
    form = editor.get("/alerts/silences/new", params={"fingerprint": "f1"})
    assert form.status_code == 200
    assert "alertname=&#34;GPUIdle&#34;\ngpu=&#34;1&#34;\nseverity=&#34;warning&#34;" in form.text
    assert f"team=&#34;{ESCAPED}&#34;" in form.text and EVIL not in form.text
    assert 'value="2h"' in form.text
    missing = editor.get("/alerts/silences/new", params={"fingerprint": "nope"})
    assert missing.status_code == 404 and "no alert" in missing.text


def test_it_creates_a_silence_in_the_users_name_and_marks_the_alert(
    board: Board, editor: TestClient[Litestar]
) -> None:
    form = {
        "matchers": 'alertname="GPUIdle"\n\ngpu="1"\n',
        "duration": "2h",
        "comment": f"maintenance {EVIL}",
        "_csrf_token": csrf(editor),
    }
    response = editor.post("/alerts/silences", data=form, follow_redirects=False)
    assert response.status_code == 303
    (silence,) = board.silences()
    assert response.headers["location"] == f"/alerts?created={silence.id}#silences"
    assert silence.created_by == "editor"
    assert (silence.starts_at, silence.ends_at) == (NOW, NOW + timedelta(hours=2))
    assert ("user:editor", "silence.create", silence.id) in board.audit()
    page = editor.get(response.headers["location"]).text
    assert f'href="#silence-{silence.id}"' in page  # f1 is marked silenced
    assert page.count('class="badge silenced"') == 1
    assert f'id="silence-{silence.id}"' in page and f"maintenance {ESCAPED}" in page
    assert EVIL not in page


def test_it_shows_the_form_again_naming_a_bad_field(
    board: Board, editor: TestClient[Litestar]
) -> None:
    form = {"matchers": 'severity="x', "duration": "2h", "comment": "keep me"}
    response = editor.post("/alerts/silences", data=form | {"_csrf_token": csrf(editor)})
    assert response.status_code == 400
    assert "matchers[0]:" in response.text and "unterminated double quote" in response.text
    assert "keep me</textarea>" in response.text
    end_and_duration = {"matchers": "a=b", "ends_at": "2026-08-20T09:00", "comment": "x"}
    past = editor.post("/alerts/silences", data=end_and_duration | {"_csrf_token": csrf(editor)})
    assert past.status_code == 400 and "ends_at:" in past.text
    assert board.silences() == []
    assert not [a for a in board.audit() if a[1] == "silence.create"]


def test_it_needs_a_csrf_token_and_the_editor_role_to_create(board: Board) -> None:
    editor = board.client("editor")
    form = {"matchers": "a=b", "duration": "1h", "comment": "x"}
    assert editor.post("/alerts/silences", data=form).status_code == 403
    viewer = board.client("viewer")
    refused = viewer.post("/alerts/silences", data=form | {"_csrf_token": csrf(viewer)})
    assert refused.status_code == 403
    assert board.silences() == []


def test_it_expires_a_silence_from_the_page(board: Board, editor: TestClient[Litestar]) -> None:
    form = {"matchers": "gpu=1", "duration": "1h", "comment": "x", "_csrf_token": csrf(editor)}
    editor.post("/alerts/silences", data=form)
    (silence,) = board.silences()
    token = {"_csrf_token": csrf(editor)}
    response = editor.post(
        f"/alerts/silences/{silence.id}/expire", data=token, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/alerts?expired={silence.id}#silences"
    (expired,) = board.silences()
    assert expired.ends_at == NOW
    assert ("user:editor", "silence.expire", silence.id) in board.audit()
    page = editor.get("/alerts").text
    assert 'id="silences-expired"' in page and 'id="no-silences"' in page
    assert 'class="badge silenced"' not in page
    again = editor.post(f"/alerts/silences/{silence.id}/expire", data=token)
    assert again.status_code == 409
    assert editor.post("/alerts/silences/nope/expire", data=token).status_code == 404


# -- JSON twins ---------------------------------------------------------------------------------


def test_it_serves_alerts_as_json_with_filters_and_pagination(board: Board) -> None:
    api = board.api("viewer")
    body = api.get("/api/v1/alerts").json()
    assert [a["fingerprint"] for a in body["items"]] == ["f2", "e1", "f1", "p1", "r1"]
    assert (body["total"], body["limit"], body["offset"]) == (5, 50, 0)
    assert body["counts"] == {"firing": 3, "pending": 1, "resolved": 1}
    f1 = next(a for a in body["items"] if a["fingerprint"] == "f1")
    assert f1["labels"]["team"] == EVIL  # JSON carries the raw value
    assert f1["state"] == "firing" and f1["value"] == 0.125 and f1["silenced_by"] is None
    assert f1["active_at"] == "2026-08-20T09:30:00Z"
    paged = api.get("/api/v1/alerts", params={"state": "firing", "limit": 1, "offset": 2}).json()
    assert [a["fingerprint"] for a in paged["items"]] == ["f1"] and paged["total"] == 3
    filtered = api.get("/api/v1/alerts", params={"filter": '{severity="warning",gpu!="1"}'})
    assert [a["fingerprint"] for a in filtered.json()["items"]] == ["p1", "r1"]


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**31}, "offset"),
        ({"state": "burning"}, "state"),
        ({"filter": 'a="b'}, "filter"),
    ],
)
def test_it_answers_400_naming_a_bad_query_value(
    board: Board, params: dict[str, Any], key: str
) -> None:
    response = board.api("viewer").get("/api/v1/alerts", params=params)
    assert response.status_code == 400
    assert key in [item["key"] for item in response.json()["extra"]]


def test_it_creates_lists_and_expires_silences_over_the_api(board: Board) -> None:
    api = board.api("editor")
    created = api.post(
        "/api/v1/silences",
        json={"matchers": ['alertname="GPUIdle"'], "comment": "deploy", "duration": "90m"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["state"] == "active" and body["created_by"] == "token:editor-bot"
    assert body["ends_at"] == "2026-08-20T11:30:00Z" and body["alerts"] == 1
    later = api.post(
        "/api/v1/silences",
        json={
            "matchers": ["severity=critical"],
            "comment": "later",
            "starts_at": "2026-08-20T12:00:00",
            "ends_at": "2026-08-20T13:00:00Z",
        },
    )
    assert later.status_code == 201 and later.json()["state"] == "pending"
    listing = board.api("viewer").get("/api/v1/silences").json()
    assert [s["comment"] for s in listing["items"]] == ["deploy", "later"]
    active = board.api("viewer").get("/api/v1/silences", params={"state": "active"}).json()
    assert active["total"] == 1
    alerts = board.api("viewer").get("/api/v1/alerts", params={"filter": "gpu=1"}).json()
    assert alerts["items"][0]["silenced_by"] == body["id"]
    expired = api.delete(f"/api/v1/silences/{body['id']}")
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert api.delete(f"/api/v1/silences/{body['id']}").status_code == 409
    missing = api.delete("/api/v1/silences/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    actions = [a for a in board.audit() if a[0] == "token:editor-bot"]
    assert [a[1] for a in actions] == ["silence.expire", "silence.create", "silence.create"]


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"matchers": ["a=b"], "comment": "x"}, "ends_at"),
        ({"matchers": ["a=b"], "comment": "x", "duration": "soon"}, "duration"),
        ({"matchers": ["a=~("], "comment": "x", "duration": "1h"}, "matchers[0]"),
        ({"matchers": [], "comment": "x", "duration": "1h"}, "matchers"),
        ({"matchers": ["a=b"], "comment": "", "duration": "1h"}, "comment"),
        ({"matchers": ["a=b"], "duration": "1h"}, "comment"),
        ({"matchers": "a=b", "comment": "x", "duration": "1h"}, "matchers"),
        ({"matchers": ["a=b"], "comment": "x", "ends_at": "tomorrow"}, "ends_at"),
    ],
)
def test_it_answers_400_naming_a_bad_silence_field(
    board: Board, payload: dict[str, Any], key: str
) -> None:
    response = board.api("editor").post("/api/v1/silences", json=payload)
    assert response.status_code == 400, response.text
    # ours name the field in "key"; Litestar's own (a missing field) in the message
    named = [f"{item['key']} {item['message']}" for item in response.json()["extra"]]
    assert any(key in text for text in named), response.text
    assert board.silences() == []


def test_it_answers_404_not_500_for_ids_no_database_could_hold(board: Board) -> None:
    api = board.api("editor")
    for silence_id in ("a%00b", "x" * 100):
        assert api.delete(f"/api/v1/silences/{silence_id}").status_code == 404
    form = board.client("editor").get("/alerts/silences/new", params={"fingerprint": "f1\x00"})
    assert form.status_code == 404


def test_it_refuses_api_writes_from_viewers_and_sessions(
    board: Board, editor: TestClient[Litestar]
) -> None:
    payload = {"matchers": ["a=b"], "comment": "x", "duration": "1h"}
    assert board.api("viewer").post("/api/v1/silences", json=payload).status_code == 403
    by_session = editor.post(
        "/api/v1/silences", json=payload, headers={"x-csrftoken": csrf(editor)}
    )
    assert by_session.status_code == 401
    assert board.silences() == []


def test_it_documents_the_json_twins_in_the_openapi_schema(board: Board) -> None:
    schema = board.client("viewer").get("/schema/openapi.json").json()
    paths: dict[str, Any] = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/silences"])
    assert "delete" in paths["/api/v1/silences/{silence_id}"]
    params = {p["name"]: p for p in paths["/api/v1/alerts"]["get"]["parameters"]}
    assert {"state", "filter", "limit", "offset"} <= set(params)
    assert params["state"]["schema"]["enum"] == ["firing", "pending", "resolved"]
    assert "/alerts" not in paths  # pages stay out of the API document
