"""``drop_image_nodes``: per-image node counts summed at scrape time."""

from __future__ import annotations

from prometheus_client import REGISTRY

from drop_operator.controllers.cachedimage.metrics import STATES, NodeTotals


def totals() -> dict[str, float | None]:
    return {s: REGISTRY.get_sample_value("drop_image_nodes", {"state": s}) for s in STATES}


def test_totals_sum_the_latest_counts_of_each_image_and_forget_removed_ones() -> None:
    nodes = NodeTotals()
    nodes.set("a", {"cached": 3, "pending": 2})
    nodes.set("b", {"cached": 1, "pulling": 1, "failed": 1, "pending": 0})
    assert totals() == {"cached": 4.0, "pulling": 1.0, "failed": 1.0, "pending": 2.0}
    nodes.set("a", {"cached": 5})
    nodes.set("b", dict.fromkeys(STATES, 0))  # an image that targets no node
    assert totals() == {"cached": 5.0, "pulling": 0.0, "failed": 0.0, "pending": 0.0}
    nodes.remove("a")
    nodes.remove("missing")
    assert totals() == dict.fromkeys(STATES, 0.0)
