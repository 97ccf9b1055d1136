"""A real ``tcowatch demo`` process and a headless Chromium for the browser walk-through.

The demo runs as a child process (``python -m daemon.cli demo``) on a temporary SQLite file and
a free loopback port, in a temporary working directory (so no ``tcowatch.yaml`` is picked up)
and without the caller's ``TCOWATCH_*`` configuration overrides. Its stderr is read by a thread
so the pipe never fills, and is shown whenever something goes wrong.

Error contract: ``start_demo`` and ``run_cli`` raise ``DemoError`` with the command's output
when the process exits early or never becomes ready before its deadline; ``wait_until`` raises
``TimeoutError`` naming what it waited for. ``chromium_executable`` and ``playwright_sync_api``
skip the test outside CI and fail it in CI when the tool is missing (``require_tool``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx

from tests.conftest import REPO_ROOT, require_tool

logger = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY_DEADLINE_S = 120.0
"""How long the demo may take to answer ``/readyz`` with 200 (a cold, busy CI machine)."""
STOP_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.2
"""Pause between two polls of a condition (pacing only: correctness never depends on it)."""
ARTIFACTS_ENV = "TCOWATCH_TEST_ARTIFACTS"
PORT_IN_USE = "is already in use"
MONEY = re.compile(r"\d[\d,]*\.\d{2,4}\s+[A-Z]{3}\b")
"""A rendered amount with its currency, as the board's ``money`` filter writes it."""

T = TypeVar("T")


class DemoError(RuntimeError):
    """The demo (or a ``tcowatch`` command) failed; the message carries its output."""


def chromium_executable() -> str:
    """Path of the Debian ``chromium`` binary (skip outside CI, fail in CI, when missing)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require_tool(path is not None, "chromium is not installed (Debian package 'chromium')")
    assert path is not None
    return path


def playwright_sync_api() -> ModuleType:
    """``playwright.sync_api`` (skip outside CI, fail in CI, when not installed)."""
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        require_tool(False, "playwright is not installed (pip install -e '.[test]')")
        raise
    return sync_api


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: ``$TCOWATCH_TEST_ARTIFACTS`` or ``default``; created if missing."""
    configured = os.environ.get(ARTIFACTS_ENV)
    folder = Path(configured) / "browser-walkthrough" if configured else default
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    """A loopback port free right now (the demo refuses a taken one: ``start_demo`` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tcowatch_command(*args: str) -> list[str]:
    """The ``tcowatch`` command line in this interpreter (no reliance on ``PATH``)."""
    return [sys.executable, "-m", "daemon.cli", *args]


def child_environment() -> dict[str, str]:
    """This environment without ``TCOWATCH_*`` config overrides, with the repo importable."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TCOWATCH_") or name.startswith("TCOWATCH_TEST_")
    }
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(args: Sequence[str], *, cwd: Path, stdin: str = "", timeout: float = 60.0) -> str:
    """Run one ``tcowatch`` command to completion; its stdout. ``DemoError`` on a non-zero exit."""
    done = subprocess.run(
        tcowatch_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=child_environment(),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(
            f"tcowatch {args[0]} {args[1] if len(args) > 1 else ''} exited {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


@dataclass
class DemoProcess:
    """A running ``tcowatch demo`` child: its address and everything it wrote on stderr."""

    process: subprocess.Popen[str]
    base_url: str
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def output(self) -> str:
        """Everything the demo wrote on stderr so far."""
        return "".join(list(self.lines))

    def read_stderr(self) -> None:
        """Collect stderr lines until the pipe closes (runs in a thread)."""
        stream = self.process.stderr
        assert stream is not None
        for line in stream:
            self.lines.append(line)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; kill when it does not stop in time. Exit code."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                logger.warning("the demo ignored SIGTERM for %.0f s: killing it", STOP_DEADLINE_S)
                self.kill()
        if self._reader is not None:
            self._reader.join(timeout=STOP_DEADLINE_S)
        return self.process.returncode

    def kill(self) -> None:
        """Kill the demo at once (a failed start or a hung stop)."""
        if self.running():
            self.process.kill()
        self.process.wait(timeout=STOP_DEADLINE_S)


def wait_until(
    probe: Callable[[], T | None],
    *,
    deadline_s: float,
    what: str,
    alive: Callable[[], None] = lambda: None,
) -> T:
    """Call ``probe`` until it returns something other than ``None``; that value.

    ``alive`` is called between polls and may raise to give up early (a dead process).
    Raises ``TimeoutError`` naming ``what`` after ``deadline_s`` seconds.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value is not None:
            return value
        alive()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {deadline_s:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def _launch(workdir: Path, db: Path, port: int, speed: float, gpus: int) -> DemoProcess:
    args = ["demo", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--speed", f"{speed:g}", "--gpus", str(gpus)]
    process = subprocess.Popen(
        tcowatch_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
        env=child_environment(),
    )
    demo = DemoProcess(process=process, base_url=f"http://127.0.0.1:{port}")
    demo._reader = threading.Thread(target=demo.read_stderr, name="demo-stderr", daemon=True)
    demo._reader.start()
    return demo


def _ready(demo: DemoProcess, client: httpx.Client) -> bool | None:
    try:
        response = client.get(f"{demo.base_url}/readyz")
    except httpx.TransportError:
        return None
    return True if response.status_code == 200 else None


def _wait_ready(demo: DemoProcess) -> None:
    """Poll ``/readyz`` until 200; ``DemoError`` when the demo exits first."""

    def alive() -> None:
        if not demo.running():
            demo.stop()
            raise DemoError(f"the demo exited with {demo.process.returncode}:\n{demo.output()}")

    with httpx.Client(timeout=5.0) as client:
        wait_until(
            lambda: _ready(demo, client),
            deadline_s=READY_DEADLINE_S,
            what=f"{demo.base_url}/readyz to answer 200",
            alive=alive,
        )


def start_demo(
    workdir: Path, db: Path, *, speed: float, gpus: int = 16, attempts: int = 3
) -> DemoProcess:
    """Start ``tcowatch demo`` on a free port and wait for ``/readyz`` to answer 200.

    Retries on another port when the chosen one was taken in between. Raises ``DemoError``
    (with the demo's output) when it exits early or is not ready before ``READY_DEADLINE_S``;
    the process is gone by then.
    """
    for _ in range(attempts):
        demo = _launch(workdir, db, free_port(), speed, gpus)
        try:
            _wait_ready(demo)
        except DemoError:
            if PORT_IN_USE in demo.output():
                continue
            raise
        except TimeoutError as exc:
            demo.kill()
            raise DemoError(f"{exc}; the demo wrote:\n{demo.output()}") from None
        except BaseException:
            demo.kill()
            raise
        return demo
    raise DemoError(f"no free port after {attempts} attempts")


def get_json(base_url: str, path: str, token: str | None = None) -> Any:
    """``GET`` a JSON document from the demo (bearer ``token`` when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base_url}{path}", headers=headers, timeout=10.0)
    response.raise_for_status()
    return response.json()
