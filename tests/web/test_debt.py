"""The tech-debt board and its JSON twin through Litestar's test client, on SQLite and
PostgreSQL: the board, create / edit / move / close / comment as forms and API calls, raising
from alerts and anomalies, validation errors by field, audit entries and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from daemon.store.db import session_scope
from daemon.store.models import Alert, Anomaly, DebtItem
from tests.web.conftest import EVIL
from tests.web.store_board import NOW, StoreBoard, csrf, form, store_board

FINGERPRINT = "25c44c8b1df3cdaa"


@pytest.fixture
def board(db_url: str) -> Iterator[StoreBoard]:
    with store_board(db_url) as board:
        yield board


def item_fields(**fields: str) -> dict[str, str]:
    return {
        "title": "Right-size the batch pool",
        "owner": "ml-platform",
        "status": "backlog",
        "severity": "high",
        "monthly_cost": "3400",
        "currency": "USD",
        "effort_days": "3",
        "due_date": "2026-12-15",
        "links": "https://wiki.example/pool",
        "description": "Half the pool idles.",
        **fields,
    }


def create(board: StoreBoard, **fields: Any) -> int:
    response = board.api("editor").post("/api/v1/debt", json={"title": "t", **fields})
    assert response.status_code == 201, response.text
    return int(response.json()["item"]["id"])


def column_ids(text: str, status: str) -> list[int]:
    section = text.split(f'id="col-{status}"')[1].split("</section>")[0]
    return [int(found) for found in re.findall(r'<article [^>]*data-id="(\d+)"', section)]


def stored(board: StoreBoard, item_id: int) -> DebtItem:
    with session_scope(board.engine) as session:
        item = session.get(DebtItem, item_id)
        assert item is not None
        return item


# -- the board ----------------------------------------------------------------------------------


def test_it_shows_four_columns_ordered_by_cost_of_delay(board: StoreBoard) -> None:
    slow = create(board, title="slow", monthly_cost="3000", effort_days=10)
    quick = create(board, title="quick", monthly_cost="500", effort_days=1)
    guess = create(board, title="guess", monthly_cost="9000")
    busy = create(board, title="busy", status="in_progress", monthly_cost="10", effort_days=1)
    page = board.client("viewer").get("/debt")
    assert page.status_code == 200
    assert 'href="/static/debt.css"' in page.text
    assert column_ids(page.text, "backlog") == [quick, slow, guess]
    assert column_ids(page.text, "in_progress") == [busy]
    assert column_ids(page.text, "planned") == [] and column_ids(page.text, "done") == []
    for text in (
        "3,000.00 USD / month",
        "300.00 USD / month per day",
        "needs an effort estimate",
        "12,510.00 USD",
        "4 open items",
        "cost of delay",
    ):
        assert text in page.text, text
    assert 'action="/debt/' not in page.text and "New item" not in page.text  # viewer


def test_it_highlights_overdue_cards_and_links_back_to_sources(board: StoreBoard) -> None:
    late = create(board, due_date="2026-11-28", links=["https://runbook.example/x"])
    today = create(board, due_date="2026-11-29", status="planned")
    with session_scope(board.engine) as session:
        session.add(
            DebtItem(
                title="old",
                created_at=NOW,
                links=["javascript:alert(1)"],
                source_kind="anomaly",
                source_ref="7",
            )
        )
    text = board.client("editor").get("/debt").text
    card = text.split(f'id="item-{late}"')[0].rsplit("<article", 1)[1]
    assert "overdue" in card
    assert 'class="debt-card sev-medium"' in text.split(f'id="item-{today}"')[0].rsplit("\n", 1)[1]
    assert '<a href="https://runbook.example/x" rel="noopener noreferrer nofollow">' in text
    assert 'href="javascript:' not in text  # a stored bad link is shown as text, never a link
    assert 'href="/anomalies/7"' in text
    assert "1 overdue" in text
    assert f'action="/debt/{late}/move"' in text and 'href="/debt/new"' in text


def test_it_serves_the_board_and_the_list_as_json(board: StoreBoard) -> None:
    first = create(board, monthly_cost="100", effort_days=1, owner="alice")
    second = create(board, monthly_cost="50.5", effort_days=0.25, currency="EUR")
    create(board, status="done")
    api = board.api("viewer")
    whole = api.get("/api/v1/debt/board").json()
    assert [c["status"] for c in whole["columns"]] == ["backlog", "planned", "in_progress", "done"]
    assert [i["id"] for i in whole["columns"][0]["items"]] == [second, first]
    assert whole["open_interest"] == [
        {"currency": "EUR", "amount": "50.5"},
        {"currency": "USD", "amount": "100"},
    ]
    body = api.get("/api/v1/debt", params={"limit": 1, "offset": 1}).json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 1, 1)
    item = body["items"][0]
    assert (
        item["id"] == first and item["monthly_cost"] == "100" and item["cost_of_delay"] == "100.00"
    )
    assert api.get("/api/v1/debt", params={"owner": "alice"}).json()["total"] == 1
    assert api.get("/api/v1/debt", params={"status": "done"}).json()["total"] == 1
    for params, field in (
        ({"status": "closed"}, "status"),
        ({"limit": 501}, "limit"),
        ({"severity": "urgent"}, "severity"),
    ):
        bad = api.get("/api/v1/debt", params=params)
        assert bad.status_code == 400 and bad.json()["extra"][0]["key"] == field


# -- forms --------------------------------------------------------------------------------------


def test_it_creates_an_item_with_the_form(board: StoreBoard) -> None:
    editor = board.client("editor")
    blank = editor.get("/debt/new")
    assert blank.status_code == 200 and 'name="_csrf_token"' in blank.text
    created = form(editor, "/debt", **item_fields())
    assert created.status_code == 303
    item_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = editor.get(f"/debt/{item_id}").text
    for text in (
        "Right-size the batch pool",
        "3,400.00 USD",
        "1,133.33 USD",
        "3 days",
        "2026-12-15",
        "Half the pool idles.",
        "ml-platform",
    ):
        assert text in page, text
    item = stored(board, item_id)
    assert item.monthly_cost == Decimal("3400") and item.effort_days == 3.0
    assert board.audit() == [("user:editor", "debt.create", f"debt:{item_id}")]


def test_it_shows_form_errors_beside_each_field(board: StoreBoard) -> None:
    editor = board.client("editor")
    bad = form(
        editor,
        "/debt",
        **item_fields(title="", monthly_cost="-3", currency="US", links="javascript:alert(1)"),
    )
    assert bad.status_code == 400
    for field in ("title", "monthly_cost", "currency", "links"):
        assert f'id="error-{field}"' in bad.text, field
    assert "only absolute http(s) URLs are allowed" in bad.text
    assert 'value="ml-platform"' in bad.text  # what was typed comes back
    assert "javascript:alert(1)</textarea>" in bad.text
    assert 'id="error-owner"' not in bad.text
    assert board.audit() == []
    with session_scope(board.engine) as session:
        assert session.get(DebtItem, 1) is None


def test_it_edits_an_item_with_the_form(board: StoreBoard) -> None:
    item_id = create(board, title="old", monthly_cost="10", effort_days=2, due_date="2027-01-01")
    editor = board.client("editor")
    page = editor.get(f"/debt/{item_id}/edit")
    assert 'value="old"' in page.text and 'value="2027-01-01"' in page.text
    assert 'value="2"' in page.text
    board.clock.advance(timedelta(hours=1))
    saved = form(editor, f"/debt/{item_id}/edit", **item_fields(title="new", status="planned"))
    assert saved.status_code == 303 and saved.headers["location"] == f"/debt/{item_id}"
    item = stored(board, item_id)
    assert (item.title, item.status, item.owner) == ("new", "planned", "ml-platform")
    assert item.updated_at == NOW + timedelta(hours=1)
    wrong = form(editor, f"/debt/{item_id}/edit", **item_fields(effort_days="lots"))
    assert wrong.status_code == 400 and 'id="error-effort_days"' in wrong.text
    assert form(editor, "/debt/999/edit", **item_fields()).status_code == 404
    assert editor.get("/debt/999/edit").status_code == 404
    assert board.audit()[-1] == ("user:editor", "debt.update", f"debt:{item_id}")


def test_it_moves_cards_between_columns_and_closes_them(board: StoreBoard) -> None:
    item_id = create(board)
    editor = board.client("editor")
    moved = form(
        editor, f"/debt/{item_id}/move", status="in_progress", next=f"/debt#item-{item_id}"
    )
    assert moved.status_code == 303 and moved.headers["location"] == f"/debt#item-{item_id}"
    assert column_ids(editor.get("/debt").text, "in_progress") == [item_id]
    board.clock.advance(timedelta(days=1))
    closed = form(editor, f"/debt/{item_id}/close")
    assert closed.status_code == 303 and closed.headers["location"] == f"/debt/{item_id}"
    item = stored(board, item_id)
    assert item.status == "done" and item.closed_at == NOW + timedelta(days=1)
    assert form(editor, f"/debt/{item_id}/close").status_code == 303  # already done: no entry
    reopened = form(editor, f"/debt/{item_id}/move", status="planned", next="//evil.example")
    assert reopened.headers["location"] == f"/debt#item-{item_id}"
    assert stored(board, item_id).closed_at is None
    assert form(editor, f"/debt/{item_id}/move", status="archived").status_code == 400
    assert form(editor, "/debt/999/move", status="done").status_code == 404
    assert [(a, t) for _, a, t in board.audit()][1:] == [
        ("debt.move", f"debt:{item_id}"),
        ("debt.close", f"debt:{item_id}"),
        ("debt.move", f"debt:{item_id}"),
    ]


def test_it_comments_with_the_form(board: StoreBoard) -> None:
    item_id = create(board)
    editor = board.client("editor")
    assert form(editor, f"/debt/{item_id}/comments", body="Started on it.").status_code == 303
    empty = form(editor, f"/debt/{item_id}/comments", body=" ")
    assert empty.status_code == 400 and 'id="comment-error"' in empty.text
    page = editor.get(f"/debt/{item_id}").text
    assert "Started on it." in page and "user:editor" in page
    assert board.audit()[-1] == ("user:editor", "debt.comment", f"debt:{item_id}")


def test_it_refuses_form_writes_without_csrf_or_from_viewers(board: StoreBoard) -> None:
    item_id = create(board)
    editor, viewer = board.client("editor"), board.client("viewer")
    assert editor.post(f"/debt/{item_id}/close", follow_redirects=False).status_code == 403
    assert form(viewer, f"/debt/{item_id}/close").status_code == 403
    assert form(viewer, "/debt", **item_fields()).status_code == 403
    anonymous = board.client()
    headers = {"x-csrftoken": csrf(anonymous)}
    assert anonymous.post(f"/debt/from-alert/{FINGERPRINT}", headers=headers).status_code == 401
    assert stored(board, item_id).status == "backlog"


# -- raising from alerts and anomalies ----------------------------------------------------------


def add_alert(board: StoreBoard, **labels: str) -> None:
    with session_scope(board.engine) as session:
        session.add(
            Alert(
                fingerprint=FINGERPRINT,
                alertname="GpuIdle",
                labels={"alertname": "GpuIdle", "gpu": "1", **labels},
                annotations={"summary": "GPU 1 idle while holding memory"},
                state="firing",
                active_at=NOW - timedelta(hours=1),
            )
        )


def add_anomaly(board: StoreBoard) -> int:
    with session_scope(board.engine) as session:
        row = Anomaly(
            rule="CloudCostAnomaly",
            series_key='{provider="AWS",service="EC2"}',
            dimensions={"provider": "AWS", "service": "EC2"},
            day=datetime(2026, 11, 27, tzinfo=UTC),
            expected_cost=Decimal("400"),
            actual_cost=Decimal("1276.90"),
            impact=Decimal("876.90"),
            currency="USD",
            created_at=NOW,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_it_raises_an_item_from_an_alert_in_one_click_once(board: StoreBoard) -> None:
    add_alert(board, team="ml-platform")
    editor = board.client("editor")
    first = form(editor, f"/debt/from-alert/{FINGERPRINT}")
    assert first.status_code == 303
    location = first.headers["location"]
    again = form(editor, f"/debt/from-alert/{FINGERPRINT}")
    assert again.headers["location"] == location
    page = editor.get(location).text
    assert "GpuIdle: GPU 1 idle while holding memory" in page
    assert f'href="/alerts?fingerprint={FINGERPRINT}"' in page
    assert form(editor, "/debt/from-alert/ffffffffffffffff").status_code == 404
    with session_scope(board.engine) as session:
        assert len(session.exec(select(DebtItem)).all()) == 1
    item_id = int(location.rsplit("/", 1)[1])
    assert board.audit() == [("user:editor", "debt.raise", f"debt:{item_id}")]


def test_it_raises_an_item_from_an_anomaly_and_the_anomaly_links_to_it(board: StoreBoard) -> None:
    anomaly_id = add_anomaly(board)
    editor = board.client("editor")
    raised = form(editor, f"/debt/from-anomaly/{anomaly_id}")
    assert raised.status_code == 303
    item_id = int(raised.headers["location"].rsplit("/", 1)[1])
    page = editor.get(f"/debt/{item_id}").text
    assert "26,307.00 USD" in page  # 876.90 x 30
    assert "impact x 30" in page and f'href="/anomalies/{anomaly_id}"' in page
    anomaly_page = editor.get(f"/anomalies/{anomaly_id}").text
    assert f'href="/debt/{item_id}"' in anomaly_page and 'id="raise-debt"' not in anomaly_page
    assert form(editor, "/debt/from-anomaly/999").status_code == 404


def test_it_raises_from_sources_through_the_api(board: StoreBoard) -> None:
    add_alert(board)
    anomaly_id = add_anomaly(board)
    api = board.api("editor")
    created = api.post(f"/api/v1/debt/from-alert/{FINGERPRINT}")
    assert created.status_code == 201
    assert created.json()["item"]["source_kind"] == "alert"
    existing = api.post(f"/api/v1/debt/from-alert/{FINGERPRINT}")
    assert (
        existing.status_code == 200
        and existing.json()["item"]["id"] == created.json()["item"]["id"]
    )
    from_anomaly = api.post(f"/api/v1/debt/from-anomaly/{anomaly_id}").json()["item"]
    assert from_anomaly["monthly_cost"] == "26307" and from_anomaly["source_ref"] == str(anomaly_id)
    assert api.post("/api/v1/debt/from-anomaly/999").status_code == 404
    assert api.post("/api/v1/debt/from-alert/nope").status_code == 404


# -- the JSON API -------------------------------------------------------------------------------


def test_it_creates_reads_patches_moves_and_comments_through_the_api(board: StoreBoard) -> None:
    api = board.api("editor")
    created = api.post(
        "/api/v1/debt",
        json={
            "title": "Pin vLLM",
            "monthly_cost": "600.50",
            "effort_days": 1,
            "due_date": "2026-12-01",
            "links": ["https://github.example/pr/1"],
        },
    )
    assert created.status_code == 201
    item = created.json()["item"]
    item_id = item["id"]
    assert (item["status"], item["severity"], item["currency"]) == ("backlog", "medium", "USD")
    assert (item["monthly_cost"], item["cost_of_delay"], item["due_date"]) == (
        "600.5",
        "600.50",
        "2026-12-01",
    )
    patched = api.patch(f"/api/v1/debt/{item_id}", json={"owner": "inference", "due_date": None})
    assert patched.status_code == 200
    assert (
        patched.json()["item"]["owner"] == "inference"
        and patched.json()["item"]["due_date"] is None
    )
    assert patched.json()["item"]["title"] == "Pin vLLM"
    moved = api.post(f"/api/v1/debt/{item_id}/move", json={"status": "done"})
    assert moved.status_code == 200 and moved.json()["item"]["closed_at"].startswith("2026-11-29")
    comment = api.post(f"/api/v1/debt/{item_id}/comments", json={"body": "pinned to 0.8.5"})
    assert comment.status_code == 201
    detail = api.get(f"/api/v1/debt/{item_id}").json()
    assert [c["body"] for c in detail["comments"]] == ["pinned to 0.8.5"]
    assert [action for _, action, _ in board.audit()] == [
        "debt.create",
        "debt.update",
        "debt.close",
        "debt.comment",
    ]
    assert api.get("/api/v1/debt/999").status_code == 404
    assert api.patch("/api/v1/debt/999", json={"title": "x"}).status_code == 404
    assert api.delete(f"/api/v1/debt/{item_id}").status_code == 405  # closing is the end state


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t", "links": ["javascript:alert(1)"]}, "links"),
        ({"title": "t", "links": ["https://ok.example", "data:text/html,hi"]}, "links"),
        ({"title": "t", "monthly_cost": "-1"}, "monthly_cost"),
        ({"title": "t", "monthly_cost": "lots"}, "monthly_cost"),
        ({"title": "t", "currency": "DOLLARS"}, "currency"),
        ({"title": "t", "effort_days": -2}, "effort_days"),
        ({"title": "t", "status": "blocked"}, "status"),
        ({"title": "t", "severity": "urgent"}, "severity"),
        ({"title": "t", "due_date": "soon"}, "due_date"),
        ({"title": "t", "colour": "red"}, "colour"),
    ],
)
def test_it_answers_bad_api_fields_with_400_naming_the_field(
    board: StoreBoard, body: dict[str, Any], field: str
) -> None:
    api = board.api("editor")
    response = api.post("/api/v1/debt", json=body)
    assert response.status_code == 400, response.text
    extra = response.json()["extra"]
    named = {entry["key"] for entry in extra} | {entry["message"] for entry in extra}
    assert any(field in text for text in named), extra
    assert board.audit() == []


def test_it_refuses_bad_patches_and_moves_without_changing_anything(board: StoreBoard) -> None:
    item_id = create(board, title="keep")
    api = board.api("editor")
    bad = api.patch(f"/api/v1/debt/{item_id}", json={"title": "new", "links": ["javascript:x"]})
    assert bad.status_code == 400 and bad.json()["extra"][0]["key"] == "links"
    assert api.post(f"/api/v1/debt/{item_id}/move", json={"status": "gone"}).status_code == 400
    assert api.post(f"/api/v1/debt/{item_id}/comments", json={"body": " "}).status_code == 400
    assert stored(board, item_id).title == "keep"
    assert (
        board.api("viewer").patch(f"/api/v1/debt/{item_id}", json={"title": "x"}).status_code == 403
    )


# -- escaping -----------------------------------------------------------------------------------


def test_it_escapes_titles_and_other_outside_values(board: StoreBoard) -> None:
    add_alert(board, team=EVIL)
    item_id = create(
        board, title=EVIL, owner=EVIL, description=EVIL, links=[f"https://x.example/?q={EVIL}"]
    )
    editor = board.client("editor")
    form(editor, f"/debt/{item_id}/comments", body=EVIL)
    raised = form(editor, f"/debt/from-alert/{FINGERPRINT}").headers["location"]
    bad = form(editor, "/debt", **item_fields(title=EVIL, currency="x"))
    for text in (
        editor.get("/debt").text,
        editor.get(f"/debt/{item_id}").text,
        editor.get(f"/debt/{item_id}/edit").text,
        editor.get(raised).text,
        bad.text,
    ):
        assert EVIL not in text
        assert "&lt;script&gt;" in text


def test_it_answers_hostile_input_with_4xx_never_5xx(board: StoreBoard) -> None:
    item_id = create(board)
    api, editor = board.api("editor"), board.client("editor")
    cases = {
        "huge id": api.get("/api/v1/debt/99999999999999999999"),
        "id past int32": api.patch(f"/api/v1/debt/{2**31}", json={"title": "x"}),
        "NUL title": api.post("/api/v1/debt", json={"title": "a\x00b"}),
        "NUL link": api.patch(f"/api/v1/debt/{item_id}", json={"links": ["https://a\x00"]}),
        "NUL owner filter": api.get("/api/v1/debt", params={"owner": "\x00"}),
        "huge offset": api.get("/api/v1/debt", params={"offset": 10**12}),
        "NUL comment": api.post(f"/api/v1/debt/{item_id}/comments", json={"body": "\x00"}),
        "NUL form": form(editor, "/debt", **item_fields(owner="a\x00")),
        "huge money": api.post("/api/v1/debt", json={"title": "t", "monthly_cost": "1e400"}),
    }
    assert {name: r.status_code for name, r in cases.items()} == dict.fromkeys(cases, 400)
    for path in ("/api/v1/debt/from-alert/%00", "/api/v1/debt/from-alert/" + "f" * 300):
        assert api.post(path).status_code == 404, path
    assert board.audit()[1:] == []
