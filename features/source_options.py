"""How to read one shop's export: :class:`SourceOptions`, the same from the CLI and from files.

``recsys ingest`` flags and an experiment file's ``[data]`` keys carry the same options under
the same names (a flag ``--event-alias a=b`` is the key ``event_aliases = { a = "b" }``):

============================  =========================================  =====================
CLI                           ``[data]`` key                             meaning
============================  =========================================  =====================
``--layout NAME``             ``layout = "NAME"``                        built-in export shape
``--mapping raw=canonical``   ``mapping = { raw = "canonical" }``        rename columns
``--set column=value``        ``set = { event_type = "purchase" }``      a constant column
``--timestamp-format F``      ``timestamp_format = "%d-%m-%Y"``          tried before ISO
``--timezone ZONE``           ``timezone = "Europe/London"``             of naive times
``--event-alias raw=type``    ``event_aliases = { transaction = ... }``  rename event types
``--event-type name=weight``  ``event_types = { wishlist = 2.0 }``       accept + weigh a type
``--catalog FILE``            ``catalog = "FILE"``                       item details
``--customers FILE``          ``customers = "FILE"``                     customer attributes
``--rating-threshold X``      ``rating_threshold = 4.0``                 movielens only
============================  =========================================  =====================

``recsys ingest`` writes the options it used to ``source.json`` in its output folder
(:func:`write_source_file`), so the ingest can be repeated and ``recsys build`` / training
find the weights of the extra event types there.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from features.layouts import get_layout
from features.schema import RAW_EVENT_COLUMNS, EventTypes
from features.sources import SourceError, parse_pairs
from features.timestamps import check_timezone
from features.validate import ValidationConfig

SOURCE_FILE = "source.json"
"""The options an ingest used, next to its report.json."""

KEYS: tuple[str, ...] = (
    "layout",
    "mapping",
    "set",
    "timestamp_format",
    "timezone",
    "event_aliases",
    "event_types",
    "catalog",
    "customers",
    "rating_threshold",
)
"""The option names (``[data]`` keys; CLI flags are the same words)."""


@dataclass(frozen=True)
class SourceOptions:
    """Everything about reading one export; checked when built (a bad value is a SourceError)."""

    layout: str = "canonical"
    mapping: Mapping[str, str] = field(default_factory=dict)
    """Raw column -> canonical column."""
    constants: Mapping[str, str] = field(default_factory=dict)
    """Canonical column -> the value of every row (``set``), for a column the export lacks."""
    timestamp_format: str | None = None
    """A polars/chrono strftime format tried before the built-in ones; turns detection off."""
    timezone: str = "UTC"
    event_aliases: Mapping[str, str] = field(default_factory=dict)
    event_types: Mapping[str, float] = field(default_factory=dict)
    """Event types to accept beyond the built-in ones, with their interaction weights."""
    catalog: str | None = None
    customers: str | None = None
    rating_threshold: float | None = None

    def __post_init__(self) -> None:
        layout = get_layout(self.layout)
        try:
            check_timezone(self.timezone)
        except ValueError as error:
            raise SourceError(str(error)) from None
        bad = [c for c in self.constants if c not in RAW_EVENT_COLUMNS]
        if bad:
            raise SourceError(
                f"set: {bad} are not event columns; choose from {', '.join(RAW_EVENT_COLUMNS)}"
            )
        weights = {k: v for k, v in self.event_types.items() if not _finite(v)}
        if weights:
            raise SourceError(f"event_types: weights must be finite numbers, not {weights}")
        known = set(layout.config(self.validation_config()).known_event_types)
        unknown = {k: v for k, v in self.event_aliases.items() if v not in known}
        if unknown:
            raise SourceError(
                f"event_aliases: {unknown} name unknown event types; known: {sorted(known)} "
                "(declare new ones with event_types / --event-type name=weight)"
            )
        if self.rating_threshold is not None and self.layout != "movielens":
            raise SourceError("rating_threshold applies to the movielens layout only")

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceOptions:
        """From ``[data]``-style keys (:data:`KEYS`; others are refused)."""
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise SourceError(f"unknown source option(s) {unknown}; known: {', '.join(KEYS)}")
        threshold = data.get("rating_threshold")
        return cls(
            layout=_text(data, "layout") or "canonical",
            mapping=_table(data, "mapping", str),
            constants=_table(data, "set", str),
            timestamp_format=_text(data, "timestamp_format"),
            timezone=_text(data, "timezone") or "UTC",
            event_aliases=_table(data, "event_aliases", str),
            event_types=_table(data, "event_types", float),
            catalog=_text(data, "catalog"),
            customers=_text(data, "customers"),
            rating_threshold=None if threshold is None else _number("rating_threshold", threshold),
        )

    @classmethod
    def from_cli(
        cls,
        *,
        layout: str = "canonical",
        mapping: Sequence[str] = (),
        constants: Sequence[str] = (),
        timestamp_format: str | None = None,
        timezone: str = "UTC",
        event_aliases: Sequence[str] = (),
        event_types: Sequence[str] = (),
        catalog: str | Path | None = None,
        customers: str | Path | None = None,
        rating_threshold: float | None = None,
    ) -> SourceOptions:
        """From repeatable ``name=value`` flags (``--set event_type=purchase``)."""
        return cls.from_dict(
            {
                "layout": layout,
                "mapping": parse_pairs(mapping, "--mapping", "raw_column=canonical_column"),
                "set": parse_pairs(constants, "--set", "column=value"),
                "timestamp_format": timestamp_format,
                "timezone": timezone,
                "event_aliases": parse_pairs(event_aliases, "--event-alias", "raw=event_type"),
                "event_types": parse_pairs(event_types, "--event-type", "name=weight"),
                "catalog": None if catalog is None else str(catalog),
                "customers": None if customers is None else str(customers),
                "rating_threshold": rating_threshold,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, under the ``[data]`` key names; :meth:`from_dict` reads it back."""
        return {
            "layout": self.layout,
            "mapping": dict(self.mapping),
            "set": dict(self.constants),
            "timestamp_format": self.timestamp_format,
            "timezone": self.timezone,
            "event_aliases": dict(self.event_aliases),
            "event_types": dict(self.event_types),
            "catalog": self.catalog,
            "customers": self.customers,
            "rating_threshold": self.rating_threshold,
        }

    # ---- use ------------------------------------------------------------------------------
    @property
    def layout_options(self) -> dict[str, Any]:
        """Keyword options for the layout's reader."""
        if self.rating_threshold is None:
            return {}
        return {"rating_threshold": self.rating_threshold}

    @property
    def weights(self) -> dict[str, float]:
        """Interaction weights of the declared event types."""
        return {name: float(weight) for name, weight in self.event_types.items()}

    def validation_config(self, base: ValidationConfig | None = None) -> ValidationConfig:
        """``base`` (or the defaults) with these options' event types, aliases and timestamp
        reading (the layout adds its own on top: ``Layout.config``)."""
        base = base or ValidationConfig()
        names = base.event_types
        extra = tuple(t for t in self.event_types if t not in names.all)
        formats = (self.timestamp_format,) if self.timestamp_format else ()
        return replace(
            base,
            event_types=EventTypes(names.names, names.extra + extra),
            event_aliases={**base.event_aliases, **self.event_aliases},
            timestamp_formats=formats + base.timestamp_formats,
            timezone=self.timezone,
        )

    def apply_constants(self, raw: pl.DataFrame) -> pl.DataFrame:
        """Add the ``set`` columns. A column the export already fills is refused (its values
        would be lost: map it away first); one that is empty throughout (a layout's filler,
        e.g. RetailRocket's ``channel``) is replaced."""
        clash = [c for c in self.constants if c in raw.columns and raw[c].null_count() < raw.height]
        if clash:
            raise SourceError(
                f"set: the source already fills column(s) {clash}; map it to another name "
                "(--mapping) or drop --set"
            )
        return raw.with_columns(pl.lit(v, pl.String).alias(k) for k, v in self.constants.items())


