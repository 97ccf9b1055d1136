from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import CacheSample, ModelSample
from collectors.exposition.parser import parse_exposition
from collectors.inference import cache_from_exposition, models_from_exposition

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exposition"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
INSTANCE = "http://10.0.0.5:8000"


def models(text: str, gpu_uuids: tuple[str, ...] = ()):
    return models_from_exposition(
        parse_exposition(text), node="gpu-node-01", instance=INSTANCE, now=NOW, gpu_uuids=gpu_uuids
    )


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def sample(model: str, engine: str, instance: str = INSTANCE, **counters) -> ModelSample:
    fields = dict.fromkeys(
        (
            "prompt_tokens_total",
            "generation_tokens_total",
            "cache_queries_total",
            "cache_hits_total",
            "requests_total",
        )
    )
    fields.update(counters)
    return ModelSample(
        node="gpu-node-01", model=model, instance=instance, timestamp=NOW, engine=engine, **fields
    )


def test_it_reads_the_vllm_010_fixture_with_deprecated_hits_and_ignores_created():
    records, notes = models(fixture("vllm-0.10-deprecated-prefix-cache.prom"))

    assert notes == []
    # Hits come from the deprecated name (the new one is absent), never from the *_created
    # gauge (1.75e9); queries from the current name.
    assert records == [
        sample(
            "zai-org/GLM-4.5",
            "vllm",
            instance=f"{INSTANCE}/0",
            cache_queries_total=32.0,
            cache_hits_total=0.0,
        )
    ]


V1_BOTH_NAMES = """\
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen3-32B"} 912345.0
vllm:prompt_tokens_total{engine="1",model_name="Qwen/Qwen3-32B"} 100.0
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="Qwen/Qwen3-32B"} 1.7537953269353123e+09
vllm:prompt_tokens_created{engine="1",model_name="Qwen/Qwen3-32B"} 1.7537953269353123e+09
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen3-32B"} 204800.0
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="Qwen/Qwen3-32B"} 900000.0
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="Qwen/Qwen3-32B"} 600000.0
# TYPE vllm:gpu_prefix_cache_queries_total counter
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="Qwen/Qwen3-32B"} 1.0
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="Qwen/Qwen3-32B"} 2.0
vllm:gpu_prefix_cache_hits_total{engine="1",model_name="Qwen/Qwen3-32B"} 7.0
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="abort",model_name="Qwen/Qwen3-32B"} 3.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="Qwen/Qwen3-32B"} 40.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="Qwen/Qwen3-32B"} 957.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-32B"} 12.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-32B"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-32B"} 0.41
"""


def test_it_prefers_current_vllm_names_and_gives_one_record_per_engine():
    records, notes = models(V1_BOTH_NAMES, gpu_uuids=("GPU-a", "GPU-b"))

    assert notes == []
    first, second = records
    assert first == ModelSample(
        node="gpu-node-01",
        model="Qwen/Qwen3-32B",
        instance=f"{INSTANCE}/0",
        timestamp=NOW,
        prompt_tokens_total=912345.0,
        generation_tokens_total=204800.0,
        cache_queries_total=900000.0,
        cache_hits_total=600000.0,
        requests_total=1000.0,
        gpu_uuids=("GPU-a", "GPU-b"),
        engine="vllm",
        requests_running=12.0,
    )
    assert second.instance == f"{INSTANCE}/1"
    assert second.prompt_tokens_total == 100.0
    assert second.generation_tokens_total is None
    assert second.cache_queries_total is None
    assert second.cache_hits_total == 7.0
    assert second.requests_total is None
    assert second.requests_running == 0.0


DOCS_EXAMPLE = """\
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 27453.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:request_success_total{finished_reason="length",model_name="meta-llama/Llama-3.1-8B-Instruct"} 131.0
"""


def test_it_reads_the_vllm_docs_example_without_an_engine_label():
    records, notes = models(DOCS_EXAMPLE)

    assert notes == []
    assert records == [
        sample(
            "meta-llama/Llama-3.1-8B-Instruct",
            "vllm",
            generation_tokens_total=27453.0,
            requests_total=132.0,
        )
    ]


# vLLM 0.6.x (V0): a hit-rate gauge instead of counters.
VLLM_V0 = """\
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="mistralai/Mistral-7B-Instruct-v0.3"} 51200.0
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="mistralai/Mistral-7B-Instruct-v0.3"} 0.4375
# TYPE vllm:cpu_prefix_cache_hit_rate gauge
vllm:cpu_prefix_cache_hit_rate{model_name="mistralai/Mistral-7B-Instruct-v0.3"} -1.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="mistralai/Mistral-7B-Instruct-v0.3"} 2.0
"""


def test_it_reads_the_vllm_v0_hit_rate_gauge_without_making_up_counters():
    (record,), notes = models(VLLM_V0)

    assert notes == []
    assert record.cache_hit_ratio == 0.4375
    assert record.cache_queries_total is None
    assert record.cache_hits_total is None
    assert record.prompt_tokens_total == 51200.0
    assert record.requests_running == 2.0
    assert record.instance == INSTANCE


def test_it_reads_the_sglang_fixture_hit_rate_gauge():
    records, notes = models(fixture("sglang.prom"))

    assert notes == []
    assert records == [
        ModelSample(
            node="gpu-node-01",
            model="meta-llama/Llama-3.1-8B-Instruct",
            instance=INSTANCE,
            timestamp=NOW,
            prompt_tokens_total=8128902.0,
            generation_tokens_total=None,
            cache_queries_total=None,
            cache_hits_total=None,
            requests_total=None,
            engine="sglang",
            cache_hit_ratio=0.007507552643049313,
        )
    ]


