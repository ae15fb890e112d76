"""Which nodes a CachedImage targets: operating system, node selector, taints, readiness.

Pure functions over Node dicts as the API server returns them, so the rules are unit-tested without a
cluster and the reconciler, the node event handler and the tests all agree on them:

* the node must run Linux: the pull pod's init container runs the operator image's static Linux
  binary, so a Windows node could never run it. A node without the ``kubernetes.io/os`` label
  counts as Linux: every kubelet sets the label itself when it registers (``initialNode`` in
  ``pkg/kubelet/kubelet_node_status.go``: ``kubernetes.io/os = runtime.GOOS``), so only Node
  objects made by hand (simulators such as kwok) lack it. The pull
  pod's affinity (:func:`~.pullpods.build_pull_pod`) says the same to the scheduler;
* every ``nodeSelector`` label must match;
* a ``NoSchedule`` or ``NoExecute`` taint excludes the node unless a toleration matches it
  (``PreferNoSchedule`` never excludes);
* a cordoned node (``spec.unschedulable``) or one being deleted is never a target;
* a node that is not Ready is a target only when the tolerations accept the taint the node
  lifecycle controller would put on it (``node.kubernetes.io/not-ready``, or
  ``node.kubernetes.io/unreachable`` when the Ready status is ``Unknown``), so joining nodes can be
  pre-warmed on purpose but a dead node does not hold pull slots by default.

A second, separate condition applies once the image's platforms are known (:func:`runs_platform`):
a node whose ``kubernetes.io/os`` and ``kubernetes.io/arch`` labels match no platform of the image
is not a target; :func:`split_by_platform` counts those nodes apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from drop_operator.api import Toleration
from drop_operator.controllers.common import raw_condition
from drop_operator.controllers.common.taints import tolerates, tolerates_taint
from drop_operator.discovery.platforms import Platform

__all__ = [
    "ARCH_LABEL",
    "ARCH_VARIANT_LABEL",
    "NOT_READY_TAINT",
    "OS_LABEL",
    "PULL_POD_OS",
    "UNREACHABLE_TAINT",
    "is_target",
    "node_fingerprint",
    "node_images",
    "node_name",
    "readiness",
    "runs_platform",
    "select_targets",
    "split_by_platform",
    "targeting_fingerprint",
    "tolerates",
    "tolerates_taint",
]

OS_LABEL = "kubernetes.io/os"
"""The kubelet's label for the node's operating system (``runtime.GOOS``: ``linux``, ``windows``)."""
PULL_POD_OS = "linux"
"""The only operating system a pull pod runs on (its helper is a static Linux binary)."""
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_EXCLUDING_EFFECTS = ("NoSchedule", "NoExecute")
ARCH_LABEL = "kubernetes.io/arch"
ARCH_VARIANT_LABEL = "drop.corewire.io/arch-variant"
"""Kubernetes has no label for the CPU variant (``v7`` of ``arm/v7``); a node that carries this
one is matched against the variant of the image's platforms too."""

Obj = Mapping[str, Any]


