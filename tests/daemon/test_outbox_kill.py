"""Kill the outbox worker with SIGKILL at chosen points, restart it, and lose nothing.

The test enqueues notifications in the store, then runs this module as a worker process
(``python -m tests.daemon.test_outbox_kill``) that flushes the outbox on a fake clock into a
real local HTTP receiver. A kill point (``--kill-at``) makes the worker write a marker file and
block at an exact spot (before a send, after a send, after the outcome commit, inside the fold
transaction); the test waits for the marker, kills the process with SIGKILL, restarts the worker
without a kill point and checks what the receiver got: every notification at least once, and a
duplicate only where the kill left one, carrying the same ``Idempotency-Key``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from daemon.notify.channels.base import RateLimit
from daemon.notify.channels.webhook import WebhookChannel
from daemon.notify.outbox import enqueue, flush, pending_count
from daemon.store.db import open_store
from daemon.store.models import Outbox
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
RESTART = NOW + timedelta(hours=1)
"""The restarted worker's clock: past every provisional retry time the killed one left."""
NOTIFICATIONS = 5
DEADLINE_SECONDS = 60.0


# --- the worker (runs in the child process) -------------------------------------------------


def _reach(marker: Path) -> None:
    """Tell the test the kill point is reached, then wait to be killed."""
    partial = marker.with_suffix(".partial")
    partial.write_text(str(os.getpid()), encoding="utf-8")
    partial.replace(marker)
    threading.Event().wait()


@dataclass
class HookedChannel:
    """A real webhook channel with a kill point around its ``calls``-th send."""

    name: str
    inner: WebhookChannel
    kill_at: str
    nth: int
    marker: Path
    rate_limit: RateLimit | None = None
    send_resolved: bool = True
    calls: int = 0
    armed: bool = False
    """True between the ``nth`` send's return and the next commit (the outcome commit)."""

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        self.calls += 1
        hit = self.calls == self.nth
        if hit and self.kill_at == "claimed":
            _reach(self.marker)
        self.inner.send(payload, idempotency_key=idempotency_key)
        if hit and self.kill_at == "sent":
            _reach(self.marker)
        if hit and self.kill_at == "recorded":
            self.armed = True


def worker_main(argv: list[str]) -> int:
    """Flush the outbox until nothing is pending, one fake minute per flush."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--kill-at", default="")
    parser.add_argument("--nth", type=int, default=0)
    parser.add_argument("--marker", default="")
    parser.add_argument("--rate-limited", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    engine = open_store(args.db)
    channel = HookedChannel(
        name="hook",
        inner=WebhookChannel(name="hook", url=args.url),
        kill_at=args.kill_at,
        nth=args.nth,
        marker=Path(args.marker),
        rate_limit=RateLimit(per_minute=1, burst=1) if args.rate_limited else None,
    )

    @event.listens_for(OrmSession, "after_commit")
    def after_commit(session: OrmSession) -> None:
        if channel.armed:
            _reach(channel.marker)

    @event.listens_for(OrmSession, "before_commit")
    def before_commit(session: OrmSession) -> None:
        if args.kill_at != "folding":
            return
        # Only the fold transaction holds a digest next to other rows (claims hold one row).
        rows = [obj for obj in session.identity_map.values() if isinstance(obj, Outbox)]
        if len(rows) > 1 and any(row.kind == "digest" for row in rows):
            _reach(channel.marker)

    clock = datetime.fromisoformat(args.start)
    for _ in range(200):
        with Session(engine) as session:
            if pending_count(session) == 0:
                return 0
        flush(engine, {"hook": channel}, now=clock)
        clock += timedelta(minutes=1)
    return 3


# --- the test (runs in pytest) --------------------------------------------------------------


def _payload(n: int) -> dict[str, Any]:
    return {
        "receiver": "ops",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "KillTest", "n": str(n)},
                "annotations": {},
                "startsAt": "2026-08-20T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://tcowatch.example/alerts",
                "fingerprint": f"fp{n}",
            }
        ],
        "notification_reason": "first notification",
        "groupLabels": {"n": str(n)},
        "commonLabels": {},
        "commonAnnotations": {},
        "routeLabels": {},
        "externalURL": "http://tcowatch.example",
        "version": "4",
        "groupKey": f"{{}}:{{n={n}}}",
        "truncatedAlerts": 0,
    }


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def _worker(db_url: str, url: str, start: datetime, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "tests.daemon.test_outbox_kill",
        "--db",
        db_url,
        "--url",
        url,
        "--start",
        start.isoformat(),
        *extra,
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(marker: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not marker.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"worker exited {process.returncode} before the kill point:\n{err!r}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the worker did not reach the kill point in time")
        time.sleep(0.02)


def _finish(process: subprocess.Popen[bytes]) -> int:
    try:
        _, err = process.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the restarted worker did not drain the outbox in time")
    if process.returncode != 0:
        pytest.fail(f"the restarted worker exited {process.returncode}:\n{err.decode()}")
    return process.returncode


@pytest.mark.parametrize(
    ("kill_at", "nth", "rate_limited", "duplicated"),
    [
        ("claimed", 2, False, 0),
        ("sent", 2, False, 1),
        ("recorded", 2, False, 0),
        ("folding", 0, True, 0),
        ("sent", 2, True, 1),
    ],
    ids=[
        "after-claim-commit",
        "after-send-before-outcome-commit",
        "after-outcome-commit",
        "inside-fold-transaction",
        "after-digest-send",
    ],
)
def test_it_delivers_every_notification_after_a_sigkill(
    engine: Engine,
    db_url: str,
    httpserver: HTTPServer,
    tmp_path: Path,
    kill_at: str,
    nth: int,
    rate_limited: bool,
    duplicated: int,
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    url = httpserver.url_for("/hook")
    with Session(engine) as session:
        for n in range(NOTIFICATIONS):
            enqueue(session, channel="hook", group_key=f"g{n}", payload=_payload(n), now=NOW)
        session.commit()
    marker = tmp_path / "reached"
    limit = ["--rate-limited"] if rate_limited else []

    first = _worker(
        db_url, url, NOW, "--kill-at", kill_at, "--nth", str(nth), "--marker", str(marker), *limit
    )
    _wait_for(marker, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=DEADLINE_SECONDS)
    assert first.returncode == -signal.SIGKILL
    received_before_restart = len(httpserver.log)

    _finish(_worker(db_url, url, RESTART, *limit))

    bodies_by_key: dict[str, set[bytes]] = defaultdict(set)
    sends_by_key: dict[str, int] = defaultdict(int)
    delivered: set[str] = set()
    for request, _ in httpserver.log:
        key = request.headers.get("Idempotency-Key")
        assert key, "every request carries an Idempotency-Key"
        body = request.get_data()
        bodies_by_key[key].add(body)
        sends_by_key[key] += 1
        delivered.update(alert["labels"]["n"] for alert in json.loads(body)["alerts"])
    assert delivered == {str(n) for n in range(NOTIFICATIONS)}
    assert all(len(bodies) == 1 for bodies in bodies_by_key.values())
    assert sum(count - 1 for count in sends_by_key.values()) == duplicated
    assert len(httpserver.log) > received_before_restart
    with Session(engine) as session:
        assert pending_count(session) == 0
        statuses = {row.status for row in session.exec(select(Outbox)).all()}
    assert statuses <= {"sent", "folded"}
    if rate_limited:
        assert "folded" in statuses


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
