"""Pull pods: deterministic names and labels, the pod spec, and reading a pod's outcome.

A pull pod pins one image onto one node. Its name is a hash of (CachedImage, reference, node), so a
retry after a crash or a stale cache can never create a second pod for the same pull: the API
server answers 409 instead. The pod runs nothing from the target image: an init container copies
a static no-op binary out of the operator's own image into an ``emptyDir``, and the target
container runs that binary, so distroless and scratch images are pulled and "run" like any other.

Outcome rules, in kubelet order (it pulls the image *before* it creates the container):

* ``Succeeded`` -> pulled.
* A container that was created or ran (any ``terminated`` state, ``CreateContainerConfigError``,
  ``CreateContainerError``, ``RunContainerError``) -> pulled: the image is on the node, which is
  all that matters here.
* A main container waiting with a pull error (``ErrImagePull``, ``ImagePullBackOff``,
  ``InvalidImageName``, ``ErrImageNeverPull``, ...) -> failed with that reason at once; the pod is
  deleted and the operator's own per-node backoff takes over from the kubelet's.
* ``Failed`` with ``DeadlineExceeded`` -> ``Timeout``; other pod-level failures (eviction, node
  lost) keep the pod's reason.
* An error message that says 401 / 403 / unauthorized / authentication required / pull access
  denied / insufficient_scope -> ``Unauthorized`` (containerd's words for a registry that refuses
  the caller).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from drop_operator.api import API_VERSION, LocalObjectReference, Toleration
from drop_operator.controllers.cachedimage.nodes import OS_LABEL, PULL_POD_OS
from drop_operator.controllers.common import (
    LABEL_MANAGED_BY,
    MANAGED_BY,
    label_value,
    meta,
    parse_time,
    short_hash,
)

__all__ = [
    "ANNOTATION_IMAGE",
    "ANNOTATION_NODE",
    "ANNOTATION_REFERENCE",
    "COMPONENT",
    "LABEL_COMPONENT",
    "LABEL_IMAGE",
    "LABEL_NODE",
    "LABEL_POOL",
    "LABEL_REFERENCE",
    "PULL_FAILURE_REASONS",
    "Outcome",
    "PodRequest",
    "PullPod",
    "build_pull_pod",
    "is_active",
    "outcome",
    "pod_node",
    "pull_pod_name",
]

LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT = "image-pull"
LABEL_IMAGE = "drop.corewire.io/cachedimage"
LABEL_REFERENCE = "drop.corewire.io/reference-hash"
LABEL_NODE = "drop.corewire.io/node-hash"
LABEL_POOL = "drop.corewire.io/pullpolicy"
ANNOTATION_NODE = "drop.corewire.io/node"
ANNOTATION_REFERENCE = "drop.corewire.io/reference"
ANNOTATION_IMAGE = "drop.corewire.io/cachedimage"

NOOP_MOUNT = "/drop"
NOOP_TARGET = f"{NOOP_MOUNT}/noop"
RUN_AS_USER = 65532

#: Kubelet reasons of a container waiting because its image could not be pulled.
PULL_FAILURE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
        "SignatureValidationFailed",
        "ErrImageInspect",
    }
)
#: Kubelet reasons that come *after* a successful pull: the image is on the node.
_PULLED_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
# containerd says "pull access denied ... insufficient_scope: authorization failed" when a token
# server grants an anonymous caller nothing; Docker Hub and GHCR answer private images the same way.
_UNAUTHORIZED = re.compile(
    r"\b40[13]\b|unauthori[sz]ed|authentication required|no basic auth credentials"
    r"|pull access denied|insufficient_scope|authorization failed|requested access to the resource is denied",
    re.I,
)


def pull_pod_name(image_name: str, image_uid: str, reference: str, node: str) -> str:
    """Deterministic pod name per (CachedImage, reference, node); a DNS label <= 63 chars.

    The uid keeps a recreated CachedImage of the same name from colliding with pods of its
    predecessor that the garbage collector has not removed yet.
    """
    prefix = image_name[:36].replace(".", "-").rstrip("-")
    return f"pull-{prefix}-{short_hash(image_name, image_uid, reference, node, length=16)}"


@dataclass(frozen=True)
class PodRequest:
    """Everything the pod spec depends on."""

    namespace: str
    image_name: str
    image_uid: str
    reference: str
    node: str
    pool: str
    image_pull_policy: str
    image_pull_secrets: Sequence[LocalObjectReference]
    tolerations: Sequence[Toleration]
    pull_timeout: float
    operator_image: str
    noop_path: str
    operator_image_pull_secrets: Sequence[str] = ()
    """Secrets that pull ``operator_image`` (the init container's), listed after the image's own."""


_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: Tiny, and limits equal to nothing a no-op could exceed; quota-bound namespaces accept them.
_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "50m", "memory": "16Mi"},
}


def _pull_secrets(req: PodRequest) -> list[dict[str, str]]:
    """The CachedImage's Secrets, then the operator image's; each name once, in that order.

    The pod pulls two images: the target (the CachedImage's Secrets) and, in its init container,
    the operator's own (``operator_image_pull_secrets``, e.g. a private mirror's). The kubelet
    tries every listed Secret for every image, so one list serves both.
    """
    names = [s.name for s in req.image_pull_secrets] + list(req.operator_image_pull_secrets)
    return [{"name": name} for name in dict.fromkeys(names)]


def _pinned_to(node: str) -> dict[str, Any]:
    """A required node selector: this node, and only while it runs Linux (or has no OS label).

    Terms are ORed, a term's requirements ANDed: ``(name = node and os = linux) or (name = node and
    no os label)``. This is target selection's rule (:mod:`.nodes`) said to the scheduler, so a node
    relabelled to another OS between admission and binding never runs the Linux-only helper.
    """
    name = {"key": "metadata.name", "operator": "In", "values": [node]}
    return {
        "nodeSelectorTerms": [
            {
                "matchFields": [name],
                "matchExpressions": [{"key": OS_LABEL, "operator": "In", "values": [PULL_POD_OS]}],
            },
            {"matchFields": [name], "matchExpressions": [{"key": OS_LABEL, "operator": "DoesNotExist"}]},
        ]
    }


def build_pull_pod(req: PodRequest) -> dict[str, Any]:
    """The pull pod for one image on one node (Pod Security "restricted")."""
    name = pull_pod_name(req.image_name, req.image_uid, req.reference, req.node)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": req.namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_COMPONENT: COMPONENT,
                LABEL_IMAGE: label_value(req.image_name),
                LABEL_REFERENCE: short_hash(req.reference),
                LABEL_NODE: short_hash(req.node),
                LABEL_POOL: label_value(req.pool),
            },
            "annotations": {
                ANNOTATION_NODE: req.node,
                ANNOTATION_REFERENCE: req.reference,
                ANNOTATION_IMAGE: req.image_name,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "CachedImage",
                    "name": req.image_name,
                    "uid": req.image_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(1, round(req.pull_timeout)),
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": _pinned_to(req.node)}
            },
            "tolerations": [t.to_json() for t in req.tolerations],
            "imagePullSecrets": _pull_secrets(req),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [{"name": "noop", "emptyDir": {"sizeLimit": "16Mi"}}],
            "initContainers": [
                {
                    "name": "install-noop",
                    "image": req.operator_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [req.noop_path, "--install", NOOP_TARGET],
                    "volumeMounts": [{"name": "noop", "mountPath": NOOP_MOUNT}],
                    "securityContext": _SECURITY_CONTEXT,
                    "resources": _RESOURCES,
                }
            ],
            "containers": [
                {
                    "name": "pull",
                    "image": req.reference,
                    "imagePullPolicy": req.image_pull_policy,
                    "command": [NOOP_TARGET],
                    "volumeMounts": [{"name": "noop", "mountPath": NOOP_MOUNT, "readOnly": True}],
                    "securityContext": _SECURITY_CONTEXT,
                    "resources": _RESOURCES,
                }
            ],
        },
    }


def pod_node(pod: Mapping[str, Any]) -> str:
    """The node a pull pod targets (from its annotation; ``spec.nodeName`` before it is bound)."""
    meta = pod.get("metadata") or {}
    return str(
        (meta.get("annotations") or {}).get(ANNOTATION_NODE) or (pod.get("spec") or {}).get("nodeName") or ""
    )


def is_active(pod: Mapping[str, Any]) -> bool:
    """A pull in flight: its result is not known yet and it is not being deleted. This is what
    the limits count.

    The result, not the phase, ends a pull: on a real kubelet the pod stays ``Running`` for a
    moment after its container has run (the image is on the node), and counting it then would
    hold a slot for a pull that is over, while the limits would disagree with the results.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return outcome(pod).state == "pending"