def write_source_file(options: SourceOptions, out_dir: str | Path, **extra: Any) -> Path:
    """Write ``source.json`` (the options + ``extra`` facts such as the source path)."""
    path = Path(out_dir) / SOURCE_FILE
    path.write_text(json.dumps({**extra, "options": options.to_dict()}, indent=2) + "\n")
    return path


def read_source_file(folder: str | Path) -> dict[str, Any] | None:
    """An ingest folder's ``source.json`` (None when there is none, e.g. an older ingest)."""
    path = Path(folder) / SOURCE_FILE
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()))


def recorded_weights(folder: str | Path) -> dict[str, float]:
    """The event-type weights an ingest folder's ``source.json`` records (``{}`` if none)."""
    recorded = read_source_file(folder)
    if recorded is None:
        return {}
    return SourceOptions.from_dict(recorded.get("options", {})).weights


# --- value checks --------------------------------------------------------------------------


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(key: str, value: object) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if not _finite(value):
        raise SourceError(f"{key}: expected a number, not {value!r}")
    assert isinstance(value, int | float)
    return float(value)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SourceError(f"{key}: expected a string, not {value!r}")
    return value


def _table(data: Mapping[str, Any], key: str, kind: type) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise SourceError(f"{key}: expected a table such as {{ name = value }}, not {value!r}")
    if kind is float:
        return {str(k): _number(f"{key}.{k}", v) for k, v in value.items()}
    bad = {k: v for k, v in value.items() if not isinstance(v, str) or not v.strip()}
    if bad:
        raise SourceError(f"{key}: values must be non-empty strings, not {bad}")
    return {str(k): v for k, v in value.items()}
