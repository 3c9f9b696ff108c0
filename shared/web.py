"""What every FastAPI service shares: JSON refusals that name the field, health routes, serving."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logs import setup_logging
from shared.metrics import prometheus_app, setup_metrics
from shared.telemetry import setup_tracing

# FastAPI's own OpenTelemetry support is on by default; with the OpenTelemetry FastAPI
# instrumentation that ``serve`` installs (one server span per request, the HTTP semantic-convention
# metrics, excluded routes), it made every request's span and metrics twice. The instrumentation stays.
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal is JSON with ``detail`` and, where known, the ``field`` that is wrong."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # loc is ("body", <character position>): not a field
            position = first["loc"][-1]
            return JSONResponse({"detail": f"the body is not valid JSON (at character {position})"}, status_code=422)
        field = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse({"detail": f"{field}: {first['msg']}", "field": field}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    _document_refusals(app)


# What a refusal looks like, as the handlers above write it; the OpenAPI document says so in place of
# FastAPI's default 422 schema (a list of pydantic errors), so clients and schema checks see the truth.
REFUSAL_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "description": "a refusal: what is wrong, in words, and the field when one is to blame",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "every field that is wrong"},
    },
}


def _document_refusals(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = REFUSAL_SCHEMA
                schemas.pop("ValidationError", None)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def install_health(
    app: FastAPI,
    ready: Callable[[Request], Awaitable[bool]],
    detail: Callable[[Request], dict[str, Any]] | None = None,
) -> None:
    """``/health/live`` (the process answers) and ``/health/ready`` (its dependencies answer, with
    ``detail`` beside: what an operator should see without it failing readiness)."""

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"])
    async def readiness(request: Request) -> JSONResponse:
        ok = await ready(request)
        extra = detail(request) if detail else {}
        return JSONResponse({"status": "ready" if ok else "not ready", **extra}, status_code=200 if ok else 503)


_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|signature|key)=)[^&#]*")


def scrub_secrets(span: Any, scope: dict[str, Any]) -> None:
    """Signed tokens out of the server span's URL attributes (an unsubscribe link's ``token`` works
    for as long as the e-mail is kept: it must not be readable from a trace)."""
    if span is None or not span.is_recording() or not _SECRET_QUERY.search(scope.get("query_string", b"").decode()):
        return
    for key, value in dict(getattr(span, "attributes", None) or {}).items():
        if isinstance(value, str) and "=" in value:
            cleaned = _SECRET_QUERY.sub(r"\1REDACTED", value)
            if cleaned != value:
                span.set_attribute(key, cleaned)


def serve(service: str, settings: Any, create_app: Callable[[Any], FastAPI], untraced: tuple[str, ...] = ()) -> None:
    """Logging, tracing with the FastAPI instrumentation, then uvicorn until SIGTERM. ``untraced``
    routes get no automatic span or HTTP metrics (a hot route traces its traced callers itself)."""
    setup_logging(service, settings.log_level)
    setup_tracing(service, settings)
    setup_metrics(service, settings)
    app = create_app(settings)
    app.mount("/metrics", prometheus_app())
    # one server span per request; the ASGI receive/send sub-spans cost more than they tell
    excluded = ",".join(("health", *untraced))
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=excluded, exclude_spans=["receive", "send"], server_request_hook=scrub_secrets
    )
    # X-Forwarded-For is believed only from the trusted proxies (an ingress): the client address
    # the rate limits count is then the visitor's; from anyone else the header is ignored
    trusted = getattr(settings, "trusted_proxies", "127.0.0.1")
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=trusted,
    )
