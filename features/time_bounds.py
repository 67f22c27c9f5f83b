"""The range of event times accepted anywhere (stdlib only: the serving process imports it).

Ingest quarantines an event outside it (``timestamp_too_old`` / ``future_timestamp``) and the
API answers 422, so an event time the exports cannot represent never reaches the events
stream (where one such event would stop ``recsys export-events``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MIN_TIMESTAMP = datetime(1990, 1, 1, tzinfo=UTC)
"""Events before this are not a shop's data (a zero or a unit mistake)."""

FUTURE_TOLERANCE = timedelta(days=1)
"""How far after now an event time may be (clock skew between systems)."""


def time_problem(epoch_seconds: float, now: float) -> str | None:
    """Why ``epoch_seconds`` is outside the accepted range (None when it is inside)."""
    if epoch_seconds < MIN_TIMESTAMP.timestamp():
        return f"ts {epoch_seconds!r} is before {MIN_TIMESTAMP.date().isoformat()}"
    if epoch_seconds > now + FUTURE_TOLERANCE.total_seconds():
        return f"ts {epoch_seconds!r} is more than {FUTURE_TOLERANCE.days} day in the future"
    return None
