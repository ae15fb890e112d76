"""The pure core of the warm-up controller: which warming taints of a node may go now, and why.

A node is *warming* while it carries a taint whose key is the ``warmUp.taintKey`` of some CachedImage
(a *gate*). A gate holds the node while all of these hold:

* the node can run it: a pull pod runs on Linux only (a node whose ``kubernetes.io/os`` says
  otherwise never gets one), and when the image's registry listed its platforms
  (``status.platforms``) one of them has the node's ``kubernetes.io/os`` and
  ``kubernetes.io/arch`` (a missing label matches, as in the node-caching controller's targeting);
* it targets the node: every label of its ``nodeSelector`` matches, and it tolerates every
  ``NoSchedule``/``NoExecute`` taint of the node other than the warming taints and the transient
  taints of node lifecycle (``node.kubernetes.io/*``, ``node.cloudprovider.kubernetes.io/*``, which
  go on their own; while they are there, the image cannot be pulled, so the node waits);
* the image's record (the ConfigMap the node-caching reconciler keeps, or before it has one the
  version-1 cached-nodes annotation; see :mod:`drop_operator.controllers.common.nodecache`) does
  not list the node;
* the node is younger than the gate's ``maxWait`` (age from ``metadata.creationTimestamp``, the
  moment the node registered with its startup taints).

A warming taint goes when no gate holds it: ``Warm`` when every gate targeting the node has the image
there, ``MaxWait`` when at least one was released by time. Times are unix seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from drop_operator.api import CachedImage, Toleration, parse_duration
from drop_operator.controllers.common import nodecache
from drop_operator.controllers.common.taints import tolerates

__all__ = [
    "LIFECYCLE_TAINT_PREFIXES",
    "Gate",
    "Release",
    "Verdict",
    "cached_keys",
    "decide",
    "gates_node",
    "warming_keys",
]

Obj = Mapping[str, Any]

LIFECYCLE_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
_EXCLUDING_EFFECTS = ("NoSchedule", "NoExecute")
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
PULL_POD_OS = "linux"


@dataclass(frozen=True)
class Gate:
    """A CachedImage with ``warmUp``, as far as warm-up is concerned."""

    name: str
    taint_key: str
    max_wait: float
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Toleration] = ()
    cached: frozenset[str] = frozenset()
    """Node keys (:func:`~drop_operator.controllers.common.nodecache.node_key`) holding the image."""
    platforms: frozenset[tuple[str, str]] = frozenset()
    """``(os, architecture)`` pairs the image has; empty: unknown, every node can run it."""

    @classmethod
    def of(cls, image: CachedImage, cached: frozenset[str] = frozenset()) -> Gate | None:
        """The gate of ``image`` whose image is on the nodes with keys ``cached``
        (:func:`cached_keys`), or ``None`` when it has no ``warmUp`` or is being deleted."""
        warm_up = image.spec.warm_up
        if warm_up is None or image.metadata.deleting:
            return None
        return cls(
            name=image.metadata.name,
            taint_key=warm_up.taint_key,
            max_wait=parse_duration(warm_up.max_wait),
            node_selector=dict(image.spec.node_selector),
            tolerations=tuple(image.spec.tolerations),
            cached=cached,
            platforms=frozenset(
                (parts[0], parts[1]) for p in image.status.platforms if len(parts := p.split("/")) >= 2
            ),
        )


def cached_keys(image: CachedImage, record: Obj | None) -> frozenset[str]:
    """Keys of the nodes holding the image: from its record (a ConfigMap), or from the version-1
    annotation while it has none."""
    return frozenset(nodecache.decode(image.reference, nodecache.stored(record, image.metadata.annotations)))


def _taints(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or ())


def warming_keys(node: Obj, keys: Iterable[str]) -> list[str]:
    """The keys among ``keys`` that the node carries a taint of, in the node's order."""
    wanted = set(keys)
    return list(dict.fromkeys(str(t.get("key")) for t in _taints(node) if t.get("key") in wanted))


def gates_node(gate: Gate, node: Obj, warming: Iterable[str] = ()) -> bool:
    """Whether ``gate`` targets ``node`` for warm-up (see the module docstring); ``warming`` are the
    other warming taint keys, transient like the gate's own."""
    ignored = {gate.taint_key, *warming}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in gate.node_selector.items()):
        return False
    os_, arch = labels.get(OS_LABEL), labels.get(ARCH_LABEL)
    if os_ not in (None, PULL_POD_OS):
        return False  # no pull pod can run there, so the image would hold the node for nothing
    if gate.platforms and not any(
        os_ in (None, p_os) and arch in (None, p_arch) for p_os, p_arch in gate.platforms
    ):
        return False
    for taint in _taints(node):
        key = str(taint.get("key") or "")
        if key in ignored or key.startswith(LIFECYCLE_TAINT_PREFIXES):
            continue
        if taint.get("effect") in _EXCLUDING_EFFECTS and not tolerates(gate.tolerations, taint):
            return False
    return True


@dataclass(frozen=True)
class Release:
    """One warming taint to remove."""

    key: str
    outcome: Literal["Warm", "MaxWait"]
    waited: float
    """Seconds from the node's creation to now."""
    gates: int
    """Gates that targeted the node."""
    not_cached: list[str] = field(default_factory=list)
    """With ``MaxWait``: the gates released by time, without their image on the node."""


@dataclass
class Verdict:
    """What to do with one node's warming taints."""

    release: list[Release] = field(default_factory=list)
    holding: dict[str, list[str]] = field(default_factory=dict)
    """Taint key -> the gates still holding it."""
    recheck_after: float | None = None
    """Seconds until the first holding gate's ``maxWait`` ends."""


def decide(node: Obj, gates: Iterable[Gate], *, created: float, now: float) -> Verdict:
    """Decide every warming taint of ``node`` (created at unix time ``created``) against ``gates``."""
    by_key: dict[str, list[Gate]] = {}
    for gate in gates:
        by_key.setdefault(gate.taint_key, []).append(gate)
    node_key = nodecache.node_key(str((node.get("metadata") or {}).get("name") or ""))
    age = max(0.0, now - created)
    out = Verdict()
    waits: list[float] = []
    for key in warming_keys(node, by_key):
        relevant = [g for g in by_key[key] if gates_node(g, node, by_key)]
        missing = [g for g in relevant if node_key not in g.cached]
        holding = [g for g in missing if age < g.max_wait]
        if holding:
            out.holding[key] = sorted(g.name for g in holding)
            waits.extend(g.max_wait - age for g in holding)
            continue
        outcome: Literal["Warm", "MaxWait"] = "MaxWait" if missing else "Warm"
        out.release.append(Release(key, outcome, age, len(relevant), sorted(g.name for g in missing)))
    out.recheck_after = min(waits) if waits else None
    return out
