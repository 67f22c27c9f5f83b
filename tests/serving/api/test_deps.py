"""The route dependencies: the hand-split query string is Starlette's parse."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from serving.api import deps


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"n=10&context=home",
        b"exclude=a&exclude=b,c&n=3",
        b"n=&flag&&context=cart&",
        b"category=Home%20%3E%20Kitchen&n=5",
        b"category=Home+Kitchen",
        b"item_id=caf\xc3\xa9&n=2",
        b"a=1=2&b==",
    ],
)
def test_query_params_match_starlette(query: bytes) -> None:
    request = Request({"type": "http", "query_string": query, "headers": []})
    got = deps.query_params(request)
    expected = request.query_params
    assert got.multi_items() == expected.multi_items()
