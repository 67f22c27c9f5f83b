"""POST /v1/events: record online events (single or batch)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request

from serving.api import deps
from serving.api.errors import UNPROCESSABLE, invalid
from serving.api.schemas import ErrorResponse, EventBatch, EventIn, EventsAccepted
from serving.api.service import StoreUnavailable
from serving.types import OnlineEvent

router = APIRouter(prefix="/v1", tags=["events"])

EXAMPLES: dict[str, Any] = {
    "single": {
        "summary": "One event",
        "value": {"customer_id": "c-123", "item_id": "sku-1042", "event_type": "view"},
    },
    "batch": {
        "summary": "A batch",
        "value": {
            "events": [
                {"customer_id": "c-123", "item_id": "sku-1042", "event_type": "add_to_cart"},
                {
                    "customer_id": "c-123",
                    "item_id": "sku-1042",
                    "event_type": "purchase",
                    "ts": 1735732800.0,
                    "quantity": 1,
                    "price": 19.9,
                },
            ]
        },
    },
}


@router.post(
    "/events",
    summary="Record online events",
    description="Views, cart changes, purchases, email opens and clicks. Each event updates "
    "the customer's online state (recent activity, cart, purchases) used by the next "
    "answer, and is appended to the events stream the offline ingestion reads. A batch "
    "holds at most RECSYS_MAX_EVENTS_PER_BATCH events. 503 when Redis is unavailable "
    "(nothing was stored: retry).",
    response_model=EventsAccepted,
    status_code=202,
    responses={
        413: {"model": ErrorResponse, "description": "Too many events in one batch"},
        **UNPROCESSABLE,
        503: {"model": ErrorResponse, "description": "Redis unavailable; retry"},
    },
)
async def events(
    request: Request,
    body: EventIn | EventBatch = Body(openapi_examples=EXAMPLES),  # noqa: B008
) -> EventsAccepted:
    service = deps.get_service(request)
    items = body.events if isinstance(body, EventBatch) else [body]
    limit = service.settings.max_events_per_batch
    if len(items) > limit:
        raise HTTPException(413, f"batch has {len(items)} events; at most {limit} per call")
    now = time.time()
    online = [
        OnlineEvent(
            customer_id=e.customer_id,
            item_id=e.item_id,
            event_type=e.event_type,
            ts=e.epoch(now),
            quantity=e.quantity,
            price=e.price,
            channel=e.channel,
            session_id=e.session_id,
            value=e.value,
        )
        for e in items
    ]
    try:
        accepted = await service.record_events(online)
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except ValueError as exc:  # the store's own checks (nothing was written)
        raise invalid(("body",), str(exc)) from None
    return EventsAccepted(accepted=accepted)
