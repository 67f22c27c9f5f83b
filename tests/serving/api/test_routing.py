"""DeclaredRoute reads a route's declared parameters exactly as FastAPI's own handler does,
documents them the same, and refuses what it does not read."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import Response

from serving.api.deps import JSONBytes
from serving.api.errors import validation_error
from serving.api.params import CustomerIdPath, RecommendationQuery
from serving.api.routing import DeclaredRoute


async def echo(
    request: Request,
    customer_id: CustomerIdPath,
    query: Annotated[RecommendationQuery, Query()],
) -> Response:
    return JSONBytes({"customer_id": customer_id, "query": query.model_dump()})


def app_with(route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI()
    app.router.route_class = route_class
    app.add_api_route("/c/{customer_id:path}", echo, methods=["GET"])
    app.add_exception_handler(RequestValidationError, validation_error)
    return app


QUERIES = [
    "",
    "n=3",
    "n=",
    "n=abc",
    "n=0",
    "n=2&n=5",  # the last value
    "context=product&item_id=rolls%2Fbuns",
    "context=product",
    "context=checkout",
    "context=",
    "item_id=%20padded",
    "item_id=",
    "exclude=a+b&exclude=a%2Bb&exclude=sku%2C1&exclude=",
    "exclude=ok&exclude=%09tab",
    "exclude_category=Books,Home%20%3E%20Garden&exclude_category=Toys",
    "exclude_category=" + ",".join("x" * 51),
    "category=%20Books%20",
    "category=" + "x" * 513,
    "price_min=1.5&price_max=9",
    "price_min=9&price_max=1",
    "price_min=inf",
    "price_max=nan",
    "price_min=cheap",
    "unknown=1&n=4",
    "n=abc&context=nope&exclude=%20x&price_max=nan",  # every problem at once
]
PATHS = ["c1", "c%2F1", "%E5%95%86%20%E5%AE%A2", "c%091", "c1%20", "x" * 300]


@pytest.mark.parametrize("path", PATHS)
def test_declared_route_reads_like_fastapi(path: str) -> None:
    ours, fastapis = TestClient(app_with(DeclaredRoute)), TestClient(app_with(APIRoute))
    for query in QUERIES:
        url = f"/c/{path}?{query}"
        a, b = ours.get(url), fastapis.get(url)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), url


def test_declared_route_documents_like_fastapi() -> None:
    ours, fastapis = app_with(DeclaredRoute).openapi(), app_with(APIRoute).openapi()
    assert ours == fastapis
    params = ours["paths"]["/c/{customer_id}"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["customer_id", *RecommendationQuery.model_fields]


def test_declared_route_refuses_what_it_does_not_read() -> None:
    async def with_body(request: Request, body: Annotated[dict[str, Any], Body()]) -> Response:
        return Response()

    async def with_dependency(request: Request, n: int = Depends(lambda: 1)) -> Response:  # noqa: B008
        return Response()

    for endpoint, problem in ((with_body, "a body"), (with_dependency, "dependencies")):
        app = FastAPI()
        app.router.route_class = DeclaredRoute
        with pytest.raises(TypeError, match=problem):
            app.add_api_route("/x", endpoint, methods=["POST"])
