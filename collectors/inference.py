"""Map inference-server ``/metrics`` (vLLM, SGLang, TGI) into ``ModelSample`` records, and read
a response cache's hit/lookup counters into a ``CacheSample``.

Engines are recognised by their metric names (``vllm:``, ``sglang:``, ``tgi_``), so one payload
may hold several. Counters are reported as the engine prints them (cumulative, restarting at 0
with the engine); rates and hit rates are computed downstream from deltas. Engine-computed hit
rate gauges (vLLM V0, SGLang) go to ``cache_hit_ratio`` and are never averaged: several series
of one for the same model give ``None`` and a note.

vLLM: one record per (``model_name``, ``engine``) label pair; the instance is
``<instance>/<engine>`` when the ``engine`` label exists. The prefix-cache counters are read
from the current ``vllm:prefix_cache_*_total`` names, falling back per counter to the
``vllm:gpu_prefix_cache_*_total`` names deprecated in 0.9. ``*_created`` samples are never read.
A non-finite value makes that field absent (never a partial sum), with a note.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from collectors.base import CacheSample, ModelSample
from collectors.exposition.parser import Exposition, Sample

logger = logging.getLogger(__name__)

_Key = tuple[str, str | None]
"""(model name, engine label or ``None``)."""


@dataclass(frozen=True, slots=True)
class _Source:
    """How one ``ModelSample`` field is read: candidate names (preferred first), and how."""

    attr: str
    names: tuple[str, ...]
    how: str = "sum"
    """``sum`` (counters, running gauges) or ``single`` (a ratio gauge: never aggregated)."""


@dataclass(frozen=True, slots=True)
class _Engine:
    engine: str
    prefix: str
    model_labels: tuple[str, ...]
    engine_label: str | None
    sources: tuple[_Source, ...]


_VLLM = _Engine(
    engine="vllm",
    prefix="vllm:",
    model_labels=("model_name",),
    engine_label="engine",
    sources=(
        _Source("prompt_tokens_total", ("vllm:prompt_tokens_total",)),
        _Source("generation_tokens_total", ("vllm:generation_tokens_total",)),
        _Source(
            "cache_queries_total",
            ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
        ),
        _Source(
            "cache_hits_total",
            ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        ),
        _Source("requests_total", ("vllm:request_success_total",)),
        _Source("requests_running", ("vllm:num_requests_running",)),
        _Source("cache_hit_ratio", ("vllm:gpu_prefix_cache_hit_rate",), how="single"),
    ),
)
_SGLANG = _Engine(
    engine="sglang",
    prefix="sglang:",
    model_labels=("model_name",),
    engine_label=None,
    sources=(
        _Source("prompt_tokens_total", ("sglang:prompt_tokens_total",)),
        _Source("generation_tokens_total", ("sglang:generation_tokens_total",)),
        _Source("requests_total", ("sglang:num_requests_total",)),
        _Source("requests_running", ("sglang:num_running_reqs",)),
        _Source("cache_hit_ratio", ("sglang:cache_hit_rate",), how="single"),
    ),
)
_TGI = _Engine(
    engine="tgi",
    prefix="tgi_",
    model_labels=("model_name", "model_id", "model"),
    engine_label=None,
    sources=(
        _Source("prompt_tokens_total", ("tgi_request_input_length_sum",)),
        _Source("generation_tokens_total", ("tgi_request_generated_tokens_sum",)),
        _Source(
            "requests_total",
            (
                "tgi_request_success",
                "tgi_request_success_total",
                "tgi_request_count",
                "tgi_request_count_total",
            ),
        ),
        _Source("requests_running", ("tgi_batch_current_size",)),
    ),
)
ENGINES = (_VLLM, _SGLANG, _TGI)


def _model(sample: Sample, engine: _Engine) -> str:
    for label in engine.model_labels:
        value = sample.labels.get(label)
        if value:
            return value
    return ""


def _key(sample: Sample, engine: _Engine) -> _Key:
    label = engine.engine_label
    return (_model(sample, engine), sample.labels.get(label) if label else None)


def _reduce(
    source: _Source, name: str, key: _Key, samples: list[Sample], notes: list[str]
) -> float | None:
    if any(not math.isfinite(sample.value) for sample in samples):
        notes.append(f"non-finite {name} for model {key[0]!r} ignored")
        return None
    if source.how == "single":
        if len(samples) > 1:
            notes.append(f"{len(samples)} series of {name} for model {key[0]!r}: not averaged")
            return None
        return samples[0].value
    return math.fsum(sample.value for sample in samples)


def _groups(
    expo: Exposition, engine: _Engine, notes: list[str]
) -> dict[_Key, dict[str, float | None]]:
    """Field values per (model, engine label), each from the first candidate name present."""
    groups: dict[_Key, dict[str, float | None]] = {}
    for source in engine.sources:
        chosen: dict[_Key, tuple[str, list[Sample]]] = {}
        for name in source.names:
            by_key: dict[_Key, list[Sample]] = {}
            for sample in expo.named(name):
                by_key.setdefault(_key(sample, engine), []).append(sample)
            for key, samples in by_key.items():
                chosen.setdefault(key, (name, samples))
        for key, (name, samples) in chosen.items():
            values = groups.setdefault(key, {})
            values[source.attr] = _reduce(source, name, key, samples, notes)
    return groups


def _models(
    expo: Exposition,
    engine: _Engine,
    *,
    node: str,
    instance: str,
    now: datetime,
    gpu_uuids: tuple[str, ...],
    notes: list[str],
) -> list[ModelSample]:
    records: list[ModelSample] = []
    for (model, engine_label), values in _groups(expo, engine, notes).items():
        if not model:
            model = engine.engine
            notes.append(f"{engine.engine} series without a model label: reported as {model!r}")
        records.append(
            ModelSample(
                node=node,
                model=model,
                instance=f"{instance}/{engine_label}" if engine_label else instance,
                timestamp=now,
                prompt_tokens_total=values.get("prompt_tokens_total"),
                generation_tokens_total=values.get("generation_tokens_total"),
                cache_queries_total=values.get("cache_queries_total"),
                cache_hits_total=values.get("cache_hits_total"),
                requests_total=values.get("requests_total"),
                gpu_uuids=gpu_uuids,
                engine=engine.engine,
                cache_hit_ratio=values.get("cache_hit_ratio"),
                requests_running=values.get("requests_running"),
            )
        )
    return records


def models_from_exposition(
    expo: Exposition,
    *,
    node: str,
    instance: str,
    now: datetime,
    gpu_uuids: tuple[str, ...] = (),
) -> tuple[list[ModelSample], list[str]]:
    """Map every model served in an inference-server payload to one ``ModelSample``.

    Detects vLLM, SGLang and TGI by metric names; a payload with none of them gives no records.
    ``instance`` names the scraped endpoint (``<instance>/<engine>`` for vLLM's ``engine``
    label); ``gpu_uuids`` is copied into every record. Returns the records (ordered by engine,
    model, instance) and one-line notes: non-finite values (that field is ``None``), ratio
    gauges not averaged, a missing model label. Never raises for odd content.
    """
    names = expo.names()
    records: list[ModelSample] = []
    notes: list[str] = []
    for engine in ENGINES:
        if any(name.startswith(engine.prefix) for name in names):
            records.extend(
                _models(
                    expo,
                    engine,
                    node=node,
                    instance=instance,
                    now=now,
                    gpu_uuids=gpu_uuids,
                    notes=notes,
                )
            )
    records.sort(key=lambda model: (model.engine, model.model, model.instance))
    return records, notes


def _counter_sum(expo: Exposition, metric: str, labels: Mapping[str, str]) -> float:
    candidates = [metric] if metric.endswith("_total") else [metric, f"{metric}_total"]
    for name in candidates:
        samples = [
            sample
            for sample in expo.named(name)
            if all(sample.labels.get(key) == value for key, value in labels.items())
        ]
        if not samples:
            continue
        if any(not math.isfinite(sample.value) for sample in samples):
            raise ValueError(f"{name} has a non-finite value")
        return math.fsum(sample.value for sample in samples)
    wanted = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    raise ValueError(f"no samples of {metric}{{{wanted}}}")


def cache_from_exposition(
    expo: Exposition,
    *,
    name: str,
    hits_metric: str,
    lookups_metric: str,
    labels: Mapping[str, str],
    now: datetime,
) -> CacheSample:
    """Read a response cache's cumulative hit and lookup counters from a payload.

    Each counter is the sum of the samples of that metric whose labels include every pair in
    ``labels`` (other labels are summed over). A metric named without ``_total`` is also looked
    up with it, so a counter family name works. Raises ``ValueError`` naming the metric when no
    sample matches or a matching value is non-finite.
    """
    return CacheSample(
        name=name,
        timestamp=now,
        hits_total=_counter_sum(expo, hits_metric, labels),
        lookups_total=_counter_sum(expo, lookups_metric, labels),
    )
