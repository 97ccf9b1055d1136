"""The fleet's board queries: history bucketed in SQL, GPU states, filters, costs, one GPU."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from collectors.base import GpuProcess, MigInstance
from daemon.board.fleet import (
    BUSY,
    DOWN,
    IDLE,
    NO_COST_MODEL,
    NO_FIGURES,
    UNKNOWN,
    list_fleet,
)
from daemon.board.fleet_detail import gpu_detail
from daemon.board.fleet_history import Window, dense, gpu_buckets
from daemon.costs.figures import CostFigures, Money
from daemon.costs.localcost import GpuCostModel
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import Alert, Gpu, GpuRollup, Node
from tests.web.conftest import (
    BUSY_UUID,
    DOWN_UUID,
    EVIL,
    IDLE_UUID,
    NODE,
    NOW,
    PARTIAL_UUID,
    seeded_state,
)

H100 = "NVIDIA H100 80GB HBM3"
STALE_UUID = "GPU-55555555-aaaa-bbbb-cccc-000000000004"
OTHER_NODE = "node-b"
MODEL = GpuCostModel(
    gpu_model=H100,
    currency="USD",
    purchase_price=Decimal("35040"),
    depreciation_years=Decimal("4"),
    power_price_per_kwh=Decimal("0.12"),
    pue=Decimal("1.3"),
    ops_cost_per_year=Decimal("876"),
)
"""1.00 USD/h depreciation + 0.10 USD/h operations + energy (see daemon/costs/localcost.py)."""
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
TODAY = NOW.replace(hour=0)


def _minute(uuid: str, start: datetime, **values: float | int | None) -> dict[str, object]:
    row: dict[str, object] = {
        "gpu_uuid": uuid,
        "resolution_seconds": 60,
        "bucket_start": start,
        "samples": 4,
        "avg_utilization_ratio": 0.8,
        "max_utilization_ratio": 0.9,
        "avg_memory_used_bytes": 60.0 * 2**30,
        "avg_power_watts": 500.0,
        "energy_joules": 30_000.0,
        "idle_seconds": 0.0,
    }
    row.update(values)
    return row


def seed_store(engine: Engine) -> None:
    """node-a with the four GPUs of ``seeded_state`` and node-b with one the live view lacks.

    BUSY: minutes 09:00-09:59 today at 80% except a gap at 09:30, and hour rows at 50% from
    yesterday 00:00 to today 08:00 (09:00 is not rolled up yet). IDLE: idle minutes 08:00-09:59
    today at 100 W and 30 idle minutes yesterday, which must not count as today.
    """
    with Session(engine) as session:
        node_a = Node(name=NODE, first_seen=NOW - 30 * HOUR, last_seen=NOW)
        node_b = Node(name=OTHER_NODE, first_seen=NOW - 30 * HOUR, last_seen=NOW - 2 * HOUR)
        session.add_all([node_a, node_b])
        session.flush()
        assert node_a.id is not None and node_b.id is not None
        for index, uuid in enumerate((BUSY_UUID, IDLE_UUID, PARTIAL_UUID, DOWN_UUID)):
            session.add(
                Gpu(
                    uuid=uuid,
                    node_id=node_a.id,
                    index=index,
                    name=H100,
                    memory_total_bytes=80 * 2**30,
                    first_seen=NOW - 30 * HOUR,
                    last_seen=NOW,
                )
            )
        session.add(
            Gpu(
                uuid=STALE_UUID,
                node_id=node_b.id,
                index=0,
                name="NVIDIA L40S",
                memory_total_bytes=48 * 2**30,
                first_seen=NOW - 30 * HOUR,
                last_seen=NOW - 2 * HOUR,
            )
        )
        session.flush()
        rows = [_minute(BUSY_UUID, NOW - HOUR + m * MINUTE) for m in range(60) if m != 30]
        rows += [
            _minute(
                IDLE_UUID,
                NOW - 2 * HOUR + m * MINUTE,
                avg_utilization_ratio=0.0,
                max_utilization_ratio=0.01,
                avg_power_watts=100.0,
                idle_seconds=60.0,
            )
            for m in range(120)
        ]
        rows += [
            _minute(IDLE_UUID, TODAY - 30 * MINUTE + m * MINUTE, idle_seconds=60.0)
            for m in range(30)
        ]
        rows += [
            _minute(
                BUSY_UUID,
                TODAY - 24 * HOUR + h * HOUR,
                resolution_seconds=3600,
                samples=240,
                avg_utilization_ratio=0.5,
                avg_power_watts=400.0,
            )
            for h in range(33)
        ]
        session.execute(insert(GpuRollup), rows)
        session.commit()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    seed_store(engine)
    yield engine
    engine.dispose()


def figures(**overrides: object) -> CostFigures:
    """Cost figures with an hourly cost for the busy GPU and the H100 cost model."""
    values: dict[str, object] = {
        "computed_at": NOW,
        "gpu_hourly": {BUSY_UUID: Money(Decimal("1.1728"), "USD")},
        "gpu_models": {H100: MODEL},
    }
    values.update(overrides)
    return CostFigures(**values)  # type: ignore[arg-type]


def live_state(with_costs: bool = True) -> LiveState:
    """``seeded_state`` with processes and MIG instances on the busy GPU, and cost figures."""
    state = seeded_state()
    busy = state.view().gpus[BUSY_UUID]
    state.record_samples(
        (
            replace(
                busy,
                processes=(
                    GpuProcess(pid=4242, used_memory_bytes=2 * 2**30, name="python3"),
                    GpuProcess(pid=77, used_memory_bytes=50 * 2**30, name=EVIL),
                ),
                mig_enabled=True,
                mig_instances=(MigInstance(gpu_instance_id=1, profile="3g.40gb"),),
            ),
        ),
        (),
        (),
    )
    if with_costs:
        state.set_costs(figures())
    return state


def test_it_buckets_minute_rows_into_weighted_means(engine: Engine):
    window = Window.ending_at(NOW, 300, 12)
    with Session(engine) as session:
        buckets = gpu_buckets(session, [BUSY_UUID], window)[BUSY_UUID]
    assert window.start == NOW - HOUR
    assert sorted(buckets) == list(range(12))
    gap = buckets[6]  # 09:30-09:35 lacks the 09:30 minute
    assert gap.samples == 16
    assert buckets[0].samples == 20
    assert buckets[0].utilization_ratio == pytest.approx(0.8)
    assert buckets[0].power_watts == pytest.approx(500.0)
    assert buckets[0].utilization_max == pytest.approx(0.9)
    assert buckets[0].energy_joules == pytest.approx(150_000.0)


def test_it_reads_hour_rows_and_fills_unrolled_hours_from_minutes(engine: Engine):
    window = Window.ending_at(NOW, 3600, 48)
    with Session(engine) as session:
        buckets = gpu_buckets(session, [BUSY_UUID], window)[BUSY_UUID]
    series = dense(buckets, window)
    assert len(series) == 48
    last = series[-1]
    assert last is not None and last.samples == 59 * 4
    assert last.utilization_ratio == pytest.approx(0.8), "09:00 comes from the minute rows"
    rolled = series[-2]
    assert rolled is not None and rolled.utilization_ratio == pytest.approx(0.5)
    assert rolled.samples == 240
    assert series[0] is None, "no data 48 hours ago: a gap, not a zero"


def test_it_leaves_missing_minutes_as_gaps(engine: Engine):
    window = Window.ending_at(NOW, 60, 60)
    with Session(engine) as session:
        series = dense(gpu_buckets(session, [BUSY_UUID], window)[BUSY_UUID], window)
    assert series[30] is None
    assert all(b is not None for i, b in enumerate(series) if i != 30)


def test_it_rejects_a_window_not_aligned_to_its_buckets():
    with pytest.raises(ValueError, match="not aligned"):
        Window(NOW + timedelta(seconds=90), 300, 4)
    with pytest.raises(ValueError, match="whole number of minutes"):
        Window(NOW, 90, 4)


def test_it_lists_gpus_with_their_states_in_node_order(engine: Engine):
    with Session(engine) as session:
        page = list_fleet(session, live_state().view(), now=NOW)
    states = {g.uuid: g.state for g in page.items}
    assert states == {
        BUSY_UUID: BUSY,
        IDLE_UUID: IDLE,
        PARTIAL_UUID: BUSY,
        DOWN_UUID: DOWN,
        STALE_UUID: UNKNOWN,
    }
    assert [(g.node, g.index) for g in page.items] == [
        (NODE, 0),
        (NODE, 1),
        (NODE, 2),
        (NODE, 3),
        (OTHER_NODE, 0),
    ]
    down = next(g for g in page.items if g.uuid == DOWN_UUID)
    assert down.utilization_ratio is None, "a down GPU's last reading is not current"
    assert down.power_limit_watts == 700.0
    assert page.node_names == [NODE, OTHER_NODE]


def test_it_counts_idle_hours_since_midnight_utc_only(engine: Engine):
    with Session(engine) as session:
        page = list_fleet(session, live_state().view(), now=NOW)
    idle = next(g for g in page.items if g.uuid == IDLE_UUID)
    assert idle.idle_hours_today == pytest.approx(2.0)
    node_a = next(n for n in page.nodes if n.name == NODE)
    assert node_a.idle_hours_today == pytest.approx(2.0)
    assert (node_a.gpus, node_a.busy, node_a.idle, node_a.down) == (4, 2, 1, 1)
    assert node_a.power_watts == pytest.approx(570.0), "busy 500 W + idle 70 W; no reading left out"


def test_it_prices_idle_time_with_the_cost_model(engine: Engine):
    with Session(engine) as session:
        page = list_fleet(session, live_state().view(), now=NOW)
    idle = next(g for g in page.items if g.uuid == IDLE_UUID)
    # 2 h x (1.00 + 0.10) + 7200 s x 100 W = 0.2 kWh x 1.3 x 0.12 = 0.0312
    assert idle.idle_cost_today == Money(Decimal("2.231200"), "USD")
    busy = next(g for g in page.items if g.uuid == BUSY_UUID)
    assert busy.hourly_cost == Money(Decimal("1.172800"), "USD")
    assert busy.cost_note == ""
    assert busy.idle_cost_today == Money(Decimal("0.000000"), "USD")


def test_it_says_why_a_cost_is_missing(engine: Engine):
    with Session(engine) as session:
        priced = list_fleet(session, live_state().view(), now=NOW)
        unpriced = list_fleet(session, live_state(with_costs=False).view(), now=NOW)
    stale = next(g for g in priced.items if g.uuid == STALE_UUID)
    assert stale.hourly_cost is None and stale.cost_note == NO_COST_MODEL
    assert all(g.cost_note == NO_FIGURES and g.hourly_cost is None for g in unpriced.items)
    assert any("not computed yet" in note for note in unpriced.notes)


def test_it_filters_by_node_and_idle_and_paginates(engine: Engine):
    view = live_state().view()
    with Session(engine) as session:
        by_node = list_fleet(session, view, now=NOW, node=OTHER_NODE)
        idle = list_fleet(session, view, now=NOW, idle=True)
        not_idle = list_fleet(session, view, now=NOW, idle=False)
        second = list_fleet(session, view, now=NOW, limit=2, offset=2)
    assert [g.uuid for g in by_node.items] == [STALE_UUID]
    assert [n.name for n in by_node.nodes] == [OTHER_NODE]
    assert [g.uuid for g in idle.items] == [IDLE_UUID]
    assert IDLE_UUID not in {g.uuid for g in not_idle.items} and not_idle.total == 4
    assert (second.total, second.limit, second.offset) == (5, 2, 2)
    assert [g.uuid for g in second.items] == [PARTIAL_UUID, DOWN_UUID]
    assert sum(n.gpus for n in second.nodes) == 5, "node summaries cover every match"


def test_it_carries_the_last_hour_strip_and_the_seven_day_trend(engine: Engine):
    with Session(engine) as session:
        page = list_fleet(session, live_state().view(), now=NOW)
    busy = next(g for g in page.items if g.uuid == BUSY_UUID)
    assert len(busy.utilization_last_hour) == 60
    assert busy.utilization_last_hour[30] is None
    assert busy.utilization_last_hour[0] == pytest.approx(0.8)
    assert page.strip_start == NOW - HOUR
    assert len(busy.utilization_7d) == 42
    assert busy.utilization_7d[-1] is not None
    assert busy.utilization_7d[0] is None


def test_it_marks_a_down_gpu_known_only_by_its_slot(engine: Engine):
    state = live_state()
    state.record_samples((), (), (f"{OTHER_NODE}/0", f"{OTHER_NODE}/5"))
    with Session(engine) as session:
        page = list_fleet(session, state.view(), now=NOW)
    stale = next(g for g in page.items if g.uuid == STALE_UUID)
    assert stale.state == DOWN
    slot_only = [g for g in page.items if g.uuid == ""]
    assert [(g.node, g.index, g.state) for g in slot_only] == [(OTHER_NODE, 5, DOWN)]


def test_it_details_one_gpu_with_series_processes_and_alerts(engine: Engine):
    with Session(engine) as session:
        session.add_all(
            [
                Alert(
                    fingerprint="a1",
                    alertname="GPUIdle",
                    labels={"alertname": "GPUIdle", "uuid": BUSY_UUID, "team": EVIL},
                    annotations={"summary": "idle 30m"},
                    state="firing",
                    active_at=NOW - HOUR,
                ),
                Alert(
                    fingerprint="a2",
                    alertname="GPUHot",
                    labels={"alertname": "GPUHot", "uuid": BUSY_UUID},
                    state="inactive",
                    active_at=NOW - 3 * HOUR,
                    resolved_at=NOW - 2 * HOUR,
                ),
                Alert(
                    fingerprint="a3",
                    alertname="GPUIdle",
                    labels={"alertname": "GPUIdle", "uuid": IDLE_UUID},
                    state="firing",
                    active_at=NOW - HOUR,
                ),
            ]
        )
        session.commit()
        detail = gpu_detail(session, live_state().view(), BUSY_UUID, now=NOW)
    assert detail is not None
    assert [(a.fingerprint, a.state) for a in detail.alerts] == [
        ("a1", "firing"),
        ("a2", "resolved"),
    ]
    assert detail.alerts[0].labels == {"team": EVIL, "uuid": BUSY_UUID}
    assert detail.processes is not None
    assert [p.pid for p in detail.processes] == [77, 4242], "largest memory first"
    assert detail.mig_enabled is True and detail.mig_instances[0].profile == "3g.40gb"
    assert len(detail.day.points) == 288 and detail.day.bucket_seconds == 300
    assert len(detail.week.points) == 168 and detail.week.bucket_seconds == 3600
    assert detail.day.points[-1].start == NOW - 5 * MINUTE
    assert detail.week.points[-1].utilization_ratio == pytest.approx(0.8)
    assert detail.week.points[-2].power_watts == pytest.approx(400.0)
    assert detail.cost_model is not None
    assert detail.cost_model.capex_per_hour == Decimal("1.000000")


def test_it_prices_seven_days_of_idle_time(engine: Engine):
    with Session(engine) as session:
        detail = gpu_detail(session, live_state().view(), IDLE_UUID, now=NOW)
    assert detail is not None
    assert detail.idle_hours_7d == pytest.approx(2.5)
    # 2.5 h x 1.10 + (7200 s x 100 W + 1800 s x 500 W) = 1.62 MJ = 0.45 kWh x 1.3 x 0.12
    assert detail.idle_cost_7d == Money(Decimal("2.820200"), "USD")
    assert detail.processes is None, "processes not reported is not the same as none"


def test_it_returns_none_for_an_unknown_gpu(engine: Engine):
    with Session(engine) as session:
        assert gpu_detail(session, live_state().view(), "GPU-nope", now=NOW) is None
        assert gpu_detail(session, live_state().view(), "", now=NOW) is None


def test_it_details_a_gpu_known_only_to_the_store(engine: Engine):
    with Session(engine) as session:
        detail = gpu_detail(session, live_state().view(), STALE_UUID, now=NOW)
    assert detail is not None
    assert detail.gpu.state == UNKNOWN and detail.gpu.node == OTHER_NODE
    assert detail.gpu.memory_total_bytes == 48 * 2**30
    assert detail.cost_model is None and detail.gpu.cost_note == NO_COST_MODEL
    assert all(p.utilization_ratio is None for p in detail.day.points)


def test_it_seeds_demo_history_once(db_url: str):
    from daemon.board.fleet import seed_demo_fleet
    from daemon.config import SimulatedConfig

    engine = open_store(db_url)
    simulated = SimulatedConfig(nodes=1, gpus_per_node=2, seed=7)
    try:
        with Session(engine) as session:
            written = seed_demo_fleet(session, NOW, simulated, days=2)
            session.commit()
            again = seed_demo_fleet(session, NOW, simulated, days=2)
            page = list_fleet(session, LiveState().view(), now=NOW)
        # 2 GPUs: 1440 minutes each, and 48 complete hours each
        assert written == 2 * (1440 + 48)
        assert again == 0, "nothing is written twice"
        assert page.total == 2 and {g.state for g in page.items} == {UNKNOWN}
        assert all(v is not None for v in page.items[0].utilization_last_hour)
        # 4-hour buckets from 2 days ago 08:00 (partly covered) to today 08:00: 13 with data
        assert sum(v is not None for v in page.items[0].utilization_7d) == 13
        with pytest.raises(ValueError, match="days"):
            seed_demo_fleet(session, NOW, simulated, days=0)
    finally:
        engine.dispose()