@dataclass(frozen=True)
class Outcome:
    """What a pull pod says about its pull."""

    state: Literal["pending", "pulled", "failed"]
    reason: str = ""
    message: str = ""
    digest: str | None = None
    finished: datetime | None = None


def _digest(image_id: Any) -> str | None:
    """``sha256:...`` from a containerStatus imageID such as ``docker.io/library/x@sha256:...``."""
    if isinstance(image_id, str) and "@" in image_id:
        digest = image_id.rsplit("@", 1)[1]
        if re.fullmatch(r"[a-z0-9]+:[a-f0-9]{32,}", digest):
            return digest
    return None


def _failure_reason(reason: str, message: str) -> str:
    if _UNAUTHORIZED.search(message or ""):
        return "Unauthorized"
    return reason or "Failed"


def outcome(pod: Mapping[str, Any]) -> Outcome:
    """Classify a pull pod (see the module docstring for the rules)."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    main = [c for c in status.get("containerStatuses") or () if c.get("name") == "pull"]
    init = list(status.get("initContainerStatuses") or ())
    digest = _digest(main[0].get("imageID")) if main else None
    if phase == "Succeeded":
        terminated = (main[0].get("state") or {}).get("terminated") or {} if main else {}
        return Outcome("pulled", "Pulled", digest=digest, finished=parse_time(terminated.get("finishedAt")))
    for cs in main:
        state = cs.get("state") or {}
        if "terminated" in state:  # the container was created, so its image is present
            term = state["terminated"] or {}
            return Outcome("pulled", "Pulled", digest=digest, finished=parse_time(term.get("finishedAt")))
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        if reason in PULL_FAILURE_REASONS:
            return Outcome("failed", _failure_reason(reason, message), message[:1024])
        if reason in _PULLED_REASONS:
            return Outcome("pulled", "Pulled", message[:1024], digest=digest)
    for cs in init:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in PULL_FAILURE_REASONS or reason in _PULLED_REASONS:
            message = f"installing the no-op helper failed: {waiting.get('message') or reason}"
            return Outcome("failed", _failure_reason(reason, message), message[:1024])
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            message = f"installing the no-op helper exited {terminated.get('exitCode')}: {terminated.get('reason', '')}"
            return Outcome("failed", "NoopInstallFailed", message[:1024])
    if phase == "Failed":
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or "")
        if reason == "DeadlineExceeded":
            return Outcome("failed", "Timeout", message[:1024] or "pull did not finish before pullTimeout")
        return Outcome("failed", _failure_reason(reason, message), message[:1024])
    return Outcome("pending")


@dataclass(frozen=True)
class PullPod:
    """A pull pod as one pass reads it: parsed once, then passed to the pure core."""

    obj: Mapping[str, Any]
    """The pod as the informer holds it (for deletes with a uid precondition)."""
    name: str
    namespace: str | None
    uid: str
    deleting: bool
    node: str
    reference: str | None
    """The image reference the pod pulls (its annotation)."""
    created: float
    """Unix seconds (``creationTimestamp``; the parse time when the server has not set it)."""
    outcome: Outcome

    @classmethod
    def parse(cls, pod: Mapping[str, Any], *, now: float) -> PullPod:
        metadata = meta(pod)
        created = metadata.creation_timestamp
        return cls(
            obj=pod,
            name=metadata.name,
            namespace=metadata.namespace,
            uid=metadata.uid or "",
            deleting=metadata.deleting,
            node=pod_node(pod),
            reference=metadata.annotations.get(ANNOTATION_REFERENCE),
            created=created.timestamp() if created is not None else now,
            outcome=outcome(pod),
        )

    def timed_out(self, message: str) -> PullPod:
        """This pod with a ``Timeout`` failure: the operator's deadline passed without a result."""
        return replace(self, outcome=Outcome("failed", "Timeout", message))
