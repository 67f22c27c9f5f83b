"""What the routes share: the service, the settings, and the JSON of answers (the query
parameters are declared in ``serving.api.params``)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from serving.api.schemas import EVENT_TYPES
from serving.api.service import Answer, RecommendationService
from serving.settings import Settings

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


def answer_items(answer: Answer) -> orjson.Fragment:
    """An answer's items for a JSON body (the core already wrote them)."""
    return orjson.Fragment(answer.json)