def test_it_reads_sglang_requests_and_never_averages_several_hit_rates():
    payload = (
        'sglang:generation_tokens_total{model_name="m"} 4096.0\n'
        'sglang:num_requests_total{model_name="m"} 77.0\n'
        'sglang:num_running_reqs{model_name="m",tp_rank="0"} 3.0\n'
        'sglang:num_running_reqs{model_name="m",tp_rank="1"} 2.0\n'
        'sglang:cache_hit_rate{model_name="m",tp_rank="0"} 0.5\n'
        'sglang:cache_hit_rate{model_name="m",tp_rank="1"} 0.1\n'
    )
    (record,), notes = models(payload)

    assert record.generation_tokens_total == 4096.0
    assert record.requests_total == 77.0
    assert record.requests_running == 5.0
    assert record.cache_hit_ratio is None
    assert notes == ["2 series of sglang:cache_hit_rate for model 'm': not averaged"]


# Text Generation Inference (metrics-exporter-prometheus): token histograms, no model label.
TGI = """\
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{le="10"} 12
tgi_request_input_length_bucket{le="1000"} 290
tgi_request_input_length_bucket{le="+Inf"} 300
tgi_request_input_length_sum 123456
tgi_request_input_length_count 300
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="+Inf"} 298
tgi_request_generated_tokens_sum 45678
tgi_request_generated_tokens_count 298
# TYPE tgi_request_success counter
tgi_request_success 298
# TYPE tgi_request_count counter
tgi_request_count 300
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 4
"""


def test_it_reads_tgi_token_sums_and_names_the_model_tgi_without_a_label():
    records, notes = models(TGI)

    assert records == [
        sample(
            "tgi",
            "tgi",
            prompt_tokens_total=123456.0,
            generation_tokens_total=45678.0,
            requests_total=298.0,
            requests_running=4.0,
        )
    ]
    assert notes == ["tgi series without a model label: reported as 'tgi'"]


def test_it_counts_tgi_requests_from_request_count_without_success_and_reads_a_model_label():
    payload = (
        'tgi_request_count{model_id="bigcode/starcoder2-15b"} 41\n'
        'tgi_request_input_length_sum{model_id="bigcode/starcoder2-15b"} 2048\n'
    )
    (record,), notes = models(payload)

    assert notes == []
    assert record.model == "bigcode/starcoder2-15b"
    assert record.requests_total == 41.0
    assert record.prompt_tokens_total == 2048.0
    assert record.cache_hits_total is None
    assert record.cache_hit_ratio is None


def test_it_drops_non_finite_values_without_a_partial_sum_and_says_so():
    payload = (
        'vllm:prompt_tokens_total{model_name="m"} NaN\n'
        'vllm:generation_tokens_total{model_name="m"} 10.0\n'
        'vllm:request_success_total{finished_reason="stop",model_name="m"} 5.0\n'
        'vllm:request_success_total{finished_reason="length",model_name="m"} +Inf\n'
    )
    (record,), notes = models(payload)

    assert record.prompt_tokens_total is None
    assert record.requests_total is None
    assert record.generation_tokens_total == 10.0
    assert notes == [
        "non-finite vllm:prompt_tokens_total for model 'm' ignored",
        "non-finite vllm:request_success_total for model 'm' ignored",
    ]


def test_it_finds_no_models_in_a_payload_of_another_kind():
    assert models(fixture("dcgm-exporter-v100.prom")) == ([], [])


GATEWAY = """\
# TYPE gateway_cache_hits_total counter
gateway_cache_hits_total{cache="semantic",route="/v1/chat/completions"} 1200
gateway_cache_hits_total{cache="semantic",route="/v1/embeddings"} 300
gateway_cache_hits_total{cache="exact",route="/v1/chat/completions"} 5
# TYPE gateway_cache_hits_created gauge
gateway_cache_hits_created{cache="semantic",route="/v1/chat/completions"} 1.75e+09
# TYPE gateway_cache_lookups_total counter
gateway_cache_lookups_total{cache="semantic",route="/v1/chat/completions"} 2000
gateway_cache_lookups_total{cache="semantic",route="/v1/embeddings"} 500
gateway_cache_lookups_total{cache="exact",route="/v1/chat/completions"} 2500
gateway_cache_broken_total{cache="semantic"} NaN
"""


def test_it_sums_response_cache_counters_matching_the_label_filter():
    expo = parse_exposition(GATEWAY)

    semantic = cache_from_exposition(
        expo,
        name="gateway-semantic",
        hits_metric="gateway_cache_hits_total",
        lookups_metric="gateway_cache_lookups",
        labels={"cache": "semantic"},
        now=NOW,
    )
    everything = cache_from_exposition(
        expo,
        name="gateway",
        hits_metric="gateway_cache_hits",
        lookups_metric="gateway_cache_lookups_total",
        labels={},
        now=NOW,
    )

    assert semantic == CacheSample("gateway-semantic", NOW, hits_total=1500.0, lookups_total=2500.0)
    assert everything == CacheSample("gateway", NOW, hits_total=1505.0, lookups_total=5000.0)


@pytest.mark.parametrize(
    ("hits", "labels", "message"),
    [
        ("gateway_cache_misses_total", {}, "no samples of gateway_cache_misses_total"),
        ("gateway_cache_hits_total", {"cache": "redis"}, 'gateway_cache_hits_total{cache="redis"}'),
        ("gateway_cache_broken_total", {}, "gateway_cache_broken_total has a non-finite value"),
    ],
)
def test_it_raises_for_a_missing_or_non_finite_cache_counter(hits, labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cache_from_exposition(
            parse_exposition(GATEWAY),
            name="c",
            hits_metric=hits,
            lookups_metric="gateway_cache_lookups_total",
            labels=labels,
            now=NOW,
        )
