"""The board walked through in headless Chromium against a real ``tcowatch demo`` process.

One demo (its own SQLite file, a free loopback port, a fast clock) serves the whole module. A
user ``walker`` (admin) and an API token are created with the ``tcowatch`` CLI before it
starts. Each test is one step of the walk-through from a fresh browser context that is already
logged in (except the login step itself), and saves a full-page screenshot in the artifacts
folder (``$TCOWATCH_TEST_ARTIFACTS/browser-walkthrough`` or the test's temporary folder).
No step sleeps: waits are Playwright's auto-waiting assertions and deadline-bounded polls.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser_support import (
    CHROMIUM_ARGS,
    MONEY,
    DemoError,
    DemoProcess,
    artifacts_dir,
    chromium_executable,
    get_json,
    playwright_sync_api,
    run_cli,
    start_demo,
    wait_until,
)

pytestmark = pytest.mark.browser

USER = "walker"
DEMO_SPEED = 120.0
"""Simulated seconds per second: alerts go pending/firing and costs fill in within seconds."""
DEMO_GPUS = 16
DATA_DEADLINE_S = 90.0
VIEWPORT = {"width": 1400, "height": 1000}


class Shots:
    """Numbered full-page screenshots in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def take(self, page: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path


@pytest.fixture(scope="module")
def sync_api() -> Any:
    return playwright_sync_api()


@pytest.fixture(scope="module")
def credentials() -> dict[str, str]:
    return {"username": USER, "password": secrets.token_urlsafe(16)}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, sync_api: Any) -> Path:
    """The demo's SQLite file, in a working folder of its own (after checking the tools: no
    demo is started when Chromium or Playwright is missing)."""
    chromium_executable()
    return tmp_path_factory.mktemp("walkthrough") / "walkthrough.db"


@pytest.fixture(scope="module")
def api_token(database: Path, credentials: dict[str, str]) -> str:
    """User ``walker`` (admin) and an admin API token, made with the CLI before the demo starts."""
    db, workdir = str(database), database.parent
    user = ["user", "add", USER, "--role", "admin", "--password-stdin", "--db", db]
    run_cli(user, cwd=workdir, stdin=credentials["password"] + "\n")
    out = run_cli(["token", "create", "walker-api", "--role", "admin", "--db", db], cwd=workdir)
    return out.splitlines()[0].strip()


@pytest.fixture(scope="module")
def demo(database: Path, api_token: str) -> Iterator[DemoProcess]:
    """A running demo over ``database``; stopped with SIGTERM afterwards (killed on failure)."""
    process = start_demo(database.parent, database, speed=DEMO_SPEED, gpus=DEMO_GPUS)
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, f"the demo exited with {code} after SIGTERM:\n{process.output()}"


@pytest.fixture(scope="module")
def browser(sync_api: Any) -> Iterator[Any]:
    executable = chromium_executable()
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Shots]:
    """The screenshot folder, named on the terminal (not captured) when the module ends."""
    folder = artifacts_dir(tmp_path_factory.mktemp("screenshots"))
    print(f"browser walk-through screenshots: {folder}")
    yield Shots(folder)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nbrowser walk-through screenshots: {folder}")


