"""Metrics of warm-up: how long nodes waited, and how many wait now. No per-node labels."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

__all__ = ["NODES_WARMING", "WARM_UP_DURATION"]

WARM_UP_DURATION = Histogram(
    "drop_node_warm_up_duration_seconds",
    "Time from a node's creation to the removal of its warming taint, by outcome "
    "(Warm: every gating image cached; MaxWait: released by warmUp.maxWait).",
    ["outcome"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
NODES_WARMING = Gauge(
    "drop_nodes_warming",
    "Nodes that carry the warming taint of at least one CachedImage with warmUp.",
)
