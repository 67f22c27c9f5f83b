"""/healthz (alive), /readyz (Redis reachable and a version active), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.schemas import Health, Ready

router = APIRouter(tags=["operations"])

_OK = b'{"status":"ok"}'


@router.get("/healthz", summary="Liveness", response_model=Health)
async def healthz() -> Response:
    return Response(_OK, media_type="application/json")


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when Redis answers and a model version is active; 503 otherwise (the "
    "service still answers, degraded, from its local copy). `compiled`: whether this worker "
    "runs the compiled kernels (false while a cold start compiles them: the answers are the "
    "same, only slower).",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready (answers are degraded)"}},
)
async def readyz(request: Request) -> Response:
    service = deps.get_service(request)
    ready, version, cause = await service.readiness()
    body = {
        "ready": ready,
        "version": version,
        "degraded": not ready,
        "cause": cause,
        "compiled": service.compiled,
    }
    return deps.JSONBytes(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Latency histograms per endpoint, degraded answers, Redis errors, breaker "
    "state, active version (per process).",
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    m = deps.get_service(request).metrics
    return Response(m.render(), media_type=m.content_type)
