"""A deterministic simulated GPU fleet serving LLMs: for the demo, the benchmarks and rule tests.

Shape of the fleet (all derived from ``seed``):

- ``nodes`` nodes named ``gpu-node-01``... with ``gpus_per_node`` GPUs each, UUIDs shaped like
  real ones (``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``);
- a daily load curve (lowest at 03:00 UTC, highest at 15:00 UTC) scaled per model instance,
  plus per-minute noise from a hash of (seed, GPU or instance, minute), so a sample depends only
  on the seed and the sequence of ``now`` values, never on how often ``collect`` ran;
- about one GPU in eight idle by design: it holds a loaded model (60-75 GB on an H100) but its
  "staging" instance gets no traffic, so utilization stays at 0-2 % and power near idle;
- power = idle watts + utilization x (limit - idle watts); temperature follows power;
- a monotonic energy counter (joules) that integrates power with the trapezoid rule between
  calls, and cumulative token counters per model instance that integrate its traffic the same way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from collectors.base import GpuSample, ModelSample, Snapshot

logger = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1
_INV53 = 1.0 / (1 << 53)
_MINUTE_SALT = 0xD1B54A32D192ED03


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _noise(key: int, minute: int) -> float:
    """Uniform in [0, 1), a pure function of ``(key, minute)``."""
    return (_mix64(key ^ ((minute * _MINUTE_SALT) & _MASK64)) >> 11) * _INV53


def _key(*parts: object) -> int:
    """Stable 64-bit key of ``parts`` (``hash()`` is salted per process, this is not)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class _GpuSpec:
    power_limit_watts: float
    memory_total_bytes: int


_SPECS: dict[str, _GpuSpec] = {
    "NVIDIA H100 80GB HBM3": _GpuSpec(700.0, 81_559 * 2**20),
    "NVIDIA H200": _GpuSpec(700.0, 143_771 * 2**20),
    "NVIDIA A100-SXM4-80GB": _GpuSpec(400.0, 81_920 * 2**20),
    "NVIDIA L40S": _GpuSpec(350.0, 46_068 * 2**20),
}
_DEFAULT_SPEC = _SPECS["NVIDIA H100 80GB HBM3"]


@dataclass(frozen=True, slots=True)
class _ModelKind:
    model: str
    short: str
    min_tp: int
    max_tp: int
    prompt_tokens_per_s: float
    """Prefill throughput of one instance at load 1.0."""
    generation_tokens_per_s: float
    prompt_tokens_per_request: float


_DEEPSEEK = _ModelKind("deepseek-ai/DeepSeek-V3", "deepseek-v3", 4, 8, 24_000, 2_600, 2_400)
_QWEN72 = _ModelKind("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b", 2, 4, 9_000, 1_400, 1_800)
_LLAMA8 = _ModelKind("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b", 1, 1, 16_000, 3_800, 900)
_QWEN7 = _ModelKind("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b", 1, 1, 16_000, 3_600, 900)
_STAGING_KINDS = (_LLAMA8, _QWEN7)
# Per node (by index modulo 3): which models fill its busy GPUs, and at most how many instances.
_NODE_PLANS: tuple[tuple[tuple[_ModelKind, int], ...], ...] = (
    ((_DEEPSEEK, 1), (_QWEN72, 99), (_LLAMA8, 99)),
    ((_QWEN72, 1), (_LLAMA8, 99)),
    ((_LLAMA8, 99),),
)


@dataclass(slots=True)
class _Instance:
    node: str
    kind: _ModelKind
    name: str
    gpus: list[int]
    uuids: tuple[str, ...]
    idle: bool
    key: int
    scale: float
    hit_base: float
    prompt: float = 0.0
    generation: float = 0.0
    queries: float = 0.0
    hits: float = 0.0
    requests: float = 0.0
    last_traffic: float = 0.0


