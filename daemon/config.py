"""Configuration: one YAML file plus ``TCOWATCH_*`` environment overrides, validated at start.

Error contract: ``load_config`` returns a valid ``Config`` or raises ``ConfigError`` whose
``problems`` list every problem found, each prefixed with its key path
(``collectors.nvml.interval: expected a duration like "15s", got "fast"``). It never raises
anything else for bad input. The CLI prints the problems and exits with code 2.

Environment overrides: ``TCOWATCH_<SECTION>__<KEY>=value`` sets ``section.key`` (double
underscore between levels, case-insensitive); the value is read as YAML, so numbers, booleans
and JSON lists work (``TCOWATCH_WEB__PORT=9090``, ``TCOWATCH_COLLECTORS__NVML__ENABLED=false``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from daemon.config_base import Duration, Money, Section
from daemon.notify.channels.config import ChannelConfig, channel_config_keys
from daemon.notify.routing_config import (
    InhibitRuleConfig,
    RootRouteConfig,
    TimeIntervalConfig,
    validate_route,
    validate_time_intervals,
)
from rules.base import RuleConfigError, load_rule_class
from rules.templating import template_error

ENV_PREFIX = "TCOWATCH_"
DEFAULT_CONFIG_FILE = "tcowatch.yaml"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


_Section = Section


class StoreConfig(_Section):
    """Where the data lives."""

    url: str | None = None
    """SQLAlchemy URL or SQLite file path; default ``tcowatch.db`` beside the config file."""
    busy_timeout: Duration = timedelta(seconds=5)
    """SQLite only: how long a writer waits for a lock before failing."""


class WebConfig(_Section):
    """The board, JSON API and ``/metrics``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    external_url: str = ""
    """Base URL people reach the board at, used in alert links; default ``http://host:port``."""
    anonymous_read: bool = False
    """Let anyone read the board and JSON API without logging in; writes still need a role."""
    session_secret: SecretStr | None = None
    """Key of the encrypted, signed session cookies (and CSRF tokens), 32+ characters; give every
    replica the same. Unset: a random key per process, so sessions end at a restart."""
    session_timeout: Duration = timedelta(hours=12)
    """A login session ends after this long without a request."""
    secure_cookies: bool = False
    """Always mark cookies ``Secure``; requests that arrive over https get it regardless."""
    login_attempts: int = Field(default=5, ge=1)
    """Failed logins allowed per username and address within ``login_lockout``."""
    login_lockout: Duration = timedelta(minutes=15)
    """Window of ``login_attempts``; further tries are refused until it has passed."""

    @field_validator("session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("session_timeout", "login_lockout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("expected at least 1m")
        return value


class AgentConfig(_Section):
    """``tcowatch agent``: the node agent's own ``/metrics`` endpoint."""

    host: str = "0.0.0.0"
    port: int = Field(default=9402, ge=1, le=65535)


class NvmlConfig(_Section):
    """Local GPUs through NVML."""

    enabled: bool = True
    interval: Duration = timedelta(seconds=15)
    retry_backoff: Duration = timedelta(seconds=60)
    node: str | None = None
    """Node name to report; default: the host name."""


class SimulatedConfig(_Section):
    """A deterministic simulated fleet (demo, benchmarks, trying rules)."""

    enabled: bool = False
    interval: Duration = timedelta(seconds=15)
    nodes: int = Field(default=4, ge=1, le=1024)
    gpus_per_node: int = Field(default=4, ge=1, le=16)
    seed: int = 42
    idle_gpus: int | None = Field(default=None, ge=0)
    """How many GPUs sit idle while holding memory; default about one in eight."""


TargetKind = Literal["dcgm", "nvidia_smi", "agent", "vllm", "sglang", "tgi", "inference"]


class ScrapeTargetConfig(_Section):
    """One remote ``/metrics`` endpoint to scrape."""

    url: str = Field(pattern=r"^https?://[^\s/]+")
    kind: TargetKind
    node: str | None = None
    """Node name for the records; default: the Hostname label (dcgm) or the URL's host."""
    labels: dict[str, str] = Field(default_factory=dict)
    gpu_uuids: list[str] = Field(default_factory=list)
    """Inference targets: the GPUs the engine runs on (for idle and cost attribution)."""


class ResponseCacheConfig(_Section):
    """A response cache in front of the models (gateway, LiteLLM, nginx, Redis exporter)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://[^\s/]+")
    hits_metric: str
    lookups_metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    """Only samples carrying these labels are summed."""


class ScrapeConfig(_Section):
    """Remote nodes and inference engines over their Prometheus ``/metrics``."""

    enabled: bool = False
    interval: Duration = timedelta(seconds=15)
    timeout: Duration = timedelta(seconds=10)
    concurrency: int = Field(default=16, ge=1, le=1024)
    max_body_bytes: int = Field(default=20 * 2**20, ge=1024)
    targets: list[ScrapeTargetConfig] = Field(default_factory=list)
    target_files: list[str] = Field(default_factory=list)
    """file_sd-style YAML/JSON files, re-read when they change."""
    caches: list[ResponseCacheConfig] = Field(default_factory=list)


class CollectorsConfig(_Section):
    """GPU and inference sources."""

    nvml: NvmlConfig = NvmlConfig()
    simulated: SimulatedConfig = SimulatedConfig()
    scrape: ScrapeConfig = ScrapeConfig()


class RetentionConfig(_Section):
    """How long rollups are kept; enforced by a job in bounded batches."""

    minutes: Duration = timedelta(days=14)
    hours: Duration = timedelta(days=400)
    batch_size: int = Field(default=5000, ge=1)
    interval: Duration = timedelta(minutes=10)


class IdleConfig(_Section):
    """The one definition of an idle GPU (see README, "Idle")."""

    utilization_below: float = Field(default=0.05, gt=0, le=1)
    power_below_ratio: float = Field(default=0.3, gt=0, le=1)


class RuleConfig(_Section):
    """One alerting rule: a built-in ``kind`` with ``params``, Prometheus-style timing."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _params_fit_kind(self) -> RuleConfig:
        try:
            rule_class = load_rule_class(self.kind)
        except KeyError as exc:
            raise ValueError(f"kind: {exc.args[0]}") from None
        try:
            rule_class(self.params)
        except RuleConfigError as exc:
            raise ValueError(f"params.{exc.path}: {exc.message}") from None
        for section, templates in (("labels", self.labels), ("annotations", self.annotations)):
            for key, template in templates.items():
                problem = template_error(template)
                if problem is not None:
                    raise ValueError(f"{section}.{key}: {problem}")
        return self


def default_rules() -> list[RuleConfig]:
    """The rules used when the config names none: waste, cost and process alerts that need no
    tuning to be useful (README "Default rules")."""
    return [
        RuleConfig.model_validate(rule)
        for rule in (
            {
                "name": "GpuIdle",
                "kind": "gpu_idle",
                "for": "10m",
                "params": {
                    "window": "10m",
                    "utilization_below": 0.05,
                    "power_below_ratio": 0.3,
                    "min_memory_used_bytes": 1073741824,
                    "min_minutes": 3,
                },
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "GPU {{ labels.gpu }} on {{ labels.node }} idle while holding "
                    "memory ({{ value | percent }} busy)",
                },
            },
            {
                "name": "FleetUtilizationLow",
                "kind": "fleet_utilization",
                "for": "30m",
                "params": {"window": "1h", "below": 0.3},
                "labels": {"severity": "info"},
                "annotations": {
                    "summary": "Fleet utilization {{ value | percent }} over the last hour "
                    "(below 30%; a well-used fleet runs near 70%)",
                },
            },
            {
                "name": "CacheHitRateLow",
                "kind": "cache_hit_rate",
                "for": "15m",
                "params": {"window": "15m", "below": 0.3, "min_queries": 1000},
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Prefix-cache hit rate of {{ labels.model }} is "
                    "{{ value | percent }} (below 30%)",
                },
            },
            {
                "name": "CloudCostAnomaly",
                "kind": "cost_anomaly",
                "params": {"seasonality": "weekday", "lookback_days": 28},
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "{{ labels.provider }} {{ labels.service }} cost "
                    "{{ value | money }} above its usual day",
                },
            },
            {
                "name": "BudgetForecastOver",
                "kind": "budget_forecast",
                "params": {"above_ratio": 1.0},
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Budget {{ labels.budget }} is forecast at {{ value | percent }} "
                    "of its amount by month end",
                },
            },
            {
                "name": "RollbackSlaBreached",
                "kind": "rollback_sla",
                "params": {"default_target": "4h"},
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "Rollback of {{ labels.service }} to {{ labels.to_version }} "
                    "open for {{ value | duration }}",
                },
            },
            {
                "name": "DebtOverdue",
                "kind": "debt_overdue",
                "annotations": {
                    "summary": "Tech debt #{{ labels.debt_id }} ({{ labels.title }}) is "
                    "{{ value | round(0) | int }} days past due",
                },
            },
            {
                "name": "RequestVolatilityHigh",
                "kind": "request_volatility",
                "labels": {"severity": "info"},
                "annotations": {
                    "summary": "Daily requests of {{ labels.model }} vary by "
                    "{{ value | percent }} (above 30% favours elastic cloud capacity)",
                },
            },
        )
    ]


