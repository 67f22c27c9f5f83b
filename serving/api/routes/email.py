"""POST /v1/email/recommendations: lists for a batch of customers, frequency capped."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from serving.api import deps
from serving.api.errors import UNPROCESSABLE, invalid
from serving.api.schemas import EmailRequest, EmailResponse, ErrorResponse
from serving.rerank import RerankRequest

router = APIRouter(prefix="/v1", tags=["email"])


@router.post(
    "/email/recommendations",
    summary="Email lists for a batch of customers",
    description="The same candidates, rules and online state as the storefront, in the "
    "email context: items bought or in the cart are left out and items sent in the last "
    "emails are capped. With record=true the sends are recorded, so the next batch caps "
    "them. At most RECSYS_MAX_EMAIL_CUSTOMERS customers per call.",
    response_model=EmailResponse,
    responses={
        413: {"model": ErrorResponse, "description": "Too many customers in one call"},
        **UNPROCESSABLE,
    },
)
async def email(request: Request, body: EmailRequest) -> Response:
    service = deps.get_service(request)
    settings = service.settings
    if len(body.customer_ids) > settings.max_email_customers:
        raise HTTPException(
            413,
            f"{len(body.customer_ids)} customers; at most {settings.max_email_customers} per call",
        )
    if body.n > settings.max_n:
        raise invalid(
            ("body", "n"),
            f"n must be between 1 and {settings.max_n}, got {body.n}",
            "less_than_equal",
        )
    if len(body.exclude) > settings.max_exclude:
        raise invalid(
            ("body", "exclude"),
            f"exclude has {len(body.exclude)} values; at most {settings.max_exclude} allowed",
            "too_long",
        )
    customer_ids = list(dict.fromkeys(body.customer_ids))  # each customer once
    req = RerankRequest(
        now=time.time(),
        n=body.n,
        context="email",
        category=body.category,
        exclude_categories=tuple(body.exclude_categories),
        exclude=tuple(body.exclude),
        price_min=body.price_min,
        price_max=body.price_max,
    )
    answer, lists = await service.email_batch(customer_ids, req, record=body.record)
    fragment = orjson.Fragment
    if answer.degraded:
        service.metrics.degraded.labels("email", answer.cause or "").inc()
    return deps.JSONBytes(
        {
            "version": answer.version,
            "degraded": answer.degraded,
            "recorded": body.record and not answer.degraded,
            "results": [
                {"customer_id": cid, "items": fragment(items)}
                for cid, items in zip(customer_ids, lists, strict=True)
            ],
        }
    )
