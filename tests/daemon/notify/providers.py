"""A fake chat provider: a real local HTTP server that answers like Slack, Teams, Discord,
DingTalk, Feishu, WeCom or Alertmanager, and records what it was sent.

Built on ``pytest_httpserver`` (one server, requests answered in the order registered). Each
``answer_*`` helper registers how one path answers from now on; ``requests`` lists what
arrived, with the raw query string so signing can be checked byte for byte. ``hang`` makes a
path wait (on an event, not on wall time) longer than a channel's short timeout; ``release``
(called by the fixture at teardown) lets it finish.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

HANG_LIMIT_SECONDS = 10.0
"""Upper bound of a hanging answer, in case a test forgets to release it."""


@dataclass(frozen=True)
class Received:
    """One request the fake received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class ProviderFake:
    """Answers like a provider on ``server``; see the module docstring."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self._released = threading.Event()

    # -- plumbing -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    @property
    def requests(self) -> list[Received]:
        return [
            Received(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("ascii"),
                headers=dict(request.headers),
                body=request.get_data(),
            )
            for request, _ in self.server.log
        ]

    def last(self) -> Received:
        assert self.server.log, "the provider received no request"
        return self.requests[-1]

    def answer(
        self,
        path: str,
        *,
        status: int = 200,
        body: str | dict[str, Any] = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer every POST to ``path`` with ``status`` and ``body`` (a dict is sent as JSON)."""
        if isinstance(body, dict):
            self.server.expect_request(path, method="POST").respond_with_json(
                body, status=status, headers=headers
            )
        else:
            self.server.expect_request(path, method="POST").respond_with_data(
                body, status=status, headers=headers, content_type="text/plain"
            )

    def hang(self, path: str) -> None:
        """Answer ``path`` only after ``release`` (a client with a short timeout gives up)."""

        def wait(_: Request) -> Response:
            self._released.wait(HANG_LIMIT_SECONDS)
            return Response("late", status=200)

        self.server.expect_request(path, method="POST").respond_with_handler(wait)

    def release(self) -> None:
        self._released.set()

    # -- provider answers -------------------------------------------------------------------

    def slack_ok(self, path: str) -> None:
        self.answer(path, body="ok")

    def slack_error(self, path: str, status: int, code: str) -> None:
        self.answer(path, status=status, body=code)

    def teams_accepted(self, path: str) -> None:
        self.answer(path, status=202, body="")

    def discord_ok(self, path: str) -> None:
        self.server.expect_request(path, method="POST").respond_with_data("", status=204)

    def discord_rate_limited(self, path: str, retry_after: float, header: str = "1") -> None:
        self.answer(
            path,
            status=429,
            body={
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            },
            headers={"Retry-After": header, "X-RateLimit-Scope": "user"},
        )

    def dingtalk(self, path: str, errcode: int = 0, errmsg: str = "ok") -> None:
        self.answer(path, body={"errcode": errcode, "errmsg": errmsg})

    def feishu(self, path: str, code: int = 0, msg: str = "success") -> None:
        self.answer(path, body={"code": code, "msg": msg, "data": {}})

    def feishu_legacy_ok(self, path: str) -> None:
        self.answer(
            path,
            body={"Extra": None, "StatusCode": 0, "StatusMessage": "success"},
        )

    def wecom(self, path: str, errcode: int = 0, errmsg: str = "ok") -> None:
        self.answer(path, body={"errcode": errcode, "errmsg": errmsg})

    def alertmanager_ok(self, base: str) -> None:
        self.answer(f"{base.rstrip('/')}/api/v2/alerts", body="")
