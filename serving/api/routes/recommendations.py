"""GET /v1/customers/{customer_id}/recommendations (the storefront's hot path).

The id is a ``path`` parameter: Starlette routes on the decoded path, so an id holding a
percent-encoded ``/`` (``%2F``) must be allowed to span path segments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.errors import UNPROCESSABLE
from serving.api.params import CustomerIdPath, RecommendationQuery, rerank_request
from serving.api.routing import DeclaredRoute
from serving.api.schemas import RecommendationsResponse

router = APIRouter(prefix="/v1", route_class=DeclaredRoute, tags=["recommendations"])


@router.get(
    "/customers/{customer_id:path}/recommendations",
    summary="Recommendations for a customer",
    description="The customer's candidates of the active model version, re-ranked with "
    "what they did this session and the shop's rules. An unknown customer gets a "
    "cold-start answer (session-based, trending in a category, popular). Every item "
    "carries a reason.",
    response_model=RecommendationsResponse,
    responses=UNPROCESSABLE,
)
async def recommendations(
    request: Request,
    customer_id: CustomerIdPath,
    query: Annotated[RecommendationQuery, Query()],
) -> Response:
    service = deps.get_service(request)
    req = rerank_request(query, service.settings)
    answer = await service.recommend(customer_id, req)
    if answer.degraded:
        service.metrics.degraded.labels("recommendations", answer.cause or "").inc()
    return deps.JSONBytes(
        {
            "customer_id": customer_id,
            "context": req.context,
            "version": answer.version,
            "degraded": answer.degraded,
            "items": deps.answer_items(answer),
        }
    )