def log_in(page: Any, sync_api: Any, base_url: str, credentials: dict[str, str]) -> None:
    """Log in through the login form and check the account bar names the user."""
    response = page.goto(f"{base_url}/login", wait_until="load")
    assert response is not None and response.status == 200
    page.get_by_label("Username").fill(credentials["username"])
    page.get_by_label("Password").fill(credentials["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    sync_api.expect(page.locator("#signed-in")).to_contain_text(credentials["username"])


@pytest.fixture(scope="module")
def signed_in_state(
    browser: Any, sync_api: Any, demo: DemoProcess, credentials: dict[str, str]
) -> dict[str, Any]:
    """Cookies of a logged-in browser session, for each step's fresh context."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        log_in(context.new_page(), sync_api, demo.base_url, credentials)
        state: dict[str, Any] = context.storage_state()
    finally:
        context.close()
    return state


@pytest.fixture
def page(browser: Any, signed_in_state: dict[str, Any]) -> Iterator[Any]:
    """A page in a fresh, logged-in context; fails the test if any script opens a dialog."""
    context = browser.new_context(viewport=VIEWPORT, storage_state=signed_in_state)
    dialogs: list[str] = []
    try:
        page = context.new_page()

        def refuse(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", refuse)
        yield page
    finally:
        context.close()
    assert dialogs == [], f"a script opened dialogs: {dialogs}"


def test_it_reports_why_the_demo_did_not_start(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match=r"exited with 2:\n.*--speed: expected a positive number"):
        start_demo(tmp_path, tmp_path / "never.db", speed=-1)


def test_it_logs_in_through_the_form(
    browser: Any, sync_api: Any, demo: DemoProcess, credentials: dict[str, str], shots: Shots
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{demo.base_url}/login", wait_until="load")
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        sync_api.expect(page.get_by_role("alert")).to_contain_text("Invalid username or password")
        shots.take(page, "01a-login-refused")
        log_in(page, sync_api, demo.base_url, credentials)
        sync_api.expect(page.locator("#signed-in")).to_contain_text("admin")
        shots.take(page, "01b-logged-in")
    finally:
        context.close()


def _overview_ready(base_url: str) -> dict[str, Any] | None:
    overview: dict[str, Any] = get_json(base_url, "/api/v1/overview")
    if len(overview["gpus"]) == DEMO_GPUS and overview.get("costs"):
        return overview
    return None


def test_it_reads_the_overview(page: Any, sync_api: Any, demo: DemoProcess, shots: Shots) -> None:
    wait_until(
        lambda: _overview_ready(demo.base_url),
        deadline_s=DATA_DEADLINE_S,
        what="the demo's overview to list every GPU and its costs",
    )
    page.goto(f"{demo.base_url}/", wait_until="load")
    expect = sync_api.expect
    expect(page.locator("table#gpus tbody tr")).to_have_count(DEMO_GPUS)
    counts = [
        int(page.locator(f"#count-{state} .value").inner_text())
        for state in ("busy", "idle", "down")
    ]
    assert sum(counts) == DEMO_GPUS, counts
    expect(page.locator("#fleet-utilization .value")).to_have_text(re.compile(r"^\d{1,3}%$"))
    costs = page.locator("section#costs")
    expect(costs).to_contain_text(MONEY)
    amounts = MONEY.findall(costs.inner_text())
    assert any(not a.startswith("0.00") for a in amounts), amounts
    shots.take(page, "02-overview")


def test_it_creates_a_debt_item_and_moves_it_to_in_progress(
    page: Any, sync_api: Any, demo: DemoProcess, api_token: str, shots: Shots
) -> None:
    expect = sync_api.expect
    title = f"Walk-through debt {secrets.token_hex(3)}: pin the tokenizer version"
    page.goto(f"{demo.base_url}/debt", wait_until="load")
    page.get_by_role("link", name="New item").click()
    page.get_by_label("Title").fill(title)
    page.get_by_label("Description").fill("Every upgrade re-tokenizes the cache.")
    page.get_by_label("Owner").fill("platform")
    page.get_by_label("Severity").select_option("high")
    page.get_by_label(re.compile(r"^Monthly cost")).fill("1200")
    page.get_by_label(re.compile(r"^Currency")).fill("USD")
    page.get_by_label(re.compile(r"^Effort")).fill("3")
    shots.take(page, "03a-debt-form")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/debt/\d+$"))
    item_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)

    page.goto(f"{demo.base_url}/debt", wait_until="load")
    card = page.locator(f"#col-backlog #item-{item_id}")
    expect(card).to_contain_text(title)
    # cost of delay = 1200 USD a month / 3 person-days
    expect(card.locator(".cod")).to_contain_text("400.00 USD")
    shots.take(page, "03b-debt-in-backlog")
    card.get_by_label("Move to").select_option(label="In progress")
    card.get_by_role("button", name="Move").click()
    page.wait_for_url(f"{demo.base_url}/debt#item-{item_id}")
    page.reload(wait_until="load")
    expect(page.locator(f"#col-in_progress #item-{item_id}")).to_contain_text(title)
    expect(page.locator(f"#col-backlog #item-{item_id}")).to_have_count(0)
    shots.take(page, "03c-debt-in-progress")
    stored = get_json(demo.base_url, f"/api/v1/debt/{item_id}", api_token)
    assert stored["item"]["status"] == "in_progress", stored


def _open_anomaly(base_url: str, token: str) -> int | None:
    listing = get_json(base_url, "/api/v1/anomalies?status=open&limit=1", token)
    items = listing["items"]
    return int(items[0]["id"]) if items else None


@pytest.fixture(scope="module")
def open_anomaly(demo: DemoProcess, database: Path, api_token: str) -> int:
    """An open anomaly: one the demo made, else the demo's samples added to its store.

    Anomalies come from the ``cost_anomaly`` rule over imported bills and have no create
    route, so when the demo has none the daemon's own ``seed_demo_anomalies`` adds them.
    """
    found = _open_anomaly(demo.base_url, api_token)
    if found is not None:
        return found
    from daemon.board.anomalies import seed_demo_anomalies
    from daemon.store.db import open_store, session_scope

    demo_now = datetime.fromisoformat(get_json(demo.base_url, "/api/v1/overview")["generated_at"])
    engine = open_store(f"sqlite:///{database}", migrate=False)
    try:
        with session_scope(engine) as session:
            seed_demo_anomalies(session, demo_now)
    finally:
        engine.dispose()
    found = _open_anomaly(demo.base_url, api_token)
    assert found is not None, "no open anomaly even after seeding the demo's samples"
    return found


def test_it_acknowledges_an_anomaly(
    page: Any, sync_api: Any, demo: DemoProcess, open_anomaly: int, api_token: str, shots: Shots
) -> None:
    expect = sync_api.expect
    page.goto(f"{demo.base_url}/anomalies?status=open", wait_until="load")
    row = page.locator(f'table#anomalies tr[data-id="{open_anomaly}"]')
    expect(row.locator(".badge")).to_have_text("open")
    expect(row).to_contain_text(MONEY)
    shots.take(page, "04a-anomalies-open")
    row.get_by_role("button", name="Acknowledge").click()
    # back on the list of open anomalies, which no longer has it
    expect(page.locator(f'table#anomalies tr[data-id="{open_anomaly}"]')).to_have_count(0)
    page.goto(f"{demo.base_url}/anomalies?status=acknowledged", wait_until="load")
    row = page.locator(f'table#anomalies tr[data-id="{open_anomaly}"]')
    expect(row.locator(".badge")).to_have_text("acknowledged")
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
    shots.take(page, "04b-anomaly-acknowledged")
    detail = get_json(demo.base_url, f"/api/v1/anomalies/{open_anomaly}", api_token)
    stored = detail["anomaly"]
    assert stored["status"] == "acknowledged"
    assert stored["acknowledged_by"].endswith(USER), stored["acknowledged_by"]


def test_it_records_a_rollback_and_shows_its_sla_clock(
    page: Any, sync_api: Any, demo: DemoProcess, shots: Shots
) -> None:
    expect = sync_api.expect
    service = f"walk-{secrets.token_hex(3)}"
    page.goto(f"{demo.base_url}/rollbacks", wait_until="load")
    page.get_by_role("link", name="Record a rollback").click()
    page.get_by_label("Service").fill(service)
    page.get_by_label("From version").fill("v2.4.0")
    page.get_by_label("To version").fill("v2.3.1")
    page.get_by_label("Reason").fill("p99 latency doubled after the upgrade")
    page.get_by_label("Owner").fill("inference-team")
    page.get_by_label("SLA target").fill("4h")
    shots.take(page, "05a-rollback-form")
    page.get_by_role("button", name="Record rollback").click()
    page.wait_for_url(re.compile(r"/rollbacks#rollback-\d+$"))
    row = page.locator("table#rollbacks tr.rollback", has_text=service)
    expect(row).to_have_count(1)
    expect(row).to_have_class(re.compile(r"\bopen\b"))
    clock = row.locator(".sla-clock")
    expect(clock).to_be_visible()
    # the clock runs against the 4 h target: elapsed "of 4h", time left, not yet breached
    expect(clock).to_contain_text("of 4h")
    expect(clock.locator(".verdict")).to_contain_text("left")
    expect(row.locator(".badge")).to_have_text(re.compile("on track|at risk"))
    shots.take(page, "05b-rollback-sla-clock")
    row.get_by_role("link", name=re.compile(r"^\d+$")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(service)
    expect(page.locator(".sla-clock")).to_contain_text("of 4h")
    shots.take(page, "05c-rollback-detail")


def _firing_alert(base_url: str, token: str) -> dict[str, Any] | None:
    listing = get_json(base_url, "/api/v1/alerts?state=firing&limit=500", token)
    unsilenced = [a for a in listing["items"] if not a.get("silenced_by")]
    return unsilenced[0] if unsilenced else None


def test_it_creates_a_silence_from_a_firing_alert(
    page: Any, sync_api: Any, demo: DemoProcess, api_token: str, shots: Shots
) -> None:
    expect = sync_api.expect
    alert = wait_until(
        lambda: _firing_alert(demo.base_url, api_token),
        deadline_s=DATA_DEADLINE_S,
        what="the demo to fire an alert (GpuIdle on its idle GPUs)",
    )
    fingerprint = alert["fingerprint"]
    page.goto(f"{demo.base_url}/alerts?state=firing", wait_until="load")
    row = page.locator(f'table#alerts tr[data-fingerprint="{fingerprint}"]')
    expect(row.locator(".badge.firing")).to_be_visible()
    shots.take(page, "06a-alerts-firing")
    row.get_by_role("link", name="Silence").click()
    matchers = page.get_by_label("Matchers")
    expect(matchers).to_contain_text(f'alertname="{alert["alertname"]}"')
    page.get_by_label(re.compile(r"^Duration")).fill("2h")
    comment = f"walk-through {secrets.token_hex(3)}: known idle GPU"
    page.get_by_label("Comment").fill(comment)
    shots.take(page, "06b-silence-form")
    page.get_by_role("button", name="Create silence").click()
    expect(page.locator("#notice-created")).to_be_visible()
    silence = page.locator("table#silences-current tr.silence", has_text=comment)
    expect(silence).to_have_count(1)
    expect(silence.locator(".badge")).to_have_text("active")
    expect(silence).to_contain_text(USER)
    page.goto(f"{demo.base_url}/alerts?state=firing", wait_until="load")
    row = page.locator(f'table#alerts tr[data-fingerprint="{fingerprint}"]')
    expect(row.locator(".badge.silenced")).to_be_visible()
    shots.take(page, "06c-alert-silenced")


def test_it_runs_the_tco_form(page: Any, sync_api: Any, demo: DemoProcess, shots: Shots) -> None:
    expect = sync_api.expect
    page.goto(f"{demo.base_url}/tco", wait_until="load")
    # prefilled from the store's measurements: every simulated GPU, their mean utilization
    expect(page.get_by_label("GPUs", exact=True)).to_have_value(str(DEMO_GPUS))
    expect(page.get_by_label(re.compile(r"^Utilization"))).to_have_value(re.compile(r"^0\.\d+$"))
    shots.take(page, "07a-tco-prefilled")
    page.get_by_label("Horizon (years)").fill("5")
    page.get_by_label("Operations staff / year").fill("150000")
    page.get_by_role("button", name="Compute").click()
    page.wait_for_url(re.compile(r"/tco\?.*years=5"))
    expect(page.locator("#error")).to_have_count(0)
    expect(page.get_by_role("heading", name=re.compile(r"^5-year TCO"))).to_be_visible()
    # the edited input drives its row: 150,000 a year over five years
    staff = page.locator("table#tco-table tbody tr", has_text="Operations staff")
    expect(staff.locator("td").nth(1)).to_contain_text("750,000.00")
    expect(page.locator("#local-total")).to_contain_text(MONEY)
    expect(page.locator("#cloud-total")).to_contain_text(MONEY)
    years = page.locator("table#tco-yearly tbody tr")
    expect(years).to_have_count(5)
    expect(years.locator("td:first-child")).to_have_text(["1", "2", "3", "4", "5"])
    expect(page.locator("#break-even")).to_contain_text("Break-even")
    shots.take(page, "07b-tco-five-years")
