"""The placement advisor and ``tcowatch advise``: each factor's direction, the three outcomes,
exact reasons, measurements from the store."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon import cli_tco
from daemon.cli_tco import Measurements, add_tco_commands, cmd_advise, measure_workload
from daemon.config import ConfigError
from daemon.costs.advisor import (
    Advice,
    Readiness,
    Workload,
    advise,
    daily_volatility,
)
from daemon.store.db import open_store, session_scope
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

READY = Readiness(k8s_certified_engineers=True, monitoring_24x7=True, dr_drills_passed=True)
NEUTRAL = Workload("w", latency_need="batch", data_sensitivity="public")


def _advise(
    workload: Workload = NEUTRAL,
    *,
    volatility: float | None = None,
    utilization: float | None = None,
    local: Decimal | None = None,
    cloud: Decimal | None = None,
    readiness: Readiness = READY,
) -> Advice:
    return advise(
        workload,
        volatility=volatility,
        utilization=utilization,
        local_cost_per_million=local,
        cloud_price_per_million=cloud,
        readiness=readiness,
        currency="CNY",
    )


def _weight(advice: Advice, name: str) -> int:
    return sum(f.weight for f in advice.factors if f.name == name)


def test_it_computes_daily_volatility_as_population_std_over_mean() -> None:
    assert daily_volatility([100, 100, 100]) == 0.0
    assert daily_volatility([50, 150]) == pytest.approx(0.5)
    assert daily_volatility([100]) is None
    assert daily_volatility([0, 0]) is None
    with pytest.raises(ValueError, match="daily_requests"):
        daily_volatility([1, -1])


def test_it_counts_volatility_above_30_percent_for_the_cloud() -> None:
    assert _weight(_advise(volatility=0.42), "volatility") < 0
    assert _weight(_advise(volatility=0.30), "volatility") > 0
    assert _weight(_advise(volatility=None), "volatility") == 0


def test_it_counts_regulated_data_and_interactive_latency_for_local() -> None:
    regulated = _advise(Workload("w", latency_need="batch", data_sensitivity="regulated"))
    interactive = _advise(Workload("w", latency_need="interactive", data_sensitivity="public"))
    assert _weight(regulated, "data_sensitivity") > _weight(_advise(), "data_sensitivity")
    assert _weight(interactive, "latency") > _weight(_advise(), "latency")


def test_it_counts_low_utilization_against_buying_gpus() -> None:
    assert _weight(_advise(utilization=0.18), "utilization") < 0
    assert _weight(_advise(utilization=0.65), "utilization") > 0


def test_it_weighs_break_even_either_way() -> None:
    cheaper = _advise(local=Decimal("1.20"), cloud=Decimal("2"))
    dearer = _advise(local=Decimal("3"), cloud=Decimal("2"))
    assert _weight(cheaper, "break_even") > 0
    assert _weight(dearer, "break_even") < 0
    assert _weight(_advise(local=Decimal(1)), "break_even") == 0


def test_it_names_each_unmet_readiness_item_against_self_hosting() -> None:
    advice = _advise(readiness=Readiness(k8s_certified_engineers=True))
    assert _weight(advice, "readiness") == -2
    assert "no 24/7 monitoring procedure: weighs against self-hosting" in advice.reasons
    assert "no passed disaster-recovery drills: weighs against self-hosting" in advice.reasons
    assert _weight(_advise(), "readiness") == 0


def test_it_places_a_steady_regulated_well_used_workload_locally() -> None:
    advice = _advise(
        Workload("chat", latency_need="interactive", data_sensitivity="regulated"),
        volatility=0.12,
        utilization=0.72,
        local=Decimal("1.20"),
        cloud=Decimal("2.00"),
    )
    assert advice.placement == "local"
    assert advice.reasons == [
        "regulated data: owned hardware keeps it in house",
        "interactive latency: local (or hybrid) avoids the cloud round trip",
        "request volatility 12% <= 30%: steady load suits owned GPUs",
        "GPU utilization 72% >= 30%: owned GPUs are kept busy",
        "local CNY 1.20/M tokens (allocation basis) < cloud CNY 2.00/M: local is cheaper",
        "team readiness met: certified Kubernetes engineers, 24/7 monitoring, DR drills",
        "score +9 (local 9 vs cloud 0): local",
    ]


def test_it_places_a_spiky_idle_public_workload_in_the_cloud() -> None:
    advice = _advise(
        volatility=0.42,
        utilization=0.18,
        local=Decimal("0.9"),
        cloud=Decimal("0.28"),
        readiness=Readiness(),
    )
    assert advice.placement == "cloud"
    assert advice.score == -10
    assert advice.reasons == [
        "public data: no constraint on where it runs",
        "batch latency: it can run anywhere",
        "request volatility 42% > 30%: elastic cloud absorbs peaks",
        "GPU utilization 18% < 30%: bought GPUs would sit idle",
        "local CNY 0.90/M tokens (allocation basis) > cloud CNY 0.28/M: the cloud is cheaper",
        "no certified Kubernetes engineers on staff: weighs against self-hosting",
        "no 24/7 monitoring procedure: weighs against self-hosting",
        "no passed disaster-recovery drills: weighs against self-hosting",
        "score -10 (local 0 vs cloud 10): cloud",
    ]


def test_it_places_regulated_data_with_volatile_load_hybrid() -> None:
    advice = _advise(
        Workload("kyc", latency_need="batch", data_sensitivity="regulated"), volatility=0.5
    )
    assert advice.placement == "hybrid"
    assert advice.reasons[-1] == (
        "score +0 (local 3 vs cloud 3): strong reasons both ways: baseline local, burst to the cloud"
    )


def test_it_lets_a_clearly_stronger_side_win_over_a_conflict() -> None:
    advice = _advise(
        Workload("chat", latency_need="interactive", data_sensitivity="regulated"),
        volatility=0.1,
        utilization=0.8,
        local=Decimal(1),
        cloud=Decimal(2),
        readiness=Readiness(k8s_certified_engineers=True, monitoring_24x7=True),
    )
    assert advice.placement == "local"  # local +9 against cloud -1


def test_it_turns_missing_measurements_into_reasons() -> None:
    advice = _advise()
    assert "no request volatility measured yet (needs 2+ days)" in advice.reasons
    assert "no utilization measured yet" in advice.reasons
    assert "no local cost per million tokens measured yet" in advice.reasons
    assert advice.placement == "hybrid" and advice.score == 0


def test_it_rejects_negative_measurements() -> None:
    with pytest.raises(ValueError, match=r"^utilization:"):
        _advise(utilization=-0.1)
    with pytest.raises(ValueError, match=r"^local_cost_per_million:"):
        _advise(local=Decimal(-1))


def test_it_serialises_advice_for_json() -> None:
    data = _advise(volatility=0.5).as_dict()
    assert data["placement"] == "cloud"
    assert data["workload"] == "w"
    assert isinstance(data["factors"], list)
    assert data["factors"][2] == {
        "name": "volatility",
        "weight": -3,
        "reason": "request volatility 50% > 30%: elastic cloud absorbs peaks",
    }


# --- measurements from the store and ``tcowatch advise`` --------------------------------------

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
DAILY_REQUESTS = [100.0, 300.0, 100.0, 300.0]  # std 100 / mean 200 = 50%


def _seed(session: Session) -> None:
    node = Node(name="n1", first_seen=DAY0, last_seen=DAY0)
    session.add(node)
    session.flush()
    assert node.id is not None
    session.add(
        Gpu(uuid="GPU-1", node_id=node.id, index=0, name="H100", first_seen=DAY0, last_seen=DAY0)
    )
    session.flush()
    for day, requests in enumerate(DAILY_REQUESTS):
        for hour in (3, 15):  # two hourly rows a day, half the requests each
            at = DAY0 + timedelta(days=day, hours=hour)
            session.add(
                InferenceRollup(
                    node="n1",
                    model="qwen",
                    instance="i1",
                    resolution_seconds=3600,
                    bucket_start=at,
                    requests=requests / 2,
                    gpu_uuids=["GPU-1"],
                )
            )
            session.add(
                GpuRollup(
                    gpu_uuid="GPU-1",
                    resolution_seconds=3600,
                    bucket_start=at,
                    samples=3 if hour == 3 else 1,
                    avg_utilization_ratio=0.1 if hour == 3 else 0.5,
                )
            )
    # A per-minute row of the same traffic must not be counted twice.
    session.add(
        InferenceRollup(node="n1", model="qwen", instance="i1", bucket_start=DAY0, requests=1e6)
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    with session_scope(engine) as session:
        _seed(session)
    yield engine
    engine.dispose()


def test_it_measures_daily_volatility_and_utilization_from_hourly_rollups(engine: Engine) -> None:
    with session_scope(engine) as session:
        measured = measure_workload(
            session, "qwen", start=DAY0 - timedelta(days=2), end=DAY0 + timedelta(days=5)
        )
    # Quiet days after the first day with traffic count as 0; days before it do not.
    assert measured.daily_requests == [*DAILY_REQUESTS, 0.0]
    assert measured.volatility == pytest.approx(daily_volatility([*DAILY_REQUESTS, 0.0]))
    assert measured.utilization == pytest.approx((0.1 * 3 + 0.5 * 1) / 4)


def test_it_measures_nothing_for_an_unknown_model(engine: Engine) -> None:
    with session_scope(engine) as session:
        measured = measure_workload(session, "nope", start=DAY0, end=DAY0 + timedelta(days=4))
    assert measured == Measurements([], None, None)


def _advise_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tcowatch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path)
        if db:
            p.add_argument("--db")

    add_tco_commands(sub, common)
    return parser.parse_args(["advise", *argv])


def _fake_config(
    monkeypatch: pytest.MonkeyPatch, workloads: list[Any], store_url: str | None = None
) -> None:
    config = SimpleNamespace(
        store=SimpleNamespace(url=store_url),
        costs=SimpleNamespace(
            workloads=workloads,
            readiness=SimpleNamespace(
                k8s_certified_engineers=True, monitoring_24x7=True, dr_drills_passed=False
            ),
            tco=SimpleNamespace(currency="CNY"),
        ),
    )
    monkeypatch.setattr(cli_tco, "load_config", lambda path: (config, Path("tcowatch.yaml")))
    monkeypatch.setattr(cli_tco, "_utcnow", lambda: DAY0 + timedelta(days=4, hours=9))


def test_the_advise_command_uses_store_measurements(
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workload = {
        "name": "kyc",
        "model": "qwen",
        "latency_need": "batch",
        "data_sensitivity": "regulated",
        "local_cost_per_million": "1.50",
        "cloud_price_per_million": "2",
    }
    _fake_config(monkeypatch, [workload], store_url=db_url)
    assert cmd_advise(_advise_args("--json", "--days", "5")) == 0
    (advice,) = json.loads(capsys.readouterr().out)["workloads"]
    assert advice["measurements"]["daily_requests"] == DAILY_REQUESTS
    assert advice["measurements"]["volatility"] == pytest.approx(0.5)
    # local 5 (regulated +3, cheaper +2) vs cloud 6 (volatile -3, idle -2, no DR drill -1)
    assert advice["placement"] == "hybrid"
    assert "request volatility 50% > 30%: elastic cloud absorbs peaks" in advice["reasons"]
    assert "GPU utilization 20% < 30%: bought GPUs would sit idle" in advice["reasons"]
    assert "no passed disaster-recovery drills: weighs against self-hosting" in advice["reasons"]
    assert (
        "local CNY 1.50/M tokens (allocation basis) < cloud CNY 2.00/M: local is cheaper"
        in advice["reasons"]
    )


def test_the_advise_command_advises_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = SimpleNamespace(
        name="chat", model=None, latency_need="interactive", data_sensitivity="public"
    )
    _fake_config(monkeypatch, [workload])
    missing = tmp_path / "absent.db"
    assert cmd_advise(_advise_args("--db", str(missing))) == 0
    assert not missing.exists()  # advising never creates a database
    out = capsys.readouterr().out
    assert "Placement advice" in out and "chat" in out
    assert "no utilization measured yet" in out


def test_the_advise_command_rejects_a_bad_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_config(monkeypatch, [{"name": "x", "latency_need": "realtime"}])
    with pytest.raises(ConfigError) as caught:
        cmd_advise(_advise_args())
    assert caught.value.source == "costs.workloads"
    assert caught.value.problems == ["latency_need: expected interactive or batch, got 'realtime'"]


def test_the_advise_command_says_when_no_workload_is_configured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_config(monkeypatch, [])
    assert cmd_advise(_advise_args()) == 0
    assert "no workloads configured (costs.workloads)" in capsys.readouterr().err
