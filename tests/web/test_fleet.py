"""The fleet page, a GPU's page and their JSON twins, over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.config import WebConfig
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import Alert, Gpu, Node
from tests.daemon.test_board_fleet import OTHER_NODE, STALE_UUID, live_state, seed_store
from tests.web.conftest import BUSY_UUID, DOWN_UUID, EVIL, IDLE_UUID, NOW
from web.app import create_app

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
EVIL_UUID = "GPU-66666666-aaaa-bbbb-cccc-000000000005"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    seed_store(engine)
    with Session(engine) as session:
        session.add(
            Alert(
                fingerprint="f1",
                alertname="GPUIdle",
                labels={"alertname": "GPUIdle", "uuid": BUSY_UUID, "team": EVIL},
                annotations={"summary": EVIL},
                state="firing",
                active_at=NOW - timedelta(minutes=30),
            )
        )
        node = Node(name=EVIL, first_seen=NOW, last_seen=NOW)
        session.add(node)
        session.flush()
        assert node.id is not None
        session.add(
            Gpu(uuid=EVIL_UUID, node_id=node.id, index=0, name=EVIL, first_seen=NOW, last_seen=NOW)
        )
        session.commit()
    yield engine
    engine.dispose()


def _client(engine: Engine, state: LiveState) -> TestClient[Litestar]:
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=lambda: NOW,
        readiness=lambda: [],
        title="tcowatch test",
        csrf_secret="test-secret",
        web=WebConfig(anonymous_read=True),
    )
    return TestClient(app=create_app(services))


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient[Litestar]]:
    with _client(engine, live_state()) as client:
        yield client


def _row(html: str, uuid: str) -> str:
    match = re.search(rf'<tr class="gpu state-(\w+)" data-uuid="{uuid}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {uuid}"
    return match.group(0)


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", html, re.S)


def test_it_lists_nodes_and_gpus_with_strips(client: TestClient[Litestar]):
    response = client.get("/fleet")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.count('<tr class="gpu ') == 6
    assert 'class="gpu state-down"' in _row(html, DOWN_UUID)
    assert 'class="gpu state-idle"' in _row(html, IDLE_UUID)
    assert "no reading" in _row(html, STALE_UUID)
    busy = _row(html, BUSY_UUID)
    assert 'class="strip"' in busy and 'class="spark"' in busy
    assert "500 / 700" in busy, "power now vs limit"
    assert "60.0 / 80.0" in busy, "memory used / total in GiB"
    assert "1.1728 USD/h" in busy
    assert f'href="/fleet/gpus/{BUSY_UUID}"' in busy
    assert "2.0 h" in _row(html, IDLE_UUID)
    assert 'href="/static/fleet.css"' in html
    for svg in _svgs(html):
        ET.fromstring(svg)  # every chart is well-formed markup
    nodes = re.findall(r'<tr class="node" data-node="([^"]*)">', html)
    assert nodes == [ESCAPED, "node-a", OTHER_NODE]


def test_it_says_no_cost_model_where_a_gpu_is_unpriced(client: TestClient[Litestar]):
    html = client.get("/fleet").text
    assert "no cost model" in _row(html, STALE_UUID)


def test_it_filters_by_node_and_idle_state(client: TestClient[Litestar]):
    html = client.get("/fleet", params={"node": OTHER_NODE}).text
    assert html.count('<tr class="gpu ') == 1 and STALE_UUID in html
    html = client.get("/fleet", params={"idle": "true"}).text
    assert html.count('<tr class="gpu ') == 1 and IDLE_UUID in html
    html = client.get("/fleet", params={"idle": ""}).text
    assert html.count('<tr class="gpu ') == 6, "the form's 'all' choice"


def test_it_rejects_bad_filters_naming_the_field(client: TestClient[Litestar]):
    for path, params, field in (
        ("/fleet", {"idle": "maybe"}, "idle"),
        ("/fleet", {"limit": "0"}, "limit"),
        ("/api/v1/fleet", {"idle": "maybe"}, "idle"),
        ("/api/v1/fleet", {"limit": "501"}, "limit"),
        ("/api/v1/fleet", {"offset": "-1"}, "offset"),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params)
        assert any(e["key"] == field for e in response.json()["extra"]), response.text


def test_it_paginates_the_html_page(client: TestClient[Litestar]):
    html = client.get("/fleet", params={"limit": 2, "offset": 2}).text
    assert html.count('<tr class="gpu ') == 2
    assert "3\u20134 of 6" in html
    assert 'rel="prev"' in html and 'rel="next"' in html
    assert "offset=4" in html


def test_it_serves_the_fleet_as_json(client: TestClient[Litestar]):
    response = client.get("/api/v1/fleet", params={"limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (6, 3, 0)
    assert [g["node"] for g in body["items"]] == [EVIL, "node-a", "node-a"], "by node, index"
    busy = body["items"][1]
    assert busy["uuid"] == BUSY_UUID
    assert busy["state"] == "busy"
    assert busy["hourly_cost"] == {"amount": "1.172800", "currency": "USD"}
    assert len(busy["utilization_last_hour"]) == 60
    assert busy["utilization_last_hour"][30] is None
    assert len(busy["utilization_7d"]) == 42
    assert {n["name"] for n in body["nodes"]} == {"node-a", OTHER_NODE, EVIL}


def test_it_filters_the_json_by_node_and_idle(client: TestClient[Litestar]):
    body = client.get("/api/v1/fleet", params={"node": "node-a", "idle": "false"}).json()
    assert body["total"] == 3
    assert IDLE_UUID not in {g["uuid"] for g in body["items"]}
    body = client.get("/api/v1/fleet", params={"idle": "true"}).json()
    assert [g["uuid"] for g in body["items"]] == [IDLE_UUID]
    assert body["items"][0]["idle_hours_today"] == pytest.approx(2.0)


def test_it_shows_a_gpu_with_charts_processes_and_alerts(client: TestClient[Litestar]):
    response = client.get(f"/fleet/gpus/{BUSY_UUID}")
    assert response.status_code == 200
    html = response.text
    charts = re.findall(r'<svg [^>]*class="chart"', html)
    assert len(charts) == 6, "utilization, power and memory over 24 h and 7 d"
    for svg in _svgs(html):
        ET.fromstring(svg)
    assert 'id="processes"' in html and "4242" in html and "python3" in html
    assert 'id="mig"' in html and "3g.40gb" in html
    assert 'id="gpu-alerts"' in html and "GPUIdle" in html
    assert "1.1728 USD/h" in html
    assert 'id="cost-model"' in html and "1.000000 USD/h" in html


def test_it_serves_a_gpu_as_json_with_its_series(client: TestClient[Litestar]):
    response = client.get(f"/api/v1/fleet/gpus/{BUSY_UUID}")
    assert response.status_code == 200
    body = response.json()
    assert body["gpu"]["uuid"] == BUSY_UUID
    assert len(body["day"]["points"]) == 288
    assert len(body["week"]["points"]) == 168
    assert body["week"]["points"][-1]["utilization_ratio"] == pytest.approx(0.8)
    assert [p["pid"] for p in body["processes"]] == [77, 4242]
    assert [a["fingerprint"] for a in body["alerts"]] == ["f1"]


def test_it_answers_404_for_an_unknown_gpu(client: TestClient[Litestar]):
    page = client.get("/fleet/gpus/GPU-does-not-exist")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "GPU-does-not-exist" in page.text
    api = client.get("/api/v1/fleet/gpus/GPU-does-not-exist")
    assert api.status_code == 404
    assert "GPU-does-not-exist" in api.json()["detail"]


def test_it_escapes_outside_values(client: TestClient[Litestar]):
    for path in ("/fleet", f"/fleet/gpus/{BUSY_UUID}", f"/fleet/gpus/{EVIL_UUID}"):
        html = client.get(path).text
        assert EVIL not in html, path
        assert ESCAPED in html, path
    missing = client.get("/fleet/gpus/" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert missing.status_code == 404
    assert EVIL not in missing.text


def test_it_works_before_any_cost_figures(engine: Engine):
    with _client(engine, live_state(with_costs=False)) as client:
        html = client.get("/fleet").text
        assert "cost figures not computed yet" in html
        assert client.get(f"/fleet/gpus/{BUSY_UUID}").status_code == 200


def test_it_documents_the_json_twins_in_openapi(client: TestClient[Litestar]):
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert "/api/v1/fleet" in paths
    assert "/api/v1/fleet/gpus/{uuid}" in paths
    names = {p["name"] for p in paths["/api/v1/fleet"]["get"]["parameters"]}
    assert {"node", "idle", "limit", "offset"} <= names
    assert "/fleet" not in paths
