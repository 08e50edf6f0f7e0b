"""HTTP plumbing every face shares: each face's own error rendering under its path prefix,
and the request body limit applied before anything parses a body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sts.http.errors import body_not_utf8, body_too_large
from sts.vending import observe

# A face mounted on this app with an error model of its own (Electrum's, the web pages') adds
# its path prefix here: `app.state.error_renderers["/prefix"] = render`; every error under that
# prefix, the framework's and the middleware's too, is then `render(request, status, body)`
# with `body` in the one shape.  Everything else answers the one shape.
ErrorRenderer = Callable[[Request, int, dict[str, Any]], Response]


def error_response(request: Request, status: int, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> Response:
    observe.note_error(str(body.get("code", "")))
    renderers: dict[str, ErrorRenderer] = getattr(request.app.state, "error_renderers", {})
    for prefix, render in renderers.items():
        if request.url.path.startswith(prefix):
            return render(request, status, body)
    return JSONResponse(body, status_code=status, headers=headers)


class NoStore:
    """`Cache-Control: no-store` on every answer under `prefixes` (errors included): answers
    there carry tokens and customer data, which no browser, proxy or client cache may keep."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefixes):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"cache-control", b"pragma")]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, before anything parses it.

    The declared Content-Length is checked first; the body is then read and counted (it may
    come chunked, or longer than declared) and handed on only when it is within the limit.
    A JSON body must be UTF-8 (RFC 8259): the JSON parser would also take UTF-16 and UTF-32.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _is_json(scope) and not _utf8(body):
            await self._reply(scope, receive, send, 422, body_not_utf8())
            return
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._reply(scope, receive, send, 413, body_too_large(self.limit),
                          {"connection": "close"})

    @staticmethod
    async def _reply(scope: Scope, receive: Receive, send: Send, status: int,
                     body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        response = error_response(Request(scope, receive), status, body, headers)
        await response(scope, receive, send)


def _utf8(body: bytes) -> bool:
    """UTF-8 JSON text: valid UTF-8 and no NUL byte (a NUL is never valid JSON in UTF-8, and is
    how UTF-16 or UTF-32 text, which the JSON parser would guess and accept, gives itself away)."""
    if b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media: bytes = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


