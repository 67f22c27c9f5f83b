"""Compile (or load from numba's cache) the core for the argument types the service passes,
before the first request: one request and one batch on a two-item catalog."""

from __future__ import annotations

import numpy as np

from serving import kernels
from serving.core.arrays import (
    config_arrays,
    fill_similar,
    request_arrays,
    request_trend,
    state_arrays,
    version_arrays,
)
from serving.core.run import batch_of, rank_batch, rank_one
from serving.rerank import Fallback, RerankConfig, RerankRequest
from serving.types import Candidates, ItemTable


def warm_up() -> None:
    from serving.store.codec import encode_activity, encode_email_send, encode_ranked

    table = ItemTable(
        version="warm-up",
        item_ids=np.array(["a", "b"], dtype=object),
        category=np.zeros(2, np.int32),
        categories=("c",),
        price=np.ones(2, np.float32),
        in_stock=np.ones(2, np.bool_),
        created_at=np.zeros(2),
        repeatable=np.zeros(2, np.bool_),
    )
    one = Candidates(np.ones(1, np.int32), np.ones(1, np.float32))
    fallback = Fallback(popular=one, trending=one, trending_by_category={"c": one})
    config = RerankConfig()
    arrays = version_arrays(table, fallback, config, built_at=0.0)
    arrays = fill_similar(arrays, [0, 1], [one, Candidates.empty()])
    state = state_arrays(
        encode_ranked(np.zeros(1, np.int64), np.ones(1)),
        [encode_activity(0.5, "view", "a").encode()],
        [b"b"],
        [b"a", b"1.000000"],
        [encode_email_send("a", 0.5).encode(), b"0.5"],
    )
    for diversity in ("cap", "mmr"):
        c = config_arrays(RerankConfig(diversity=diversity))
        for request in (
            RerankRequest(now=1.0, n=1, exclude=("b",)),
            RerankRequest(now=1.0, n=2, context="email", category="c", price_min=0.5),
        ):
            r = request_arrays(arrays, table, request, lambda name: request_trend(fallback, name))
            rank_one(arrays, c, r, state)
            rank_batch(arrays, c, r, batch_of([state, state]))
    kernels.warm_up()
