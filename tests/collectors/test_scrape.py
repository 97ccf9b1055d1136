"""The scrape collector against a real local HTTP server serving recorded payloads.

Error paths that need exact control of the byte stream (a body counted chunk by chunk, an
in-flight counter) use ``httpx.MockTransport``; everything else goes over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from werkzeug import Request, Response

from collectors.base import Snapshot, TargetStatus
from collectors.scrape import CacheSpec, ScrapeCollector, Target, redact_url, scrape_one

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exposition"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIB = 2**20
V100_UUID = "GPU-a6158b59-2c1e-1e63-0068-9178c4298abd"
H100_UUID = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def serve(httpserver, path: str, body: str, status: int = 200) -> str:
    httpserver.expect_request(path).respond_with_data(
        body, status=status, content_type="text/plain; version=0.0.4; charset=utf-8"
    )
    return httpserver.url_for(path)


def by_kind(snapshot: Snapshot) -> dict[str, TargetStatus]:
    return {status.kind: status for status in snapshot.targets}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_it_maps_recorded_gpu_and_inference_payloads(httpserver):
    targets = [
        Target(serve(httpserver, "/dcgm", fixture("dcgm-exporter-h100-mig.prom")), kind="dcgm"),
        Target(serve(httpserver, "/v100", fixture("dcgm-exporter-v100.prom")), kind="dcgm"),
        Target(
            serve(httpserver, "/vllm", fixture("vllm-0.10-deprecated-prefix-cache.prom")),
            kind="vllm",
            node="gpu-node-07",
            labels={"instance": "glm-a"},
            gpu_uuids=(H100_UUID,),
        ),
        Target(serve(httpserver, "/sglang", fixture("sglang.prom")), kind="sglang"),
    ]

    snapshot = ScrapeCollector(targets=targets).collect(NOW)

    assert snapshot.collector == "scrape"
    assert snapshot.timestamp == NOW
    assert [t.up for t in snapshot.targets] == [True, True, True, True]
    gpus = {g.uuid: g for g in snapshot.gpus}
    assert set(gpus) == {H100_UUID, V100_UUID}
    assert gpus[V100_UUID].node == "r6i3n0"  # from the payload's Hostname label
    assert gpus[V100_UUID].utilization_ratio == 0.0
    assert gpus[H100_UUID].mig_instances  # MIG instances 7 and 8
    models = {m.engine: m for m in snapshot.models}
    assert models["vllm"].model == "zai-org/GLM-4.5"
    assert models["vllm"].node == "gpu-node-07"
    assert models["vllm"].instance == "glm-a/0"
    assert models["vllm"].gpu_uuids == (H100_UUID,)
    assert models["vllm"].cache_queries_total == 32.0
    assert models["sglang"].prompt_tokens_total == 8.128902e06
    assert models["sglang"].node == "localhost"  # no node given: the URL's host
    assert models["sglang"].instance == f"localhost:{httpserver.port}"
    assert all(t.duration_seconds >= 0.0 for t in snapshot.targets)


def test_it_reports_a_non_2xx_target_and_keeps_the_others(httpserver):
    down = serve(httpserver, "/down", "unavailable\n", status=503)
    good = serve(httpserver, "/good", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(down, kind="dcgm"), Target(good, kind="dcgm")]
    ).collect(NOW)

    assert snapshot.targets[0] == TargetStatus(
        target=down,
        kind="dcgm",
        up=False,
        duration_seconds=snapshot.targets[0].duration_seconds,
        error="HTTP 503",
    )
    assert snapshot.targets[1].up
    assert [g.uuid for g in snapshot.gpus] == [V100_UUID]


def test_it_aborts_a_50_mb_streamed_response_after_20_mib(httpserver):
    produced = []

    def fifty_megabytes(_request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            line = b'x{a="b"} 1\n'
            chunk = line * (MIB // len(line))
            for _ in range(50):
                produced.append(len(chunk))
                yield chunk

        return Response(chunks(), content_type="text/plain")  # chunked: no Content-Length

    httpserver.expect_request("/huge").respond_with_handler(fifty_megabytes)
    good = serve(httpserver, "/good", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(httpserver.url_for("/huge"), kind="dcgm"), Target(good, kind="dcgm")]
    ).collect(NOW)

    assert snapshot.targets[0].up is False
    assert snapshot.targets[0].error == "response larger than 20 MiB"
    assert sum(produced) < 50 * MIB  # the client hung up; the server never finished writing
    assert snapshot.targets[1].up
    assert [g.uuid for g in snapshot.gpus] == [V100_UUID]


def test_it_stops_reading_a_stream_as_soon_as_the_limit_is_passed():
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(50):
            pulled.append(MIB)
            yield b"#" * MIB

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
    collector = ScrapeCollector(
        targets=[Target("http://node-a:9400/metrics", kind="dcgm")],
        max_body_bytes=20 * MIB,
        transport=transport,
    )

    [status] = collector.collect(NOW).targets

    assert status.error == "response larger than 20 MiB"
    assert len(pulled) == 21


def test_it_refuses_a_declared_oversized_body_without_reading_it():
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        pulled.append(1)
        yield b"#\n"

    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, headers={"content-length": str(50 * MIB)}, content=body()
        )
    )
    collector = ScrapeCollector(
        targets=[Target("http://node-a:9400/metrics", kind="dcgm")],
        max_body_bytes=1_000,
        transport=transport,
    )

    [status] = collector.collect(NOW).targets

    assert status.error == "response larger than 1000 bytes"
    assert pulled == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 1\nx{a="\\q"} 1\n', "line 2: "),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 1', "line 1: "),  # truncated: no newline
        ('x{a="1"} 1\nx{a="1"} 2\n', "line 2: "),  # duplicate series
        ('x{a="' + "v" * 5000 + '"} 1\n', "line 1: "),  # huge label value
    ],
)
def test_it_reports_malformed_exposition_with_the_line(httpserver, body, error):
    bad = serve(httpserver, "/bad", body)
    good = serve(httpserver, "/good", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(bad, kind="dcgm"), Target(good, kind="dcgm")]
    ).collect(NOW)

    assert snapshot.targets[0].up is False
    assert snapshot.targets[0].error.startswith(error)
    assert "\n" not in snapshot.targets[0].error
    assert [g.uuid for g in snapshot.gpus] == [V100_UUID]


def test_it_keeps_an_up_target_with_non_finite_values_and_notes_them(httpserver):
    body = (
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{V100_UUID}",Hostname="r6i3n0"}} 40\n'
        f'DCGM_FI_DEV_POWER_USAGE{{gpu="0",UUID="{V100_UUID}",Hostname="r6i3n0"}} NaN\n'
    )
    url = serve(httpserver, "/nan", body)

    snapshot = ScrapeCollector(targets=[Target(url, kind="dcgm")]).collect(NOW)

    [gpu] = snapshot.gpus
    assert gpu.power_watts is None
    assert gpu.utilization_ratio == 0.4
    assert snapshot.targets[0].up
    assert "non-finite" in snapshot.targets[0].error


def test_it_times_out_a_silent_target_and_keeps_the_others(httpserver, silent_port):
    good = serve(httpserver, "/good", fixture("dcgm-exporter-v100.prom"))
    silent = f"http://127.0.0.1:{silent_port}/metrics"

    snapshot = ScrapeCollector(
        targets=[Target(silent, kind="dcgm"), Target(good, kind="dcgm")],
        timeout=timedelta(seconds=0.2),
    ).collect(NOW)

    assert snapshot.targets[0].up is False
    assert "timed out after 0.2s" in snapshot.targets[0].error
    assert snapshot.targets[1].up


def test_it_reports_a_refused_connection_in_one_line():
    url = f"http://127.0.0.1:{closed_port()}/metrics"

    [status] = ScrapeCollector(targets=[Target(url, kind="dcgm")]).collect(NOW).targets

    assert status.up is False
    assert status.error.startswith("connection failed: ")
    assert "\n" not in status.error and "Traceback" not in status.error


def test_it_reports_a_read_timeout_from_the_transport():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    collector = ScrapeCollector(
        targets=[Target("http://node-a:9400/metrics", kind="dcgm")],
        transport=httpx.MockTransport(handler),
    )

    [status] = collector.collect(NOW).targets

    assert status.error == "read timed out after 10s"


def test_it_sends_url_credentials_as_basic_auth_and_never_reports_them(httpserver):
    httpserver.expect_request(
        "/metrics", headers={"Authorization": "Basic c2NyYXBlcjpzM2NyZXQ="}
    ).respond_with_data(fixture("dcgm-exporter-v100.prom"))
    url = f"http://scraper:s3cret@127.0.0.1:{httpserver.port}/metrics?token=abc&format=text"

    [status] = ScrapeCollector(targets=[Target(url, kind="dcgm")]).collect(NOW).targets

    assert status.up, status.error
    assert status.target == f"http://127.0.0.1:{httpserver.port}/metrics?token=xxx&format=text"
    assert "s3cret" not in status.target and "abc" not in status.target


def test_it_redacts_ipv6_hosts_without_losing_them():
    assert redact_url("https://u:p@[fd00::1]:8443/m") == "https://[fd00::1]:8443/m"


def test_it_bounds_the_number_of_requests_in_flight():
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)  # yield to the other tasks, no wall-clock wait
        in_flight -= 1
        return httpx.Response(200, text="")

    targets = [Target(f"http://node-{i}:9400/metrics", kind="dcgm") for i in range(7)]
    collector = ScrapeCollector(
        targets=targets, concurrency=3, transport=httpx.MockTransport(handler)
    )

    snapshot = collector.collect(NOW)

    assert peak == 3
    assert all(status.up for status in snapshot.targets)
    assert len(snapshot.targets) == 7


def test_it_reads_a_response_cache_target(httpserver):
    body = (
        "# TYPE litellm_cache_hits counter\n"
        'litellm_cache_hits_total{route="chat",team="a"} 30\n'
        'litellm_cache_hits_total{route="chat",team="b"} 12\n'
        'litellm_cache_hits_total{route="embed",team="a"} 99\n'
        "# TYPE litellm_requests counter\n"
        'litellm_requests_total{route="chat",team="a"} 60\n'
        'litellm_requests_total{route="chat",team="b"} 40\n'
    )
    url = serve(httpserver, "/gw", body)
    spec = CacheSpec("gateway", "litellm_cache_hits_total", "litellm_requests", {"route": "chat"})
    missing = CacheSpec("gateway2", "nope_total", "litellm_requests", {})

    snapshot = ScrapeCollector(
        targets=[
            Target(url, kind="cache", cache=spec),
            Target(url + "?again=1", kind="cache", cache=missing),
        ]
    ).collect(NOW)

    [cache] = snapshot.caches
    assert (cache.name, cache.hits_total, cache.lookups_total) == ("gateway", 42.0, 100.0)
    assert cache.timestamp == NOW
    assert snapshot.targets[1].up is False
    assert "nope_total" in snapshot.targets[1].error


def test_it_keeps_the_first_of_a_gpu_reported_by_two_targets(httpserver):
    first = serve(httpserver, "/a", fixture("dcgm-exporter-v100.prom"))
    second = serve(httpserver, "/b", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(first, kind="dcgm"), Target(second, kind="dcgm")]
    ).collect(NOW)

    assert [g.uuid for g in snapshot.gpus] == [V100_UUID]
    assert snapshot.targets[0].error == ""
    assert snapshot.targets[1].up
    assert snapshot.targets[1].error == f"duplicate GPU {V100_UUID} ignored (first from {first})"


def test_it_lists_gpus_an_agent_reports_down(httpserver):
    labels = 'node="gpu-node-03",gpu="{i}",uuid="GPU-{i}",model_name="NVIDIA H100 80GB HBM3"'
    body = (
        "# TYPE tcowatch_gpu_up gauge\n"
        f"tcowatch_gpu_up{{{labels.format(i=0)}}} 1\n"
        f"tcowatch_gpu_up{{{labels.format(i=1)}}} 0\n"
        "# TYPE tcowatch_gpu_utilization_ratio gauge\n"
        f"tcowatch_gpu_utilization_ratio{{{labels.format(i=0)}}} 0.5\n"
    )
    url = serve(httpserver, "/agent", body)

    snapshot = ScrapeCollector(targets=[Target(url, kind="agent")]).collect(NOW)

    assert [g.uuid for g in snapshot.gpus] == ["GPU-0"]
    assert snapshot.gpus[0].node == "gpu-node-03"
    assert snapshot.down_gpus == ("GPU-1",)
    assert snapshot.targets[0].up
    assert "down:" not in snapshot.targets[0].error


def test_it_turns_a_mapping_bug_into_a_target_error(httpserver, monkeypatch):
    import collectors.exposition.nvidia_smi as nvidia_smi

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(nvidia_smi, "gpus_from_nvidia_smi", boom)
    broken = serve(httpserver, "/smi", "nvidia_smi_gpu_info 1\n")
    good = serve(httpserver, "/good", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(broken, kind="nvidia_smi"), Target(good, kind="dcgm")]
    ).collect(NOW)

    assert snapshot.targets[0].error == "internal error: RuntimeError: boom"
    assert snapshot.targets[1].up


def test_it_reports_an_unusable_url_as_a_target_error():
    [status] = (
        ScrapeCollector(targets=[Target("ftp://node-a/metrics", kind="dcgm")]).collect(NOW).targets
    )

    assert status.up is False
    assert status.error


def test_it_scrapes_targets_from_files_and_reports_bad_files(httpserver, tmp_path):
    serve(httpserver, "/metrics", fixture("dcgm-exporter-v100.prom"))
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps([{"targets": [f"127.0.0.1:{httpserver.port}"], "labels": {"kind": "dcgm"}}])
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("- targets: [a:1]\n  labels: {kind: nope}\n")
    static = Target(f"http://127.0.0.1:{httpserver.port}/metrics", kind="dcgm")

    snapshot = ScrapeCollector(targets=[static], target_files=[good, bad]).collect(NOW)

    assert [g.uuid for g in snapshot.gpus] == [V100_UUID]
    statuses = by_kind(snapshot)
    assert len(snapshot.targets) == 2  # the file's copy of the static URL is scraped once
    assert statuses["dcgm"].up
    assert statuses["file_sd"].up is False
    assert statuses["file_sd"].target == str(bad)
    assert statuses["file_sd"].error.startswith(f"{bad}: [0].labels.kind: expected one of")


def test_it_notes_an_up_target_that_has_nothing_of_its_kind(httpserver):
    vllm_page = serve(httpserver, "/vllm", fixture("vllm-0.10-deprecated-prefix-cache.prom"))
    gpu_page = serve(httpserver, "/dcgm", fixture("dcgm-exporter-v100.prom"))

    snapshot = ScrapeCollector(
        targets=[Target(vllm_page, kind="dcgm"), Target(gpu_page, kind="tgi")]
    ).collect(NOW)

    assert [(t.up, t.error) for t in snapshot.targets] == [
        (True, "no dcgm GPU series found"),
        (True, "no vLLM, SGLang or TGI series found"),
    ]
    assert (snapshot.gpus, snapshot.models) == ((), ())


def test_it_collects_nothing_without_targets():
    snapshot = ScrapeCollector().collect(NOW)

    assert snapshot == Snapshot(collector="scrape", timestamp=NOW)


def test_it_scrapes_one_target_for_the_cli(httpserver):
    url = serve(httpserver, "/dcgm", fixture("dcgm-exporter-legacy-empty-k8s-labels.prom"))

    async def run():
        async with httpx.AsyncClient() as client:
            return await scrape_one(
                client, Target(url, kind="dcgm", node="n7"), NOW, timeout=timedelta(seconds=5)
            )

    gpus, models, caches, status = asyncio.run(run())

    [gpu] = gpus
    assert (gpu.node, gpu.power_watts, gpu.energy_joules) == ("n7", 302.206, 4335301.032)
    assert gpu.workloads == ()  # empty pod labels are not a workload
    assert (models, caches) == ([], [])
    assert status.up and status.target == url


def test_it_rejects_nonsense_settings():
    with pytest.raises(ValueError, match="positive"):
        ScrapeCollector(concurrency=0)


def test_it_detects_the_kind_of_a_target_from_its_metric_names():
    from collectors.scrape import detect_kind

    assert detect_kind(["DCGM_FI_DEV_GPU_UTIL"]) == "dcgm"
    assert detect_kind(["nvidia_smi_gpu_info", "go_goroutines"]) == "nvidia_smi"
    assert detect_kind(["tcowatch_gpu_up"]) == "agent"
    assert detect_kind(["vllm:prompt_tokens_total"]) == "inference"
    assert detect_kind(["sglang:cache_hit_rate"]) == "inference"
    assert detect_kind(["tgi_request_count"]) == "inference"
    with pytest.raises(ValueError, match="cannot tell what this target is"):
        detect_kind(["go_goroutines", "process_cpu_seconds_total"])
