"""GET /v1/items/{item_id}/similar (``item_id`` percent-encoded; a ``path`` parameter so an
id holding ``/`` works: Starlette routes on the decoded path)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.errors import UNPROCESSABLE
from serving.api.params import ItemIdPath, SimilarQuery, rerank_request
from serving.api.routing import DeclaredRoute
from serving.api.schemas import ErrorResponse, SimilarResponse
from serving.api.service import UnknownItem

router = APIRouter(prefix="/v1", route_class=DeclaredRoute, tags=["items"])


@router.get(
    "/items/{item_id:path}/similar",
    summary="Items similar to an item",
    description="The item's similar items in the active version, without out-of-stock "
    "items; with customer_id also without what the customer bought or has in the cart.",
    response_model=SimilarResponse,
    responses={
        404: {"model": ErrorResponse, "description": "The item is not in the catalog"},
        **UNPROCESSABLE,
    },
)
async def similar(
    request: Request, item_id: ItemIdPath, query: Annotated[SimilarQuery, Query()]
) -> Response:
    service = deps.get_service(request)
    customer_id = query.customer_id
    req = rerank_request(query, service.settings, context="home")
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
