"""Message templates: snapshots of every chat channel's body for firing, resolved, mixed and
digest notifications, escaping, cutting alerts to fit, and safe truncation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Template

from daemon.notify.channels import render as render_module
from daemon.notify.channels.dingtalk import DingTalkChannel
from daemon.notify.channels.discord import DiscordChannel
from daemon.notify.channels.feishu import FeishuChannel
from daemon.notify.channels.render import (
    Message,
    Notification,
    escape_markdown,
    escape_slack,
    fit_message,
    format_time,
    render_message,
    template_names,
    truncate_chars,
    truncate_utf8,
)
from daemon.notify.channels.slack import SlackChannel
from daemon.notify.channels.teams import TeamsChannel
from daemon.notify.channels.wecom import WeComChannel
from tests.daemon.notify.channels import samples

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TCOWATCH_TEST_UPDATE_SNAPSHOTS") == "1"
URL = "https://hooks.example/T0KEN"

BUILDERS: dict[str, Callable[[], Any]] = {
    "slack": lambda: SlackChannel(name="ops", url=URL),
    "teams": lambda: TeamsChannel(name="ops", url=URL),
    "discord": lambda: DiscordChannel(name="ops", url=URL),
    "dingtalk": lambda: DingTalkChannel(name="ops", url=URL, at_mobiles=["13800000000"]),
    "feishu": lambda: FeishuChannel(name="ops", url=URL, secret="s", clock=lambda: samples.NOW),
    "wecom": lambda: WeComChannel(name="ops", url=URL),
}
CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "firing": samples.firing_payload,
    "resolved": samples.resolved_payload,
    "mixed": samples.mixed_payload,
    "digest": samples.digest_payload,
}


def test_it_has_a_template_for_every_chat_channel() -> None:
    assert template_names() == sorted(BUILDERS)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_it_renders_the_same_body_as_the_snapshot(kind: str, case: str) -> None:
    body = BUILDERS[kind]().build_body(CASES[case]())
    text = json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{kind}-{case}.json"
    if UPDATE or not path.exists():
        assert UPDATE, f"missing snapshot {path.name}: run with TCOWATCH_TEST_UPDATE_SNAPSHOTS=1"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_it_shows_both_sections_the_reason_and_the_board_link(kind: str) -> None:
    message = render_message(kind, Notification.from_payload(samples.mixed_payload()))

    assert message.title == "[FIRING:1] GPUIdle (cluster=inference-a)"
    assert "gpu=3" in message.firing and "gpu=5" not in message.firing
    assert "gpu=5" in message.resolved and "gpu=3" not in message.resolved
    assert "some alerts resolved" in message.footer
    everything = json.dumps(BUILDERS[kind]().build_body(samples.mixed_payload()))
    assert "http://alertmanager.example:9093/alerts" in everything


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_it_titles_a_resolved_group_and_a_digest(kind: str) -> None:
    resolved = render_message(kind, Notification.from_payload(samples.resolved_payload()))
    digest = render_message(kind, Notification.from_payload(samples.digest_payload()))

    assert resolved.title == "[RESOLVED] GpuIdle"
    assert resolved.firing == ""
    assert digest.title == "[DIGEST] 3 notifications: 2 firing, 1 resolved"
    assert "3 notifications folded into this digest" in digest.footer


def test_it_reads_a_digest_payload() -> None:
    notification = Notification.from_payload(samples.digest_payload())

    assert notification.digest_of == 3
    assert [a.name for a in notification.firing] == ["GpuIdle", "CacheHitRateLow"]
    assert [a.name for a in notification.resolved] == ["BudgetForecast"]
    assert notification.alertname == ""
    assert notification.board_url == samples.BOARD_URL


def test_it_tolerates_a_payload_with_missing_keys() -> None:
    message = render_message("slack", Notification.from_payload({"alerts": [{"labels": 3}]}))

    assert message.title == "[FIRING:1] alert"
    assert Notification.from_payload({}).board_url == ""


def test_it_escapes_each_providers_markup() -> None:
    payload = samples.payload([samples.gpu_idle("3", summary="a <b> & *c* _d_ [x](y)")])
    notification = Notification.from_payload(payload)

    assert "a &lt;b&gt; &amp; *c*" in render_message("slack", notification).firing
    assert "a <b> & \\*c\\* \\_d\\_ \\[x\\](y)" in render_message("discord", notification).firing
    assert "a &lt;b&gt; &amp;" in render_message("feishu", notification).firing
    assert escape_slack("<@U1>") == "&lt;@U1&gt;"
    assert escape_markdown("**x**") == "\\*\\*x\\*\\*"


def test_it_cuts_alerts_to_fit_and_says_how_many() -> None:
    notification = Notification.from_payload(samples.many_payload(40))

    message = fit_message("slack", notification, lambda m: len(m.firing) <= 3000)

    assert len(message.firing) <= 3000
    assert 0 < message.shown < 40
    assert message.omitted == 40 - message.shown
    assert f"…and {message.omitted} more firing" in message.firing
    # one more alert would not have fit
    bigger = render_message("slack", notification, limit=message.shown + 1)
    assert len(bigger.firing) > 3000


def test_it_keeps_firing_alerts_before_resolved_ones_when_cutting() -> None:
    notification = Notification.from_payload(samples.mixed_payload())

    message = render_message("wecom", notification, limit=1)

    assert "gpu=3" in message.firing
    assert "1 more resolved" in message.resolved


def test_it_formats_times_for_people() -> None:
    assert format_time("2026-08-20T10:00:00Z") == "2026-08-20 10:00 UTC"
    assert format_time("2026-08-20T10:00:05.5Z") == "2026-08-20 10:00:05 UTC"
    assert format_time("0001-01-01T00:00:00Z") == ""
    assert format_time("yesterday") == "yesterday"


def test_it_truncates_utf8_on_a_character_boundary() -> None:
    text = "告警" * 2000  # 3 bytes per character

    cut = truncate_utf8(text, 4096)

    assert len(cut.encode("utf-8")) <= 4096
    assert cut.endswith("…")
    assert cut[:-1] == text[: len(cut) - 1]
    assert truncate_utf8("short", 4096) == "short"
    assert truncate_chars("abcdef", 4) == "abc…"


def test_it_falls_back_to_a_plain_message_when_a_template_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = render_module._environment().from_string("{% set title %}{{ 1 / 0 }}{% endset %}")

    def failing(kind: str) -> Template:
        return broken

    monkeypatch.setattr(render_module, "_template", failing)

    message = render_message("slack", Notification.from_payload(samples.firing_payload()))

    assert isinstance(message, Message)
    assert message.title == "[FIRING] GpuIdle"
    assert "GPU idle while holding memory" in message.text
    assert "slack.j2 failed" in caplog.text


def test_it_runs_templates_in_the_sandbox() -> None:
    template = render_module._environment().from_string("{{ ''.__class__.__mro__ }}")

    with pytest.raises(Exception, match="unsafe"):
        template.render()
