"""schemathesis against the app's OpenAPI document (``/schema/openapi.json``): no 5xx, ever.

Every operation the document lists when the tests are collected gets its own test (routes added
later are picked up without anyone listing them). Each one loads the document from the app over
ASGI, in-process, and sends generated requests (schema-conforming and schema-violating ones)
with an admin bearer token, to an app over a real, migrated SQLite store that holds some data
(bills, rollups, users, an alert, a rollback, a debt item, an anomaly). The only check is
schemathesis' ``not_a_server_error``: a bad request must come back as a 4xx, never a 5xx.
Bounded and repeatable: ``MAX_EXAMPLES`` requests per operation, derandomized, no deadline, no
shrinking (the failure report carries a curl line that reproduces the request).

An operation schemathesis cannot turn into requests fails its test with schemathesis' reason,
unless ``CANNOT_RUN`` names it with a reason, which is then reported as the skip reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy.pool import StaticPool

from daemon.auth.tokens import create_token
from daemon.clock import ManualClock
from daemon.config import WebConfig
from daemon.costs.figures import CostFigures
from daemon.exporter import build_registry
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import open_store, session_scope
from daemon.store.models import Alert, Anomaly, DebtItem, Rollback
from tests.daemon.test_board_overview import MODELS, NOW, seed_overview_store
from tests.web.conftest import seeded_state
from web.app import create_app

SCHEMA_PATH = "/schema/openapi.json"
MAX_EXAMPLES = 30
"""Generated requests per operation (schema-conforming and schema-violating ones mixed)."""
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CANNOT_RUN: dict[str, str] = {}
"""``"METHOD /path"`` -> why schemathesis cannot generate requests for it (none today)."""


def _services(engine: sqlalchemy.engine.Engine, state: LiveState) -> Services:
    return Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=ManualClock(NOW).now,
        readiness=lambda: [],
        title="tcowatch schemathesis",
        csrf_secret="schemathesis-csrf-secret",
        web=WebConfig(session_secret="s" * 40),
    )


def _document_operations() -> list[tuple[str, str]]:
    """(label, schemathesis' error or "") of every operation of the document, at collection."""
    engine = sqlalchemy.create_engine("sqlite://", poolclass=StaticPool)
    try:
        document = create_app(_services(engine, LiveState())).openapi_schema.to_schema()
    finally:
        engine.dispose()
    parsed = schemathesis.openapi.from_dict(document)
    found: dict[str, str] = {}
    for result in parsed.get_all_operations():
        if isinstance(result, Ok):
            found[result.ok().label] = ""
        elif isinstance(result, Err):
            error = result.err()
            label = f"{(error.method or '').upper()} {error.path or ''}".strip()
            found[label or repr(error)] = str(error)
    for path, item in document.get("paths", {}).items():  # nothing is left out unseen
        for method in item:
            if method in HTTP_METHODS:
                found.setdefault(f"{method.upper()} {path}", "schemathesis did not list it")
    return sorted(found.items())


OPERATIONS = _document_operations()


def _seed_board(session: Any) -> None:
    seed_overview_store(session)
    session.add(
        Alert(
            fingerprint="0123456789abcdef",
            alertname="GPUIdle",
            labels={"alertname": "GPUIdle", "gpu": "1"},
            annotations={"summary": "idle"},
            state="firing",
            active_at=NOW - timedelta(minutes=30),
            fired_at=NOW - timedelta(minutes=25),
        )
    )
    session.add(Rollback(service="chat", from_version="v2", to_version="v1", started_at=NOW))
    session.add(DebtItem(title="pin the driver", created_at=NOW, monthly_cost=Decimal("120")))
    session.add(
        Anomaly(
            series_key="AWS/EC2",
            day=NOW - timedelta(days=1),
            expected_cost=Decimal("100"),
            actual_cost=Decimal("310"),
            impact=Decimal("210"),
            currency="USD",
            created_at=NOW,
            rule="CostAnomaly",
        )
    )


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Litestar, str]]:
    """The app over a seeded SQLite store, and an admin API token."""
    path: Path = tmp_path_factory.mktemp("schemathesis") / "board.db"
    engine = open_store(f"sqlite:///{path}")
    with session_scope(engine) as session:
        _seed_board(session)
        token = create_token(session, "schemathesis", "admin", created_by="cli", now=NOW).secret
    state = seeded_state()
    state.set_costs(CostFigures(computed_at=NOW, gpu_models=dict(MODELS)))
    yield create_app(_services(engine, state)), token
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(board: tuple[Litestar, str]) -> OpenApiSchema:
    """The document as the app serves it, loaded by schemathesis over ASGI."""
    app, token = board
    return schemathesis.openapi.from_asgi(
        SCHEMA_PATH, app, headers={"Authorization": f"Bearer {token}"}
    )


def test_it_finds_operations_in_the_document():
    labels = [label for label, _ in OPERATIONS]
    assert "GET /api/v1/overview" in labels
    assert all(not label.startswith("GET /schema") for label in labels)


@pytest.mark.parametrize(("label", "problem"), OPERATIONS, ids=[op for op, _ in OPERATIONS])
def test_it_never_answers_a_generated_request_with_a_server_error(
    label: str, problem: str, api_schema: OpenApiSchema, board: tuple[Litestar, str]
):
    if label in CANNOT_RUN:
        pytest.skip(f"schemathesis cannot run {label}: {CANNOT_RUN[label]}")
    assert not problem, f"schemathesis cannot build requests for {label}: {problem}"
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is in the collected document but not the served one"
    _, token = board
    auth = {"Authorization": f"Bearer {token}"}
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: a failure reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=auth)
        # raises schemathesis' FailureGroup naming the status and a curl line to reproduce
        case.validate_response(response, checks=[not_a_server_error], headers=auth)

    check()
