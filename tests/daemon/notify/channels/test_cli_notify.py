"""``tcowatch notify test CHANNEL`` against a local server."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.notify.providers import ProviderFake

SLACK_PATH = "/services/T0/B0/SL4CK-S3CRET"


def write_config(tmp_path: Path, provider: ProviderFake) -> Path:
    path = tmp_path / "tcowatch.yaml"
    path.write_text(
        f"""
web: {{external_url: "https://tcowatch.example"}}
channels:
  - {{name: ops-slack, type: slack, url: "{provider.url(SLACK_PATH)}"}}
  - {{name: ops-hook, url: "{provider.url("/hook")}", secret: k3y}}
""",
        encoding="utf-8",
    )
    return path


def test_it_sends_a_test_notification_directly(
    tmp_path: Path, provider: ProviderFake, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.answer("/hook", body="")
    config = write_config(tmp_path, provider)

    code = main(["notify", "test", "ops-hook", "--config", str(config)])

    assert code == 0
    assert "test notification sent to webhook channel ops-hook" in capsys.readouterr().out
    request = provider.last()
    body = request.json
    assert body["notification_reason"] == "test"
    assert body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"]["alertname"] == "TcowatchTest"
    assert body["externalURL"] == "https://tcowatch.example"
    assert len(request.headers["Idempotency-Key"]) == 32
    assert request.headers["X-Tcowatch-Signature"].startswith("sha256=")


def test_it_renders_the_test_for_chat_channels(
    tmp_path: Path, provider: ProviderFake, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.slack_ok(SLACK_PATH)

    code = main(["notify", "test", "ops-slack", "--config", str(write_config(tmp_path, provider))])

    assert code == 0
    body = provider.last().json
    assert body["text"] == "[FIRING:1] TcowatchTest"
    assert "Test notification from tcowatch: channel ops-slack works" in str(body["blocks"])
    assert "https://tcowatch.example/alerts" in str(body["blocks"])


def test_it_prints_the_error_without_the_url_and_exits_1(
    tmp_path: Path, provider: ProviderFake, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.slack_error(SLACK_PATH, 404, "channel_not_found")

    code = main(["notify", "test", "ops-slack", "--config", str(write_config(tmp_path, provider))])

    assert code == 1
    captured = capsys.readouterr()
    assert "permanent" in captured.err
    assert "slack ops-slack: HTTP 404: channel_not_found" in captured.err
    assert "SL4CK-S3CRET" not in captured.err + captured.out


def test_it_lists_the_configured_channels_for_an_unknown_name(
    tmp_path: Path, provider: ProviderFake, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["notify", "test", "pager", "--config", str(write_config(tmp_path, provider))])

    assert code == 2
    assert "no channel named 'pager' (configured: ops-slack, ops-hook)" in capsys.readouterr().err
    assert provider.requests == []


def test_it_says_when_no_channel_is_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tcowatch.yaml"
    path.write_text("log_level: INFO\n", encoding="utf-8")

    assert main(["notify", "test", "ops", "--config", str(path)]) == 2
    assert "configured: none" in capsys.readouterr().err
