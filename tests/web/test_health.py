"""Liveness and readiness probes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.testing import TestClient

from daemon.services import Services
from web.app import create_app


def test_it_reports_alive(client: TestClient[Litestar]):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_reports_ready_when_there_is_no_problem(client: TestClient[Litestar]):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_it_reports_not_ready_with_the_problems(client: TestClient[Litestar], problems: list[str]):
    problems.append("database: connection refused")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "problems": ["database: connection refused"],
    }


def test_it_runs_the_service_lifespans_around_the_app(services: Services):
    events: list[str] = []

    @asynccontextmanager
    async def scheduler(app: Litestar) -> AsyncIterator[None]:
        events.append(f"start:{app is not None}")
        yield
        events.append("stop")

    services.lifespans = [scheduler]
    with TestClient(app=create_app(services)) as client:
        assert events == ["start:True"]
        assert client.get("/healthz").status_code == 200
    assert events == ["start:True", "stop"]


def test_it_documents_the_json_api(client: TestClient[Litestar]):
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/overview" in paths
    assert "/" not in paths
