"""File-based target discovery: formats, URL building, change detection, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from collectors.scrape import CacheSpec, Target
from collectors.targets import TargetFiles, parse_target_groups, to_file_sd

DCGM_GROUP = """\
- targets: ["gpu-node-01:9400", "10.0.0.2:9400"]
  labels:
    kind: dcgm
    rack: r1
"""


def _write(path: Path, text: str, *, mtime_ns: int) -> None:
    """Write ``text`` and stamp an explicit modification time (no reliance on clock ticks)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_it_builds_urls_with_default_scheme_and_path(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, DCGM_GROUP, mtime_ns=1_000_000_000)

    targets, problems = TargetFiles([path]).current()

    assert problems == []
    assert [t.url for t in targets] == [
        "http://gpu-node-01:9400/metrics",
        "http://10.0.0.2:9400/metrics",
    ]
    assert all(t.kind == "dcgm" and t.node is None for t in targets)
    assert targets[0].labels == {"rack": "r1"}


def test_it_reads_json_with_scheme_path_params_node_and_gpu_uuids(tmp_path):
    path = tmp_path / "inference.json"
    groups = [
        {
            "targets": ["[fd00::7]:8000"],
            "labels": {
                "kind": "vllm",
                "node": "gpu-node-07",
                "__scheme__": "https",
                "__metrics_path__": "/engine/metrics",
                "__param_format": "text",
                "instance": "deepseek-a",
                "gpu_uuids": ["GPU-a", "GPU-b"],
            },
        }
    ]
    _write(path, json.dumps(groups), mtime_ns=1_000_000_000)

    [target], problems = TargetFiles([path]).current()

    assert problems == []
    assert target.url == "https://[fd00::7]:8000/engine/metrics?format=text"
    assert target.node == "gpu-node-07"
    assert target.labels == {"instance": "deepseek-a"}
    assert target.gpu_uuids == ("GPU-a", "GPU-b")


def test_it_accepts_gpu_uuids_as_comma_separated_label_and_full_urls():
    [target] = parse_target_groups(
        [
            {
                "targets": ["http://gw.internal:4000/metrics"],
                "labels": {"kind": "sglang", "gpu_uuids": "GPU-a, GPU-b"},
            }
        ]
    )

    assert target.url == "http://gw.internal:4000/metrics"
    assert target.gpu_uuids == ("GPU-a", "GPU-b")


def test_it_reads_a_cache_spec_for_cache_targets():
    [target] = parse_target_groups(
        yaml.safe_load(
            """
            - targets: ["litellm:4000"]
              labels: {kind: cache}
              cache:
                name: gateway
                hits_metric: litellm_cache_hits_total
                lookups_metric: litellm_requests_total
                labels: {route: chat}
            """
        )
    )

    assert target.cache == CacheSpec(
        name="gateway",
        hits_metric="litellm_cache_hits_total",
        lookups_metric="litellm_requests_total",
        labels={"route": "chat"},
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            [{"targets": ["a:1"], "labels": {"kind": "dcgm"}}, {"targets": ["b:1"], "labels": {}}],
            "[1].labels.kind: expected one of dcgm, nvidia_smi, agent, vllm, sglang, tgi, "
            "inference, cache, auto",
        ),
        ([{"targets": [], "labels": {"kind": "dcgm"}}], "[0].targets: expected a non-empty list"),
        (
            [{"targets": ["a:1", "a:b:c"], "labels": {"kind": "dcgm"}}],
            "[0].targets[1]: expected host:port, got 'a:b:c'",
        ),
        (
            [{"targets": ["a:1"], "labels": {"kind": "dcgm", "__schema__": "https"}}],
            "[0].labels.__schema__: unknown label",
        ),
        (
            [{"targets": ["a:1"], "labels": {"kind": "dcgm", "__scheme__": "ftp"}}],
            "[0].labels.__scheme__: expected http or https",
        ),
        ([{"targets": ["a:1"], "labels": {"kind": "cache"}}], "[0].cache: kind cache needs"),
        (
            [{"targets": ["a:1"], "labels": {"kind": "dcgm", "node": ["x"]}}],
            "[0].labels.node: expected a string, got list",
        ),
        ({"targets": ["a:1"]}, "expected a list of target groups, got dict"),
    ],
)
def test_it_names_the_bad_place_in_a_document(document, expected):
    with pytest.raises(ValueError) as caught:
        parse_target_groups(document)

    assert str(caught.value).startswith(expected)


