"""Channel configuration: one pydantic model per channel ``type``, and building the channels.

``ChannelConfig`` is the union of the per-type models, told apart by ``type`` (``webhook`` when
absent, so configs written before the other types existed keep working). URLs, tokens and
signing secrets are ``SecretStr``: masked in ``check-config`` output and never logged.

Every type has ``name``, ``type``, ``send_resolved``, ``timeout`` and ``rate_limit``
(``{per_minute, burst}``, a token bucket; the default is sized to the provider, see
``DEFAULT_RATE_LIMITS``). Validation errors carry clean key paths (``channels.1.url: ...``,
``channels.0.type: unknown channel type 'pager' (known: ...)``).

``build_channels`` turns validated configs into channel objects; it never touches the network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from daemon.config_base import Duration, Section
from daemon.notify.channels import load_channel_class
from daemon.notify.channels.base import Channel, RateLimit

logger = logging.getLogger(__name__)

_HTTP_URL = re.compile(r"^https?://[^\s/]+")
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"

DEFAULT_RATE_LIMITS: dict[str, RateLimit | None] = {
    "webhook": None,
    "slack": RateLimit(per_minute=60, burst=3),
    "teams": RateLimit(per_minute=60, burst=3),
    "discord": RateLimit(per_minute=30, burst=5),
    # DingTalk and WeCom throttle a robot that sends 20 messages in a minute (DingTalk for
    # ~10 minutes). A token bucket lets through at most burst + per_minute in any minute, so
    # these stay at 19.
    "dingtalk": RateLimit(per_minute=15, burst=4),
    "wecom": RateLimit(per_minute=15, burst=4),
    # Feishu: 100 per minute and 5 per second per bot; 95 + 5 = at most 100 in any minute.
    "feishu": RateLimit(per_minute=95, burst=5),
    "alertmanager": None,
}
"""Each type's rate limit when ``rate_limit`` is not set (``None``: unlimited)."""


def _http_url(value: SecretStr) -> SecretStr:
    if not _HTTP_URL.match(value.get_secret_value()):
        raise ValueError("expected an http:// or https:// URL")
    return value


class RateLimitConfig(Section):
    """A token bucket: ``per_minute`` sends refill per minute, at most ``burst`` saved up."""

    per_minute: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)

    def to_rate_limit(self) -> RateLimit:
        """The channel-side value."""
        return RateLimit(per_minute=self.per_minute, burst=self.burst)


