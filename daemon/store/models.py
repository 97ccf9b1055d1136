"""SQLModel tables of the store.

Schema changes go through Alembic migrations in ``daemon/store/migrations`` only; nothing here
calls ``create_all``. Money columns are ``Numeric`` and read back as ``Decimal``. Timestamps are
aware UTC datetimes (SQLModel's ``UTCDateTime`` column type rejects naive ones and reads
back aware UTC on SQLite and PostgreSQL alike); use ``as_utc`` to normalise an input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

MONEY = Numeric(20, 8, asdecimal=True)
"""Column type of every money amount: exact decimal, 12 integer and 8 fractional digits."""


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Node(SQLModel, table=True):
    """A machine that hosts GPUs (or the simulator's stand-in for one)."""

    __tablename__ = "node"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255, unique=True, index=True)
    first_seen: datetime
    last_seen: datetime


class Gpu(SQLModel, table=True):
    """A GPU, keyed by its UUID (NVML indexes change with PCI order; UUIDs do not)."""

    __tablename__ = "gpu"

    uuid: str = Field(primary_key=True, max_length=96)
    node_id: int = Field(foreign_key="node.id", index=True)
    index: int
    name: str = Field(max_length=255)
    memory_total_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    first_seen: datetime
    last_seen: datetime


class GpuRollup(SQLModel, table=True):
    """Per-GPU aggregate over one bucket (``resolution_seconds`` 60 = per minute)."""

    __tablename__ = "gpu_rollup"
    __table_args__ = (
        UniqueConstraint("gpu_uuid", "resolution_seconds", "bucket_start", name="uq_gpu_rollup"),
        Index("ix_gpu_rollup_bucket", "resolution_seconds", "bucket_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    gpu_uuid: str = Field(foreign_key="gpu.uuid", max_length=96)
    resolution_seconds: int = 60
    bucket_start: datetime
    samples: int
    avg_utilization_ratio: float | None = None
    max_utilization_ratio: float | None = None
    avg_memory_used_bytes: float | None = None
    avg_power_watts: float | None = None
    energy_joules: float | None = None
    idle_seconds: float = 0.0


class InferenceRollup(SQLModel, table=True):
    """Per model instance aggregate over one bucket: counter deltas, resets handled."""

    __tablename__ = "inference_rollup"
    __table_args__ = (
        UniqueConstraint(
            "node",
            "model",
            "instance",
            "resolution_seconds",
            "bucket_start",
            name="uq_inference_rollup",
        ),
        Index("ix_inference_rollup_bucket", "resolution_seconds", "bucket_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    node: str = Field(max_length=255)
    model: str = Field(max_length=255)
    instance: str = Field(max_length=255)
    resolution_seconds: int = 60
    bucket_start: datetime
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    cache_queries: float = 0.0
    cache_hits: float = 0.0
    requests: float = 0.0
    gpu_uuids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    engine: str = Field(default="", max_length=32)
    cache_hit_ratio: float | None = None
    """Last hit-rate gauge of engines without counters (SGLang, vLLM V0): their own figure."""


class CacheRollup(SQLModel, table=True):
    """A response cache in front of the models over one bucket: counter increases."""

    __tablename__ = "cache_rollup"
    __table_args__ = (
        UniqueConstraint("name", "resolution_seconds", "bucket_start", name="uq_cache_rollup"),
        Index("ix_cache_rollup_bucket", "resolution_seconds", "bucket_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    resolution_seconds: int = 60
    bucket_start: datetime
    hits: float = 0.0
    lookups: float = 0.0


class Alert(SQLModel, table=True):
    """State of one alert instance (one label set), persisted so a restart keeps ``for``."""

    __tablename__ = "alert"

    fingerprint: str = Field(primary_key=True, max_length=16)
    alertname: str = Field(max_length=255, index=True)
    rule_key: str = Field(default="", max_length=64, index=True)
    """Which configured rule owns the alert (``daemon.jobs.rule_key``): two rules may share
    an alertname with different labels, and each must see only its own alerts."""
    labels: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    annotations: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(max_length=16, index=True)
    value: float | None = None
    active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None
    last_sent_at: datetime | None = None
    last_evaluated_at: datetime | None = None


class Outbox(SQLModel, table=True):
    """One notification to send; the row exists before any attempt is made."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=255, index=True)
    group_key: str = Field(sa_column=Column(Text, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    """``pending`` (to send), ``sent``, or ``failed`` (permanent error or out of attempts)."""
    attempts: int = 0
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    idempotency_key: str = Field(default="", max_length=64)
    """Sent as the ``Idempotency-Key`` header, so receivers can drop a rare duplicate."""
    kind: str = Field(default="notification", max_length=16)
    """``notification``, ``digest`` (folds several rows) or ``test``."""
    folded_into: int | None = None
    """For rows of status ``folded``: the id of the digest row that carried them."""


class ChannelState(SQLModel, table=True):
    """Delivery health of one notification channel, shown on the board."""

    __tablename__ = "channel_state"

    name: str = Field(primary_key=True, max_length=255)
    disabled: bool = False
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)


class Silence(SQLModel, table=True):
    """A silence: alerts matching every matcher are not notified between start and end."""

    __tablename__ = "silence"

    id: str = Field(primary_key=True, max_length=36)
    matchers: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    """``[{"name", "value", "isRegex", "isEqual"}]`` as Alertmanager's API has them."""
    starts_at: datetime
    ends_at: datetime = Field(index=True)
    created_by: str = Field(max_length=255)
    comment: str = Field(default="", max_length=2000)
    created_at: datetime
    updated_at: datetime


class NotifyGroup(SQLModel, table=True):
    """An aggregation group (route + group labels) and when it is next flushed."""

    __tablename__ = "notify_group"

    key_hash: str = Field(primary_key=True, max_length=64)
    """sha256 hex of ``group_key`` (group keys can be longer than an index allows)."""
    group_key: str = Field(sa_column=Column(Text, nullable=False))
    route_id: str = Field(max_length=255)
    group_labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime
    next_flush_at: datetime = Field(index=True)


class NotifyLog(SQLModel, table=True):
    """What was last notified for one group on one channel (Alertmanager's nflog entry)."""

    __tablename__ = "notify_log"

    key_hash: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=255)
    firing: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    """Fingerprints of the firing alerts in the last notification."""
    resolved: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    sent_at: datetime
    expires_at: datetime


class Rollback(SQLModel, table=True):
    """A model or service rollback, with its restore SLA clock."""

    __tablename__ = "rollback"

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(max_length=255, index=True)
    from_version: str = Field(max_length=255)
    to_version: str = Field(max_length=255)
    reason: str = Field(default="", max_length=2000)
    started_at: datetime
    restored_at: datetime | None = None
    sla_target_seconds: int = 4 * 3600
    created_by: str = Field(default="", max_length=255)
    owner: str = Field(default="", max_length=255)
    incident_url: str = Field(default="", max_length=2000)


class DebtItem(SQLModel, table=True):
    """A technical-debt card with what it costs per month."""

    __tablename__ = "debt_item"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=500)
    status: str = Field(default="backlog", max_length=32, index=True)
    owner: str = Field(default="", max_length=255)
    severity: str = Field(default="medium", max_length=32)
    monthly_cost: Decimal = Field(default=Decimal("0"), sa_column=Column(MONEY, nullable=False))
    currency: str = Field(default="USD", max_length=3)
    due_date: datetime | None = None
    created_at: datetime
    source_fingerprint: str | None = Field(default=None, max_length=16)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    effort_days: float | None = None
    """Estimated effort to pay the debt off, in person-days."""
    links: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    source_kind: str = Field(default="", max_length=16)
    """``alert`` or ``anomaly`` when raised from one (``source_ref`` names it), else empty."""
    source_ref: str = Field(default="", max_length=64)
    updated_at: datetime | None = None
    closed_at: datetime | None = None


class Anomaly(SQLModel, table=True):
    """A cost anomaly: what was expected, what came, and the dimensions that explain it."""

    __tablename__ = "anomaly"
    __table_args__ = (UniqueConstraint("rule", "series_key", "day", name="uq_anomaly_day"),)

    id: int | None = Field(default=None, primary_key=True)
    series_key: str = Field(max_length=1024, index=True)
    day: datetime
    expected_cost: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    actual_cost: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    impact: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    currency: str = Field(max_length=3)
    root_causes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    status: str = Field(default="open", max_length=32)
    created_at: datetime
    rule: str = Field(default="", max_length=255)
    """The ``cost_anomaly`` rule (alertname) that recorded it."""
    acknowledged_by: str = Field(default="", max_length=255)
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    dimensions: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    """The series' labels: ``provider``, ``service``, ``account``."""
    updated_at: datetime | None = None


class Comment(SQLModel, table=True):
    """A comment on a board item (``subject`` ``anomaly`` or ``debt``, ``subject_id`` its id)."""

    __tablename__ = "comment"
    __table_args__ = (Index("ix_comment_subject", "subject", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=16)
    subject_id: int
    author: str = Field(max_length=255)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime


class CostRecord(SQLModel, table=True):
    """One billing line in FOCUS 1.2 columns (snake_case), from any source."""

    __tablename__ = "cost_record"
    __table_args__ = (
        UniqueConstraint("source", "row_key", name="uq_cost_record_row"),
        Index("ix_cost_record_billing_period", "source", "billing_period_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=255)
    import_batch: str = Field(max_length=64)
    row_key: str = Field(max_length=128)
    provider: str = Field(max_length=255)
    billed_cost: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    effective_cost: Decimal | None = Field(default=None, sa_column=Column(MONEY))
    list_cost: Decimal | None = Field(default=None, sa_column=Column(MONEY))
    billing_currency: str = Field(max_length=3)
    charge_period_start: datetime
    charge_period_end: datetime
    service_name: str | None = Field(default=None, max_length=255)
    service_category: str | None = Field(default=None, max_length=64)
    resource_id: str | None = Field(default=None, max_length=1024)
    region_id: str | None = Field(default=None, max_length=64)
    sku_id: str | None = Field(default=None, max_length=255)
    consumed_quantity: Decimal | None = Field(default=None, sa_column=Column(Numeric(28, 10)))
    consumed_unit: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    billing_period_start: datetime | None = None
    billing_period_end: datetime | None = None
    charge_category: str | None = Field(default=None, max_length=32)
    billing_account_id: str | None = Field(default=None, max_length=255)
    sub_account_id: str | None = Field(default=None, max_length=255)
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    """``x_`` custom columns and provider-specific fields."""


class AppUser(SQLModel, table=True):
    """A person who logs in to the board (``tcowatch user add``); the password is argon2-hashed."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    """Lower case (``daemon.auth.users`` normalises it)."""
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    """``viewer``, ``editor`` or ``admin``."""
    created_at: datetime
    disabled: bool = False


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API; only the sha256 of its secret is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    """sha256 hex of the whole token (``tcw_...``)."""
    prefix: str = Field(max_length=8)
    """The token's first 8 characters, to recognise it in listings."""
    role: str = Field(max_length=16)
    created_by: str = Field(max_length=255)
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One write: who (``user:alice``, ``token:deploy-bot``, ``cli``) did what to what, when."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=255, index=True)
    action: str = Field(max_length=64, index=True)
    """Dotted, ``<thing>.<verb>``: ``silence.create``, ``user.add``, ``auth.login``."""
    target: str = Field(default="", max_length=1024)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    remote: str = Field(default="", max_length=64)
    """The client's address (empty for the CLI)."""
