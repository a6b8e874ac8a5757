"""ASGI middleware of the service: the body-size limit (enforced before the body is read) and the request log.

Both are plain ASGI, so they see every request of every route, including 413s they answer themselves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("agiqa.serve")


class BodyTooLarge(HTTPException):
    """A request body passed ``max_body_bytes`` while it was being received (a 413 for any route)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes; send fewer or smaller images (--max-body-mb)")


class BodyLimit:
    """Refuse bodies above ``max_bytes``: at once from ``Content-Length``, or while a chunked body streams in.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _json(send, 400, f"Content-Length {declared.decode('latin-1')!r} is not a number")
                return
            if size > self.max_bytes:
                await _json(
                    send,
                    413,
                    f"request body of {size} bytes is larger than the limit of {self.max_bytes} "
                    "bytes; send fewer or smaller images (--max-body-mb)",
                )
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """One log line per request on the ``agiqa.serve`` logger: client, method, path, status, images, queue wait
    and total time. Routes put ``images`` and ``wait`` into ``request.state``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            state = scope.get("state") or {}
            client = scope.get("client") or ("-", 0)
            extra = f" images={state['images']}" if "images" in state else ""
            extra += f" wait={state['wait']:.3f}s" if "wait" in state else ""
            log.info(
                "%s:%s %s %s %d%s %.3fs",
                client[0],
                client[1],
                scope["method"],
                scope["path"],
                status[0],
                extra,
                time.perf_counter() - start,
            )


async def _json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + [(b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
