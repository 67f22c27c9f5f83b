"""Everything a route depends on, in one place: the service, the settings, and the parsing
and validation of query parameters (ids are checked before they reach Redis).

Query strings are decoded by Starlette (``urllib.parse.parse_qsl``: percent-escapes as
UTF-8, ``+`` as a space), so ``?item_id=sku%2C1`` is ``sku,1`` and ``?item_id=a%2Bb`` is
``a+b``. Ids follow the one id rule of ``features.ids``; a list of ids is a repeated
parameter (``?exclude=a&exclude=sku,1``), never split on commas, since ids may hold commas.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from fastapi import HTTPException, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from features.ids import check_id
from serving.api import schemas
from serving.api.schemas import EVENT_TYPES
from serving.api.service import Answer, RecommendationService
from serving.rerank import CONTEXTS, RerankRequest
from serving.settings import Settings
from serving.types import RankedItem

__all__ = ["EVENT_TYPES", "JSONBytes", "get_service", "get_settings"]


class JSONBytes(Response):
    """A JSON response serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def get_service(request: Request) -> RecommendationService:
    service: RecommendationService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    return get_service(request).settings


def bad_request(message: str, status: int = 422) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def valid_id(value: str, what: str) -> str:
    """``value`` when it is a valid external id, else a 422 naming the problem."""
    try:
        return check_id(value, what)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _int(q: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(q: dict[str, str], name: str) -> float | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise bad_request(f"{name} must be finite")
    return value


def _list(q: QueryParams, name: str, limit: int) -> tuple[str, ...]:
    """Repeated (``?exclude_category=a&exclude_category=b``) or comma-separated
    (``?exclude_category=a,b``) values: for names, not ids (see :func:`_ids`)."""
    raw = q.getlist(name)
    if not raw:
        return ()
    values = [v.strip() for part in raw for v in part.split(",") if v.strip()]
    if len(values) > limit:
        raise bad_request(f"{name} has {len(values)} values; at most {limit} allowed")
    return tuple(values)


def _ids(q: QueryParams, name: str, limit: int) -> tuple[str, ...]:
    """The ids of a repeated parameter (``?exclude=a&exclude=sku,1``), each as sent (a comma
    is part of the id); empty values are skipped, any other invalid id is a 422."""
    values = [v for v in q.getlist(name) if v != ""]
    if len(values) > limit:
        raise bad_request(f"{name} has {len(values)} values; at most {limit} allowed")
    return tuple(valid_id(v, name) for v in values)


def _category(q: dict[str, str], name: str) -> str | None:
    value = q.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > 512:
        raise bad_request(f"{name} is longer than 512 characters")
    return value.strip()


def rerank_request(
    query: QueryParams, settings: Settings, *, context: str | None = None
) -> RerankRequest:
    """The re-ranking request a query string describes; 422 naming the first problem."""
    q = dict(query.items())  # the last value of each name, read with a plain dict's get
    n = _int(q, "n", settings.default_n, 1, settings.max_n)
    if context is None:
        context = q.get("context") or "home"
        if context not in CONTEXTS:
            raise bad_request(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
    item_id = q.get("item_id")
    if item_id is not None:
        item_id = valid_id(item_id, "item_id")
    elif context == "product":
        raise bad_request("context=product needs item_id (the product on screen)")
    low, high = _float(q, "price_min"), _float(q, "price_max")
    if low is not None and high is not None and low > high:
        raise bad_request(f"price_min ({low}) is above price_max ({high})")
    return RerankRequest(
        now=time.time(),
        n=n,
        context=context,
        item_id=item_id,
        category=_category(q, "category"),
        exclude_categories=(
            _list(query, "exclude_category", 50) if "exclude_category" in q else ()
        ),
        exclude=_ids(query, "exclude", settings.max_exclude) if "exclude" in q else (),
        price_min=low,
        price_max=high,
    )


def items_json(items: list[RankedItem]) -> list[dict[str, Any]]:
    return [
        {"item_id": r.item_id, "score": r.score, "reason": r.reason, "reason_code": r.reason_code}
        for r in items
    ]


def answer_items(answer: Answer) -> Any:
    """An answer's items for a JSON body: as they are when the compiled path already wrote
    them (``serving.fastpath``), else :func:`items_json`."""
    return orjson.Fragment(answer.json) if answer.json is not None else items_json(answer.items)


ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input; `detail` names the problem."},
}
"""Error responses shared by the routes' OpenAPI docs."""


ID_SCHEMA: dict[str, Any] = {"type": "string", **schemas.ID_SCHEMA}
"""The OpenAPI schema of an id parameter."""


def query_param(
    name: str,
    description: str,
    schema: dict[str, Any],
    where: str = "query",
    *,
    explode: bool | None = None,
) -> dict:
    """An OpenAPI parameter (routes parse their query by hand on the hot path); ``explode``:
    an array sent as a repeated parameter (``?a=1&a=2``, OpenAPI's ``form`` style)."""
    param = {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }
    if explode is not None:
        param.update(style="form", explode=explode)
    return param