class ChannelConfigBase(Section):
    """Keys every channel type has."""

    name: str = Field(pattern=_NAME_PATTERN)
    type: str
    """The channel type; each model narrows it to its own literal."""
    send_resolved: bool = True
    """Send "resolved" notifications too (on by default for every type)."""
    timeout: Duration = timedelta(seconds=10)
    """How long one HTTP request may take before it is retried later."""
    rate_limit: RateLimitConfig | None = None
    """Token bucket; default per type (``DEFAULT_RATE_LIMITS``). Bursts fold into a digest."""

    secret_keys: ClassVar[tuple[str, ...]] = ()

    @property
    def effective_rate_limit(self) -> RateLimit | None:
        """``rate_limit`` if set, else the type's default."""
        if self.rate_limit is not None:
            return self.rate_limit.to_rate_limit()
        return DEFAULT_RATE_LIMITS[self.type]

    def common_kwargs(self) -> dict[str, Any]:
        """Constructor keywords shared by every channel class."""
        return {
            "name": self.name,
            "timeout_seconds": self.timeout.total_seconds(),
            "send_resolved": self.send_resolved,
            "rate_limit": self.effective_rate_limit,
        }

    def channel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the channel class registered under ``type``."""
        raise NotImplementedError


class _UrlChannel(ChannelConfigBase):
    url: SecretStr
    """The webhook URL (it embeds the token: a secret)."""

    _check_url = field_validator("url")(_http_url)

    def channel_kwargs(self) -> dict[str, Any]:
        return {**self.common_kwargs(), "url": self.url.get_secret_value()}


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class WebhookChannelConfig(_UrlChannel):
    """The Alertmanager v4 JSON payload to any URL, optionally HMAC-signed."""

    type: Literal["webhook"] = "webhook"
    secret: SecretStr | None = None
    """HMAC-SHA256 signing key for the ``X-Tcowatch-Signature`` header."""

    def channel_kwargs(self) -> dict[str, Any]:
        return {**super().channel_kwargs(), "secret": _secret(self.secret)}


class SlackChannelConfig(_UrlChannel):
    """A Slack incoming webhook (``https://hooks.slack.com/services/...``)."""

    type: Literal["slack"]


class TeamsChannelConfig(_UrlChannel):
    """A Microsoft Teams Workflows (Power Automate) webhook URL."""

    type: Literal["teams"]


class DiscordChannelConfig(_UrlChannel):
    """A Discord channel webhook (``https://discord.com/api/webhooks/<id>/<token>``)."""

    type: Literal["discord"]
    username: str | None = Field(default=None, max_length=80)
    """Overrides the webhook's display name."""
    avatar_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    """Overrides the webhook's avatar."""

    def channel_kwargs(self) -> dict[str, Any]:
        return {
            **super().channel_kwargs(),
            "username": self.username,
            "avatar_url": self.avatar_url,
        }


class DingTalkChannelConfig(_UrlChannel):
    """A DingTalk custom robot (``https://oapi.dingtalk.com/robot/send?access_token=...``)."""

    type: Literal["dingtalk"]
    secret: SecretStr | None = None
    """The robot's signing secret (``SEC...``), for the "additional signature" security setting."""
    at_mobiles: list[str] = Field(default_factory=list)
    """Phone numbers to @-mention in every message."""
    at_user_ids: list[str] = Field(default_factory=list)
    """DingTalk user ids to @-mention in every message."""
    at_all: bool = False
    """@-mention everyone in the group."""

    def channel_kwargs(self) -> dict[str, Any]:
        return {
            **super().channel_kwargs(),
            "secret": _secret(self.secret),
            "at_mobiles": tuple(self.at_mobiles),
            "at_user_ids": tuple(self.at_user_ids),
            "at_all": self.at_all,
        }


class FeishuChannelConfig(_UrlChannel):
    """A Feishu or Lark custom bot (``https://open.feishu.cn/open-apis/bot/v2/hook/...``)."""

    type: Literal["feishu"]
    secret: SecretStr | None = None
    """The bot's signing secret, for the "signature verification" security setting."""

    def channel_kwargs(self) -> dict[str, Any]:
        return {**super().channel_kwargs(), "secret": _secret(self.secret)}


class WeComChannelConfig(_UrlChannel):
    """A WeCom group robot (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``)."""

    type: Literal["wecom"]


class AlertmanagerChannelConfig(ChannelConfigBase):
    """Push alerts into existing Alertmanagers: ``POST /api/v2/alerts`` to every replica."""

    type: Literal["alertmanager"]
    urls: list[Annotated[SecretStr, AfterValidator(_http_url)]] = Field(min_length=1)
    """Base URL of every Alertmanager replica (never a load balancer in front of them)."""
    resend_window: Duration = timedelta(hours=5)
    """``endsAt`` of a firing alert is the send time plus this; must be longer than the
    route's ``repeat_interval``, or Alertmanager resolves the alert between two resends."""

    @field_validator("resend_window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    def channel_kwargs(self) -> dict[str, Any]:
        return {
            **self.common_kwargs(),
            "urls": [url.get_secret_value() for url in self.urls],
            "resend_window": self.resend_window,
        }


CHANNEL_CONFIGS: dict[str, type[ChannelConfigBase]] = {
    "webhook": WebhookChannelConfig,
    "slack": SlackChannelConfig,
    "teams": TeamsChannelConfig,
    "discord": DiscordChannelConfig,
    "dingtalk": DingTalkChannelConfig,
    "feishu": FeishuChannelConfig,
    "wecom": WeComChannelConfig,
    "alertmanager": AlertmanagerChannelConfig,
}
"""The config model of each channel ``type``."""


def _channel_type(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type", "webhook")
        return kind if isinstance(kind, str) else None
    kind = getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


def _clean_locations(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Validate one channel; report errors at ``channels.N.key``, without the union's tag."""
    if not isinstance(value, dict | BaseModel):
        raise PydanticCustomError("channel_mapping", "expected a mapping of channel keys")
    kind = _channel_type(value)
    if kind not in CHANNEL_CONFIGS:
        known = ", ".join(CHANNEL_CONFIGS)
        shown = value.get("type") if isinstance(value, dict) else kind
        raise ValidationError.from_exception_data(
            "ChannelConfig",
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "channel_type", f"unknown channel type {shown!r} (known: {known})"
                    ),
                    loc=("type",),
                    input=shown,
                )
            ],
        )
    try:
        return handler(value)
    except ValidationError as exc:
        details: list[InitErrorDetails] = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[0] == kind:
                loc = loc[1:]
            details.append(
                InitErrorDetails(
                    type=PydanticCustomError("channel", error["msg"]),
                    loc=loc,
                    input=error.get("input"),
                )
            )
        raise ValidationError.from_exception_data("ChannelConfig", details) from None


ChannelConfig = Annotated[
    Annotated[WebhookChannelConfig, Tag("webhook")]
    | Annotated[SlackChannelConfig, Tag("slack")]
    | Annotated[TeamsChannelConfig, Tag("teams")]
    | Annotated[DiscordChannelConfig, Tag("discord")]
    | Annotated[DingTalkChannelConfig, Tag("dingtalk")]
    | Annotated[FeishuChannelConfig, Tag("feishu")]
    | Annotated[WeComChannelConfig, Tag("wecom")]
    | Annotated[AlertmanagerChannelConfig, Tag("alertmanager")],
    Discriminator(_channel_type),
    WrapValidator(_clean_locations),
]
"""One entry of ``channels:``: the model for its ``type`` (``webhook`` when absent)."""


def channel_config_keys(prefix: str = "channels[].") -> list[str]:
    """Every channel key, across all types, once each (for the README reference check)."""
    keys: list[str] = []
    for model in CHANNEL_CONFIGS.values():
        for name, info in model.model_fields.items():
            key = f"{prefix}{info.alias or name}"
            if key not in keys:
                keys.append(key)
            if name == "rate_limit":
                for sub in RateLimitConfig.model_fields:
                    subkey = f"{key}.{sub}"
                    if subkey not in keys:
                        keys.append(subkey)
    return keys


def build_channel(
    config: ChannelConfigBase,
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Channel:
    """The channel object for one validated config (nothing is sent)."""
    channel_class = load_channel_class(config.type)
    channel: Channel = channel_class(**config.channel_kwargs(), client=client, clock=clock)
    return channel


def build_channels(
    configs: Iterable[ChannelConfigBase],
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] | None = None,
) -> dict[str, Channel]:
    """Every configured channel by name.

    ``client`` is shared by all channels (and not closed by them); without it each channel
    opens its own on first send. ``clock`` (aware UTC) is for tests. Raises ``KeyError`` only
    for a type missing from ``CHANNELS`` (a programming error: configs are validated).
    """
    return {config.name: build_channel(config, client=client, clock=clock) for config in configs}


__all__ = [
    "CHANNEL_CONFIGS",
    "DEFAULT_RATE_LIMITS",
    "AlertmanagerChannelConfig",
    "ChannelConfig",
    "ChannelConfigBase",
    "DingTalkChannelConfig",
    "DiscordChannelConfig",
    "FeishuChannelConfig",
    "RateLimitConfig",
    "SlackChannelConfig",
    "TeamsChannelConfig",
    "WeComChannelConfig",
    "WebhookChannelConfig",
    "build_channel",
    "build_channels",
    "channel_config_keys",
]
