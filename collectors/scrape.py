"""The exposition scrape collector: fetch Prometheus text from many targets, map it to records.

Targets are dcgm-exporter, nvidia_gpu_exporter and tcowatch agents (GPU records), inference
servers (vLLM, SGLang, TGI: model records) and response caches (a pair of counters). They are
fetched concurrently with ``httpx.AsyncClient`` (bounded by ``concurrency``, each under its own
timeout, each body capped at ``max_body_bytes`` while it streams), then parsed and mapped one by
one, so a slow parse never eats into another target's network timeout.

Error contract: one target's failure (refused connection, timeout, HTTP status, oversized or
malformed body, a mapping that rejects the payload) becomes ``TargetStatus(up=False, error=...)``
with a one-line reason; it never affects the other targets and never raises out of ``collect``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from collectors.base import CacheSample, GpuSample, ModelSample, Snapshot, TargetStatus

if TYPE_CHECKING:
    from collectors.exposition.parser import Exposition
    from collectors.targets import TargetFiles

logger = logging.getLogger(__name__)

TargetKind = Literal[
    "dcgm", "nvidia_smi", "agent", "vllm", "sglang", "tgi", "inference", "cache", "auto"
]
TARGET_KINDS: tuple[str, ...] = get_args(TargetKind)
GPU_KINDS = frozenset({"dcgm", "nvidia_smi", "agent"})
MODEL_KINDS = frozenset({"vllm", "sglang", "tgi", "inference"})

MIB = 2**20
DEFAULT_MAX_BODY_BYTES = 20 * MIB
_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "auth", "signature")
_DOWN_PREFIX = "down: "


@dataclass(frozen=True)
class CacheSpec:
    """A response cache read from a scrape target: the two counters and the labels to match."""

    name: str
    hits_metric: str
    lookups_metric: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One scrape target. ``url`` may carry credentials (sent as basic auth, never reported)."""

    url: str
    kind: TargetKind
    node: str | None = None
    """Node name for records whose payload names no host; default: the URL's host."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra labels; ``instance`` names the model instance (default: ``host:port``)."""
    gpu_uuids: tuple[str, ...] = ()
    """GPUs an inference target runs on, when known."""
    cache: CacheSpec | None = None
    """Required for ``kind == "cache"``."""


