"""The anomalies page and its JSON twin through Litestar's test client, on SQLite and
PostgreSQL: list and filters, detail, acknowledge / resolve / reopen / comment as forms and as
API calls, audit entries, refusals and escaping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from daemon.anomalies import series_key
from daemon.store.db import session_scope
from daemon.store.models import Anomaly
from tests.web.conftest import EVIL
from tests.web.store_board import NOW, StoreBoard, csrf, form, store_board

D = Decimal


@pytest.fixture
def board(db_url: str) -> Iterator[StoreBoard]:
    with store_board(db_url) as board:
        yield board


def add(
    board: StoreBoard,
    *,
    provider: str = "AWS",
    service: str = "EC2",
    day: date = date(2026, 11, 27),
    expected: str = "400",
    actual: str = "1276.90",
    status: str = "open",
    cause: str = "BoxUsage:p5.48xlarge",
) -> int:
    labels = {"provider": provider, "service": service, "account": "111"}
    with session_scope(board.engine) as session:
        row = Anomaly(
            rule="CloudCostAnomaly",
            series_key=series_key(labels),
            dimensions=labels,
            day=datetime(day.year, day.month, day.day, tzinfo=UTC),
            expected_cost=D(expected),
            actual_cost=D(actual),
            impact=D(actual) - D(expected),
            currency="USD",
            root_causes=[
                {
                    "dimension": "sku_id",
                    "value": cause,
                    "expected": "0",
                    "actual": "780",
                    "impact": "780",
                }
            ],
            status=status,
            created_at=NOW,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


# -- reading ------------------------------------------------------------------------------------


def test_it_lists_anomalies_with_figures_currency_and_root_causes(board: StoreBoard) -> None:
    first = add(board)
    add(board, provider="Microsoft", service="VMs", day=date(2026, 11, 20), status="resolved")
    page = board.client("viewer").get("/anomalies")
    assert page.status_code == 200
    assert page.text.count('<tr data-id="') == 2
    assert 'href="/static/anomalies.css"' in page.text
    row = page.text[page.text.index(f'<tr data-id="{first}"') :].split("</tr>")[0]
    for text in (
        "400.00 USD",
        "1,276.90 USD",
        "+876.90 USD",
        "+219.2%",
        "2026-11-27",
        "sku_id=BoxUsage:p5.48xlarge",
        "+780.00 USD",
        "AWS · EC2",
    ):
        assert text in row, text
    assert "Acknowledge" not in page.text  # a viewer gets no buttons


def test_it_filters_the_page_and_keeps_the_filters_in_its_links(board: StoreBoard) -> None:
    for back in range(3):
        add(board, day=date(2026, 11, 20 + back))
    add(board, provider="Microsoft", service="VMs")
    client = board.client("viewer")
    page = client.get("/anomalies", params={"provider": "AWS", "limit": 2, "status": ""})
    assert page.text.count('<tr data-id="') == 2
    assert "3 anomalies matching the filters" in page.text
    assert 'href="/anomalies?provider=AWS&amp;limit=2&amp;offset=2" rel="next"' in page.text
    ranged = client.get("/anomalies", params={"day_from": "2026-11-21", "day_to": "2026-11-21"})
    assert ranged.text.count('<tr data-id="') == 1
    bad = client.get("/anomalies", params={"day_from": "last week", "status": "gone"})
    assert bad.status_code == 400
    assert "<b>day_from</b>: expected a date as YYYY-MM-DD" in bad.text
    assert "<b>status</b>" in bad.text


def test_it_shows_one_anomaly_with_comments(board: StoreBoard) -> None:
    anomaly_id = add(board)
    client = board.client("editor")
    page = client.get(f"/anomalies/{anomaly_id}")
    assert page.status_code == 200
    assert "Anomaly #" in page.text and 'id="root-causes"' in page.text
    assert f'action="/debt/from-anomaly/{anomaly_id}"' in page.text
    assert 'name="_csrf_token"' in page.text
    assert client.get("/anomalies/999").status_code == 404


def test_it_serves_the_list_as_json_with_pagination_and_filters(board: StoreBoard) -> None:
    ids = [add(board, day=date(2026, 11, 20 + back)) for back in range(3)]
    add(board, provider="Microsoft", service="VMs", status="acknowledged")
    api = board.api("viewer")
    body = api.get("/api/v1/anomalies", params={"provider": "AWS", "limit": 2, "offset": 1}).json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)
    assert [item["id"] for item in body["items"]] == [ids[1], ids[0]]
    item = body["items"][0]
    assert (item["expected_cost"], item["actual_cost"], item["impact"]) == (
        "400",
        "1276.9",
        "876.9",
    )
    assert item["impact_percent"] == "219.2" and item["currency"] == "USD"
    assert item["root_causes"][0] == {
        "dimension": "sku_id",
        "value": "BoxUsage:p5.48xlarge",
        "expected": "0",
        "actual": "780",
        "impact": "780",
    }
    assert api.get("/api/v1/anomalies", params={"status": "acknowledged"}).json()["total"] == 1
    days = {"day_from": "2026-11-21", "day_to": "2026-11-22"}
    assert api.get("/api/v1/anomalies", params=days).json()["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "closed"}, "status"),
        ({"day_from": "yesterday"}, "day_from"),
        ({"day_from": "2026-11-02", "day_to": "2026-11-01"}, "day_to"),
    ],
)
def test_it_answers_bad_list_parameters_with_400_naming_the_field(
    board: StoreBoard, params: dict[str, object], field: str
) -> None:
    response = board.api("viewer").get("/api/v1/anomalies", params=params)
    assert response.status_code == 400
    assert field in [entry["key"] for entry in response.json()["extra"]]


# -- writing through forms ----------------------------------------------------------------------


def test_it_acknowledges_resolves_and_reopens_with_forms_and_audits_each(
    board: StoreBoard,
) -> None:
    anomaly_id = add(board)
    editor = board.client("editor")
    base = f"/anomalies/{anomaly_id}"
    acked = form(editor, f"{base}/acknowledge")
    assert acked.status_code == 303 and acked.headers["location"] == base
    page = editor.get(base).text
    assert "acknowledged by user:editor" in page
    assert form(editor, f"{base}/acknowledge").status_code == 303  # no change, no audit entry
    back = form(editor, f"{base}/resolve", next="/anomalies?status=open")
    assert back.headers["location"] == "/anomalies?status=open"
    refused = form(editor, f"{base}/acknowledge")
    assert refused.status_code == 409 and "reopen it first" in refused.text
    assert form(editor, f"{base}/reopen", next="https://evil.example/").headers["location"] == base
    assert board.audit() == [
        ("user:editor", "anomaly.acknowledge", f"anomaly:{anomaly_id}"),
        ("user:editor", "anomaly.resolve", f"anomaly:{anomaly_id}"),
        ("user:editor", "anomaly.reopen", f"anomaly:{anomaly_id}"),
    ]
    assert (
        board.api("viewer").get(f"/api/v1/anomalies/{anomaly_id}").json()["anomaly"]["status"]
        == "open"
    )


def test_it_adds_comments_with_a_form(board: StoreBoard) -> None:
    anomaly_id = add(board)
    editor = board.client("editor")
    done = form(editor, f"/anomalies/{anomaly_id}/comments", body="Batch eval; expected.")
    assert done.status_code == 303 and done.headers["location"].endswith("#comments")
    empty = form(editor, f"/anomalies/{anomaly_id}/comments", body="   ")
    assert empty.status_code == 400 and 'id="comment-error"' in empty.text
    assert form(editor, "/anomalies/999/comments", body="x").status_code == 404
    page = editor.get(f"/anomalies/{anomaly_id}").text
    assert "Batch eval; expected." in page and "Comments (1)" in page
    assert board.audit() == [("user:editor", "anomaly.comment", f"anomaly:{anomaly_id}")]


def test_it_refuses_form_writes_without_csrf_or_from_viewers(board: StoreBoard) -> None:
    anomaly_id = add(board)
    path = f"/anomalies/{anomaly_id}/acknowledge"
    assert board.client("editor").post(path, follow_redirects=False).status_code == 403
    viewer = board.client("viewer")
    assert form(viewer, path).status_code == 403
    anonymous = board.client()
    assert anonymous.post(path, headers={"x-csrftoken": csrf(anonymous)}).status_code == 401
    assert board.audit() == []


# -- writing through the API --------------------------------------------------------------------


def test_it_acknowledges_resolves_and_comments_through_the_api(board: StoreBoard) -> None:
    anomaly_id = add(board)
    api = board.api("editor")
    base = f"/api/v1/anomalies/{anomaly_id}"
    acked = api.post(f"{base}/acknowledge")
    assert acked.status_code == 200
    assert acked.json()["anomaly"]["acknowledged_by"] == "token:editor-bot"
    assert acked.json()["anomaly"]["acknowledged_at"].startswith("2026-11-29T12:00:00")
    resolved = api.post(f"{base}/resolve").json()["anomaly"]
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert api.post(f"{base}/acknowledge").status_code == 409
    comment = api.post(f"{base}/comments", json={"body": "root cause: eval job"})
    assert comment.status_code == 201 and comment.json()["author"] == "token:editor-bot"
    detail = api.get(base).json()
    assert [c["body"] for c in detail["comments"]] == ["root cause: eval job"]
    assert detail["debt_item_id"] is None
    reopened = api.post(f"{base}/reopen").json()["anomaly"]
    assert reopened["status"] == "open" and reopened["acknowledged_by"] == ""
    assert [action for _, action, _ in board.audit()] == [
        "anomaly.acknowledge",
        "anomaly.resolve",
        "anomaly.comment",
        "anomaly.reopen",
    ]


def test_it_answers_bad_api_writes_with_clear_errors(board: StoreBoard) -> None:
    anomaly_id = add(board)
    api = board.api("editor")
    assert api.post("/api/v1/anomalies/999/acknowledge").status_code == 404
    assert "no anomaly 999" in api.get("/api/v1/anomalies/999").json()["detail"]
    for body in ({"body": ""}, {"text": "x"}, {"body": "   "}):
        response = api.post(f"/api/v1/anomalies/{anomaly_id}/comments", json=body)
        assert response.status_code == 400, body
    blank = api.post(f"/api/v1/anomalies/{anomaly_id}/comments", json={"body": "   "})
    assert blank.json()["extra"][0]["key"] == "body"
    assert board.api("viewer").post(f"/api/v1/anomalies/{anomaly_id}/resolve").status_code == 403
    assert board.audit() == []


# -- escaping -----------------------------------------------------------------------------------


def test_it_escapes_outside_values_everywhere(board: StoreBoard) -> None:
    anomaly_id = add(board, provider=EVIL, service=EVIL, cause=EVIL)
    editor = board.client("editor")
    form(editor, f"/anomalies/{anomaly_id}/comments", body=EVIL)
    for path in ("/anomalies", f"/anomalies/{anomaly_id}", f"/anomalies?provider={EVIL}"):
        text = editor.get(path).text
        assert EVIL not in text, path
        assert "&lt;script&gt;" in text, path


def test_it_answers_hostile_input_with_4xx_never_5xx(board: StoreBoard) -> None:
    anomaly_id = add(board)
    api, editor = board.api("editor"), board.client("editor")
    cases = [
        api.get("/api/v1/anomalies/99999999999999999999"),
        api.get(f"/api/v1/anomalies/{2**31}"),
        api.get("/api/v1/anomalies", params={"provider": "a\x00b"}),
        api.get("/api/v1/anomalies", params={"offset": 10**12}),
        api.post(f"/api/v1/anomalies/{anomaly_id}/comments", json={"body": "a\x00b"}),
        api.post(f"/api/v1/anomalies/{2**40}/acknowledge"),
        editor.get("/anomalies", params={"service": "\x00"}),
        form(editor, f"/anomalies/{anomaly_id}/comments", body="x\x00y"),
    ]
    assert [response.status_code for response in cases] == [400, 400, 400, 400, 400, 400, 400, 400]
    assert api.get("/api/v1/anomalies", params={"day_to": "9999-12-31"}).json()["total"] == 1
    assert board.audit() == []
