"""Domain metrics of the discovery reconciler; every label has a bounded set of values.

``drop_discovery_images`` has one series per existing policy and loses it when the policy is
deleted; the other labels are closed vocabularies (results, source types, reasons).
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["IMAGES", "SOURCE_ERRORS", "SYNC_DURATION", "SYNC_TOTAL", "forget_policy"]

SYNC_TOTAL = Counter(
    "drop_discovery_sync_total",
    "DiscoveryPolicy syncs that queried sources, by result: success (every source answered), partial "
    "(some failed, their last-known-good images were used), failed (none answered, previous images "
    "kept), invalid (the policy's imageFilter is unusable).",
    ["result"],
)
SOURCE_ERRORS = Counter(
    "drop_discovery_source_errors_total",
    "Failed source queries by source type and failure reason (Unauthorized, Timeout, TLSError...).",
    ["type", "reason"],
)
IMAGES = Gauge(
    "drop_discovery_images",
    "Images currently published in status.discoveredImages, per DiscoveryPolicy.",
    ["policy"],
)
SYNC_DURATION = Histogram(
    "drop_discovery_sync_duration_seconds",
    "Wall time of one sync: all of its sources (run concurrently), ranking and merging.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)


def forget_policy(name: str) -> None:
    """Remove the per-policy series of a deleted policy."""
    with contextlib.suppress(KeyError):
        IMAGES.remove(name)