def redact_url(url: str) -> str:
    """``url`` without userinfo, and with secret-looking query values replaced by ``xxx``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return "<invalid URL>"
    query = parts.query
    if query:
        pairs = [
            (k, "xxx" if any(s in k.lower() for s in _SECRET_PARAMS) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="/:,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _host_and_instance(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return host, f"{shown}:{port}"


def _size_text(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n} bytes"


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _network_error(exc: httpx.HTTPError, timeout: float | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool",
        }.get(type(exc), "request")
        return f"{what} timed out" + (f" after {timeout:g}s" if timeout is not None else "")
    detail = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {detail}"
    return f"{type(exc).__name__}: {detail}"


class _TooLarge(Exception):
    pass


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout: float | None = None,
) -> bytes:
    """GET ``url`` and return its body.

    Raises ``ValueError`` with a one-line reason for any failure: network errors and timeouts
    (``timeout`` bounds the whole request, on top of the client's own per-operation timeouts),
    a non-2xx status (``"HTTP 503"``), or a body over ``max_body_bytes`` (the stream is dropped as
    soon as the limit is passed, so an oversized body is never held in memory).
    """

    async def get() -> bytes:
        async with client.stream("GET", url, headers={"Accept": _ACCEPT}) as response:
            if not 200 <= response.status_code < 300:
                raise ValueError(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_body_bytes:
                raise _TooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_body_bytes:
                    raise _TooLarge
                chunks.append(chunk)
            return b"".join(chunks)

    try:
        if timeout is None:
            return await get()
        async with asyncio.timeout(timeout):
            return await get()
    except _TooLarge:
        raise ValueError(f"response larger than {_size_text(max_body_bytes)}") from None
    except TimeoutError:
        raise ValueError(f"timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ValueError(_network_error(exc, timeout)) from None
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL: {_one_line(str(exc))}") from None


@dataclass(slots=True)
class _Result:
    gpus: list[GpuSample]
    models: list[ModelSample]
    caches: list[CacheSample]
    status: TargetStatus
    down: list[str]


_KIND_PREFIXES: tuple[tuple[str, TargetKind], ...] = (
    ("DCGM_FI_", "dcgm"),
    ("nvidia_smi_", "nvidia_smi"),
    ("tcowatch_gpu_", "agent"),
    ("vllm:", "inference"),
    ("sglang:", "inference"),
    ("tgi_", "inference"),
)


def detect_kind(names: Iterable[str]) -> TargetKind:
    """The target kind the metric names show (``kind: auto``); ``ValueError`` when none fits."""
    names = list(names)
    for prefix, kind in _KIND_PREFIXES:
        if any(name.startswith(prefix) for name in names):
            return kind
    raise ValueError(
        "cannot tell what this target is: no DCGM_FI_*, nvidia_smi_*, tcowatch_gpu_*, vllm:*, "
        "sglang:* or tgi_* series (set the kind explicitly)"
    )


def _ingest(
    target: Target, body: bytes, now: datetime
) -> tuple[list[GpuSample], list[ModelSample], list[CacheSample], list[str], TargetKind]:
    """Parse ``body`` and map it by ``target.kind`` (detected for ``auto``), returning the
    records, notes and the kind used; raises ``ValueError`` (parse or mapping)."""
    from collectors.exposition.parser import parse_exposition

    expo = parse_exposition(body)
    kind = detect_kind(expo.names()) if target.kind == "auto" else target.kind
    return (*_map(replace(target, kind=kind), expo, now), kind)


def _map(
    target: Target, expo: Exposition, now: datetime
) -> tuple[list[GpuSample], list[ModelSample], list[CacheSample], list[str]]:
    host, default_instance = _host_and_instance(target.url)
    node = target.node or host
    if target.kind == "dcgm":
        from collectors.exposition.dcgm import gpus_from_dcgm

        gpus, notes = gpus_from_dcgm(expo, node=node, now=now)
        return gpus, [], [], notes
    if target.kind == "nvidia_smi":
        from collectors.exposition.nvidia_smi import gpus_from_nvidia_smi

        gpus, notes = gpus_from_nvidia_smi(expo, node=node, now=now)
        return gpus, [], [], notes
    if target.kind == "agent":
        from collectors.exposition.agent import gpus_from_agent

        gpus, notes = gpus_from_agent(expo, node=node, now=now)
        return gpus, [], [], notes
    if target.kind in MODEL_KINDS:
        from collectors.inference import models_from_exposition

        instance = target.labels.get("instance") or default_instance
        models, notes = models_from_exposition(
            expo, node=node, instance=instance, now=now, gpu_uuids=target.gpu_uuids
        )
        return [], models, [], notes
    if target.kind == "cache":
        from collectors.inference import cache_from_exposition

        spec = target.cache
        if spec is None:
            raise ValueError("cache target without a cache spec (name, hits and lookups metrics)")
        cache = cache_from_exposition(
            expo,
            name=spec.name,
            hits_metric=spec.hits_metric,
            lookups_metric=spec.lookups_metric,
            labels=spec.labels,
            now=now,
        )
        return [], [], [cache], []
    raise ValueError(f"unknown target kind {target.kind!r}")


def _finish(
    target: Target, fetch_seconds: float, body: bytes | None, error: str, now: datetime
) -> _Result:
    """Turn a fetched body (or a fetch error) into records and a status; never raises."""
    started = time.perf_counter()
    shown = redact_url(target.url)
    gpus: list[GpuSample] = []
    models: list[ModelSample] = []
    caches: list[CacheSample] = []
    down: list[str] = []
    notes: list[str] = []
    kind: str = target.kind
    if body is not None:
        try:
            gpus, models, caches, raw_notes, kind = _ingest(target, body, now)
        except ValueError as exc:  # ExpositionError is a ValueError
            error = _one_line(str(exc)) or type(exc).__name__
        except Exception as exc:  # a mapping bug must not take the other targets down
            logger.exception("scraping %s (%s) failed unexpectedly", shown, target.kind)
            error = f"internal error: {type(exc).__name__}: {_one_line(str(exc))}"
        else:
            for note in raw_notes:
                if note.startswith(_DOWN_PREFIX):
                    down.append(note[len(_DOWN_PREFIX) :].strip())
                else:
                    notes.append(_one_line(note))
            if kind in GPU_KINDS and not gpus and not down:
                notes.append(f"no {kind} GPU series found")
            elif kind in MODEL_KINDS and not models:
                notes.append("no vLLM, SGLang or TGI series found")
    if error:
        gpus, models, caches, down = [], [], [], []
    status = TargetStatus(
        target=shown,
        kind=kind,
        up=not error,
        duration_seconds=fetch_seconds + (time.perf_counter() - started),
        error=error if error else "; ".join(notes),
    )
    return _Result(gpus, models, caches, status, down)


async def _fetch_target(
    client: httpx.AsyncClient, target: Target, max_body_bytes: int, timeout: float | None
) -> tuple[float, bytes | None, str]:
    """(seconds spent, body or ``None``, error); never raises."""
    started = time.perf_counter()
    try:
        body = await fetch(client, target.url, max_body_bytes=max_body_bytes, timeout=timeout)
    except ValueError as exc:
        return time.perf_counter() - started, None, str(exc)
    except Exception as exc:  # never let one target take the gather (and the cycle) down
        logger.exception("fetching %s failed unexpectedly", redact_url(target.url))
        return time.perf_counter() - started, None, f"{type(exc).__name__}: {_one_line(str(exc))}"
    return time.perf_counter() - started, body, ""


async def scrape_one(
    client: httpx.AsyncClient,
    target: Target,
    now: datetime,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    timeout: timedelta | None = None,
) -> tuple[list[GpuSample], list[ModelSample], list[CacheSample], TargetStatus]:
    """Fetch, parse and map one target (the ``tcowatch scrape URL`` path).

    Never raises for a bad target: the returned status says ``up=False`` with a one-line error
    and the record lists are empty. Notes of an up target (including ``down: <uuid>`` notes of
    agent payloads) are joined with ``"; "`` in ``status.error``.
    """
    seconds = timeout.total_seconds() if timeout is not None else None
    seconds_spent, body, error = await _fetch_target(client, target, max_body_bytes, seconds)
    result = _finish(target, seconds_spent, body, error, now)
    status = result.status
    if result.down:
        downs = "; ".join(_DOWN_PREFIX + uuid for uuid in result.down)
        status = replace(status, error="; ".join(x for x in (status.error, downs) if x))
    return result.gpus, result.models, result.caches, status


class ScrapeCollector:
    """Scrapes static targets plus those of file-based discovery; implements ``Collector``.

    ``collect`` runs its own event loop (``asyncio.run``): call it from a worker thread, never
    from inside a running loop (that raises ``RuntimeError``). It never raises for bad targets
    or bad target files: each shows in ``Snapshot.targets`` (kind ``file_sd`` for a target file
    with problems; its last good targets are still scraped).
    """

    name: ClassVar[str] = "scrape"

    def __init__(
        self,
        *,
        targets: Sequence[Target] = (),
        target_files: Sequence[Path] = (),
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 16,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Raises ``ValueError`` for a non-positive timeout, concurrency or body limit."""
        if timeout <= timedelta(0) or concurrency < 1 or max_body_bytes < 1:
            raise ValueError("timeout, concurrency and max_body_bytes must be positive")
        self._targets = tuple(targets)
        self._files: TargetFiles | None = None
        if target_files:
            from collectors.targets import TargetFiles

            self._files = TargetFiles(target_files)
        self._timeout = timeout.total_seconds()
        self._concurrency = concurrency
        self._max_body_bytes = max_body_bytes
        self._transport = transport

    def current_targets(self) -> tuple[list[Target], list[str]]:
        """Static targets then discovered ones (first of each URL kept), and file problems."""
        found = list(self._targets)
        problems: list[str] = []
        if self._files is not None:
            discovered, problems = self._files.current()
            found.extend(discovered)
        seen: set[str] = set()
        unique: list[Target] = []
        for target in found:
            if target.url not in seen:
                seen.add(target.url)
                unique.append(target)
        return unique, problems

    def collect(self, now: datetime) -> Snapshot:
        """Scrape every target once; see the class docstring for the error contract."""
        targets, problems = self.current_targets()
        results = asyncio.run(self._collect(targets, now)) if targets else []
        return self._merge(results, problems, now)

    async def _collect(self, targets: list[Target], now: datetime) -> list[_Result]:
        semaphore = asyncio.Semaphore(self._concurrency)
        limits = httpx.Limits(
            max_connections=self._concurrency, max_keepalive_connections=self._concurrency
        )
        client_timeout = httpx.Timeout(self._timeout)

        async def bounded(
            client: httpx.AsyncClient, target: Target
        ) -> tuple[float, bytes | None, str]:
            async with semaphore:
                return await _fetch_target(client, target, self._max_body_bytes, self._timeout)

        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=client_timeout,
            limits=limits,
            follow_redirects=True,
        ) as client:
            fetched = await asyncio.gather(*(bounded(client, t) for t in targets))
        # Parse after all fetches: CPU-bound work never delays another target's network I/O.
        return [
            _finish(target, seconds, body, error, now)
            for target, (seconds, body, error) in zip(targets, fetched, strict=True)
        ]

    def _merge(self, results: list[_Result], problems: list[str], now: datetime) -> Snapshot:
        gpus: list[GpuSample] = []
        models: list[ModelSample] = []
        caches: list[CacheSample] = []
        down: list[str] = []
        statuses: list[TargetStatus] = []
        gpu_owner: dict[str, int] = {}
        model_owner: dict[tuple[str, str, str], int] = {}
        for n, result in enumerate(results):
            status = result.status
            dup_gpus: dict[int, list[str]] = {}
            for gpu in result.gpus:
                first = gpu_owner.setdefault(gpu.uuid, n)
                if first == n:
                    gpus.append(gpu)
                else:
                    dup_gpus.setdefault(first, []).append(gpu.uuid)
            extra = [
                f"duplicate GPU {uuids[0]} ignored (first from {statuses[first].target})"
                if len(uuids) == 1
                else f"{len(uuids)} duplicate GPUs ignored (first from {statuses[first].target})"
                for first, uuids in dup_gpus.items()
            ]
            for model in result.models:
                key = (model.node, model.instance, model.model)
                first = model_owner.setdefault(key, n)
                if first == n:
                    models.append(model)
                else:
                    extra.append(
                        f"duplicate model {model.model} at {model.instance} ignored"
                        f" (first from {statuses[first].target})"
                    )
            caches.extend(result.caches)
            down.extend(result.down)
            if extra:
                status = replace(status, error="; ".join(x for x in (status.error, *extra) if x))
            statuses.append(status)
        by_file: dict[str, list[str]] = {}
        for problem in problems:
            by_file.setdefault(problem.split(": ", 1)[0], []).append(problem)
        statuses.extend(
            TargetStatus(
                target=source, kind="file_sd", up=False, duration_seconds=0.0,
                error="; ".join(found),
            )
            for source, found in by_file.items()
        )  # fmt: skip
        down = [u for u in dict.fromkeys(down) if u not in gpu_owner]
        return Snapshot(
            collector=self.name,
            timestamp=now,
            gpus=tuple(gpus),
            models=tuple(models),
            down_gpus=tuple(down),
            caches=tuple(caches),
            targets=tuple(statuses),
        )

    def close(self) -> None:
        """Nothing is held between cycles (each ``collect`` opens and closes its client)."""
