"""``tcowatch scrape`` and ``tcowatch simulate`` against real local servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pytest_httpserver import HTTPServer

from collectors.targets import TargetFiles
from tests.conftest import SHARED_FIXTURES

DCGM = (SHARED_FIXTURES / "exposition" / "dcgm-exporter-h100-mig.prom").read_text()
VLLM = (SHARED_FIXTURES / "exposition" / "vllm-0.10-deprecated-prefix-cache.prom").read_text()


def tcowatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_scrape_detects_dcgm_and_prints_json_lines(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/metrics").respond_with_data(DCGM)
    result = tcowatch("scrape", httpserver.url_for("/metrics"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    gpus = [r for r in records if r["type"] == "gpu"]
    (target,) = [r for r in records if r["type"] == "target"]
    assert target["up"] is True and target["kind"] == "dcgm"
    assert gpus[0]["uuid"] == "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"
    assert gpus[0]["node"] == "gsrh100-074"
    assert sorted(m["gpu_instance_id"] for m in gpus[0]["mig_instances"]) == [7, 8]


def test_scrape_prints_models_as_a_table(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/metrics").respond_with_data(VLLM)
    result = tcowatch("scrape", httpserver.url_for("/metrics"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "zai-org/GLM-4.5" in result.stdout and "vllm" in result.stdout


def test_scrape_exits_1_with_the_reason_for_a_broken_target(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/metrics").respond_with_data('x{a="\\q"} 1\n')
    result = tcowatch("scrape", httpserver.url_for("/metrics"), "--kind", "dcgm", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "line 1" in line and "Traceback" not in result.stderr


def test_scrape_rejects_a_bad_timeout_in_one_line(tmp_path: Path) -> None:
    result = tcowatch("scrape", "http://127.0.0.1:1/metrics", "--timeout", "soon", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip() == 'tcowatch: --timeout: expected a duration like "15s", got "soon"'
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_simulate_serves_exporters_and_writes_a_target_file(tmp_path: Path) -> None:
    port = free_port()
    targets_file = tmp_path / "targets.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon.cli",
            "simulate",
            "--gpus",
            "8",
            "--port",
            str(port),
            "--targets-file",
            str(targets_file),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not targets_file.exists():
            assert proc.poll() is None
            time.sleep(0.1)  # polling for the process to come up
        targets, problems = TargetFiles([targets_file]).current()
        assert problems == []
        assert {t.kind for t in targets} == {"dcgm", "vllm"}
        dcgm = [t for t in targets if t.kind == "dcgm"]
        assert len(dcgm) == 2  # 8 GPUs = 2 nodes of 4
        body = ""
        while time.monotonic() < deadline and "DCGM_FI_DEV_GPU_UTIL" not in body:
            try:
                body = httpx.get(dcgm[0].url, timeout=2).text
            except httpx.TransportError:
                time.sleep(0.1)
        assert body.count("DCGM_FI_DEV_GPU_UTIL{") == 4
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 0
