"""File-based target discovery, shaped like Prometheus' ``file_sd``.

A file (YAML, or JSON) holds a list of target groups::

    - targets: ["gpu-node-01:9400", "gpu-node-02:9400"]
      labels:
        kind: dcgm                  # required: dcgm, nvidia_smi, agent, vllm, sglang, tgi, ...
        node: gpu-node-01           # optional fallback node name
        __scheme__: https           # default http
        __metrics_path__: /metrics  # default /metrics
        __param_format: text        # query parameter format=text
        gpu_uuids: GPU-a,GPU-b      # inference targets: GPUs the engine runs on (or a list)
        instance: vllm-a            # any other label is kept on the target
      cache:                        # only for kind: cache
        name: gateway
        hits_metric: litellm_cache_hits_total
        lookups_metric: litellm_requests_total
        labels: {route: chat}

``targets`` entries are ``host:port`` (or full ``http(s)://`` URLs). A file is re-read only when
its modification time, size or inode changed. A file that cannot be read or is invalid keeps its
last good targets; its problems are reported as one line each
(``targets.yaml: [2].labels.kind: expected one of dcgm, ...``). A file is all-or-nothing: one bad
group rejects the whole new version, like Prometheus does.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import yaml

from collectors.scrape import TARGET_KINDS, CacheSpec, Target, TargetKind

logger = logging.getLogger(__name__)

_KNOWN_DUNDER = ("__scheme__", "__metrics_path__")
_PARAM_PREFIX = "__param_"


@dataclass(slots=True)
class _FileState:
    key: tuple[int, int, int] | None = None
    targets: list[Target] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Invalid(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


class TargetFiles:
    """Targets from a set of ``file_sd`` files, re-read when they change.

    Error contract: ``current()`` never raises; unreadable or invalid files show up in the
    returned problem list and keep their last good targets.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = [Path(p) for p in paths]
        self._state = {path: _FileState() for path in self._paths}

    def current(self) -> tuple[list[Target], list[str]]:
        """All targets, file by file in the given order, and one line per problem."""
        targets: list[Target] = []
        problems: list[str] = []
        for path in self._paths:
            state = self._state[path]
            self._refresh(path, state)
            targets.extend(state.targets)
            problems.extend(state.problems)
        return targets, problems

    def _refresh(self, path: Path, state: _FileState) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            if state.key is not None or not state.problems:
                logger.warning("target file %s: cannot read: %s", path, exc)
            state.key = None
            state.problems = [f"{path}: cannot read: {exc.strerror or exc}"]
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == state.key:
            return
        state.key = key
        try:
            text = path.read_text(encoding="utf-8")
            state.targets = parse_target_groups(_load(path, text))
        except _Invalid as exc:
            state.problems = [f"{path}: {exc}"]
        except (OSError, UnicodeDecodeError) as exc:
            state.key = None  # retry next time: permissions or a half-written file may change
            state.problems = [f"{path}: cannot read: {exc}"]
        else:
            state.problems = []
            logger.info("target file %s: %d targets", path, len(state.targets))
            return
        logger.warning("%s (keeping its last %d targets)", state.problems[0], len(state.targets))


