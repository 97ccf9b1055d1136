"""The few lines of raw ASGI that tcowatch's tiny endpoints share (the simulated exporters and
the node agent), so neither needs a web framework.

Written by hand because a framework would be the agent's largest import for two routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def run_lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol (nothing to start or stop) until shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(
    send: Send, status: int, content_type: str, body: bytes, *, head: bool = False
) -> None:
    """Send one complete response (no body for ``HEAD``)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
