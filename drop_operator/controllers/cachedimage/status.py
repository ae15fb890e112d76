"""CachedImage status from node counts: the counts themselves and the three conditions.

Nodes that lack the image's platform are counted apart (``incompatibleNodes``), never as failures;
the Ready and Progressing messages name them, or say that the platforms are unknown and nodes are
targeted by labels only.

Pure, so every combination is unit-tested. ``Degraded`` carries the kubelet-derived reason of the
most recent failure among the nodes still failing (``ErrImagePull``, ``Unauthorized``,
``Timeout``...), which is what a person needs to fix it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drop_operator.api import NodeFailure, set_condition
from drop_operator.api.cachedimage import DEGRADED, MAX_PLATFORMS, PROGRESSING, READY, CachedImageStatus
from drop_operator.api.meta import ConditionStatus
from drop_operator.controllers.common import condition

__all__ = ["NodeCounts", "PlatformView", "build_status", "condition_reason", "wire_digest"]

_REASON_OK = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class PlatformView:
    """What targeting knew of the image's platforms: ``platforms`` (``os/arch[/variant]``, empty
    while unknown), ``incompatible`` nodes left out for them, and ``problem`` when resolution failed."""

    platforms: tuple[str, ...] = ()
    incompatible: int = 0
    problem: str | None = None

    def note(self) -> str:
        """The clause the condition messages carry ("" when there is nothing to say)."""
        if self.problem is not None:
            return f"; platforms unknown ({self.problem[:300]}): nodes targeted by labels only"
        if self.incompatible:
            return f"; {self.incompatible} nodes lack the image's platforms ({', '.join(self.platforms)})"
        return ""


@dataclass(frozen=True)
class NodeCounts:
    target: int
    cached: int
    pulling: int
    failed: int

    @property
    def pending(self) -> int:
        return max(0, self.target - self.cached - self.pulling - self.failed)


def condition_reason(text: str, fallback: str = "PullFailed") -> str:
    """A value allowed as a condition reason (CamelCase identifier), from a kubelet or pod reason."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "", text or "")
    return cleaned if cleaned and _REASON_OK.match(cleaned) else fallback


def build_status(
    previous: CachedImageStatus,
    *,
    generation: int | None,
    counts: NodeCounts,
    failures: list[NodeFailure],
    failing_nodes: set[str],
    resolved_digest: str | None,
    last_pulled: datetime | None,
    pull_policy_problem: str | None = None,
    warming: int = 0,
    platforms: PlatformView | None = None,
) -> CachedImageStatus:
    """The status to write; conditions keep their transition times while their status holds."""
    cond = previous.conditions
    c = counts
    summary = f"cached on {c.cached} of {c.target} target nodes"
    if c.pulling or c.failed:
        summary += f" ({c.pulling} pulling, {c.failed} failed)"
    view = platforms or PlatformView()
    summary += view.note()
    no_targets = "NoCompatibleNodes" if view.incompatible else "NoTargetNodes"

    def put(type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        nonlocal cond
        cond = set_condition(cond, condition(type_, status, reason, message, generation=generation))

    if pull_policy_problem is not None:
        # Ready is never True about a broken reference, even on nodes that hold the image already.
        put(READY, "False", "PullPolicyNotFound", f"{pull_policy_problem} ({summary})")
        put(PROGRESSING, "False", "PullPolicyNotFound", pull_policy_problem)
        put(DEGRADED, "True", "PullPolicyNotFound", pull_policy_problem)
    else:
        done = c.cached >= c.target
        if done:
            put(READY, "True", no_targets if c.target == 0 else "Cached", summary)
            put(PROGRESSING, "False", no_targets if c.target == 0 else "Cached", summary)
        else:
            waiting_reason = (
                "Pulling" if c.pulling else ("PullFailed" if c.failed and not c.pending else "Waiting")
            )
            put(READY, "False", waiting_reason, summary)
            put(PROGRESSING, "True", "Pulling" if c.pulling else "Waiting", summary)
        current = [f for f in failures if f.node in failing_nodes]
        if current:
            last = current[0]
            message = f"{c.failed} of {c.target} target nodes failed; latest on {last.node}: {last.reason}"
            if last.message:
                message += f": {last.message}"
            put(DEGRADED, "True", condition_reason(last.reason), message)
        else:
            put(DEGRADED, "False", "AsExpected", "no failing target nodes")
    return CachedImageStatus(
        observed_generation=generation,
        target_nodes=c.target,
        cached_nodes=c.cached,
        pulling_nodes=c.pulling,
        failed_nodes=c.failed,
        warming_nodes=warming,
        incompatible_nodes=view.incompatible,
        platforms=list(view.platforms[:MAX_PLATFORMS]),
        recent_failures=failures,
        resolved_digest=resolved_digest or previous.resolved_digest,
        last_pulled_time=last_pulled or previous.last_pulled_time,
        conditions=cond,
    )


def wire_digest(wire: Mapping[str, Any]) -> bytes:
    """20 bytes that tell one wire-form status from another: what the reconciler remembers of the
    status it last wrote, instead of the status itself (about 1 KiB an image)."""
    return hashlib.sha1(json.dumps(wire, sort_keys=True).encode(), usedforsecurity=False).digest()
