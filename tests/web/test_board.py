"""The overview page and its JSON twin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from daemon.clock import ManualClock
from daemon.config import WebConfig
from daemon.costs.figures import CostFigures
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import AlertView
from daemon.store.db import open_store, session_scope
from daemon.store.models import CacheRollup, CostRecord, Gpu, InferenceRollup
from tests.daemon.test_board_overview import MODELS as STORE_MODELS
from tests.daemon.test_board_overview import NOW as STORE_NOW
from tests.daemon.test_board_overview import seed_overview_store
from tests.web.conftest import (
    DOWN_UUID,
    EVIL,
    IDLE_UUID,
    NVML_REASON,
    PARTIAL_UUID,
    seeded_state,
)
from web.app import create_app
from web.controllers.board import TOP_ALERTS, overview_caches


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


# --- the store part: spend by source, 7-day utilization, idle waste, cache hit rates ---


@pytest.fixture
def store_engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    with session_scope(engine) as session:
        seed_overview_store(session)
    yield engine
    engine.dispose()


def _store_services(engine: Engine, clock: ManualClock) -> Services:
    state = seeded_state()
    state.set_costs(CostFigures(computed_at=STORE_NOW, gpu_models=dict(STORE_MODELS)))
    return Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=clock.now,
        readiness=lambda: [],
        title="tcowatch test",
        csrf_secret="test-secret",
        web=WebConfig(anonymous_read=True),
    )


def test_it_shows_spend_utilization_idle_waste_and_cache_hits_from_the_store(
    store_engine: Engine,
):
    services = _store_services(store_engine, ManualClock(STORE_NOW))
    with TestClient(app=create_app(services)) as client:
        page = client.get("/")
        data = client.get("/api/v1/overview").json()
    assert page.status_code == 200
    html = page.text
    assert 'href="/static/overview.css"' in html
    usd = re.search(r'data-currency="USD">(.*?)</div>\s*</div>', html, re.S)
    assert usd, "a spend tile per currency"
    assert "10.30 USD" in usd.group(1) and "1,143.63 USD" in usd.group(1)
    assert "aws-ce, focus:/bills/azure" in usd.group(1), "the tile names its sources"
    assert 'data-currency="CNY"' in html and "88.80 CNY" in html
    assert 'data-source="focus:/bills/azure"' in html
    assert re.search(r'id="utilization-7d">.*?<div class="value">43% <small>mean', html, re.S)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="spark"' in html
    idle = re.search(r'id="idle-waste">(.*?)</div>\s*</div>', html, re.S)
    assert idle and "2.2684 USD" in idle.group(1) and "3.0 idle GPU-hours" in idle.group(1)
    assert "no cost model" in html, "the unpriced GPU model says so"
    cache = re.search(r'<tr data-model="deepseek-v3">(.*?)</tr>', html, re.S)
    assert cache and "50%" in cache.group(1) and "prefix cache, counters" in cache.group(1)
    assert re.search(r'<tr data-cache="redis">.*?75%', html, re.S)

    store = data["store"]
    assert data["store_problem"] == ""
    cny, usd_json = store["spend_by_currency"]
    assert Decimal(usd_json["month_to_date"]["amount"]) == Decimal("1143.633")
    assert usd_json["month_to_date"]["currency"] == "USD"
    assert usd_json["sources"] == ["aws-ce", "focus:/bills/azure"]
    assert (Decimal(cny["today"]["amount"]), cny["today"]["currency"]) == (Decimal("88.8"), "CNY")
    assert store["utilization"]["average_ratio"] == pytest.approx(417.6 / 976)
    assert [p["hour"][11:16] for p in store["utilization"]["points"]] == ["08:00", "09:00", "10:00"]
    h100 = store["idle_waste"]["rows"][0]
    assert h100["cost"]["currency"] == "USD"
    assert float(h100["cost"]["amount"]) == pytest.approx(2.2684, abs=1e-4)
    assert store["idle_waste"]["unpriced"] == ["NVIDIA L4"]
    assert store["cache_hits"][0] == {
        "model": "deepseek-v3",
        "hit_ratio": 0.5,
        "hits": 400.0,
        "queries": 800.0,
        "basis": "counters",
    }


def test_it_queries_the_store_once_per_minute_for_concurrent_loads(store_engine: Engine):
    clock = ManualClock(STORE_NOW)
    app = create_app(_store_services(store_engine, clock))
    with TestClient(app=app) as client:
        for path in ("/", "/api/v1/overview", "/", "/api/v1/overview"):
            assert client.get(path).status_code == 200
        cache = overview_caches(app.state).store
        assert cache.computations == 1
        with session_scope(store_engine) as session:
            session.add(
                CostRecord(
                    source="late-import",
                    import_batch="t",
                    row_key="late",
                    provider="GCP",
                    billed_cost=Decimal("5"),
                    billing_currency="EUR",
                    charge_period_start=STORE_NOW - timedelta(hours=1),
                    charge_period_end=STORE_NOW,
                )
            )
        assert "late-import" not in client.get("/").text, "still the cached minute"
        clock.advance(timedelta(minutes=1))
        assert "late-import" in client.get("/").text
        assert cache.computations == 2


def test_it_escapes_outside_values_from_the_store(store_engine: Engine):
    with session_scope(store_engine) as session:
        session.add(InferenceRollup(node="n", model=EVIL, instance="i", bucket_start=STORE_NOW,
                                    cache_hits=1, cache_queries=2))  # fmt: skip
        session.add(CacheRollup(name=EVIL, bucket_start=STORE_NOW, hits=1, lookups=2))
        session.add(
            CostRecord(source=EVIL, import_batch="t", row_key="x", provider="p",
                       billed_cost=Decimal("1"), billing_currency="USD",
                       charge_period_start=STORE_NOW - timedelta(hours=2),
                       charge_period_end=STORE_NOW)
        )  # fmt: skip
        gpu = session.get(Gpu, "GPU-cccc")
        assert gpu is not None
        gpu.name = EVIL
    services = _store_services(store_engine, ManualClock(STORE_NOW))
    with TestClient(app=create_app(services)) as client:
        html = client.get("/").text
    assert EVIL not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def test_it_says_when_the_store_cannot_be_read():
    engine = sqlalchemy.create_engine(  # no tables: every store query fails
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    try:
        with TestClient(app=create_app(_store_services(engine, ManualClock(STORE_NOW)))) as client:
            page = client.get("/")
            data = client.get("/api/v1/overview").json()
    finally:
        engine.dispose()
    assert page.status_code == 200
    problem = re.search(r'id="store-problem">(.*?)</p>', page.text, re.S)
    assert problem and problem.group(1).startswith("the store could not be read (")
    assert 'id="gpus"' in page.text and 'id="collectors"' in page.text, "the live part shows"
    assert data["store"] is None
    assert data["store_problem"].startswith("the store could not be read (")
    assert data["gpus_busy"] == 2


def test_it_lists_the_top_alerts_and_links_to_all_of_them(services: Services):
    alerts = tuple(
        AlertView(
            fingerprint=f"{i:016x}",
            alertname=f"Alert{i:02d}",
            state="firing" if i < 12 else "pending",
            labels={"alertname": f"Alert{i:02d}"},
            annotations={},
            active_at=STORE_NOW - timedelta(minutes=i),
        )
        for i in range(13)
    )
    services.state.set_alerts(alerts)
    with TestClient(app=create_app(services)) as client:
        html = client.get("/").text
        data = client.get("/api/v1/overview").json()
    assert html.count('<tr class="alert ') == TOP_ALERTS
    assert 'href="/alerts" id="all-alerts"' in html
    assert "12 firing, 1 pending; the first 10 here" in html
    assert "Alert12" not in html, "the pending one is beyond the top ten"
    assert len(data["alerts"]) == 13 and data["alerts_firing"] == 12
