"""The query parameters of the GET routes, declared once (pydantic models): FastAPI makes the
OpenAPI parameters from them, and the same models validate every request.

Query strings are decoded by Starlette (``urllib.parse.parse_qsl``: percent-escapes as
UTF-8, ``+`` as a space), so ``?item_id=sku%2C1`` is ``sku,1`` and ``?item_id=a%2Bb`` is
``a+b``. Ids follow the one id rule of ``features.ids``; a list of ids is a repeated
parameter (``?exclude=a&exclude=sku,1``), never split on commas, since ids may hold commas.
An empty value (``?n=``) is the same as no value.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Self

from fastapi import Path
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import AfterValidator
from pydantic_core import PydanticCustomError

from serving.api.errors import invalid
from serving.api.schemas import ID_DESCRIPTION, ID_SCHEMA, Context, checked_id
from serving.rerank import RerankRequest
from serving.settings import Settings

MAX_CATEGORY_LENGTH = 512
MAX_EXCLUDED_CATEGORIES = 50


def _id(value: str, info: ValidationInfo) -> str:
    return checked_id(value, info.field_name or "id")


def _customer_id(value: str) -> str:
    return checked_id(value, "customer_id")


def _item_id(value: str) -> str:
    return checked_id(value, "item_id")


PATH_ID = ", percent-encoded (any id: spaces, `/`, `%`, `?`, `#`, non-ASCII). " + ID_DESCRIPTION
# the length limits are in the schema for the docs; the rule itself (with its message) is
# checked by the validators: a too long id gets the same message everywhere
CustomerIdPath = Annotated[
    str,
    Path(description="The shop's customer id" + PATH_ID, json_schema_extra=ID_SCHEMA),
    AfterValidator(_customer_id),
]
ItemIdPath = Annotated[
    str,
    Path(description="The item" + PATH_ID, json_schema_extra=ID_SCHEMA),
    AfterValidator(_item_id),
]
IdText = Annotated[str, Field(json_schema_extra=ID_SCHEMA)]


class ListQuery(BaseModel):
    """What every list request may ask for (``n``'s upper bound and default are settings:
    ``RECSYS_MAX_N``, ``RECSYS_DEFAULT_N``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    n: int | None = Field(
        None, ge=1, description="How many items (1..RECSYS_MAX_N; default RECSYS_DEFAULT_N)."
    )
    category: str | None = Field(
        None, max_length=MAX_CATEGORY_LENGTH, description="Only items under this category path."
    )
    exclude_category: list[str] = Field(
        default_factory=list,
        description="Never items under these category paths (repeat or comma-separate).",
    )
    exclude: list[IdText] = Field(
        default_factory=list,
        description="Item ids never to return: repeat the parameter, one id each "
        "(`exclude=a&exclude=sku,1`; a comma is part of the id).",
    )
    price_min: float | None = Field(None, allow_inf_nan=False, description="Lowest price.")
    price_max: float | None = Field(None, allow_inf_nan=False, description="Highest price.")

    @field_validator("n", "category", "price_min", "price_max", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("exclude_category")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        names = [v.strip() for part in values for v in part.split(",") if v.strip()]
        if len(names) > MAX_EXCLUDED_CATEGORIES:
            raise PydanticCustomError(
                "too_long", f"at most {MAX_EXCLUDED_CATEGORIES} values allowed, got {len(names)}"
            )
        return names

    @field_validator("exclude", mode="before")
    @classmethod
    def _skip_empty(cls, values: Any) -> Any:
        return [v for v in values if v != ""] if isinstance(values, list) else values

    @field_validator("exclude")
    @classmethod
    def _ids(cls, values: list[str], info: ValidationInfo) -> list[str]:
        return [_id(v, info) for v in values]

    @model_validator(mode="after")
    def _range(self) -> Self:
        low, high = self.price_min, self.price_max
        if low is not None and high is not None and low > high:
            raise PydanticCustomError(
                "price_range", f"price_min ({low}) is above price_max ({high})"
            )
        return self


class SimilarQuery(ListQuery):
    """The query of ``/v1/items/{item_id}/similar``."""

    customer_id: IdText | None = Field(
        None, description="Leave out what this customer bought or has in the cart."
    )

    @field_validator("customer_id")
    @classmethod
    def _customer(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _id(value, info)


class RecommendationQuery(ListQuery):
    """The query of ``/v1/customers/{customer_id}/recommendations``."""

    context: Context = Field(
        "home",
        description="Where the list is shown: home, product (needs item_id), cart "
        "(complements of the cart) or email (frequency capped).",
    )
    item_id: IdText | None = Field(None, description="The product on screen (context=product).")

    @field_validator("context", mode="before")
    @classmethod
    def _default_context(cls, value: Any) -> Any:
        return "home" if value == "" else value

    @field_validator("item_id")
    @classmethod
    def _item(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _id(value, info)

    @model_validator(mode="after")
    def _product_needs_item(self) -> Self:
        if self.context == "product" and self.item_id is None:
            raise PydanticCustomError(
                "missing_item_id", "context=product needs item_id (the product on screen)"
            )
        return self


def rerank_request(
    query: ListQuery, settings: Settings, context: str | None = None
) -> RerankRequest:
    """The re-ranking request of a validated query, with the limits of the settings
    (``context``: the route's own, else the query's)."""
    n = settings.default_n if query.n is None else query.n
    if n > settings.max_n:
        raise invalid(
            ("query", "n"), f"n must be between 1 and {settings.max_n}, got {n}", "less_than_equal"
        )
    if len(query.exclude) > settings.max_exclude:
        raise invalid(
            ("query", "exclude"),
            f"exclude has {len(query.exclude)} values; at most {settings.max_exclude} allowed",
            "too_long",
        )
    if isinstance(query, RecommendationQuery):
        context, item_id = context or query.context, query.item_id
    else:
        item_id = None
    return RerankRequest(
        now=time.time(),
        n=n,
        context=context or "home",
        item_id=item_id,
        category=query.category,
        exclude_categories=tuple(query.exclude_category),
        exclude=tuple(query.exclude),
        price_min=query.price_min,
        price_max=query.price_max,
    )
