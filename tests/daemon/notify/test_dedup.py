"""The dedup decision table, row by row (Alertmanager's ``needsUpdate``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.notify.dedup import (
    ALL_RESOLVED,
    FIRST_NOTIFICATION,
    NEW_ALERTS,
    REPEAT_INTERVAL,
    SOME_RESOLVED,
    LogEntry,
    needs_update,
)

NOW = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)
RECENT = NOW - timedelta(minutes=5)
LONG_AGO = NOW - REPEAT - timedelta(seconds=1)


def entry(
    firing: set[str], resolved: set[str] | None = None, sent_at: datetime = RECENT
) -> LogEntry:
    return LogEntry(frozenset(firing), frozenset(resolved or ()), sent_at)


CASES = [
    # (id, entry, firing, resolved, send_resolved, expected)
    ("no entry, firing", None, {"a"}, set(), True, (True, FIRST_NOTIFICATION)),
    ("no entry, firing and resolved", None, {"a"}, {"b"}, True, (True, FIRST_NOTIFICATION)),
    ("no entry, only resolved", None, set(), {"a"}, True, (False, None)),
    ("no entry, nothing", None, set(), set(), True, (False, None)),
    ("new firing alert", entry({"a"}), {"a", "b"}, set(), True, (True, NEW_ALERTS)),
    ("other firing alert", entry({"a"}), {"b"}, {"a"}, True, (True, NEW_ALERTS)),
    (
        "new firing after an all-resolved send",
        entry(set(), {"a"}),
        {"b"},
        set(),
        True,
        (True, FIRST_NOTIFICATION),
    ),
    (
        "new firing alert ignores send_resolved",
        entry({"a"}),
        {"a", "b"},
        set(),
        False,
        (True, NEW_ALERTS),
    ),
    ("all resolved", entry({"a", "b"}), set(), {"a", "b"}, True, (True, ALL_RESOLVED)),
    (
        "all resolved without send_resolved: logged, not sent",
        entry({"a"}),
        set(),
        {"a"},
        False,
        (False, ALL_RESOLVED),
    ),
    (
        "fired and resolved between sends",
        entry(set(), {"a"}),
        set(),
        {"a", "b"},
        True,
        (False, None),
    ),
    ("some resolved", entry({"a", "b"}), {"a"}, {"b"}, True, (True, SOME_RESOLVED)),
    (
        "some resolved without send_resolved",
        entry({"a", "b"}),
        {"a"},
        {"b"},
        False,
        (False, None),
    ),
    (
        "resolved set unchanged",
        entry({"a", "b"}, {"c"}),
        {"a"},
        {"c"},
        True,
        (False, None),
    ),
    (
        "fewer firing, nothing newly resolved",
        entry({"a", "b"}),
        {"a"},
        set(),
        True,
        (False, None),
    ),
    ("unchanged, recent", entry({"a"}), {"a"}, set(), True, (False, None)),
    (
        "unchanged, repeat interval elapsed",
        entry({"a"}, sent_at=LONG_AGO),
        {"a"},
        set(),
        True,
        (True, REPEAT_INTERVAL),
    ),
    (
        "unchanged, exactly the repeat interval ago",
        entry({"a"}, sent_at=NOW - REPEAT),
        {"a"},
        set(),
        True,
        (False, None),
    ),
    (
        "some resolved wins over repeat",
        entry({"a", "b"}, sent_at=LONG_AGO),
        {"a"},
        {"b"},
        True,
        (True, SOME_RESOLVED),
    ),
    (
        "repeat without send_resolved",
        entry({"a", "b"}, sent_at=LONG_AGO),
        {"a"},
        {"b"},
        False,
        (True, REPEAT_INTERVAL),
    ),
]


@pytest.mark.parametrize(
    ("previous", "firing", "resolved", "send_resolved", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_it_decides_like_alertmanager(
    previous: LogEntry | None,
    firing: set[str],
    resolved: set[str],
    send_resolved: bool,
    expected: tuple[bool, str | None],
) -> None:
    decision = needs_update(
        previous,
        firing,
        resolved,
        send_resolved=send_resolved,
        repeat_interval=REPEAT,
        now=NOW,
    )
    assert decision == expected


def test_it_compares_naive_log_times_as_utc() -> None:
    naive = entry({"a"}, sent_at=LONG_AGO.replace(tzinfo=None))
    assert needs_update(
        naive, {"a"}, set(), send_resolved=True, repeat_interval=REPEAT, now=NOW
    ) == (True, REPEAT_INTERVAL)
