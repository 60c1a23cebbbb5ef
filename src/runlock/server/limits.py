"""Request body limits, enforced as the bytes arrive (a lying or absent Content-Length changes nothing).

Objects may be large (``MAX_OBJECT_BYTES``, default 64 GiB, ``RUNLOCK_SERVER_MAX_OBJECT``); a
metric batch is at most ``MAX_BATCH_BYTES`` compressed; every other body ``MAX_BODY_BYTES``.
Over the limit: 413 and nothing stored.
"""

from __future__ import annotations

import json
import os

from runlock.server.permissions import V1

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_OBJECT_BYTES = int(os.environ.get("RUNLOCK_SERVER_MAX_OBJECT", str(64 * 1024**3)))


def limit_for(method: str, path: str) -> int:
    if method == "PUT" and path.startswith(f"{V1}/objects/"):
        return MAX_OBJECT_BYTES
    if method == "POST" and path.startswith(f"{V1}/runs/") and path.endswith("/points"):
        return MAX_BATCH_BYTES
    if method == "POST" and path == f"{V1}/snapshots":     # a manifest lists every file
        return MAX_BATCH_BYTES
    return MAX_BODY_BYTES


class TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse a body over its route's limit with 413."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge()
            return message

        async def tracked(message) -> None:  # noqa: ANN001
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:  # noqa: ANN001
    body = json.dumps({"error": f"The request body is over this route's limit of {limit} bytes.",
                       "hint": None}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
