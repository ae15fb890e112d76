"""The pure core of a CachedImage pass: what the pods say, which nodes need a pull, the counts.

Everything here is a function of parsed objects, the image's memory and the time; nothing reads
an informer, calls the API server or keeps state, so every rule is unit-tested without a cluster.
The reconciler (the shell) reads the caches, calls these in order, and applies what they return:

1. :func:`read_pulls` — the image's pull pods: which pulls are in flight, which finished (pulled,
   failed, or timed out by the operator's own deadline), which pods are moot;
2. :func:`classify_nodes` — every target node: pulling, cached (and not due for a re-pull),
   failing (in backoff), or a candidate, in the order pulls should start;
3. (the shell admits candidates under the pool's lock and creates pods);
4. :func:`count_nodes` and :func:`rollout_event` — the status counts and the transition Event.

Times are unix seconds (wall clock), as stored in the cached-nodes annotation and in status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from drop_operator.api import CachedImageSpec, Toleration, format_duration
from drop_operator.controllers.cachedimage.imagelist import (
    REPORT_GRACE,
    image_listing,
    listed_size,
    reported_names,
)
from drop_operator.controllers.cachedimage.pacing import Pacing, repull_due
from drop_operator.controllers.cachedimage.pullpods import PullPod
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import NodeCounts
from drop_operator.controllers.common import nodecache

__all__ = [
    "NodeClasses",
    "Pulls",
    "classify_nodes",
    "count_nodes",
    "deadline_slack",
    "read_pulls",
    "rollout_event",
    "tolerations_of",
    "warming_first",
    "warming_nodes",
]

Obj = Mapping[str, Any]


def deadline_slack(pull_timeout: float) -> float:
    """Time past ``pullTimeout`` before the operator itself calls a pull timed out (1..10 s).

    The kubelet enforces ``activeDeadlineSeconds`` first when it can; the slack leaves it room to.
    """
    return min(10.0, max(1.0, 0.2 * pull_timeout))


@dataclass
class Pulls:
    """What the image's pull pods say (:func:`read_pulls`)."""

    active: dict[str, PullPod] = field(default_factory=dict)
    """Node -> the pod pulling the current reference there, within its deadline."""
    finished: list[PullPod] = field(default_factory=list)
    """Pods with a result (a timed-out pod's outcome says ``Timeout``). Only those of the current
    reference are results for the image; every finished pod is deleted once results are stored."""
    moot: list[PullPod] = field(default_factory=list)
    """Unfinished pods of a reference the image no longer has: delete them now."""
    live_uids: set[str] = field(default_factory=set)
    wakeups: list[float] = field(default_factory=list)
    """Seconds until a pod in flight reaches the operator's deadline."""


def read_pulls(pods: Iterable[PullPod], *, reference: str, pacing: Pacing, now: float) -> Pulls:
    """Sort the image's pull pods by what they mean now; pods being deleted are only counted as live.

    A pod still unfinished past ``pullTimeout`` plus :func:`deadline_slack` is a ``Timeout`` even if
    no kubelet enforced ``activeDeadlineSeconds`` (a Pending pod on a dead node never starts it).
    """
    out = Pulls()
    limit = pacing.pull_timeout + deadline_slack(pacing.pull_timeout)
    for pod in pods:
        out.live_uids.add(pod.uid)
        if pod.deleting:
            continue
        if pod.outcome.state != "pending":
            out.finished.append(pod)
            continue
        deadline = pod.created + limit
        if now >= deadline:
            timeout = f"no result within pullTimeout {format_duration(pacing.pull_timeout)}"
            out.finished.append(pod.timed_out(timeout))
        elif pod.reference == reference:
            out.active[pod.node] = pod
            out.wakeups.append(deadline - now)
        else:
            out.moot.append(pod)
    return out


@dataclass
class NodeClasses:
    """Target nodes by what they need (:func:`classify_nodes`)."""

    candidates: list[str] = field(default_factory=list)
    """Nodes to start a pull on, in order: never tried, then failed (oldest retry first), then due
    for a re-pull (oldest pull first)."""
    cached: int = 0
    failed: int = 0
    failing_nodes: set[str] = field(default_factory=set)
    reported: list[str] = field(default_factory=list)
    """Node keys the kubelet reports holding the image, new to the memory: record them as cached."""
    gone: list[str] = field(default_factory=list)
    """Node keys remembered as cached whose kubelet says the image is gone: forget them (they are
    candidates again, for one re-pull)."""
    size: int | None = None
    """The image's size in bytes as a node reported it (remember it for the "smaller images still
    listed" rule of :func:`~.imagelist.image_listing`)."""
    wakeups: list[float] = field(default_factory=list)
    """Seconds until a backoff ends or a re-pull comes due."""
    recheck: list[str] = field(default_factory=list)
    """Nodes whose list lacks the image while a recent pull is still within the report grace: look
    at them again when the grace ends."""