def test_it_treats_an_empty_file_as_no_targets(tmp_path):
    path = tmp_path / "empty.yaml"
    _write(path, "", mtime_ns=1_000_000_000)

    assert TargetFiles([path]).current() == ([], [])


def test_it_picks_up_a_changed_file(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, DCGM_GROUP, mtime_ns=1_000_000_000)
    files = TargetFiles([path])
    before, _ = files.current()

    _write(path, DCGM_GROUP.replace("10.0.0.2", "10.0.0.3"), mtime_ns=2_000_000_000)
    after, problems = files.current()

    assert problems == []
    assert before[1].url == "http://10.0.0.2:9400/metrics"
    assert after[1].url == "http://10.0.0.3:9400/metrics"


def test_it_does_not_reread_a_file_whose_mtime_and_size_are_unchanged(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, DCGM_GROUP, mtime_ns=1_000_000_000)
    files = TargetFiles([path])
    files.current()

    # Same length, same mtime: an unchanged stat means the file is not read again.
    _write(path, DCGM_GROUP.replace("10.0.0.2", "10.0.0.9"), mtime_ns=1_000_000_000)
    targets, _ = files.current()

    assert targets[1].url == "http://10.0.0.2:9400/metrics"


def test_it_keeps_the_last_good_targets_of_a_file_that_became_invalid(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, DCGM_GROUP, mtime_ns=1_000_000_000)
    files = TargetFiles([path])
    good, _ = files.current()

    _write(path, DCGM_GROUP.replace("kind: dcgm", "kind: dcmg"), mtime_ns=2_000_000_000)
    kept, problems = files.current()
    again, problems_again = files.current()

    assert kept == good
    assert problems == [
        f"{path}: [0].labels.kind: expected one of dcgm, nvidia_smi, agent, vllm, sglang, tgi, "
        "inference, cache, auto"
    ]
    assert (again, problems_again) == (kept, problems)

    _write(path, DCGM_GROUP, mtime_ns=3_000_000_000)
    assert files.current() == (good, [])


def test_it_reports_yaml_syntax_errors_with_the_line(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, "- targets: [a:1\n  labels: {kind: dcgm}\n", mtime_ns=1_000_000_000)

    targets, [problem] = TargetFiles([path]).current()

    assert targets == []
    assert problem.startswith(f"{path}: invalid YAML at line ")


def test_it_reports_a_missing_file_and_keeps_the_others(tmp_path):
    good = tmp_path / "good.yaml"
    _write(good, DCGM_GROUP, mtime_ns=1_000_000_000)
    missing = tmp_path / "missing.yaml"

    targets, problems = TargetFiles([missing, good]).current()

    assert len(targets) == 2
    assert problems == [f"{missing}: cannot read: No such file or directory"]


def test_it_keeps_the_targets_of_a_file_that_was_deleted(tmp_path):
    path = tmp_path / "targets.yaml"
    _write(path, DCGM_GROUP, mtime_ns=1_000_000_000)
    files = TargetFiles([path])
    good, _ = files.current()

    path.unlink()
    kept, [problem] = files.current()

    assert kept == good
    assert problem == f"{path}: cannot read: No such file or directory"


def test_it_writes_file_sd_that_reads_back_to_the_same_targets():
    targets = [
        Target(url="http://10.0.0.1:9400/metrics", kind="dcgm", node="gpu-node-01"),
        Target(
            url="https://10.0.0.1:8000/m",
            kind="vllm",
            node="gpu-node-01",
            labels={"instance": "llama-0"},
            gpu_uuids=("GPU-a", "GPU-b"),
        ),
        Target(
            url="http://gw:4000/metrics",
            kind="cache",
            cache=CacheSpec("gateway", "hits_total", "lookups_total", {"route": "chat"}),
        ),
    ]

    document = json.loads(json.dumps(to_file_sd(targets)))

    assert parse_target_groups(document) == targets
