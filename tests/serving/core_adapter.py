"""The compiled core called the way the reference re-ranker is, for tests: the state is
encoded as the store writes it (``serving.store.codec``) and the answer's JSON read back."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest
from rerank_reference import Seed, session_seeds

from serving.core.arrays import (
    config_arrays,
    fill_similar,
    request_arrays,
    request_trend,
    state_arrays,
    version_arrays,
)
from serving.core.run import NeedLists, rank_one
from serving.rerank import SIMILAR_TO_ITEM, Fallback, RerankConfig, RerankRequest
from serving.store.codec import encode_activity, encode_email_send, encode_ranked, encode_ts
from serving.types import Candidates, ItemTable, OnlineState, RankedItem


def raw_state(
    candidates: Candidates, state: OnlineState
) -> tuple[bytes | None, list[bytes], list[bytes], list[bytes], list[bytes]]:
    """The replies Redis would send for this candidates list and state."""
    payload = encode_ranked(candidates.items, candidates.scores) if len(candidates) else None
    recent = [encode_activity(a.ts, a.event_type, a.item_id).encode() for a in state.recent]
    cart = [i.encode() for i in state.cart]
    bought = [w.encode() for item, ts in state.purchased.items() for w in (item, encode_ts(ts))]
    mailed = [
        w.encode()
        for item, stamps in state.email_sent.items()
        for ts in stamps
        for w in (encode_email_send(item, ts), repr(ts))
    ]
    return payload, recent, cart, bought, mailed


def core_rerank(
    table: ItemTable,
    candidates: Candidates,
    state: OnlineState,
    similar: Mapping[str, Candidates],
    fallback: Fallback,
    request: RerankRequest,
    config: RerankConfig,
    only_item_seed: bool = False,
) -> list[RankedItem]:
    """The core's answer for one request, as RankedItems."""
    arrays = version_arrays(table, fallback, config, built_at=0.0)
    ids = [str(i) for i in table.item_ids.tolist()]
    arrays = fill_similar(
        arrays, range(len(ids)), [similar.get(i, Candidates.empty()) for i in ids]
    )
    req = request_arrays(
        arrays, table, request, lambda name: request_trend(fallback, name), only_item_seed
    )
    got = rank_one(arrays, config_arrays(config), req, state_arrays(*raw_state(candidates, state)))
    assert not isinstance(got, NeedLists)
    return [
        RankedItem(d["item_id"], d["score"], d["reason"], d["reason_code"])
        for d in orjson.loads(got.json)
    ]


def core_as_rerank(
    table: ItemTable,
    candidates: Candidates,
    state: OnlineState,
    seeds: tuple[Seed, ...],
    similar: Mapping[str, Candidates],
    fallback: Fallback,
    request: RerankRequest,
    config: RerankConfig,
) -> list[RankedItem]:
    """The core with the reference's signature: the seeds must be the ones the core derives
    (the session's, or the product alone as for similar items); others are skipped."""
    if seeds == session_seeds(state, request, config):
        return core_rerank(table, candidates, state, similar, fallback, request, config)
    if seeds == (Seed(str(request.item_id), 1.0, SIMILAR_TO_ITEM),):
        return core_rerank(table, candidates, state, similar, fallback, request, config, True)
    pytest.skip("seeds the core does not derive itself: the reference's own case")
