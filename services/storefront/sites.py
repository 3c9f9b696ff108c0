"""Which shops may call the storefront, from where: a site key per shop and its pages' origins.

``PROACT_STOREFRONT_SITES`` maps each site key to the origins of its pages, as JSON:
``{"shop-a": ["https://shop-a.example", "https://www.shop-a.example"]}``. The widget sends its key in
``X-Proact-Site``. With sites configured, a browser request (one with an ``Origin``) to the API is
refused with 403 unless its key is known and its origin is one of that key's; preflight requests
are answered for the origins of all sites (the browser does not send the key's value then).
Requests without an ``Origin`` (a shop's back end) are not checked by origin. Without sites
configured, only the storefront's own origin can call from a browser (the demo page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SITE_HEADER = "x-proact-site"
ALLOWED_HEADERS = "Content-Type, X-Proact-Site, X-Proact-Identity"


class SiteGuard:
    def __init__(self, app: ASGIApp, sites: Mapping[str, Sequence[str]], prefix: str = "/v1/") -> None:
        self.app = app
        self.sites = {key: frozenset(origins) for key, origins in sites.items()}
        self.any_origin = frozenset(o for origins in self.sites.values() for o in origins)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin)(scope, receive, send)
            return
        key = headers.get(SITE_HEADER)
        if key not in self.sites:
            await JSONResponse({"detail": "unknown or missing site key", "field": SITE_HEADER}, 403)(
                scope, receive, send
            )
            return
        if origin not in self.sites[key]:
            await JSONResponse({"detail": f"origin {origin} is not allowed for this site"}, 403)(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_cors)

    def _preflight(self, origin: str) -> Response:
        if origin not in self.any_origin:
            return Response(status_code=403)
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "3600",
                "Vary": "Origin",
            },
        )
