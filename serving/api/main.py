"""The FastAPI application factory (``uvicorn --factory serving.api.main:create_app``)."""

from __future__ import annotations

import importlib.metadata
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.errors import validation_error
from serving.api.metrics import Metrics
from serving.api.routes import email, events, health, items, recommendations
from serving.api.service import RecommendationService
from serving.settings import Settings

DESCRIPTION = """Recommendations for the storefront and for email, re-ranked per request
from precomputed candidates in Redis. Every answer says which model `version` answered
and whether it is `degraded` (answered from a local popular/trending copy because Redis
or the active version was unavailable). Invalid input gets a 422 whose `detail` lists each problem
(`loc`, `msg`, `type`); other errors (404, 413, 503) have a `detail` message."""


class MetricsMiddleware:
    """Latency of every HTTP request by route template (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            # the template without convertors ("{item_id}", not "{item_id:path}")
            endpoint = str(
                getattr(route, "path_format", None) or getattr(route, "path", "unmatched")
            )
            self.metrics.observe(endpoint, scope["method"], status, time.perf_counter() - start)


def _version() -> str:
    try:
        return importlib.metadata.version("recsys")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def create_app(
    settings: Settings | None = None, service: RecommendationService | None = None
) -> FastAPI:
    """Build the app; ``service`` defaults to one built from ``settings`` (the environment)."""
    service = service or RecommendationService(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.close()

    options: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # Prometheus (/metrics) is the service's telemetry; FastAPI's native OpenTelemetry
        # hooks would cost every request several microseconds even with no exporter.
        options["telemetry"] = {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
        }
    app = FastAPI(
        title="recsys",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        **options,
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, validation_error)
    for module in (recommendations, items, email, events, health):
        # the routes themselves rather than include_router: recent FastAPI versions wrap an
        # included router in routing layers that every request walks through (measured
        # here: a trivial endpoint twice as expensive, recommendations ~10%)
        app.router.routes.extend(module.router.routes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app