class GpuCostModelConfig(_Section):
    """What one GPU of a model costs, per GPU, with the unit in every field name."""

    gpu_model: str
    """The GPU name as NVML/dcgm report it (``NVIDIA H100 80GB HBM3``)."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    purchase_price: Money
    depreciation_years: Decimal = Field(gt=0)
    power_price_per_kwh: Money
    pue: Decimal = Field(default=Decimal("1.3"), ge=1)
    ops_cost_per_year: Money = Decimal("0")
    dr_cost_per_year: Money = Decimal("0")
    upgrade_cost_per_event: Money = Decimal("0")
    upgrades_per_5y: Money = Decimal("0")


class TokenPriceConfig(_Section):
    """A cloud LLM API price per million tokens, from a date (overrides the shipped book)."""

    provider: str
    model: str
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    effective_from: datetime
    input_cache_hit: Money
    input_cache_miss: Money
    output: Money


class BudgetConfig(_Section):
    """A monthly budget over cloud spend (optionally one provider or service)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    amount: Money
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    provider: str | None = None
    service: str | None = None


class TcoConfig(_Section):
    """Five-year TCO inputs (defaults: the source analysis's numbers, in CNY)."""

    years: int = Field(default=5, ge=1, le=30)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    hardware_depreciation_per_year: Money = Decimal("80000")
    ops_staff_per_year: Money = Decimal("240000")
    dr_per_year: Money = Decimal("120000")
    upgrade_cost_per_event: Money = Decimal("50000")
    upgrades: int = Field(default=3, ge=0)
    cloud_ops_per_year: Money = Decimal("60000")
    cloud_dr_per_year: Money = Decimal("30000")
    cloud_usage_per_year: Money = Decimal("48000")


