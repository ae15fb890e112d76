"""How a set reads its DiscoveryPolicy: which images to take, and what to say about it.

The set meets the discovery reconciler only through the policy's status. The discovery reconciler
keeps its last-known-good ``discoveredImages`` when sources fail, so a failing or stale policy still
hands over a list and the children stay. Two cases have no list to read:

* the policy does not exist (deleted, or re-created by a GitOps tool), and
* the policy exists but has never synced (its status is still empty).

Then the set *holds*: it keeps the children it already has instead of treating "no list" as "no
images", which would delete every child and re-pull everything on every node once the policy is
back. Removing or changing ``discoveryPolicyRef`` is how a user lets those children go.

Only the raw status is read (no model validation of the policy's spec), so a policy this version of
the operator cannot fully parse still feeds its images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drop_operator.api.discoverypolicy import READY as POLICY_READY
from drop_operator.api.discoverypolicy import SOURCES_HEALTHY
from drop_operator.api.meta import ConditionStatus
from drop_operator.controllers.common import meta, raw_condition

__all__ = [
    "DISCOVERED",
    "POLICY_FAILING",
    "POLICY_NOT_FOUND",
    "POLICY_PENDING",
    "POLICY_STALE",
    "DiscoveryView",
    "discovery_view",
]

DISCOVERED = "Discovered"
POLICY_NOT_FOUND = "PolicyNotFound"
POLICY_PENDING = "PolicyPending"
POLICY_FAILING = "PolicyFailing"
POLICY_STALE = "PolicyStale"


@dataclass(frozen=True)
class DiscoveryView:
    """The discovered images a set uses, and its ``DiscoveryReady`` condition."""

    status: ConditionStatus
    reason: str
    message: str
    images: list[str] = field(default_factory=list)
    hold_existing: bool = False
    """No list to read: keep every existing child rather than delete them."""


def _detail(cond: Mapping[str, Any] | None) -> str:
    if cond is None:
        return ""
    text = str(cond.get("message") or cond.get("reason") or "")
    return f": {text}" if text else ""


def discovery_view(policy_name: str, policy: Mapping[str, Any] | None) -> DiscoveryView:
    """Evaluate the referenced policy (``None`` when it does not exist)."""
    if policy is None:
        return DiscoveryView(
            "False",
            POLICY_NOT_FOUND,
            f"DiscoveryPolicy {policy_name} not found; keeping the images discovered before",
            hold_existing=True,
        )
    status: Mapping[str, Any] = policy.get("status") or {}
    images = [
        str(item["image"])
        for item in status.get("discoveredImages") or []
        if isinstance(item, Mapping) and item.get("image")
    ]
    ready = raw_condition(policy, POLICY_READY)
    healthy = raw_condition(policy, SOURCES_HEALTHY)
    synced = bool(images or status.get("lastSyncTime") or status.get("observedGeneration") or ready)
    if not synced:
        return DiscoveryView(
            "Unknown",
            POLICY_PENDING,
            f"DiscoveryPolicy {policy_name} has not synced yet; keeping the existing images",
            hold_existing=True,
        )
    count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
    if ready is not None and ready.get("status") == "False":
        return DiscoveryView(
            "False",
            POLICY_FAILING,
            f"DiscoveryPolicy {policy_name} is failing{_detail(ready)}; using its last {count}",
            images,
        )
    generation = meta(policy).generation
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return DiscoveryView(
            "False",
            POLICY_STALE,
            f"DiscoveryPolicy {policy_name} has not synced its latest spec yet; using its last {count}",
            images,
        )
    if healthy is not None and healthy.get("status") == "False":
        return DiscoveryView(
            "False",
            POLICY_STALE,
            f"DiscoveryPolicy {policy_name} serves stale results{_detail(healthy)}; using its {count}",
            images,
        )
    return DiscoveryView("True", DISCOVERED, f"{count} from DiscoveryPolicy {policy_name}", images)
