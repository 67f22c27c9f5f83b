"""Hypothesis strategies for ids under the one id rule (``features.ids``), shared by the
rule's own tests and the round trip through ingest -> publish -> API -> export."""

from __future__ import annotations

from hypothesis import strategies as st

from features.ids import MAX_ID_LENGTH, WHITESPACE

ODD_IDS = (
    "tropical fruit",
    "liquor (appetizer)",
    "rolls/buns",
    "sku,1",
    "Größe-42",
    "商品123",
    'say "cheese"',
    "it's",
    "{c:42}",
    "}{",
    "a%2Fb",
    "100%",
    "why?",
    "#1",
    "a&b=c",
    "a+b",
    "x" * (MAX_ID_LENGTH - 1) + "é",
    "😀",
    "007",
    "7",
    "+7",
    "-7",
    "a\u00a0b",  # a no-break space inside
    "\u200bzero-width",  # not White_Space: a valid first character
)
"""Ids real exports hold (and the ones ASCII-only or split-on-comma code gets wrong)."""

_PUNCTUATION = " ,;()[]{}<>/\\\"'#%?&+=:@!*|~^`$"
_inner = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    st.sampled_from(_PUNCTUATION),
)
_edge = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters=WHITESPACE),
    st.sampled_from(_PUNCTUATION.strip()),
)


@st.composite
def _built(draw: st.DrawFn) -> str:
    first = draw(_edge)
    length = draw(st.one_of(st.integers(0, 20), st.just(MAX_ID_LENGTH - 2)))
    if length == 0:
        return first
    middle = draw(st.text(_inner, min_size=length - 1, max_size=length - 1))
    return first + middle + draw(_edge)


valid_ids = st.one_of(st.sampled_from(ODD_IDS), _built())
"""Any id the rule allows, biased towards spaces, punctuation, non-ASCII and the limits."""

invalid_ids = st.one_of(
    st.just(""),
    st.builds(lambda s: s + "x" * (MAX_ID_LENGTH + 1 - len(s)), valid_ids),  # too long
    st.builds(lambda s, w: w + s, valid_ids, st.sampled_from(WHITESPACE)),  # padded
    st.builds(lambda s, w: s + w, valid_ids, st.sampled_from(WHITESPACE)),
    st.builds(  # a control character anywhere
        lambda s, c, k: s[: k % (len(s) + 1)] + c + s[k % (len(s) + 1) :],
        valid_ids,
        st.characters(categories=("Cc",)),
        st.integers(0, 300),
    ),
)
"""Ids the rule rejects (none has a lone surrogate: polars strings cannot hold one)."""