def _pow2_floor(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SimulatedFleet:
    """A simulated fleet; see the module docstring for its shape.

    Error contract: ``collect`` never raises for a valid ``now`` (a ``now`` earlier than the
    previous one integrates nothing, so counters never go back). The constructor raises
    ``ValueError`` for a fleet that cannot exist (no nodes, more idle GPUs than GPUs).
    """

    name: ClassVar[str] = "simulated"

    def __init__(
        self,
        *,
        nodes: int = 4,
        gpus_per_node: int = 4,
        seed: int = 42,
        idle_gpus: int | None = None,
        gpu_model: str = "NVIDIA H100 80GB HBM3",
        start: datetime | None = None,
    ) -> None:
        """Build the fleet. ``start``: when drivers and engines were loaded (counters are zero
        then, and the first ``collect`` integrates from ``start``); ``None``: they were loaded
        days ago, counters start at seeded values and the first ``collect`` integrates nothing.
        """
        if nodes < 1 or gpus_per_node < 1:
            raise ValueError(f"a fleet needs nodes >= 1 and gpus_per_node >= 1, got {nodes}")
        total = nodes * gpus_per_node
        n_idle = max(1, total // 8) if idle_gpus is None else idle_gpus
        if not 0 <= n_idle <= total:
            raise ValueError(f"idle_gpus must be between 0 and {total}, got {idle_gpus}")
        rng = random.Random(seed)
        spec = _SPECS.get(gpu_model, _DEFAULT_SPEC)
        self._gpu_model = gpu_model
        self._limit = spec.power_limit_watts
        self._memory_total = spec.memory_total_bytes
        self._start_epoch = _epoch(start) if start is not None else None
        self._last_epoch: float | None = None
        self._overrides: dict[int, float] = {}

        self._uuids = [_uuid(rng) for _ in range(total)]
        self._nodes = [f"gpu-node-{i // gpus_per_node + 1:02d}" for i in range(total)]
        self._index = [i % gpus_per_node for i in range(total)]
        self._keys = [_key(seed, u) for u in self._uuids]
        # Staging deployments sit beside the small models, not inside a DeepSeek node's TP group.
        away = [g for g in range(total) if (g // gpus_per_node) % len(_NODE_PLANS) != 0]
        idle = set(rng.sample(away if len(away) >= n_idle else range(total), n_idle))
        self._idle = [i in idle for i in range(total)]
        self._idle_w = [self._limit * rng.uniform(0.103, 0.125) for _ in range(total)]
        self._ambient = [rng.uniform(27.0, 32.0) for _ in range(total)]
        # vLLM preallocates its KV cache: ~90 % of memory while serving; a loaded staging model
        # holds 60-75 GB of an 80 GB H100 (the same share of other models).
        self._memory_used = [
            int(
                self._memory_total
                * (rng.uniform(0.715, 0.875) if i in idle else rng.uniform(0.888, 0.9))
            )
            for i in range(total)
        ]
        self._instances = self._layout(rng, seed, nodes, gpus_per_node)
        self._instance_of = [0] * total
        for n, inst in enumerate(self._instances):
            for g in inst.gpus:
                self._instance_of[g] = n
        self._static = list(
            zip(
                self._uuids, self._nodes, self._index, self._keys, self._idle, self._idle_w,
                self._instance_of, self._memory_used, self._ambient, strict=True,
            )
        )  # fmt: skip
        """Per GPU: what never changes, in the order ``_sample_gpus`` unpacks it."""
        uptime = [rng.uniform(2, 40) * 86_400 for _ in range(total)]
        self._energy = [
            0.0
            if start is not None
            else uptime[g]
            * (self._idle_w[g] if self._idle[g] else 0.5 * (self._limit + self._idle_w[g]))
            for g in range(total)
        ]
        self._last_power: list[float] = [0.0] * total
        if start is None:
            for inst in self._instances:
                if inst.idle:  # a smoke test right after deployment, nothing since
                    self._credit(inst, rng.uniform(2e3, 2e4), rng.uniform(0.1, 0.3))
                else:  # days of serving at about half load
                    served_s = rng.uniform(1, 10) * 86_400 * 0.5
                    self._credit(inst, served_s * inst.kind.prompt_tokens_per_s, inst.hit_base)

    def _layout(self, rng: random.Random, seed: int, nodes: int, per_node: int) -> list[_Instance]:
        """Split each node's GPUs into model instances: busy ones per the node's plan, then
        one staging instance per idle GPU."""
        instances: list[_Instance] = []
        for n in range(nodes):
            node = f"gpu-node-{n + 1:02d}"
            gpus = range(n * per_node, (n + 1) * per_node)
            busy = [g for g in gpus if not self._idle[g]]
            groups: list[tuple[_ModelKind, str, list[int]]] = []
            for kind, most in _NODE_PLANS[n % len(_NODE_PLANS)]:
                while sum(1 for k, _, _ in groups if k is kind) < most and len(busy) >= kind.min_tp:
                    tp = min(kind.max_tp, _pow2_floor(len(busy)))
                    groups.append((kind, "prod", busy[:tp]))
                    busy = busy[tp:]
            groups.extend((_LLAMA8, "prod", [g]) for g in busy)  # leftovers serve a small model
            groups.extend(
                (_STAGING_KINDS[g % len(_STAGING_KINDS)], "staging", [g])
                for g in gpus
                if self._idle[g]
            )
            counts: dict[str, int] = {}
            for kind, role, members in groups:
                label = f"{kind.short}-{role}"
                name = f"{label}-{counts.get(label, 0)}"
                counts[label] = counts.get(label, 0) + 1
                instances.append(
                    _Instance(
                        node=node,
                        kind=kind,
                        name=name,
                        gpus=members,
                        uuids=tuple(self._uuids[g] for g in members),
                        idle=role == "staging",
                        key=_key(seed, node, name),
                        scale=rng.uniform(0.75, 1.0),
                        hit_base=rng.uniform(0.45, 0.62),
                    )
                )
        return instances

    @property
    def idle_uuids(self) -> frozenset[str]:
        """UUIDs of the GPUs that are idle by design (memory held, no traffic)."""
        return frozenset(u for u, idle in zip(self._uuids, self._idle, strict=True) if idle)

    @property
    def uuids(self) -> tuple[str, ...]:
        """Every GPU UUID, node by node."""
        return tuple(self._uuids)

    def override_load(self, uuid: str, load: float | None) -> None:
        """Force the utilization of one GPU to ``load`` (0..1) from the next ``collect``, its
        instance's traffic following; ``None`` clears the override.

        Raises ``KeyError`` for an unknown UUID and ``ValueError`` for a load outside 0..1.
        """
        try:
            g = self._uuids.index(uuid)
        except ValueError:
            raise KeyError(f"no simulated GPU {uuid!r}") from None
        if load is None:
            self._overrides.pop(g, None)
            return
        if not (math.isfinite(load) and 0.0 <= load <= 1.0):
            raise ValueError(f"load must be between 0 and 1, got {load!r}")
        self._overrides[g] = load

    def collect(self, now: datetime) -> Snapshot:
        """One sample of every GPU and model instance at ``now`` (naive means UTC)."""
        epoch = _epoch(now)
        minute = int(epoch // 60)
        hour = (epoch % 86_400) / 3_600
        curve = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)
        if self._last_epoch is not None:
            dt, first = max(0.0, epoch - self._last_epoch), False
        else:
            start = self._start_epoch
            dt, first = (max(0.0, epoch - start) if start is not None else 0.0), True
        if self._last_epoch is None or epoch > self._last_epoch:
            self._last_epoch = epoch

        loads = [
            0.0
            if inst.idle
            else min(
                0.97,
                max(
                    0.14, 0.2 + 0.65 * curve * inst.scale + (_noise(inst.key, minute) - 0.5) * 0.12
                ),
            )
            for inst in self._instances
        ]
        traffic = list(loads)
        overrides = self._overrides
        if overrides:
            for n in {self._instance_of[g] for g in overrides}:
                members = self._instances[n].gpus
                traffic[n] = sum(overrides.get(g, loads[n]) for g in members) / len(members)

        gpus = self._sample_gpus(now, minute, dt, first, loads)
        models = tuple(
            self._sample_model(now, minute, dt, first, inst, traffic[n])
            for n, inst in enumerate(self._instances)
        )
        return Snapshot(collector=self.name, timestamp=now, gpus=gpus, models=models)

    def _sample_gpus(
        self, now: datetime, minute: int, dt: float, first: bool, loads: list[float]
    ) -> tuple[GpuSample, ...]:
        # The hot loop (1,024 GPUs in a few ms): locals only, noise hash inlined.
        limit, model, total_mem = self._limit, self._gpu_model, self._memory_total
        overrides, energy, last = self._overrides, self._energy, self._last_power
        salt = (minute * _MINUTE_SALT) & _MASK64
        mask, inv53 = _MASK64, _INV53
        out: list[GpuSample] = []
        append = out.append
        for g, (uuid, node, index, key, idle, idle_w, owner, mem, ambient) in enumerate(
            self._static
        ):
            x = ((key ^ salt) + 0x9E3779B97F4A7C15) & mask
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
            u = ((x ^ (x >> 31)) >> 11) * inv53  # == _noise(key, minute)
            override = overrides.get(g) if overrides else None
            if override is not None:
                util = override
                power = idle_w + util * (limit - idle_w)
            elif idle:
                util = 0.01 * int(u * 3)
                power = idle_w + (u - 0.5) * 4.0
            else:
                util = loads[owner] + (u - 0.5) * 0.06
                util = 0.0 if util < 0.0 else 1.0 if util > 1.0 else util
                power = idle_w + util * (limit - idle_w)
            util = int(util * 100.0 + 0.5) / 100.0  # NVML reports whole percents
            power = int(power * 1000.0 + 0.5) / 1000.0  # and milliwatts
            e = energy[g] + (power if first else (last[g] + power) * 0.5) * dt
            energy[g] = e
            last[g] = power
            append(
                GpuSample(
                    uuid=uuid,
                    node=node,
                    index=index,
                    name=model,
                    timestamp=now,
                    utilization_ratio=util,
                    memory_used_bytes=mem,
                    memory_total_bytes=total_mem,
                    power_watts=power,
                    power_limit_watts=limit,
                    energy_joules=e,
                    temperature_celsius=float(int(ambient + power * 0.065 + 0.5)),
                )
            )
        return tuple(out)

    def _sample_model(
        self, now: datetime, minute: int, dt: float, first: bool, inst: _Instance, traffic: float
    ) -> ModelSample:
        average = traffic if first else (inst.last_traffic + traffic) / 2.0
        inst.last_traffic = traffic
        if average > 0.0 and dt > 0.0:
            hit = inst.hit_base + (_noise(inst.key ^ 1, minute) - 0.5) * 0.1
            self._credit(inst, inst.kind.prompt_tokens_per_s * average * dt, hit)
        return ModelSample(
            node=inst.node,
            model=inst.kind.model,
            instance=inst.name,
            timestamp=now,
            prompt_tokens_total=inst.prompt,
            generation_tokens_total=inst.generation,
            cache_queries_total=inst.queries,
            cache_hits_total=inst.hits,
            requests_total=inst.requests,
            gpu_uuids=inst.uuids,
        )

    @staticmethod
    def _credit(inst: _Instance, prompt_tokens: float, hit_ratio: float) -> None:
        kind = inst.kind
        inst.prompt += prompt_tokens
        inst.generation += prompt_tokens * kind.generation_tokens_per_s / kind.prompt_tokens_per_s
        inst.queries += prompt_tokens
        inst.hits += prompt_tokens * hit_ratio
        inst.requests += prompt_tokens / kind.prompt_tokens_per_request

    def close(self) -> None:
        """Nothing to release. Never raises."""


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
