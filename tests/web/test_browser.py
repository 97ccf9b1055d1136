"""The real board in real headless Chromium, served by uvicorn on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from litestar import Litestar

from tests.web.conftest import DOWN_UUID, IDLE_UUID, NVML_REASON

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (Debian package 'chromium')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def base_url(app: Litestar) -> Iterator[str]:
    """Serve ``app`` on a loopback port bound before the server thread starts.

    The socket is listening before ``run`` begins, so the browser's first connection waits in
    the backlog instead of the test polling for start-up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def test_it_renders_the_board_in_chromium(base_url: str, tmp_path: Path):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            response = page.goto(f"{base_url}/", wait_until="load")
            assert response is not None and response.status == 200
            rows = page.locator("table#gpus tbody tr")
            sync_api.expect(rows).to_have_count(4)
            sync_api.expect(page.locator(f'tr[data-uuid="{IDLE_UUID}"] .badge')).to_have_text(
                "idle"
            )
            sync_api.expect(page.locator(f'tr[data-uuid="{DOWN_UUID}"] .badge')).to_have_text(
                "down"
            )
            firing = page.locator("table#alerts tr.state-firing")
            sync_api.expect(firing).to_be_visible()
            sync_api.expect(firing).to_contain_text("GPUIdle")
            sync_api.expect(firing).to_contain_text("<script>alert(1)</script>")
            sync_api.expect(page.locator("td.reason", has_text=NVML_REASON)).to_be_visible()
            # the stylesheet loaded from /static: badges are coloured, not default black text
            colour = page.locator(".badge.firing").first.evaluate(
                "e => getComputedStyle(e).backgroundColor"
            )
            assert colour == "rgb(179, 38, 30)"
            assert dialogs == [], "a label value ran as script"
            shot = tmp_path / "board.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 0
