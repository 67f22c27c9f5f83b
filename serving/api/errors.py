"""The one shape of a 422 answer, whatever found the problem (FastAPI's validation of a body
or a parameter, the id rule of ``features.ids``, a limit of the settings, the store's own
checks): ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}, ...]}``, FastAPI's
shape without the offending input (it may not even be representable in JSON, e.g. an
infinite number)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.responses import Response


class ValidationProblem(BaseModel):
    """One problem of a request."""

    loc: list[str | int] = Field(
        description='Where: ["query", "n"], ["path", "customer_id"], ["body", "events", 0, '
        '"item_id"], ...',
        examples=[["query", "n"]],
    )
    msg: str = Field(description="What is wrong.", examples=["n must be between 1 and 100"])
    type: str = Field(description="A machine-readable kind.", examples=["less_than_equal"])


class ValidationErrorResponse(BaseModel):
    """The body of every 422 answer."""

    detail: list[ValidationProblem]


UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ValidationErrorResponse,
        "description": "Invalid input: `detail` lists each problem (where, what, its kind).",
    }
}
"""The 422 response of every route's OpenAPI (``responses=`` of the route decorators)."""


def invalid(
    loc: Sequence[str | int], msg: str, kind: str = "value_error"
) -> RequestValidationError:
    """A 422 for a problem found outside FastAPI's own validation (raise it)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": kind}])


def problems(errors: Sequence[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """The problems of a pydantic or FastAPI error list, in the shape of the 422 body."""
    return [
        {
            "loc": [*prefix, *(x if isinstance(x, int) else str(x) for x in e.get("loc", ()))],
            "msg": e.get("msg", ""),
            "type": e.get("type", "value_error"),
        }
        for e in errors
    ]


async def validation_error(request: Request, exc: Exception) -> Response:
    """The handler of :class:`RequestValidationError` (every 422 of the API)."""
    assert isinstance(exc, RequestValidationError)
    body = orjson.dumps({"detail": problems(exc.errors())})
    return Response(body, status_code=422, media_type="application/json")