def _load(path: Path, text: str) -> Any:
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise _Invalid("", f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise _Invalid("", f"invalid YAML{where}: {problem}") from None


def parse_target_groups(data: Any) -> list[Target]:
    """Targets of a decoded ``file_sd`` document (``None`` = empty file).

    Raises ``ValueError`` (a subclass) naming the first bad place, e.g.
    ``[2].labels.kind: expected one of dcgm, ...``.
    """
    if data is None:
        return []
    if not isinstance(data, list):
        raise _Invalid("", f"expected a list of target groups, got {_type(data)}")
    targets: list[Target] = []
    for i, group in enumerate(data):
        targets.extend(_group(f"[{i}]", group))
    return targets


def _group(where: str, group: Any) -> list[Target]:
    if not isinstance(group, dict):
        raise _Invalid(where, f"expected a mapping with targets and labels, got {_type(group)}")
    unknown = sorted(str(k) for k in group if k not in ("targets", "labels", "cache"))
    if unknown:
        raise _Invalid(f"{where}.{unknown[0]}", "unknown key (known: targets, labels, cache)")
    raw_targets = group.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise _Invalid(f"{where}.targets", "expected a non-empty list of host:port")
    labels = _labels(f"{where}.labels", group.get("labels"))
    kind = labels.pop("kind", None)
    if kind not in TARGET_KINDS:
        raise _Invalid(f"{where}.labels.kind", f"expected one of {', '.join(TARGET_KINDS)}")
    scheme = labels.pop("__scheme__", "http")
    if scheme not in ("http", "https"):
        raise _Invalid(f"{where}.labels.__scheme__", "expected http or https")
    path = labels.pop("__metrics_path__", "/metrics")
    if not path.startswith("/"):
        raise _Invalid(f"{where}.labels.__metrics_path__", "expected a path starting with /")
    params = {
        k[len(_PARAM_PREFIX) :]: labels.pop(k) for k in list(labels) if k.startswith(_PARAM_PREFIX)
    }
    for name in labels:
        if name.startswith("__"):
            known = ", ".join((*_KNOWN_DUNDER, f"{_PARAM_PREFIX}<name>"))
            raise _Invalid(f"{where}.labels.{name}", f"unknown label (known: {known})")
    node = labels.pop("node", None) or None
    uuids = labels.pop("gpu_uuids", "")
    gpu_uuids = tuple(u.strip() for u in uuids.split(",") if u.strip())
    cache = _cache(f"{where}.cache", group.get("cache"), kind)
    out: list[Target] = []
    for j, address in enumerate(raw_targets):
        url = _url(f"{where}.targets[{j}]", address, scheme, path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        out.append(
            Target(
                url=url,
                kind=cast(TargetKind, kind),
                node=node,
                labels=dict(labels),
                gpu_uuids=gpu_uuids,
                cache=cache,
            )
        )
    return out


def _labels(where: str, raw: Any) -> dict[str, str]:
    if raw is None:
        raise _Invalid(where, "missing (at least labels.kind is required)")
    if not isinstance(raw, dict):
        raise _Invalid(where, f"expected a mapping, got {_type(raw)}")
    labels: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise _Invalid(where, f"label names must be strings, got {name!r}")
        if name == "gpu_uuids" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise _Invalid(f"{where}.gpu_uuids", "expected a list of strings")
            labels[name] = ",".join(value)
        elif isinstance(value, str):
            labels[name] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            labels[name] = str(value)
        else:
            raise _Invalid(f"{where}.{name}", f"expected a string, got {_type(value)}")
    return labels


def _cache(where: str, raw: Any, kind: str) -> CacheSpec | None:
    if kind != "cache":
        if raw is not None:
            raise _Invalid(where, "only allowed with labels.kind: cache")
        return None
    if not isinstance(raw, dict):
        raise _Invalid(where, "kind cache needs cache: {name, hits_metric, lookups_metric}")
    values: dict[str, str] = {}
    for key in ("name", "hits_metric", "lookups_metric"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise _Invalid(f"{where}.{key}", "expected a non-empty string")
        values[key] = value
    unknown = sorted(str(k) for k in raw if k not in (*values, "labels"))
    if unknown:
        raise _Invalid(f"{where}.{unknown[0]}", "unknown key")
    labels = _labels(f"{where}.labels", raw.get("labels") or {})
    return CacheSpec(labels=labels, **values)


def _url(where: str, raw: Any, scheme: str, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid(where, f"expected host:port, got {raw!r}")
    address = raw.strip()
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Invalid(where, f"expected an http(s) URL, got {address!r}")
        return address
    try:
        parts = urlsplit(f"//{address}")
        port = parts.port
    except ValueError:
        port = 0
    if (
        port == 0
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise _Invalid(where, f"expected host:port, got {address!r}")
    return f"{scheme}://{address}{path}"


def to_file_sd(targets: Sequence[Target]) -> list[dict[str, Any]]:
    """The ``file_sd`` document (one group per target) that ``parse_target_groups`` reads back."""
    groups: list[dict[str, Any]] = []
    for target in targets:
        parts = urlsplit(target.url)
        labels: dict[str, Any] = {"kind": target.kind, **target.labels}
        if target.node:
            labels["node"] = target.node
        if target.gpu_uuids:
            labels["gpu_uuids"] = list(target.gpu_uuids)
        group: dict[str, Any] = {"targets": [target.url if parts.query else parts.netloc]}
        if not parts.query:
            labels["__scheme__"] = parts.scheme
            labels["__metrics_path__"] = parts.path or "/"
        group["labels"] = labels
        if target.cache is not None:
            group["cache"] = {
                "name": target.cache.name,
                "hits_metric": target.cache.hits_metric,
                "lookups_metric": target.cache.lookups_metric,
                "labels": dict(target.cache.labels),
            }
        groups.append(group)
    return groups


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
