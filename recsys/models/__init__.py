"""Models: one contract (``recsys.models.base.RecommenderBase``), built by name.

``build(name, **params)`` knows: popularity, itemknn, rp3beta, als, bpr, lightfm, ease,
session_ease (EASE + session transitions), blend.
Model modules are imported on demand, so importing this package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from recsys.models.base import RecommenderBase

MODELS: dict[str, str] = {
    "popularity": "recsys.models.popularity:Popularity",
    "itemknn": "recsys.models.item_item:ItemKNN",
    "rp3beta": "recsys.models.item_item:RP3beta",
    "als": "recsys.models.implicit_mf:ALS",
    "bpr": "recsys.models.implicit_mf:BPR",
    "lightfm": "recsys.models.hybrid:LightFM",
    "ease": "recsys.models.ease:EASE",
    "session_ease": "recsys.models.session_ease:SessionEASE",
    "blend": "recsys.models.blend:Blend",
}


def model_class(name: str) -> type[RecommenderBase]:
    """The class registered under ``name``."""
    try:
        module_name, _, class_name = MODELS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    klass: type[RecommenderBase] = getattr(importlib.import_module(module_name), class_name)
    return klass


def build(name: str, **params: Any) -> RecommenderBase:
    """A new, unfitted model: ``build("als", factors=128)``. Unknown parameters are an error."""
    klass = model_class(name)
    try:
        return klass(**params)
    except TypeError as error:
        raise ValueError(f"bad parameters for model {name!r}: {error}") from None


load = RecommenderBase.load

__all__ = ["MODELS", "RecommenderBase", "build", "load", "model_class"]
