"""Request and response models of the HTTP API (they also make the OpenAPI docs)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from features.ids import MAX_ID_LENGTH, check_id
from features.time_bounds import time_problem

Context = Literal["home", "product", "cart", "email"]
EVENT_TYPES = (
    "view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "email_open",
    "email_click",
)  # features.schema.DEFAULT_EVENT_TYPES (serving does not import the offline package)
EventType = Literal[
    "view", "add_to_cart", "remove_from_cart", "purchase", "email_open", "email_click"
]

ITEM_EXAMPLE: dict[str, Any] = {
    "item_id": "sku-1042",
    "score": 2.13,
    "reason": "because you viewed sku-77",
    "reason_code": "similar_to_viewed",
}


class RankedItemOut(BaseModel):
    """One recommended item and why."""

    item_id: str
    score: float = Field(description="Ranking value, higher is better (comparable in a list).")
    reason: str = Field(description='For people: "for you", "because you viewed X", ...')
    reason_code: str = Field(
        description="for_you | similar_to_viewed | similar_to_cart | similar_to_item | "
        "trending_in_category | popular | trending"
    )
    model_config = ConfigDict(json_schema_extra={"example": ITEM_EXAMPLE})


class AnswerMeta(BaseModel):
    version: str | None = Field(
        description="The published model version that answered (null: nothing to answer from)."
    )
    degraded: bool = Field(
        description="True when answered from the local popular/trending copy because Redis "
        "or the active version was unavailable."
    )


class RecommendationsResponse(AnswerMeta):
    customer_id: str
    context: Context
    items: list[RankedItemOut]
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "customer_id": "c-123",
                "context": "home",
                "version": "20250101-120000",
                "degraded": False,
                "items": [ITEM_EXAMPLE],
            }
        }
    )


class SimilarResponse(AnswerMeta):
    item_id: str
    customer_id: str | None = None
    items: list[RankedItemOut]


ID_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": MAX_ID_LENGTH}
"""The JSON schema of an id's length (the full rule, ``features.ids``, is checked by a
validator that names the problem)."""
ID_DESCRIPTION = (
    "Any Unicode text of 1 to 256 characters without control characters or leading or "
    "trailing whitespace (spaces inside, punctuation and non-ASCII letters are fine)."
)


def checked_id(value: str, what: str) -> str:
    """``value`` when it is a valid id (``features.ids``), else a validation error whose
    message is the rule's own (type ``invalid_id``)."""
    try:
        return check_id(value, what)
    except ValueError as exc:
        raise PydanticCustomError("invalid_id", str(exc)) from None


class EventIn(BaseModel):
    """One online event of a customer."""

    customer_id: str = Field(
        examples=["c-123"], description=ID_DESCRIPTION, json_schema_extra=ID_SCHEMA
    )
    item_id: str = Field(
        examples=["sku-1042", "tropical fruit"],
        description=ID_DESCRIPTION,
        json_schema_extra=ID_SCHEMA,
    )
    event_type: EventType
    ts: float | datetime | None = Field(
        None, description="Epoch seconds or an ISO-8601 time; default: when received."
    )
    quantity: float | None = Field(None, allow_inf_nan=False)
    price: float | None = Field(None, allow_inf_nan=False)
    channel: str | None = Field(None, max_length=32, examples=["web"])
    session_id: str | None = Field(None, max_length=256)
    value: float | None = Field(None, allow_inf_nan=False)
    model_config = ConfigDict(extra="forbid")

    @field_validator("ts")
    @classmethod
    def _ts_in_range(cls, value: float | datetime | None) -> float | datetime | None:
        if value is None:
            return value
        if isinstance(value, datetime):
            epoch = value.timestamp()  # as epoch() reads it
        elif not math.isfinite(value):
            raise ValueError("ts must be a finite number of epoch seconds")
        else:
            epoch = float(value)
        problem = time_problem(epoch, time.time())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("customer_id", "item_id")
    @classmethod
    def _ids(cls, value: str, info: object) -> str:
        return checked_id(value, getattr(info, "field_name", "id"))

    def epoch(self, default: float) -> float:
        if self.ts is None:
            return default
        return self.ts.timestamp() if isinstance(self.ts, datetime) else float(self.ts)


class EventBatch(BaseModel):
    """Many events in one call (at most ``RECSYS_MAX_EVENTS_PER_BATCH``)."""

    events: list[EventIn] = Field(min_length=1)
    model_config = ConfigDict(extra="forbid")


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events stored and appended to the events stream.")


class EmailRequest(BaseModel):
    """Email lists for a batch of customers (at most ``RECSYS_MAX_EMAIL_CUSTOMERS``)."""

    customer_ids: list[str] = Field(min_length=1, examples=[["c-1", "c-2"]])
    n: int = Field(10, ge=1, description="Items per customer (at most RECSYS_MAX_N).")
    record: bool = Field(False, description="Record the sends so the next emails cap these items.")
    category: str | None = Field(None, max_length=512)
    exclude_categories: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="Item ids never to send.")
    price_min: float | None = None
    price_max: float | None = None
    model_config = ConfigDict(extra="forbid")

    @field_validator("customer_ids", "exclude")
    @classmethod
    def _ids(cls, values: list[str], info: object) -> list[str]:
        what = "customer_id" if getattr(info, "field_name", "") == "customer_ids" else "item_id"
        return [checked_id(v, what) for v in values]


class EmailList(BaseModel):
    customer_id: str
    items: list[RankedItemOut]


class EmailResponse(AnswerMeta):
    recorded: bool = Field(description="Whether the sends were recorded for frequency capping.")
    results: list[EmailList]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    version: str | None
    degraded: bool
    cause: str | None = Field(None, description="redis_unavailable | no_active_version")
    compiled: bool = Field(
        description="This worker runs the numba-compiled kernels (false: interpreted, while "
        "a cold start compiles them)"
    )


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["n must be between 1 and 100"])
