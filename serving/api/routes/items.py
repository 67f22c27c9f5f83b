"""GET /v1/items/{item_id}/similar (``item_id`` percent-encoded; a ``path`` parameter so an
id holding ``/`` works: Starlette routes on the decoded path)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.schemas import ErrorResponse, SimilarResponse
from serving.api.service import UnknownItem

router = APIRouter(prefix="/v1", tags=["items"])


@router.get(
    "/items/{item_id:path}/similar",
    summary="Items similar to an item",
    description="The item's similar items in the active version, without out-of-stock "
    "items; with customer_id also without what the customer bought or has in the cart.",
    response_model=SimilarResponse,
    responses={
        404: {"model": ErrorResponse, "description": "The item is not in the catalog"},
        422: {"model": ErrorResponse, "description": "Invalid parameter"},
    },
    openapi_extra={
        "parameters": [
            deps.query_param(
                "item_id",
                "The item, percent-encoded (any id: spaces, `/`, `%`, `?`, `#`, non-ASCII).",
                deps.ID_SCHEMA,
                "path",
            ),
            deps.query_param("n", "How many items (1..RECSYS_MAX_N).", {"type": "integer"}),
            deps.query_param("customer_id", "Filter for this customer.", deps.ID_SCHEMA),
        ]
    },
)
async def similar(request: Request) -> Response:
    service = deps.get_service(request)
    item_id = deps.valid_id(request.path_params["item_id"], "item_id")
    q = request.query_params
    customer_id = q.get("customer_id")
    if customer_id is not None:
        customer_id = deps.valid_id(customer_id, "customer_id")
    req = deps.rerank_request(q, service.settings, context="home")
    try:
        answer = await service.similar_items(item_id, req, customer_id)
    except UnknownItem:
        raise HTTPException(404, f"item {item_id!r} is not in the catalog") from None
    if answer.degraded:
        service.metrics.degraded.labels("similar", answer.cause or "").inc()
    return deps.JSONBytes(
        {
            "item_id": item_id,
            "customer_id": customer_id,
            "version": answer.version,
            "degraded": answer.degraded,
            "items": deps.answer_items(answer),
        }
    )