def classify_nodes(
    targets: Mapping[str, Obj],
    state: ImageState,
    *,
    pulling: Set[str],
    reference: str,
    image_pull_policy: str,
    pacing: Pacing,
    now: float,
) -> NodeClasses:
    """Classify every target node not in ``pulling``; ``state`` is read, never changed.

    The kubelet's ``status.images`` is trusted both ways where it is decidable
    (:func:`~.imagelist.image_listing`): with ``IfNotPresent``, a node that lists the image is
    cached without a pull; a node remembered as cached whose complete list lacks the image lost it
    (kubelet image GC) and is a candidate again — once :data:`~.imagelist.REPORT_GRACE` has passed
    since its pull, as a fresh pull takes a while to show up. Needs no ``repullInterval``.
    """
    out = NodeClasses()
    own_names = reported_names(reference)  # what a pod of this reference finds on the node
    names = reported_names(reference, state.digest)  # any name of the content, for "gone"
    fresh: list[str] = []
    retry: list[tuple[float, str]] = []
    repull: list[tuple[float, str]] = []
    for name, node in targets.items():
        if name in pulling:
            continue
        nkey = nodecache.node_key(name)
        pulled_at = state.cached.get(nkey)
        listing = image_listing(node, names, state.size)
        if listing == "present":
            out.size = listed_size(node, names) or out.size
        elif listing == "gone" and pulled_at is not None:
            if now - pulled_at >= REPORT_GRACE:
                out.gone.append(nkey)
                pulled_at = None
            else:
                out.wakeups.append(pulled_at + REPORT_GRACE - now)
                out.recheck.append(name)
        if (
            pulled_at is None
            and image_pull_policy == "IfNotPresent"
            and listing == "present"
            and image_listing(node, own_names) == "present"
        ):
            pulled_at = now
            out.reported.append(nkey)
        if pulled_at is not None:
            out.cached += 1
            if pacing.repull_interval:
                due = repull_due(pulled_at, pacing.repull_interval, int(nkey, 16))
                if due <= now:
                    repull.append((pulled_at, name))
                else:
                    out.wakeups.append(due - now)
            continue
        failure = state.failures.get(name)
        if failure is not None:
            out.failed += 1
            out.failing_nodes.add(name)
            if failure.retry_at <= now:
                retry.append((failure.retry_at, name))
            else:
                out.wakeups.append(failure.retry_at - now)
            continue
        fresh.append(name)
    out.candidates = (
        sorted(fresh, key=nodecache.node_key) + [n for _, n in sorted(retry)] + [n for _, n in sorted(repull)]
    )
    return out


def count_nodes(
    targets: Set[str], classes: NodeClasses, state: ImageState, *, pulling: Set[str], started: Iterable[str]
) -> NodeCounts:
    """Status counts once the pulls of this pass started: a started node counts as pulling only.

    ``pulling`` are the nodes with a pull in flight before this pass (any node, target or not).
    """
    cached, failed = classes.cached, classes.failed
    started = list(started)
    for name in started:
        if name in state.failures:
            failed -= 1
            classes.failing_nodes.discard(name)
        elif name in targets and nodecache.node_key(name) in state.cached:
            cached -= 1  # a re-pull: counted as pulling until it finishes
    in_flight = sum(1 for n in pulling if n in targets) + len(started)
    return NodeCounts(target=len(targets), cached=cached, pulling=in_flight, failed=failed)


def rollout_event(
    rolling_out: bool, counts: NodeCounts, *, started: bool, reference: str
) -> tuple[bool, str | None, str | None]:
    """Whether a rollout is under way after this pass, and the Event marking a transition if any.

    Returns ``(rolling_out, reason, note)``: ``Pulling`` when the first pulls start, ``Cached``
    when every target holds the image; a rollout left with only failing nodes ends silently (their
    failures were reported one by one).
    """
    if started and not rolling_out:
        pending = counts.target - counts.cached
        return True, "Pulling", f"pulling {reference} onto {pending} of {counts.target} target nodes"
    if rolling_out and counts.cached >= counts.target:
        return False, "Cached", f"{reference} cached on all {counts.target} target nodes"
    if rolling_out and not counts.pulling and not counts.pending:
        return False, None, None
    return rolling_out, None, None


def tolerations_of(spec: CachedImageSpec) -> list[Toleration]:
    """The tolerations targeting and pull pods use: the image's own, plus with ``warmUp`` its warming
    taint (any value, any effect), so gating images are pulled onto nodes that are warming up."""
    if spec.warm_up is None:
        return list(spec.tolerations)
    return [*spec.tolerations, Toleration(key=spec.warm_up.taint_key, operator="Exists")]


def warming_nodes(targets: Set[str], spec: CachedImageSpec, tainted: Callable[[str], Set[str]]) -> set[str]:
    """Target nodes that still carry the image's warming taint (none without ``warmUp``).

    ``tainted(key)`` gives the nodes carrying a taint with that key (the node index's
    :meth:`~.targetindex.TargetIndex.tainted`), so this costs no scan of the targets.
    """
    if spec.warm_up is None:
        return set()
    return set(targets & tainted(spec.warm_up.taint_key))


def warming_first(candidates: list[str], warming: Set[str]) -> list[str]:
    """``candidates`` with the warming nodes first, each part in its own order: a node waiting to take
    workloads needs the image now, a node in service only a refresh."""
    return [n for n in candidates if n in warming] + [n for n in candidates if n not in warming]
