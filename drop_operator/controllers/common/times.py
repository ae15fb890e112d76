"""RFC 3339 timestamps as Kubernetes writes ``metav1.Time``: second precision, UTC, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["format_time", "parse_time"]

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(value: datetime | None) -> str:
    """``2006-01-02T15:04:05Z``; ``never`` for None (for messages and previews)."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(_FORMAT)


def parse_time(value: Any) -> datetime | None:
    """A ``metav1.Time`` string as an aware UTC datetime; None for anything else."""
    if not isinstance(value, str):
        return None
    if len(value) == 20 and value[10] == "T" and value[19] == "Z":  # the common case, without strptime
        try:
            return datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)
        except ValueError:
            return None
    try:
        return datetime.strptime(value, _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