class ReadinessConfig(_Section):
    """The team readiness checklist for self-hosting (declared)."""

    k8s_certified_engineers: bool = False
    monitoring_24x7: bool = False
    dr_drills_passed: bool = False


class WorkloadConfig(_Section):
    """A workload for the placement advisor."""

    name: str
    model: str
    """The served model name whose measured traffic and cost are used."""
    latency_need: Literal["interactive", "batch"] = "interactive"
    data_sensitivity: Literal["public", "internal", "regulated"] = "internal"
    cloud_provider: str = "deepseek"
    cloud_model: str = "deepseek-chat"


class CostsConfig(_Section):
    """The cost model: local GPU costs, cloud API prices, budgets, TCO, placement."""

    display_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)
    """Units of the display currency per unit of each other currency (no live FX)."""
    gpu_models: list[GpuCostModelConfig] = Field(default_factory=list)
    prices: list[TokenPriceConfig] = Field(default_factory=list)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    tco: TcoConfig = TcoConfig()
    readiness: ReadinessConfig = ReadinessConfig()
    workloads: list[WorkloadConfig] = Field(default_factory=list)
    interval: Duration = timedelta(minutes=1)
    """How often cost figures (/metrics, board) are recomputed."""


class BillingSourceConfig(_Section):
    """A cloud billing API. Credentials are secrets: never printed, logged or exported."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["aws_ce", "azure", "gcp", "aliyun"]
    # aws_ce
    region: str = "us-east-1"
    profile: str | None = None
    metric: str = "UnblendedCost"
    group_by: str = "SERVICE"
    # azure
    scope: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # gcp
    table: str | None = None
    project: str | None = None
    # aliyun
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    endpoint: str = "business.ap-southeast-1.aliyuncs.com"

    @model_validator(mode="after")
    def _required_for_type(self) -> BillingSourceConfig:
        required = {
            "aws_ce": (),
            "azure": ("scope", "tenant_id", "client_id", "client_secret"),
            "gcp": ("table",),
            "aliyun": ("access_key_id", "access_key_secret"),
        }[self.type]
        missing = [key for key in required if getattr(self, key) in (None, "")]
        if missing:
            raise ValueError(f"{missing[0]}: required for type {self.type}")
        return self


class BillingConfig(_Section):
    """Cloud bills: API collectors and watched FOCUS folders."""

    interval: Duration = timedelta(hours=6)
    restate_days: int = Field(default=7, ge=1, le=90)
    """Each run re-reads this many days: providers restate recent bills."""
    sources: list[BillingSourceConfig] = Field(default_factory=list)
    focus_watch_dirs: list[str] = Field(default_factory=list)
    """Folders where AWS Data Exports, Azure or GCP drop FOCUS files; imported as they land."""
    focus_watch_interval: Duration = timedelta(minutes=5)


class NotifyConfig(_Section):
    """Routing, grouping, silencing and the notification outbox."""

    flush_interval: Duration = timedelta(seconds=10)
    max_attempts: int = Field(default=12, ge=1)
    receiver: str = "tcowatch"
    """Receiver name put in webhook payloads."""
    dispatch_interval: Duration = timedelta(seconds=5)
    """How often alert groups are checked for a due notification (the lateness bound)."""
    route: RootRouteConfig = RootRouteConfig()
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    time_intervals: list[TimeIntervalConfig] = Field(default_factory=list)


def _at_least_a_minute(value: timedelta) -> timedelta:
    if value < timedelta(minutes=1):
        raise ValueError("expected at least 1m")
    return value


SlaTarget = Annotated[Duration, AfterValidator(_at_least_a_minute)]
"""A time-to-restore target: a duration of one minute or more."""


class RollbacksConfig(_Section):
    """Time-to-restore targets of recorded rollbacks (the board's SLA clocks).

    A rollback stores its target when it is recorded: the one given, else ``services[name]``,
    else ``default_target``. The ``rollback_sla`` rule reads that stored target.
    """

    default_target: SlaTarget = timedelta(hours=4)
    services: dict[str, SlaTarget] = Field(default_factory=dict)
    """Per-service targets, e.g. ``{checkout: 1h}``."""

    def target_for(self, service: str) -> timedelta:
        """The target a new rollback of ``service`` gets when none is given."""
        return self.services.get(service, self.default_target)


class Config(_Section):
    """The whole configuration. Every key is listed in the README's reference."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    store: StoreConfig = StoreConfig()
    web: WebConfig = WebConfig()
    agent: AgentConfig = AgentConfig()
    collectors: CollectorsConfig = CollectorsConfig()
    idle: IdleConfig = IdleConfig()
    retention: RetentionConfig = RetentionConfig()
    evaluation_interval: Duration = timedelta(seconds=30)
    rules: list[RuleConfig] = Field(default_factory=default_rules)
    rule_files: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Rule files (globs, relative to the config file's folder), Prometheus layout
    ``groups: [{name, interval, rules}]``; see ``daemon.rule_files``."""
    notify: NotifyConfig = NotifyConfig()
    channels: list[ChannelConfig] = Field(default_factory=list)
    costs: CostsConfig = CostsConfig()
    billing: BillingConfig = BillingConfig()
    rollbacks: RollbacksConfig = RollbacksConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for what, names in (
            ("rules", [r.name for r in self.rules]),
            ("channels", [c.name for c in self.channels]),
            ("billing.sources", [b.name for b in self.billing.sources]),
            ("costs.budgets", [b.name for b in self.costs.budgets]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{what}: name {name!r} is used twice")
                seen.add(name)
        problems = validate_time_intervals(self.notify.time_intervals) + validate_route(
            self.notify.route,
            [c.name for c in self.channels],
            [t.name for t in self.notify.time_intervals],
        )
        if problems:
            raise ValueError(problems[0])
        return self


def _format_error(loc: tuple[int | str, ...], message: str, raw: Mapping[str, Any]) -> str:
    path = ".".join("for" if part == "for_" else str(part) for part in loc)
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if message == "Extra inputs are not permitted":
        message = "unknown key"
    if message.startswith(
        (
            "kind:",
            "params.",
            "labels.",
            "annotations.",
            "scope:",
            "tenant_id:",
            "client_id:",
            "client_secret:",
            "table:",
            "access_key_id:",
            "access_key_secret:",
        )
    ) or (": " in message and not path):
        sub, _, rest = message.partition(": ")
        path = f"{path}.{sub}" if path else sub
        message = rest
    return f"{path}: {message}" if path else message


def _set_path(target: dict[str, Any], keys: list[str], value: Any) -> None:
    node = target
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``TCOWATCH_A__B=v`` variables into a nested mapping ``{"a": {"b": v}}``."""
    result: dict[str, Any] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name.startswith(f"{ENV_PREFIX}TEST_"):
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not keys or keys[0] not in Config.model_fields:
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        _set_path(result, keys, value)
    return result


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; ``ConfigError`` names the file, line and column of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of keys"])
    return data


def validate(data: Mapping[str, Any], source: str) -> Config:
    """Validate a raw mapping; ``ConfigError`` lists every problem by key path."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [_format_error(err["loc"], err["msg"], data) for err in exc.errors()]
        raise ConfigError(source, problems) from None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> tuple[Config, Path]:
    """Load ``path`` (or ``tcowatch.yaml`` if it exists) plus environment overrides.

    Returns the config and the file it came from (or would have: the database default sits
    beside it). An explicitly named file that does not exist is an error. The ``rule_files``
    are read and validated too (relative globs from the config file's folder).
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None
    config_path = path if path is not None else Path(DEFAULT_CONFIG_FILE)
    data: dict[str, Any] = {}
    if config_path.exists():
        data = read_yaml(config_path)
    elif explicit:
        raise ConfigError(str(config_path), ["file not found"])
    data = _merge(data, env_overrides(environ))
    source = str(config_path) if config_path.exists() else "defaults"
    config = validate(data, source)
    if config.rule_files:
        _check_rule_files(config, config_path.parent, source)
    return config, config_path


def _check_rule_files(config: Config, base_dir: Path, source: str) -> None:
    """Load the rule files once so a bad one fails the config; ``ConfigError`` problems read
    ``rule_files: <file>: line N: <key path>: <message>``."""
    from daemon.rule_files import rule_groups  # imports this module

    try:
        rule_groups(config, base_dir=base_dir)
    except ConfigError as exc:
        raise ConfigError(source, [f"rule_files: {problem}" for problem in exc.problems]) from None


def effective_config_yaml(config: Config) -> str:
    """The effective configuration as YAML with every secret masked."""
    dumped = config.model_dump(mode="json", by_alias=True)
    return yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True)


def config_keys(
    model: type[BaseModel] = Config, prefix: str = "", _path: tuple[type, ...] = ()
) -> list[str]:
    """Every key path of the configuration (lists contribute their item keys), for the docs.

    A model that contains itself (a route's ``routes``) is listed once, not recursed into;
    the channel types' keys come from ``channel_config_keys``.
    """
    keys: list[str] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        keys.append(key)
        if model is Config and name == "channels":
            keys.extend(channel_config_keys(f"{key}[]."))
            continue
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        inner = args[0] if args else annotation
        nested = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
        if nested is None or any(issubclass(nested, seen) for seen in (*_path, model)):
            continue
        keys.extend(config_keys(nested, f"{key}[]." if args else f"{key}.", (*_path, model)))
    return keys
