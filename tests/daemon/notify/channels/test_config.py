"""Channel configs: one model per type, clean key-path errors, defaults, building channels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, effective_config_yaml, load_config
from daemon.notify.channels.alertmanager import AlertmanagerChannel
from daemon.notify.channels.base import RateLimit
from daemon.notify.channels.config import (
    CHANNEL_CONFIGS,
    DEFAULT_RATE_LIMITS,
    WebhookChannelConfig,
    build_channels,
    channel_config_keys,
)
from daemon.notify.channels.dingtalk import DingTalkChannel
from daemon.notify.channels.slack import SlackChannel
from daemon.notify.channels.webhook import WebhookChannel

FULL = """
channels:
  - {name: hook, url: "https://hooks.example/T0KEN-1", secret: s1gn}
  - {name: slack, type: slack, url: "https://hooks.slack.com/services/T/B/S3CRET"}
  - {name: teams, type: teams, url: "https://x.logic.azure.com/workflows/1?sig=S1G"}
  - {name: discord, type: discord, url: "https://discord.com/api/webhooks/1/T0K", username: bot}
  - name: ding
    type: dingtalk
    url: "https://oapi.dingtalk.com/robot/send?access_token=D1NG"
    secret: SECxyz
    at_mobiles: ["13800000000"]
    at_all: true
    rate_limit: {per_minute: 10, burst: 2}
  - {name: feishu, type: feishu, url: "https://open.feishu.cn/open-apis/bot/v2/hook/F1", secret: fs}
  - {name: wecom, type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=W3C"}
  - name: am
    type: alertmanager
    urls: ["http://am-0:9093", "http://am-1:9093"]
    resend_window: 20m
    timeout: 3s
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "tcowatch.yaml"
    path.write_text(text, encoding="utf-8")
    config, _ = load_config(path, {})
    return config


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


def test_it_reads_every_channel_type(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)

    assert [c.type for c in config.channels] == list(CHANNEL_CONFIGS)
    hook = config.channels[0]
    assert isinstance(hook, WebhookChannelConfig)  # type defaults to webhook


def test_it_builds_each_channel_with_its_options(tmp_path: Path) -> None:
    channels = build_channels(load(tmp_path, FULL).channels)

    assert list(channels) == ["hook", "slack", "teams", "discord", "ding", "feishu", "wecom", "am"]
    assert isinstance(channels["hook"], WebhookChannel)
    assert channels["hook"].rate_limit is None
    assert isinstance(channels["slack"], SlackChannel)
    assert channels["slack"].rate_limit == RateLimit(per_minute=60, burst=3)
    ding = channels["ding"]
    assert isinstance(ding, DingTalkChannel)
    assert ding.rate_limit == RateLimit(per_minute=10, burst=2)
    assert ding._at_mobiles == ["13800000000"] and ding._at_all is True
    am = channels["am"]
    assert isinstance(am, AlertmanagerChannel)
    assert am.rate_limit is None
    assert am._resend_window == timedelta(minutes=20)
    assert am._timeout == 3.0
    for channel in channels.values():
        assert channel.send_resolved is True


def test_it_sizes_default_rate_limits_under_the_providers_limits() -> None:
    def most_in_a_minute(limit: RateLimit) -> float:
        return limit.burst + limit.per_minute

    # DingTalk and WeCom throttle at 20 a minute, Feishu allows 100.
    for kind, allowed in (("dingtalk", 19), ("wecom", 19), ("feishu", 100)):
        limit = DEFAULT_RATE_LIMITS[kind]
        assert limit is not None
        assert most_in_a_minute(limit) <= allowed
    assert DEFAULT_RATE_LIMITS["slack"] == RateLimit(per_minute=60, burst=3)
    assert DEFAULT_RATE_LIMITS["discord"] == RateLimit(per_minute=30, burst=5)
    assert DEFAULT_RATE_LIMITS["alertmanager"] is None
    assert set(DEFAULT_RATE_LIMITS) == set(CHANNEL_CONFIGS)


def test_it_masks_every_url_and_secret(tmp_path: Path) -> None:
    text = effective_config_yaml(load(tmp_path, FULL))

    for secret in (
        "T0KEN-1",
        "s1gn",
        "S3CRET",
        "S1G",
        "T0K",
        "D1NG",
        "SECxyz",
        "F1",
        "W3C",
        "am-0",
    ):
        assert secret not in text
    assert "13800000000" in text  # mentions are not secrets


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("{name: a, url: 'ftp://x'}", "channels.0.url: expected an http:// or https:// URL"),
        ("{name: a, type: slack}", "channels.0.url: Field required"),
        (
            "{name: a, type: pager, url: 'https://x'}",
            "channels.0.type: unknown channel type 'pager' (known: webhook, slack, teams, "
            "discord, dingtalk, feishu, wecom, alertmanager)",
        ),
        ("{name: a, type: slack, url: 'https://x', secret: s}", "channels.0.secret: unknown key"),
        (
            "{name: a, type: alertmanager, urls: []}",
            "channels.0.urls: List should have at least 1 item after validation, not 0",
        ),
        (
            "{name: a, type: alertmanager, urls: ['http://a', 'b']}",
            "channels.0.urls.1: expected an http:// or https:// URL",
        ),
        (
            "{name: a, url: 'https://x', rate_limit: {per_minute: 0}}",
            "channels.0.rate_limit.per_minute: Input should be greater than 0",
        ),
        (
            "{name: a, type: alertmanager, urls: ['http://a'], resend_window: 0s}",
            "channels.0.resend_window: must be longer than 0s",
        ),
        ("just-a-string", "channels.0: expected a mapping of channel keys"),
    ],
)
def test_it_reports_channel_errors_by_key_path(tmp_path: Path, channel: str, expected: str) -> None:
    assert problems(tmp_path, f"channels:\n  - {channel}\n") == [expected]


def test_it_lists_every_channel_key_for_the_docs() -> None:
    keys = channel_config_keys()

    for key in (
        "name",
        "type",
        "url",
        "secret",
        "timeout",
        "send_resolved",
        "rate_limit",
        "rate_limit.per_minute",
        "rate_limit.burst",
        "username",
        "avatar_url",
        "at_mobiles",
        "at_user_ids",
        "at_all",
        "urls",
        "resend_window",
    ):
        assert f"channels[].{key}" in keys
    assert len(keys) == len(set(keys))
