"""Metrics of node caching, without per-image or per-node labels.

``drop_pulls_in_flight`` is computed at scrape time from the Pod informer, so it is right from the
first scrape after a restart (pods started by the previous process included). The per-image node
counts feed ``drop_image_nodes{state}`` as totals; an image that is deleted stops contributing.
Failure reasons are a closed set (other reasons are counted as ``Other``) so a strange message can
never create a new series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from drop_operator.controllers.cachedimage.pullpods import PULL_FAILURE_REASONS

__all__ = [
    "IMAGE_NODES",
    "PULLS_IN_FLIGHT",
    "PULL_DURATION",
    "PULL_FAILURES",
    "NodeTotals",
    "failure_reason_label",
]

_KNOWN_REASONS = PULL_FAILURE_REASONS | {
    "Unauthorized",
    "Timeout",
    "NoopInstallFailed",
    "Evicted",
    "NodeLost",
    "UnexpectedAdmissionError",
}

PULLS_IN_FLIGHT = Gauge(
    "drop_pulls_in_flight", "Pull pods started and not finished, as observed in the cluster."
)
PULL_DURATION = Histogram(
    "drop_pull_duration_seconds",
    "Time from pull pod creation to its result, by result (pulled, failed).",
    ["result"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800),
)
PULL_FAILURES = Counter("drop_pull_failures_total", "Failed pulls by kubelet-derived reason.", ["reason"])
IMAGE_NODES = Gauge(
    "drop_image_nodes",
    "Sum over all CachedImages of their target nodes by state (cached, pulling, failed, pending).",
    ["state"],
)
STATES = ("cached", "pulling", "failed", "pending")


def failure_reason_label(reason: str) -> str:
    return reason if reason in _KNOWN_REASONS else "Other"


class NodeTotals:
    """Per-image node counts, summed into ``drop_image_nodes`` at scrape time.

    Kept per image as a tuple in :data:`STATES` order, and not at all for an image whose counts
    are all zero (one that targets no node): a dict per image would cost about 250 bytes."""

    def __init__(self) -> None:
        self._per_image: dict[str, tuple[int, ...]] = {}
        for i, state in enumerate(STATES):
            IMAGE_NODES.labels(state=state).set_function(self._total(i))
            PULL_DURATION.labels(result="pulled")
            PULL_DURATION.labels(result="failed")

    def _total(self, i: int) -> Callable[[], float]:
        return lambda: float(sum(counts[i] for counts in self._per_image.values()))

    def set(self, image: str, counts: dict[str, int]) -> None:
        """The image's node counts by state (a state left out counts zero)."""
        row = tuple(counts.get(state, 0) for state in STATES)
        if any(row):
            self._per_image[image] = row
        else:
            self._per_image.pop(image, None)

    def remove(self, image: str) -> None:
        self._per_image.pop(image, None)
