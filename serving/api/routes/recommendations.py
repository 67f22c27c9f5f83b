"""GET /v1/customers/{customer_id}/recommendations (the storefront's hot path).

The id is a ``path`` parameter: Starlette routes on the decoded path, so an id holding a
percent-encoded ``/`` (``%2F``) must be allowed to span path segments."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.schemas import ErrorResponse, RecommendationsResponse

router = APIRouter(prefix="/v1", tags=["recommendations"])

PARAMETERS = [
    deps.query_param(
        "customer_id",
        "The shop's customer id, percent-encoded (any id: spaces, `/`, `%`, `?`, `#`, non-ASCII).",
        deps.ID_SCHEMA,
        "path",
    ),
    deps.query_param("n", "How many items (1..RECSYS_MAX_N, default 10).", {"type": "integer"}),
    deps.query_param(
        "context",
        "Where the list is shown: home, product (needs item_id), cart (complements of the "
        "cart) or email (frequency capped).",
        {"type": "string", "enum": ["home", "product", "cart", "email"], "default": "home"},
    ),
    deps.query_param("item_id", "The product on screen (context=product).", deps.ID_SCHEMA),
    deps.query_param("category", "Only items under this category path.", {"type": "string"}),
    deps.query_param(
        "exclude_category",
        "Never items under these category paths (repeat or comma-separate).",
        {"type": "array", "items": {"type": "string"}},
        explode=True,
    ),
    deps.query_param(
        "exclude",
        "Item ids never to return: repeat the parameter, one id each "
        "(`exclude=a&exclude=sku,1`; a comma is part of the id).",
        {"type": "array", "items": deps.ID_SCHEMA},
        explode=True,
    ),
    deps.query_param("price_min", "Lowest price.", {"type": "number"}),
    deps.query_param("price_max", "Highest price.", {"type": "number"}),
]


@router.get(
    "/customers/{customer_id:path}/recommendations",
    summary="Recommendations for a customer",
    description="The customer's candidates of the active model version, re-ranked with "
    "what they did this session and the shop's rules. An unknown customer gets a "
    "cold-start answer (session-based, trending in a category, popular). Every item "
    "carries a reason.",
    response_model=RecommendationsResponse,
    responses={422: {"model": ErrorResponse, "description": "Invalid parameter"}},
    openapi_extra={"parameters": PARAMETERS},
)
async def recommendations(request: Request) -> Response:
    service = deps.get_service(request)
    customer_id = deps.valid_id(request.path_params["customer_id"], "customer_id")
    req = deps.rerank_request(request.query_params, service.settings)
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
