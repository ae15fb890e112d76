"""Kubernetes timestamp formats."""

from __future__ import annotations

import datetime as dt


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def micro_time(when: dt.datetime | None = None) -> str:
    """``MicroTime`` as the API expects it: RFC 3339 with microseconds, UTC."""
    return (when or now_utc()).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
