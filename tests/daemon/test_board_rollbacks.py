"""``daemon.board.rollbacks``: recording, restoring, SLA clocks, statistics and demo rows, on
SQLite and PostgreSQL; and the stored target is the one the ``rollback_sla`` rule applies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from daemon.board.rollbacks import (
    AT_RISK,
    BREACHED,
    MET,
    ON_TRACK,
    InputError,
    NewRollback,
    RollbackAlreadyRestored,
    RollbackNotFound,
    check_incident_url,
    get_rollback,
    known_services,
    list_rollbacks,
    parse_target,
    parse_when,
    percentile,
    record_rollback,
    restore_rollback,
    rollback_row,
    rollback_stats,
    seed_demo_rollbacks,
)
from daemon.config import RollbacksConfig
from daemon.rule_context import ContextBuilder
from daemon.store.db import open_store, session_scope
from daemon.store.models import Rollback
from rules.rollback_sla import RollbackSlaRule

NOW = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = RollbacksConfig.model_validate({"default_target": "4h", "services": {"checkout": "1h"}})


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def new(service: str = "chat-api", **fields: object) -> NewRollback:
    values: dict[str, object] = {"from_version": "v42", "to_version": "v41", **fields}
    return NewRollback(service=service, **values)  # type: ignore[arg-type]


def record(engine: Engine, rollback: NewRollback, now: datetime = NOW) -> int:
    with session_scope(engine) as session:
        row = record_rollback(session, rollback, policy=POLICY, created_by="user:ed", now=now)
        assert row.id is not None
        return row.id


# -- recording ----------------------------------------------------------------------------------


def test_it_stores_the_configured_target_per_service_else_the_default(engine: Engine) -> None:
    checkout = record(engine, new("checkout"))
    other = record(engine, new("search"))
    given = record(engine, new("checkout", sla_target=timedelta(minutes=30)))
    with Session(engine) as session:
        targets = {i: session.get(Rollback, i).sla_target_seconds for i in (checkout, other, given)}  # type: ignore[union-attr]
        stored = session.get(Rollback, checkout)
    assert targets == {checkout: 3600, other: 4 * 3600, given: 1800}
    assert stored is not None
    assert (stored.started_at, stored.created_by, stored.restored_at) == (NOW, "user:ed", None)


def test_it_keeps_every_field_and_strips_blanks(engine: Engine) -> None:
    rid = record(
        engine,
        new(
            " chat-api ",
            reason="p99 doubled\nafter the FP8 build",
            owner=" oncall ",
            incident_url=" https://inc.example/INC-1?x=1 ",
            started_at=NOW - HOUR,
        ),
    )
    with Session(engine) as session:
        row = get_rollback(session, rid, now=NOW)
    assert row is not None
    assert (row.service, row.owner, row.incident_url) == (
        "chat-api",
        "oncall",
        "https://inc.example/INC-1?x=1",
    )
    assert row.reason == "p99 doubled\nafter the FP8 build"
    assert row.started_at == NOW - HOUR


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"service": "  "}, "service", "required"),
        ({"from_version": ""}, "from_version", "required"),
        ({"to_version": "v42"}, "to_version", "must differ from from_version"),
        ({"service": "a" * 256}, "service", "at most 255 characters"),
        ({"owner": "bob\nalice"}, "owner", "must not contain control characters or line breaks"),
        ({"reason": "x" * 2001}, "reason", "at most 2000 characters"),
        ({"incident_url": "javascript:alert(1)"}, "incident_url", "expected an http"),
        ({"started_at": NOW + timedelta(minutes=6)}, "started_at", "is in the future"),
        (
            {"started_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))},
            "started_at",
            "out of range",
        ),
        ({"sla_target": timedelta(seconds=30)}, "sla_target", "expected between 1m and 365d"),
        ({"sla_target": timedelta(days=366)}, "sla_target", "expected between 1m and 365d"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(
    engine: Engine, fields: dict[str, object], field: str, reason: str
) -> None:
    values: dict[str, object] = {"service": "chat-api", **fields}
    with pytest.raises(InputError) as caught:
        record(engine, new(**values))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert caught.value.reason.startswith(reason)
    with Session(engine) as session:
        assert session.exec(select(Rollback)).all() == []


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http:alert(1)",
        "//evil.example/x",
        "ftp://files.example/x",
        "https://inc.example/a b",
        "https://inc.example/\x00",
        "https://user:secret@inc.example/x",
        "https://[::1/x",
        'https://inc.example/"onmouseover="alert(1)',
        "https://inc.example/<script>",
        "https://inc.example\\@evil.example/",
    ],
)
def test_it_accepts_only_http_incident_links_and_never_echoes_them(url: str) -> None:
    with pytest.raises(InputError) as caught:
        check_incident_url(url)
    assert caught.value.field == "incident_url"
    assert "secret" not in str(caught.value) and "alert" not in str(caught.value)


def test_it_accepts_http_and_https_links() -> None:
    assert check_incident_url("") == ""
    assert check_incident_url("HTTPS://inc.example/INC-7#t") == "HTTPS://inc.example/INC-7#t"
    assert check_incident_url("http://10.0.0.1:8080/i/7") == "http://10.0.0.1:8080/i/7"


def test_it_parses_form_times_and_targets() -> None:
    assert parse_when("started_at", "2026-08-20T09:30") == datetime(2026, 8, 20, 9, 30, tzinfo=UTC)
    assert parse_when("started_at", "2026-08-20T11:30+02:00") == datetime(
        2026, 8, 20, 9, 30, tzinfo=UTC
    )
    assert parse_when("started_at", " ") is None
    assert parse_target("sla_target", "1h30m") == timedelta(minutes=90)
    assert parse_target("sla_target", "") is None
    with pytest.raises(InputError, match="started_at: expected a date and time"):
        parse_when("started_at", "yesterday")
    with pytest.raises(InputError, match="started_at: expected a date and time"):
        parse_when("started_at", "0001-01-01T00:00+14:00")
    with pytest.raises(InputError, match='sla_target: expected a duration like "4h"'):
        parse_target("sla_target", "soon")


# -- restoring ----------------------------------------------------------------------------------


def test_it_marks_a_rollback_restored_once(engine: Engine) -> None:
    rid = record(engine, new(started_at=NOW - 2 * HOUR))
    with session_scope(engine) as session:
        restore_rollback(session, rid, restored_at=None, now=NOW)
    with Session(engine) as session:
        row = get_rollback(session, rid, now=NOW + 10 * HOUR)
    assert row is not None
    assert row.restored_at == NOW and row.time_to_restore_seconds == 7200
    assert (row.open, row.sla, row.breached) == (False, MET, False)
    with session_scope(engine) as session, pytest.raises(RollbackAlreadyRestored):
        restore_rollback(session, rid, restored_at=None, now=NOW)
    with session_scope(engine) as session, pytest.raises(RollbackNotFound):
        restore_rollback(session, rid + 100, restored_at=None, now=NOW)


def test_it_refuses_a_restore_before_the_start_or_in_the_future(engine: Engine) -> None:
    rid = record(engine, new(started_at=NOW - HOUR))
    for moment, reason in (
        (NOW - 2 * HOUR, "is before the rollback started"),
        (NOW + HOUR, "is in the future"),
    ):
        with session_scope(engine) as session, pytest.raises(InputError) as caught:
            restore_rollback(session, rid, restored_at=moment, now=NOW)
        assert (caught.value.field, caught.value.reason) == ("restored_at", reason)
    with session_scope(engine) as session:  # exactly at the start is fine
        restore_rollback(session, rid, restored_at=NOW - HOUR, now=NOW)


# -- clocks -------------------------------------------------------------------------------------


def clock(started_ago: timedelta, took: timedelta | None = None, target: int = 14400) -> object:
    started = NOW - started_ago
    return rollback_row(
        Rollback(
            id=1,
            service="s",
            from_version="a",
            to_version="b",
            started_at=started,
            restored_at=None if took is None else started + took,
            sla_target_seconds=target,
        ),
        NOW,
    )


def test_it_runs_the_clock_against_the_target() -> None:
    on_track = clock(HOUR)
    assert (on_track.sla, on_track.remaining_seconds, on_track.breached_by_seconds) == (  # type: ignore[attr-defined]
        ON_TRACK,
        3 * 3600,
        None,
    )
    at_risk = clock(3 * HOUR + timedelta(minutes=50))
    assert (at_risk.sla, at_risk.remaining_seconds) == (AT_RISK, 600)  # type: ignore[attr-defined]
    exactly = clock(4 * HOUR)  # the rule reports only strictly past the target
    assert (exactly.sla, exactly.breached, exactly.remaining_seconds) == (AT_RISK, False, 0)  # type: ignore[attr-defined]
    late = clock(5 * HOUR + timedelta(seconds=1))
    assert (late.sla, late.breached, late.remaining_seconds, late.breached_by_seconds) == (  # type: ignore[attr-defined]
        BREACHED,
        True,
        None,
        3601,
    )
    assert late.elapsed_ratio == pytest.approx(18001 / 14400)  # type: ignore[attr-defined]


def test_it_judges_restored_rollbacks_by_their_time_to_restore() -> None:
    met = clock(10 * HOUR, took=4 * HOUR)
    missed = clock(10 * HOUR, took=4 * HOUR + timedelta(minutes=1))
    assert (met.sla, met.time_to_restore_seconds, met.remaining_seconds) == (MET, 14400, None)  # type: ignore[attr-defined]
    assert (missed.sla, missed.breached_by_seconds, missed.open) == (BREACHED, 60, False)  # type: ignore[attr-defined]


def test_it_agrees_with_the_rollback_sla_rule_on_the_stored_target(engine: Engine) -> None:
    rule = RollbackSlaRule({"default_target": "4h"})  # the default rule's params
    checkout = record(engine, new("checkout", started_at=NOW - HOUR - timedelta(seconds=1)))
    search = record(engine, new("search", started_at=NOW - HOUR - timedelta(seconds=1)))
    with Session(engine) as session:
        context = ContextBuilder(session, NOW).build(rule)
        rows = {r.id: get_rollback(session, r.id, now=NOW) for r in context.rollbacks}
    findings = rule.evaluate(context)
    views = context.rollbacks
    assert [f.labels["rollback_id"] for f in findings] == [str(checkout)]
    assert rows[checkout].breached and not rows[search].breached  # type: ignore[union-attr]
    assert {v.id: rule.target(v) for v in views} == {
        checkout: timedelta(hours=1),
        search: timedelta(hours=4),
    }


# -- listing and statistics ---------------------------------------------------------------------


def test_it_lists_open_rollbacks_first_with_filters_and_pagination(engine: Engine) -> None:
    old_open = record(engine, new("a", started_at=NOW - 3 * HOUR))
    new_open = record(engine, new("b", started_at=NOW - HOUR))
    old_done = record(engine, new("a", started_at=NOW - 30 * HOUR))
    new_done = record(engine, new("b", started_at=NOW - 20 * HOUR))
    with session_scope(engine) as session:
        for rid in (old_done, new_done):
            restore_rollback(session, rid, restored_at=None, now=NOW)
    with Session(engine) as session:
        everything = list_rollbacks(session, now=NOW)
        first, second = (list_rollbacks(session, now=NOW, limit=3, offset=o) for o in (0, 3))
        open_only = list_rollbacks(session, now=NOW, is_open=True)
        restored_a = list_rollbacks(session, now=NOW, is_open=False, service="a")
        names = known_services(session)
    assert [r.id for r in everything.items] == [old_open, new_open, new_done, old_done]
    assert everything.total == 4 and everything.as_of == NOW
    assert [r.id for r in first.items + second.items] == [old_open, new_open, new_done, old_done]
    assert (first.total, second.total, second.offset) == (4, 4, 3)
    assert [r.id for r in open_only.items] == [old_open, new_open] and open_only.total == 2
    assert [r.id for r in restored_a.items] == [old_done] and restored_a.total == 1
    assert names == ["a", "b"]


def test_it_computes_time_to_restore_statistics_per_service(engine: Engine) -> None:
    minutes = [30, 60, 90, 120, 600]  # chat-api: 4 met, one past its 4 h target
    for n, took in enumerate(minutes):
        started = NOW - timedelta(days=n + 1)
        rid = record(engine, new("chat-api", started_at=started))
        with session_scope(engine) as session:
            restore_rollback(session, rid, restored_at=started + timedelta(minutes=took), now=NOW)
    record(engine, new("checkout", started_at=NOW - 2 * HOUR))  # open, past its 1 h target
    record(engine, new("chat-api", started_at=NOW - timedelta(days=100)))  # outside 90 days
    with Session(engine) as session:
        stats = rollback_stats(session, now=NOW)
        recent = rollback_stats(session, now=NOW, days=2)  # starts at NOW-1d and NOW-2d
        only = rollback_stats(session, now=NOW, service="checkout")
    chat, checkout = stats.services
    assert (chat.service, chat.rollbacks, chat.open, chat.restored, chat.breaches) == (
        "chat-api", 5, 0, 5, 1,
    )  # fmt: skip
    assert chat.median_restore_seconds == 90 * 60
    assert chat.p90_restore_seconds == round((120 + 0.6 * 480) * 60)  # between 120 and 600 min
    assert (checkout.rollbacks, checkout.open, checkout.breaches) == (1, 1, 1)
    assert checkout.median_restore_seconds is None and checkout.p90_restore_seconds is None
    assert (stats.overall.rollbacks, stats.overall.breaches) == (6, 2)
    assert (stats.days, stats.since, stats.until) == (90, NOW - timedelta(days=90), NOW)
    assert [(s.service, s.rollbacks) for s in recent.services] == [
        ("chat-api", 2),
        ("checkout", 1),
    ]
    assert [s.service for s in only.services] == ["checkout"]


def test_it_interpolates_percentiles_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 0.0, 20.0, 30.0, 40.0], 0.9) == pytest.approx(36.0)


# -- demo ---------------------------------------------------------------------------------------


def test_it_seeds_demo_rollbacks_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert seed_demo_rollbacks(session, NOW) == 5
    with session_scope(engine) as session:
        assert seed_demo_rollbacks(session, NOW + HOUR) == 0
    with Session(engine) as session:
        page = list_rollbacks(session, now=NOW)
    open_rows = [r for r in page.items if r.open]
    assert page.total == 5 and len(open_rows) == 1
    assert open_rows[0].sla == AT_RISK and open_rows[0].remaining_seconds == 600
    assert {r.sla for r in page.items if not r.open} == {MET, BREACHED}
