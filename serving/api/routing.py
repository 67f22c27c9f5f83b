"""A route class for the hot GET routes: parameters declared the FastAPI way (the
endpoint's signature: ``Annotated`` path parameters, one pydantic model for the query),
which make the OpenAPI and the validation rules, read per request without FastAPI's
dependency machinery.

Measured with ``bench/api_request_cost.py`` (docs/api_layer.md), FastAPI's request handler
(``solve_dependencies`` and ``request_params_to_args``: scopes, exit stacks, alias lookups)
cost the storefront's request far more than the ~10% the project allows for reading
parameters, although the validation itself (pydantic-core) is a few microseconds.
:class:`DeclaredRoute` builds a plan from the route's own ``dependant`` once (which
parameters, which are repeated) and per request validates the path parameters with
FastAPI's own fields and the query with its declared model: the same rules and the same
errors (a :class:`RequestValidationError`), one definition.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi._compat.shared import field_annotation_is_sequence
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Coroutine[Any, Any, Response]]


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """How to read one query model: its endpoint argument and, for each parameter name,
    whether it is repeated (a list: every value) or not (the last value, as FastAPI)."""

    model: type[BaseModel]
    argument: str
    repeated: dict[str, bool]

    @classmethod
    def of(cls, field: Any) -> QueryPlan:
        """The plan of a query model declared as ``Annotated[Model, Query()]``."""
        model = field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"query parameter {field.name!r}: declare the query as one model")
        if model.model_config.get("extra", "ignore") != "ignore":
            raise TypeError(f"{model.__name__}: a query model must ignore other parameters")
        repeated = {
            (f.alias or name): field_annotation_is_sequence(f.annotation)
            for name, f in model.model_fields.items()
        }
        return cls(model=model, argument=field.name, repeated=repeated)

    def read(self, query: QueryParams) -> tuple[Any, list[Any]]:
        """(the model, errors located under ``query``) of a query string."""
        values: dict[str, Any] = {}
        repeated = self.repeated
        for name, value in query.items():  # each name once, with its last value
            many = repeated.get(name)
            if many is not None:
                values[name] = query.getlist(name) if many else value
        try:
            return self.model.model_validate(values), []
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            return None, [{**e, "loc": ("query", *e["loc"])} for e in errors]


class DeclaredRoute(APIRoute):
    """An :class:`APIRoute` whose endpoint takes ``request``, path parameters and one query
    model only, and returns a :class:`Response` itself (anything else is refused when the
    route is built)."""

    def get_route_handler(self) -> Handler:
        dependant = self.dependant
        unsupported = {
            "dependencies": bool(dependant.dependencies),
            "a body": bool(dependant.body_params) or self.body_field is not None,
            "headers or cookies": bool(dependant.header_params or dependant.cookie_params),
            "more than one query model": len(dependant.query_params) > 1,
            "a request argument not named `request`": dependant.request_param_name
            not in (None, "request"),
        }
        if any(unsupported.values()):
            problems = ", ".join(k for k, v in unsupported.items() if v)
            raise TypeError(f"{self.path}: DeclaredRoute does not support {problems}")
        endpoint: Endpoint = self.endpoint
        paths = tuple((f.name, f.alias, f) for f in dependant.path_params)
        plan = QueryPlan.of(dependant.query_params[0]) if dependant.query_params else None
        takes_request = dependant.request_param_name == "request"

        async def handler(request: Request) -> Response:
            values: dict[str, Any] = {"request": request} if takes_request else {}
            errors: list[Any] = []
            path_params = request.path_params
            for name, alias, field in paths:
                value, found = field.validate(path_params[alias], values, loc=("path", alias))
                values[name] = value
                errors += found
            if plan is not None:
                model, found = plan.read(request.query_params)
                values[plan.argument] = model
                errors += found
            if errors:
                raise RequestValidationError(errors)
            return await endpoint(**values)

        return handler