def node_name(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def readiness(node: Obj) -> str:
    """The Ready condition's status: ``True``, ``False`` or ``Unknown`` (also when not reported yet)."""
    ready = raw_condition(node, "Ready")
    if ready is not None:
        return str(ready.get("status") or "Unknown")
    return "Unknown" if (node.get("status") or {}).get("conditions") else "False"


def is_target(node: Obj, node_selector: Mapping[str, str], tolerations: Sequence[Toleration]) -> bool:
    """Whether a pull pod for an image with these settings should run on ``node``."""
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    labels = meta.get("labels") or {}
    if labels.get(OS_LABEL, PULL_POD_OS) != PULL_POD_OS:
        return False
    if any(labels.get(key) != value for key, value in node_selector.items()):
        return False
    for taint in spec.get("taints") or ():
        if taint.get("effect") in _EXCLUDING_EFFECTS and not tolerates(tolerations, taint):
            return False
    ready = readiness(node)
    if ready != "True":
        # A node that registered but never reported is "not-ready"; one that stopped reporting
        # is "unreachable": the same taints the node lifecycle controller sets.
        key = UNREACHABLE_TAINT if ready == "Unknown" and _has_ready_condition(node) else NOT_READY_TAINT
        if not tolerates(tolerations, {"key": key, "effect": "NoSchedule"}):
            return False
    return True


def _has_ready_condition(node: Obj) -> bool:
    return raw_condition(node, "Ready") is not None


def select_targets(
    nodes: Iterable[Obj], node_selector: Mapping[str, str], tolerations: Sequence[Toleration]
) -> dict[str, Obj]:
    """Target nodes by name."""
    return {node_name(n): n for n in nodes if is_target(n, node_selector, tolerations)}


def runs_platform(node: Obj, platforms: Iterable[Platform]) -> bool:
    """Whether ``node`` can run one of ``platforms`` (the image index's ``os``/``architecture``/
    ``variant``), judged by the node's labels.

    The kubelet sets :data:`OS_LABEL` and :data:`ARCH_LABEL` (``GOOS``/``GOARCH`` values, the same
    names the OCI image-index spec uses). A label the node lacks matches any value, and so does a
    variant the node does not state (:data:`ARCH_VARIANT_LABEL`) or the platform does not name.
    """
    labels = (node.get("metadata") or {}).get("labels") or {}
    os_, arch, variant = labels.get(OS_LABEL), labels.get(ARCH_LABEL), labels.get(ARCH_VARIANT_LABEL)
    return any(
        (not os_ or p.os == os_)
        and (not arch or p.architecture == arch)
        and (not variant or not p.variant or p.variant == variant)
        for p in platforms
    )


def split_by_platform(
    targets: Mapping[str, Obj], platforms: frozenset[Platform] | None
) -> tuple[dict[str, Obj], list[str]]:
    """``targets`` that run one of ``platforms``, and the names of those that run none.

    ``None`` or no platforms (unknown) keeps every target: targeting by labels only.
    """
    if not platforms:
        return dict(targets), []
    kept = {name: n for name, n in targets.items() if runs_platform(n, platforms)}
    return kept, sorted(name for name in targets if name not in kept)


def node_images(node: Obj) -> set[str]:
    """Image names the kubelet reports present on the node (``status.images``, at most 50 by default).

    What presence and absence mean for one image is :func:`~.imagelist.image_listing`'s to say.
    """
    names: set[str] = set()
    for image in (node.get("status") or {}).get("images") or ():
        names.update(str(n) for n in image.get("names") or ())
    return names


def _targeting_parts(node: Obj) -> list[str]:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    return [
        repr(sorted((meta.get("labels") or {}).items())),
        repr(
            sorted(
                (str(t.get("key")), str(t.get("value")), str(t.get("effect")))
                for t in spec.get("taints") or ()
            )
        ),
        str(bool(spec.get("unschedulable"))),
        readiness(node),
        str(_has_ready_condition(node)),
        str(bool(meta.get("deletionTimestamp"))),
    ]


def _digest(parts: list[str]) -> str:
    return hashlib.sha1("\0".join(parts).encode(), usedforsecurity=False).hexdigest()


def targeting_fingerprint(node: Obj) -> str:
    """A digest of everything :func:`is_target`, :func:`runs_platform` and warming look at on a
    node: labels, taints, cordon, readiness, deletion. Equal fingerprints mean the node is a target
    of exactly the same images as before."""
    return _digest(_targeting_parts(node))


def node_fingerprint(node: Obj) -> str:
    """A digest of everything target selection and caching look at on a node.

    Node status is rewritten by every kubelet heartbeat; comparing fingerprints lets the node
    handler wake image reconciles only when labels, taints, cordon, readiness, deletion or the
    reported image list really changed (:func:`targeting_fingerprint` plus :func:`node_images`).
    """
    return _digest([*_targeting_parts(node), repr(sorted(node_images(node)))])
