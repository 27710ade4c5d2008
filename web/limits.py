"""Request limits: body size (413), per-principal request rates (429 + Retry-After)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.jobs import LimitExceeded


class RateLimited(LimitExceeded):
    def __init__(self, retry_after_s: int, what: str) -> None:
        super().__init__(f"too many {what}; retry after {retry_after_s} s", retry_after_s)


class RateLimits:
    """Moving-window limits from the `limits` library, kept in Redis when several API processes
    share them (REFRAIN_REDIS_URL), else in this process's memory."""

    def __init__(self, redis_url: str | None, requests: str, submissions: str) -> None:
        self.storage = storage_from_string(redis_url or "memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.requests = parse(requests)
        self.submissions = parse(submissions)

    def hit(self, principal: str, submission: bool = False) -> None:
        item, what = (self.submissions, "submissions") if submission else (self.requests, "requests")
        if not self.limiter.hit(item, "refrain", principal):
            reset, _ = self.limiter.get_window_stats(item, "refrain", principal)
            raise RateLimited(max(1, math.ceil(reset - time.time())), what)


class BodySizeLimit:
    """Refuses bodies over `max_bytes` (or a path's own limit) with 413, by Content-Length or while
    streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise _TooLarge
            return message

        answered = False

        async def checked_send(message: Message) -> None:
            nonlocal answered
            if refused:  # whatever the app made of the cut-off body, the answer is 413
                if not answered:
                    answered = True
                    await self._refuse(send, limit)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, checked_send)
        except _TooLarge:
            if not answered:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = f'{{"detail":"request body larger than {limit} bytes"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
