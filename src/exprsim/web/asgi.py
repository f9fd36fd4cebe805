"""The base of exprsim's ASGI middleware: HTTP requests are handled, anything else (the
server's lifespan events) passes through untouched."""

from __future__ import annotations

from typing import Any


class HttpMiddleware:
    """ASGI middleware acting on HTTP requests only: subclasses implement :meth:`http`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        """Handle one HTTP request (``self.app`` is the application inside)."""
        raise NotImplementedError
