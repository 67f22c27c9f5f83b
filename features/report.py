"""The ingestion report: where every input row went, as JSON and as a readable summary."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class AccountingError(RuntimeError):
    """rows_in != kept + quarantined + duplicates: a row was lost or counted twice."""


@dataclass
class IngestReport:
    """Counts of one ingestion. ``rows_in == kept + quarantined + duplicates`` always."""

    rows_in: int
    kept: int
    quarantined: int
    duplicates: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_event_type: dict[str, int] = field(default_factory=dict)
    customers: int = 0
    items: int = 0
    first_event: str | None = None
    last_event: str | None = None
    bot_customers: int = 0
    adjustments: dict[str, Any] = field(default_factory=dict)
    """Returns/cancellations applied: rows, purchases reduced/removed, quantities."""
    timestamps: dict[str, Any] = field(default_factory=dict)
    """How timestamps were read: ``features.timestamps.TimestampInfo`` as a dict."""
    source: str | None = None
    layout: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """The source options used (``features.source_options.SourceOptions.to_dict``)."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def accounted(self) -> bool:
        return (
            self.rows_in == self.kept + self.quarantined + self.duplicates
            and sum(self.by_reason.values()) == self.quarantined
        )

    def check(self) -> None:
        """Raise :class:`AccountingError` unless every input row is accounted for."""
        if not self.accounted:
            raise AccountingError(
                f"rows_in={self.rows_in} but kept={self.kept} + quarantined={self.quarantined}"
                f" + duplicates={self.duplicates} (by_reason sums to"
                f" {sum(self.by_reason.values())})"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accounted"] = self.accounted
        return data

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestReport:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines of the summary, shared by the text and the CLI table."""

        def pct(n: int) -> str:
            return f"{n:,} ({100.0 * n / self.rows_in:.2f}%)" if self.rows_in else f"{n:,}"

        lines = [
            ("rows in", f"{self.rows_in:,}"),
            ("kept", pct(self.kept)),
            ("quarantined", pct(self.quarantined)),
            ("duplicates", pct(self.duplicates)),
        ]
        lines += [(f"  reason: {reason}", f"{n:,}") for reason, n in self.by_reason.items()]
        lines += [(f"  kept {event}", f"{n:,}") for event, n in self.by_event_type.items()]
        lines += [("customers", f"{self.customers:,}"), ("items", f"{self.items:,}")]
        if self.first_event:
            lines.append(("time span", f"{self.first_event} .. {self.last_event}"))
        if self.bot_customers:
            lines.append(("bot customers", f"{self.bot_customers:,}"))
        for key, value in self.adjustments.items():
            if value:
                shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
                lines.append((f"  {key.replace('_', ' ')}", shown))
        lines += self._timestamp_rows() + self._option_rows()
        lines.append(("accounted", "yes" if self.accounted else "NO"))
        return lines

    def _timestamp_rows(self) -> list[tuple[str, str]]:
        info = self.timestamps
        lines = []
        if info.get("order"):
            dates = [f for f in info.get("formats", []) if "%H" not in f]
            lines.append(("dates", f"{info['order']} (detected: {', '.join(dates)})"))
        if info.get("timezone", "UTC") != "UTC":
            lines.append(("naive times in", str(info["timezone"])))
        if info.get("nonexistent_shifted"):
            lines.append(("  in a DST gap (shifted)", f"{info['nonexistent_shifted']:,}"))
        if info.get("ambiguous_earliest"):
            lines.append(("  in a DST overlap (earlier)", f"{info['ambiguous_earliest']:,}"))
        return lines

    def _option_rows(self) -> list[tuple[str, str]]:
        defaults = {"layout": self.layout, "timezone": "UTC"}
        shown = {k: v for k, v in self.options.items() if v and defaults.get(k) != v}
        return [(f"option {key}", _compact(value)) for key, value in shown.items()]

    def summary(self) -> str:
        """A readable multi-line summary."""
        width = max(len(label) for label, _ in self.rows())
        head = f"ingest report{f' ({self.layout})' if self.layout else ''}"
        if self.source:
            head += f": {self.source}"
        return "\n".join([head] + [f"  {label:<{width}}  {value}" for label, value in self.rows()])


def _compact(value: Any) -> str:
    """An option value on one line: ``a=b, c=d`` for tables."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
