"""The costs page, its CSV export and its JSON twins over a real store (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from daemon.auth.tokens import create_token
from daemon.clock import ManualClock
from daemon.config import CostsConfig, WebConfig
from daemon.costs.figures import CostFigures, Money
from daemon.costs.ledger import add_lines
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import open_store, session_scope
from tests.daemon.test_board_costs import (
    EVIL,
    H100,
    MODEL,
    NOW,
    bill,
    day,
    seed_bills,
    seed_fleet,
)
from web.app import create_app

COSTS = CostsConfig.model_validate(
    {
        "gpu_models": [
            {
                "gpu_model": H100,
                "currency": "USD",
                "purchase_price": "35040",
                "depreciation_years": "4",
                "power_price_per_kwh": "0.12",
                "pue": "1.3",
                "ops_cost_per_year": "876",
            }
        ],
        "budgets": [{"name": "cloud-usd", "amount": "20", "currency": "USD"}],
    }
)


@dataclass
class CostServices(Services):
    """``Services`` carrying the ``costs`` config section the costs page reads."""

    costs: CostsConfig = field(default_factory=CostsConfig)


@dataclass
class Setup:
    app: Litestar
    token: str


@pytest.fixture
def setup(db_url: str) -> Iterator[Setup]:
    engine = open_store(db_url)
    seed_bills(engine)
    seed_fleet(engine)
    with session_scope(engine) as session:
        add_lines(
            session,
            [
                bill("evil", day(6), "1", provider=EVIL, service=EVIL, sub=EVIL),
                bill("formula", day(6), "2", provider="=HYPERLINK()", service="S"),
            ],
            source="focus:evil.csv",
            import_batch="b3",
        )
        token = create_token(session, "viewer-bot", "viewer", created_by="cli", now=NOW).secret
    state = LiveState()
    services = CostServices(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=ManualClock(NOW).now,
        readiness=lambda: [],
        web=WebConfig(anonymous_read=True),
        costs=COSTS,
    )
    yield Setup(create_app(services), token)
    engine.dispose()


@pytest.fixture
def client(setup: Setup) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=setup.app) as client:
        yield client


def test_it_shows_bills_totals_local_cost_and_budgets_with_currency_and_source(
    client: TestClient[Litestar],
) -> None:
    response = client.get("/costs")
    assert response.status_code == 200
    html = response.text
    assert "2026-08-01 to 2026-08-20" in html
    usd = re.search(r'data-currency="USD" data-kind="cloud">(.*?)</div>\s*</div>', html, re.S)
    assert usd, "no USD total"
    assert "18.05" in usd.group(1) and "USD" in usd.group(1)
    assert "source: aws_ce:prod, focus:evil.csv, focus:export-08.csv" in usd.group(1)
    assert 'data-currency="CNY" data-kind="cloud"' in html
    local = re.search(r'data-currency="USD" data-kind="local">(.*?)</div>\s*</div>', html, re.S)
    assert local and "3.63" in local.group(1) and "source: cost model (config)" in local.group(1)
    assert "Tesla T4 (1.0 GPU-hours)" in html
    assert html.count('<tr class="bill"') == 7
    assert '<figure class="trend" data-kind="cloud" data-currency="USD">' in html
    assert '<figure class="trend" data-kind="local" data-currency="USD">' in html
    assert "<svg" in html
    assert 'data-budget="cloud-usd"' in html and "budget over" in html
    assert 'href="/static/costs.css"' in html


def test_it_escapes_tags_services_and_accounts_from_bills(client: TestClient[Litestar]) -> None:
    html = client.get("/costs", params={"tag": "team"}).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'<tr class="tag-row" data-currency="USD"><td>&lt;script&gt;', html)
    assert 'data-kind="cloud"' in html


def test_it_filters_by_provider_service_account_and_period(client: TestClient[Litestar]) -> None:
    html = client.get("/costs", params={"provider": "Aliyun"}).text
    assert html.count('<tr class="bill"') == 1 and 'data-currency="CNY"' in html
    assert "The filters apply to cloud bills only" in html
    one_day = client.get("/api/v1/costs", params={"from": "2026-08-03", "to": "2026-08-03"})
    assert {(i["service"], i["amount"]) for i in one_day.json()["items"]} == {
        ("EC2", "0.10000001"),
        ("S3", "2.5"),
    }
    by_account = client.get("/api/v1/costs", params={"account": "sub-9"}).json()
    assert [i["amount"] for i in by_account["items"]] == ["7"]


def test_it_exports_csv_with_a_header_and_plain_amounts(client: TestClient[Litestar]) -> None:
    response = client.get("/costs.csv", params={"provider": "AWS"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="costs-2026-08-01-2026-08-20.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["provider", "service", "account", "currency", "amount", "lines", "sources"]
    assert rows[1] == [
        "AWS",
        "EC2",
        "sub-9",
        "USD",
        "7",
        "1",
        "aws_ce:prod",
    ]
    assert rows[2][:6] == ["AWS", "EC2", "acct-1", "USD", "4.3000001", "11"]
    assert len(rows) == 5
    everything = list(csv.reader(io.StringIO(client.get("/costs.csv").text)))
    assert ["'=HYPERLINK()", "S", "acct-1", "USD", "2"] in [r[:5] for r in everything]
    assert all("E" not in r[4] for r in everything[1:])


def test_it_answers_json_with_pages_and_totals_per_currency(
    client: TestClient[Litestar],
) -> None:
    body = client.get("/api/v1/costs", params={"limit": 2, "offset": 1}).json()
    assert (body["total"], body["limit"], body["offset"]) == (7, 2, 1)
    assert len(body["items"]) == 2
    assert body["first_day"] == "2026-08-01" and body["last_day"] == "2026-08-20"
    totals = {t["currency"]: t for t in body["totals"]}
    assert totals["USD"]["amount"] == "18.0500001" and totals["CNY"]["amount"] == "100.1"
    assert totals["USD"]["sources"] == ["aws_ce:prod", "focus:evil.csv", "focus:export-08.csv"]
    (local,) = body["local"]["totals"]
    assert (local["currency"], local["amount"], local["source"]) == (
        "USD",
        "3.63",
        "cost model (config)",
    )
    assert body["local"]["unpriced"] == {"Tesla T4": "1.00"}
    (budget,) = body["budgets"]
    assert budget["month_to_date"] == "18.0500001" and Decimal(budget["forecast_ratio"]) > 1
    assert body["local_source"] == "cost model (config)"


def test_it_answers_daily_series_for_cloud_and_local(client: TestClient[Litestar]) -> None:
    body = client.get("/api/v1/costs/daily", params={"from": "2026-08-18", "to": "2026-08-20"})
    series = {(s["kind"], s["currency"]): s for s in body.json()["series"]}
    assert sorted(series) == [("local", "USD")]  # no bills on those days
    assert [p["amount"] for p in series[("local", "USD")]["points"]] == ["0.00", "3.63", "0.00"]
    cloud = client.get("/api/v1/costs/daily", params={"to": "2026-08-02"}).json()["series"]
    assert [(s["kind"], s["currency"]) for s in cloud] == [("cloud", "USD")]
    assert [p["amount"] for p in cloud[0]["points"]] == ["0.10000001", "3.40000001"]
    assert cloud[0]["points"][0]["day"] == "2026-08-01"


@pytest.mark.parametrize(
    ("path", "params", "field_name"),
    [
        ("/api/v1/costs", {"from": "2026-08-09", "to": "2026-08-01"}, "from"),
        ("/api/v1/costs/daily", {"from": "2024-01-01", "to": "2026-08-01"}, "to"),
        ("/costs.csv", {"from": "2026-08-09", "to": "2026-08-01"}, "from"),
        ("/api/v1/costs", {"from": "2026-13-01"}, "from"),
        ("/api/v1/costs", {"limit": "0"}, "limit"),
        ("/api/v1/costs", {"offset": "-1"}, "offset"),
    ],
)
def test_it_refuses_bad_queries_naming_the_field(
    client: TestClient[Litestar], path: str, params: dict[str, str], field_name: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    assert [e["key"] for e in body["extra"]] == [field_name]


def test_it_shows_a_bad_period_on_the_page(client: TestClient[Litestar]) -> None:
    response = client.get("/costs", params={"from": "2026-08-09", "to": "2026-08-01"})
    assert response.status_code == 400
    assert 'data-field="from"' in response.text
    assert "is after the last day" in response.text


def test_it_serves_the_json_twins_to_viewer_tokens_and_documents_them(
    setup: Setup,
) -> None:
    with TestClient(app=setup.app) as client:
        client.headers.update({"Authorization": f"Bearer {setup.token}"})
        assert client.get("/api/v1/costs").status_code == 200
        schema = client.get("/schema/openapi.json").json()
    assert "/api/v1/costs" in schema["paths"] and "/api/v1/costs/daily" in schema["paths"]
    assert "/costs" not in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/costs"]["get"]["parameters"]}
    assert {"from", "to", "provider", "service", "account", "tag", "limit", "offset"} <= params


def test_it_keeps_reading_closed_without_anonymous_access(db_url: str) -> None:
    engine = open_store(db_url)
    state = LiveState()
    services = CostServices(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW + timedelta(days=1),
        readiness=lambda: [],
        web=WebConfig(anonymous_read=False),
    )
    with TestClient(app=create_app(services)) as client:
        assert client.get("/api/v1/costs").status_code == 401
        page = client.get("/costs.csv", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    engine.dispose()


def test_it_falls_back_to_the_latest_cost_figures_without_a_costs_config(db_url: str) -> None:
    engine = open_store(db_url)
    seed_bills(engine)
    seed_fleet(engine)
    state = LiveState()
    state.set_costs(
        CostFigures(
            computed_at=NOW,
            gpu_models={H100: MODEL},
            budget_amount={"from-figures": Money(Decimal(20), "USD")},
        )
    )
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW,
        readiness=lambda: [],
        web=WebConfig(anonymous_read=True),
    )
    with TestClient(app=create_app(services)) as client:
        body = client.get("/api/v1/costs").json()
    assert [t["amount"] for t in body["local"]["totals"]] == ["3.63"]
    assert [b["name"] for b in body["budgets"]] == ["from-figures"]
    engine.dispose()
