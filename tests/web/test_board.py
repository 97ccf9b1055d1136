"""The overview page and its JSON twin."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from daemon.services import Services
from tests.web.conftest import DOWN_UUID, EVIL, IDLE_UUID, NVML_REASON, PARTIAL_UUID
from web.app import create_app


def _row(html: str, uuid: str) -> str:
    match = re.search(rf'<tr class="gpu state-(\w+)" data-uuid="{uuid}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {uuid}"
    return match.group(0)


def test_it_lists_every_gpu_with_its_state(client: TestClient[Litestar]):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.count('<tr class="gpu ') == 4
    assert 'class="gpu state-idle"' in _row(html, IDLE_UUID)
    assert 'class="gpu state-down"' in _row(html, DOWN_UUID)
    assert "NVIDIA H100 80GB HBM3" in html
    assert "GPU-11111111" in html


def test_it_shows_fleet_summary(client: TestClient[Litestar]):
    html = client.get("/").text
    # up GPUs: 80%, 0%, 40% -> 40%; the down GPU's last 90% does not count
    summary = re.search(r'id="fleet-utilization">.*?<div class="value">(.*?)</div>', html, re.S)
    assert summary and summary.group(1) == "40%"
    for tile, count in (("busy", 2), ("idle", 1), ("down", 1)):
        found = re.search(rf'id="count-{tile}">.*?<div class="value">(\d+)</div>', html, re.S)
        assert found and int(found.group(1)) == count, tile


def test_it_shows_a_missing_reading_as_a_dash_not_zero(client: TestClient[Litestar]):
    row = _row(client.get("/").text, PARTIAL_UUID)
    cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
    # memory, power, temperature
    assert cells[2].strip() == "\u2013"
    assert cells[3].strip() == "66"


def test_it_shows_alerts_and_collector_reasons(client: TestClient[Litestar]):
    html = client.get("/").text
    assert "GPUIdle" in html
    assert "GPU idle for 30m while allocated" in html
    assert "CacheHitLow" in html
    assert html.index("GPUIdle") < html.index("CacheHitLow"), "firing alerts come first"
    assert NVML_REASON in html
    assert 'class="badge demo"' in html
    assert 'http-equiv="refresh"' in html


def test_it_escapes_user_supplied_labels(client: TestClient[Litestar]):
    html = client.get("/").text
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_serves_the_stylesheet_locally(client: TestClient[Litestar]):
    html = client.get("/").text
    assert 'href="/static/board.css"' in html
    assert "http://" not in html and "https://" not in html
    css = client.get("/static/board.css")
    assert css.status_code == 200
    assert ".badge" in css.text


def test_it_serves_the_same_data_as_json(client: TestClient[Litestar]):
    response = client.get("/api/v1/overview")
    assert response.status_code == 200
    data = response.json()
    assert data["demo"] is True
    assert data["fleet_utilization_ratio"] == pytest.approx(0.4)
    assert (data["gpus_busy"], data["gpus_idle"], data["gpus_down"]) == (2, 1, 1)
    states = {g["uuid"]: g["state"] for g in data["gpus"]}
    assert states[IDLE_UUID] == "idle"
    assert states[DOWN_UUID] == "down"
    partial = next(g for g in data["gpus"] if g["uuid"] == PARTIAL_UUID)
    assert partial["power_watts"] is None
    firing = data["alerts"][0]
    assert firing["alertname"] == "GPUIdle"
    assert firing["state"] == "firing"
    assert firing["labels"] == {"gpu": "1", "team": EVIL}
    assert firing["active_at"].startswith("2026-08-20T09:30:00")
    assert (data["alerts_firing"], data["alerts_pending"]) == (1, 1)
    nvml = next(c for c in data["collectors"] if c["name"] == "nvml")
    assert nvml == {
        "name": "nvml",
        "up": False,
        "reason": NVML_REASON,
        "last_success": None,
        "duration_seconds": 0.0,
    }


def test_it_starts_without_a_csrf_secret(services: Services):
    services.csrf_secret = None
    with TestClient(app=create_app(services)) as client:
        assert client.get("/healthz").status_code == 200


def test_it_shows_costs_beside_the_cloud_price_of_the_same_tokens(
    services: Services, client: TestClient[Litestar]
):
    from datetime import UTC, datetime
    from decimal import Decimal

    from daemon.costs.figures import CostFigures, Money

    usd = "USD"
    services.state.set_costs(
        CostFigures(
            computed_at=datetime(2026, 11, 29, tzinfo=UTC),
            cost_per_million={
                ("deepseek-v3", "allocation"): Money(Decimal("0.2780"), usd),
                ("deepseek-v3", "usage"): Money(Decimal("0.1046"), usd),
            },
            cloud_equivalent={
                ("deepseek-v3", "deepseek", "deepseek-chat"): Money(Decimal("0.3100"), usd)
            },
            break_even_tokens={("deepseek-v3", "deepseek", "deepseek-chat"): Decimal("2.5e9")},
            cloud_spend={
                ("AWS", "EC2", "today"): Money(Decimal("10.10"), usd),
                ("AWS", "S3", "today"): Money(Decimal("0.20"), usd),
                ("AWS", "EC2", "month"): Money(Decimal("1234.50"), usd),
            },
            budget_amount={"cloud": Money(Decimal("1000"), usd)},
            budget_forecast={"cloud": Money(Decimal("1500"), usd)},
        )
    )
    page = client.get("/").text
    assert "10.30 USD" in page and "1,234.50 USD" in page
    assert "0.2780 USD" in page and "0.1046 USD" in page and "0.3100 USD" in page
    assert "2.5 B" in page and "deepseek/deepseek-chat" in page
    assert 'data-budget="cloud"' in page and "1,500.00 USD" in page
    data = client.get("/api/v1/overview").json()["costs"]
    assert data["spend_today"] == [{"amount": "10.30", "currency": "USD"}]
    (model,) = data["models"]
    assert model["allocation"] == {"amount": "0.2780", "currency": "USD"}
    assert data["budgets"][0]["forecast_ratio"] == 1.5


def test_it_says_when_no_cost_figures_exist_yet(client: TestClient[Litestar]):
    assert "No cost figures yet" in client.get("/").text
    assert client.get("/api/v1/overview").json()["costs"] is None
