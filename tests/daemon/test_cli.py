"""The ``tcowatch`` command: exit codes and one-line errors, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from daemon.cli import main
from daemon.store.db import head_revision


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_it_checks_a_valid_config_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "channels:\n  - {name: ops, url: 'https://h.example/TOKEN123', secret: k3y}\n"
    )
    result = run_cli("check-config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TOKEN123" not in result.stdout and "k3y" not in result.stdout
    assert "name: ops" in result.stdout
    assert "configuration is valid" in result.stderr


def test_it_exits_2_with_key_paths_for_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("collectors:\n  nvml:\n    interval: fast\nweb:\n  port: -1\n")
    result = run_cli("check-config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        f'tcowatch: {config}: collectors.nvml.interval: expected a duration like "15s", got "fast"'
        in lines
    )
    assert any("web.port" in line for line in lines)
    assert len(lines) == 2
    assert "Traceback" not in result.stderr


def test_it_exits_2_when_run_with_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "tcowatch.yaml").write_text("evaluation_interval: often\n")
    assert run_cli("run", cwd=tmp_path).returncode == 2


def test_it_exits_3_in_one_line_when_the_database_is_unreachable(tmp_path: Path) -> None:
    result = run_cli(
        "db", "upgrade", "--db", "postgresql+psycopg://u:pw@127.0.0.1:1/x", cwd=tmp_path
    )
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("tcowatch: cannot reach the database postgresql+psycopg://u:***@")
    assert "pw@" not in line


def test_it_upgrades_a_database_file(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    head = head_revision()
    assert f"schema at {head} (latest {head})" in result.stdout


def test_it_exits_4_in_one_line_without_nvml(tmp_path: Path) -> None:
    # This machine has no NVIDIA driver: the real pynvml cannot load its library.
    result = run_cli("agent", "--once", cwd=tmp_path)
    if result.returncode == 0:
        pytest.skip("a real GPU is present here")
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("tcowatch: NVML unavailable: ")
    assert "NVML" in line and "driver" in line


def test_it_exits_1_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["demo", "--port", str(port), "--db", str(tmp_path / "d.db")])
    assert code == 1


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_demo_serves_the_board_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "demo", "--port", str(port), "--speed", "600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        metrics = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    metrics = httpx.get(f"{base}/metrics", timeout=5).text
                    if metrics.count("tcowatch_gpu_utilization_ratio{") >= 16:
                        break
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling for readiness, not asserting on elapsed time
        assert metrics.count("tcowatch_gpu_utilization_ratio{") == 16
        assert httpx.get(f"{base}/", timeout=5).status_code == 200
    finally:
        proc.send_signal(stop)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the demo did not stop within 10 s of {stop.name}")
    _, err = proc.communicate()
    assert code == 0, err
    assert f"board on http://127.0.0.1:{port}" in err
    assert "Traceback" not in err
