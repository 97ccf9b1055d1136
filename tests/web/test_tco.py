"""The TCO calculator page and its JSON twin over a real store (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from daemon.auth.tokens import create_token
from daemon.clock import ManualClock
from daemon.config import CostsConfig, WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import open_store, session_scope
from tests.daemon.test_board_tco import COSTS, NOW, seed_measurements
from tests.web.test_costs import CostServices

EVIL = '"><script>alert(1)</script>'
USD_COSTS = CostsConfig.model_validate({**COSTS.model_dump(), "tco": {"currency": "USD"}})


def _app(db_url: str, costs: CostsConfig | None) -> Iterator[tuple[Litestar, str]]:
    from web.app import create_app

    engine = open_store(db_url)
    seed_measurements(engine)
    with session_scope(engine) as session:
        token = create_token(session, "viewer-bot", "viewer", created_by="cli", now=NOW).secret
    state = LiveState()
    common = {
        "engine": engine,
        "state": state,
        "registry": build_registry(state),
        "now": ManualClock(NOW).now,
        "readiness": lambda: [],
        "web": WebConfig(anonymous_read=True),
    }
    services = Services(**common) if costs is None else CostServices(**common, costs=costs)
    yield create_app(services), token
    engine.dispose()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient[Litestar]]:
    """The board with ``costs.tco`` in USD and a GPU cost model, over measured traffic."""
    for app, _ in _app(db_url, USD_COSTS):
        with TestClient(app=app) as client:
            yield client


@pytest.fixture
def plain_client(db_url: str) -> Iterator[TestClient[Litestar]]:
    """The board with the default cost settings (TCO in CNY, the source analysis's numbers)."""
    for app, _ in _app(db_url, None):
        with TestClient(app=app) as client:
            yield client


def _value(html: str, name: str) -> str:
    match = re.search(rf'<input id="f-{name}" name="{name}" value="([^"]*)"', html)
    assert match, f"no input {name}"
    return match.group(1)


def test_it_prefills_the_form_with_config_and_measurements(client: TestClient[Litestar]) -> None:
    response = client.get("/tco")
    assert response.status_code == 200
    html = response.text
    assert _value(html, "currency") == "USD"
    assert _value(html, "ops_staff_per_year") == "240000"
    assert _value(html, "tokens_per_month") == "547500000"
    assert _value(html, "gpus") == "2"
    assert _value(html, "utilization") == "0.2891"
    assert _value(html, "gpu_capex_per_year") == "8760.00"
    assert _value(html, "cloud_price_per_million") == "0.2595"
    assert html.count('class="measured-badge"') == 2  # depreciation and cloud usage
    assert re.search(r'id="local-total"><span class="amount">2,037,600.00</span>', html)
    assert "Break-even:" in html and 'href="/static/tco.css"' in html
    assert 'method="get" action="/tco"' in html


def test_it_reproduces_the_source_analysis_and_notes_foreign_prices(
    plain_client: TestClient[Litestar],
) -> None:
    html = plain_client.get("/tco").text
    assert re.search(
        r'id="local-total"><span class="amount">2,350,000.00</span> '
        r'<span class="currency">CNY</span>',
        html,
    )
    assert re.search(r'id="cloud-total"><span class="amount">690,000.00</span>', html)
    assert _value(html, "cloud_price_per_million") == ""
    assert _value(html, "tokens_per_month") == "547500000"
    assert "no live FX" in html
    assert "The cloud costs" in html and "1,660,000.00" in html


def test_it_computes_a_submitted_form_with_the_break_even(client: TestClient[Litestar]) -> None:
    params = {"currency": "CNY", "cloud_price_per_million": "2", "years": "5"}
    html = client.get("/tco", params=params).text
    assert "15,833,333,333 tokens a month" in html
    assert _value(html, "tokens_per_month") == ""  # a submitted form is taken as given
    assert 'class="measured-badge"' not in html
    assert '<h2 id="table-h">5-year TCO, CNY</h2>' in html


@pytest.mark.parametrize(
    ("params", "field_name", "reason"),
    [
        ({"years": "0"}, "years", "must be between 1 and 30"),
        ({"dr_per_year": "-5"}, "dr_per_year", "must not be negative"),
        ({"utilization": "3"}, "utilization", "between 0 and 1"),
    ],
)
def test_it_shows_the_error_beside_the_field_with_400(
    client: TestClient[Litestar], params: dict[str, str], field_name: str, reason: str
) -> None:
    response = client.get("/tco", params=params)
    assert response.status_code == 400
    html = response.text
    assert f'data-field="{field_name}"' in html
    field_html = re.search(
        rf'<div class="field invalid">\s*<label for="f-{field_name}">.*?</div>', html, re.S
    )
    assert field_html and 'aria-invalid="true"' in field_html.group(0)
    assert reason in field_html.group(0)
    assert html.count('class="field invalid"') == 1
    assert 'id="tco-table"' not in html
    assert _value(html, "ops_staff_per_year") == "240000"  # the rest of the form stays filled


def test_it_escapes_submitted_values(client: TestClient[Litestar]) -> None:
    response = client.get("/tco", params={"currency": EVIL})
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_it_answers_json_prefilled_or_as_given(client: TestClient[Litestar]) -> None:
    body = client.get("/api/v1/tco").json()
    assert body["prefilled"] is True
    table = body["table"]
    assert table["currency"] == "USD" and table["years"] == 5
    assert table["rows"][0]["category"] == "hardware_depreciation"
    assert table["rows"][0]["local"] == "87600.00"  # 2 GPUs x 8,760 x 5 years
    assert table["measured_fields"] == ["cloud_usage_per_year", "hardware_depreciation_per_year"]
    assert Decimal(table["break_even_tokens_per_month"]) > 0
    assert body["measurements"]["gpus"] == 2
    assert body["measurements"]["cloud_price_per_million"]["currency"] == "USD"
    given = client.get("/api/v1/tco", params={"years": "3", "currency": "CNY"}).json()
    assert given["prefilled"] is False
    assert (given["table"]["years"], given["table"]["local_total"]) == (3, "1470000")
    assert given["table"]["inputs"]["years"] == "3"


@pytest.mark.parametrize(
    ("params", "field_name"),
    [
        ({"years": "31"}, "years"),
        ({"dr_per_year": "-1"}, "dr_per_year"),
        ({"cloud_usage_per_year": "abc"}, "cloud_usage_per_year"),
        ({"gpu_capex_per_year": "10"}, "gpus"),
        ({"currency": "x" * 65}, "currency"),
    ],
)
def test_it_refuses_bad_json_queries_naming_the_field(
    client: TestClient[Litestar], params: dict[str, str], field_name: str
) -> None:
    response = client.get("/api/v1/tco", params=params)
    assert response.status_code == 400
    assert [e["key"] for e in response.json()["extra"]] == [field_name]


def test_it_serves_viewer_tokens_and_documents_the_parameters(db_url: str) -> None:
    for app, token in _app(db_url, USD_COSTS):
        with TestClient(app=app) as client:
            client.headers.update({"Authorization": f"Bearer {token}"})
            assert client.get("/api/v1/tco").status_code == 200
            schema = client.get("/schema/openapi.json").json()
    params = {p["name"] for p in schema["paths"]["/api/v1/tco"]["get"]["parameters"]}
    assert {"years", "currency", "tokens_per_month", "cloud_gpu_price_per_hour"} <= params
    assert "/tco" not in schema["paths"]
