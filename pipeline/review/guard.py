"""What makes the review app safe on a laptop, as one ASGI middleware in front of every route:

- the Host header must name the address the server is bound to (a DNS-rebinding page cannot reach it);
- every request carries the per-start token: the `token` query parameter once (which sets an HttpOnly,
  SameSite=Strict cookie and redirects to the same address without it), then the cookie, or the
  `X-Counterpoint-Token` header; a write needs the header, which another site's form cannot send;
- every answer carries a Content-Security-Policy and no-sniff, no-referrer and no-framing headers.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import URL, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "counterpoint_token"
HEADER = "X-Counterpoint-Token"
# The pages' own policy (a <meta> element, which cannot say frame-ancestors) and the header's.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'"
)
CSP = f"{PAGE_CSP}; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_SAFE_METHODS = {"GET", "HEAD"}


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed from response times."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class Guard:
    """The middleware: refuses (403 foreign Host, 401 no token, 403 wrong token or a write without
    the header) before any route runs, and adds the security headers to every answer."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: Iterable[str]) -> None:
        self.app, self.token, self.hosts = app, token, {host.lower() for host in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        answer = self.check(Request(scope))
        if answer is not None:
            await answer(scope, receive, secured)
        else:
            await self.app(scope, receive, secured)

    def check(self, request: Request) -> Response | None:
        """The refusal or redirect for this request, or None to let it through."""
        if request.headers.get("host", "").lower() not in self.hosts:
            return _refuse(request, 403, "this server answers only to the address it printed (Host header refused)")
        header = request.headers.get(HEADER)
        if header is not None:
            return None if same(header, self.token) else _refuse(request, 403, "wrong token")
        query = request.query_params.get("token")
        if query is not None:
            if not same(query, self.token) or request.method not in _SAFE_METHODS:
                return _refuse(request, 403, "wrong token, or a token in the address of a write")
            return self._welcome(request)
        if not same(request.cookies.get(COOKIE), self.token):
            return _refuse(request, 401, "open the address counterpoint serve printed (it holds the token)")
        if request.method not in _SAFE_METHODS:
            return _refuse(request, 403, f"a write needs the {HEADER} header")
        return None

    def _welcome(self, request: Request) -> Response:
        """First visit: keep the token in a cookie and drop it from the address (and the history)."""
        query = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
        target = URL(scope=request.scope).replace_query_params(**dict(query))
        response = RedirectResponse(target.path + (f"?{target.query}" if target.query else ""), status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        return response


def _refuse(request: Request, status: int, why: str) -> Response:
    body: dict[str, Any] = {"error": why}
    if request.url.path.startswith("/api/"):
        return JSONResponse(body, status_code=status)
    return PlainTextResponse(f"{status}: {why}\n", status_code=status)
