"""The informers' projections keep every field the controllers read.

Each reader of a cached Node or pull pod is run on whole objects (shaped like a kubelet's and the
API server's, with the fields nobody reads filled in too) and on the same objects projected the
way the controller's informer projects them; the answers must be the same. A reader that starts
looking at a field outside the projection makes these tests fail (the last test shows that the
comparison does notice a missing field).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from drop_operator.api import CachedImageSpec, Toleration
from drop_operator.controllers.cachedimage import cachefields as caching
from drop_operator.controllers.cachedimage.decide import warming_nodes
from drop_operator.controllers.cachedimage.imagelist import image_listing, listed_size, reported_names
from drop_operator.controllers.cachedimage.nodes import (
    is_target,
    node_fingerprint,
    node_images,
    node_name,
    readiness,
    runs_platform,
)
from drop_operator.controllers.cachedimage.pullpods import PullPod, is_active, outcome, pod_node
from drop_operator.controllers.cachedimage.reconciler import is_pull_pod, pool_label
from drop_operator.controllers.cachedimage.targetindex import TargetIndex
from drop_operator.controllers.cachedimage.wiring import node_changed, pull_ended
from drop_operator.controllers.common import controller_uid, meta
from drop_operator.controllers.warmup import cachefields as warming
from drop_operator.controllers.warmup.decide import Gate, decide, gates_node, warming_keys
from drop_operator.controllers.warmup.wiring import taints_or_labels_changed
from drop_operator.discovery.platforms import Platform
from drop_operator.runtime.transform import Fields
from drop_operator.runtime.transform import intern_strings as intern

Obj = dict[str, Any]
WARMING = "drop.corewire.io/warming"
STAMP = "2026-01-01T00:00:00Z"


def kubelet_node(name: str, **kw: Any) -> Obj:
    """A Node as a kubelet writes it, every field filled in."""
    conditions = kw.get("conditions")
    if conditions is None:
        conditions = [
            ("MemoryPressure", "False"),
            ("DiskPressure", "False"),
            ("PIDPressure", "False"),
            ("Ready", kw.get("ready", "True")),
        ]
    images = kw.get("images")
    if images is None:
        images = [
            {
                "names": [
                    f"registry.example.com/app-{i}@sha256:{i:064x}",
                    f"registry.example.com/app-{i}:v{i}",
                ],
                "sizeBytes": 500_000_000 - i * 1_000_000,
            }
            for i in range(kw.get("image_count", 50))
        ]
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "42",
            "creationTimestamp": kw.get("created", STAMP),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": kw.get("os", "linux"),
                "kubernetes.io/arch": kw.get("arch", "amd64"),
                "pool": kw.get("pool", "general"),
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}],
        },
        "spec": {
            "podCIDR": "10.244.1.0/24",
            "podCIDRs": ["10.244.1.0/24"],
            "providerID": f"aws:///{name}",
            "taints": kw.get("taints", []),
        },
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "110"},
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "lastHeartbeatTime": STAMP,
                    "lastTransitionTime": STAMP,
                    "reason": f"Kubelet{t}",
                    "message": f"{t} is {s}",
                }
                for t, s in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "arm64", "operatingSystem": "windows", "kubeletVersion": "v1.34.4"},
            "images": images,
            "volumesAttached": [{"name": "kubernetes.io/csi/ebs^vol-1", "devicePath": ""}],
        },
    }
    if kw.get("unschedulable"):
        node["spec"]["unschedulable"] = True
    if kw.get("deleting"):
        node["metadata"]["deletionTimestamp"] = STAMP
    return node


NODES = [
    kubelet_node("ready"),
    kubelet_node("not-ready", ready="False"),
    kubelet_node("unknown", ready="Unknown"),
    kubelet_node("no-ready-condition", conditions=[("MemoryPressure", "False")]),
    kubelet_node("never-reported", conditions=[], images=[]),
    kubelet_node("cordoned", unschedulable=True),
    kubelet_node("deleting", deleting=True),
    kubelet_node("windows", os="windows"),
    kubelet_node("arm", arch="arm64", pool="gpu"),
    kubelet_node("short-list", image_count=3),
    kubelet_node(
        "tainted",
        taints=[
            {"key": WARMING, "effect": "NoSchedule", "timeAdded": STAMP},
            {"key": "dedicated", "value": "ci", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": STAMP},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ],
    ),
]

SELECTORS: list[tuple[dict[str, str], list[Toleration]]] = [
    ({}, []),
    ({"pool": "gpu"}, []),
    ({}, [Toleration(key="dedicated", operator="Exists")]),
    ({}, [Toleration(operator="Exists")]),
    ({}, [Toleration(key="node.kubernetes.io/not-ready", operator="Exists")]),
]
IMAGE_NAMES = [
    reported_names("registry.example.com/app-1:v1"),
    reported_names("registry.example.com/app-49:v49"),
    reported_names("registry.example.com/absent:v1"),
]
PLATFORMS = [frozenset({Platform("linux", "amd64")}), frozenset({Platform("linux", "arm64", "v8")})]


def pull_pod(name: str, *, phase: str = "Pending", **kw: Any) -> Obj:
    """A pull pod as the API server returns it, spec and status filled in."""
    status: Obj = {
        "phase": phase,
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": STAMP}],
        "hostIP": "10.0.0.1",
        "podIP": "10.244.1.7",
        "qosClass": "Guaranteed",
        "startTime": STAMP,
    }
    if "main" in kw:
        status["containerStatuses"] = [
            {
                "name": "pull",
                "image": "registry.example.com/app:v1",
                "imageID": kw.get("image_id", ""),
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": kw["main"],
            }
        ]
    if "init" in kw:
        status["initContainerStatuses"] = [
            {"name": "install-noop", "image": "drop-operator:0.1.0", "imageID": "", "state": kw["init"]}
        ]
    if "reason" in kw:
        status["reason"], status["message"] = kw["reason"], kw.get("message", "")
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "drop-system",
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": STAMP,
            "labels": {
                "app.kubernetes.io/managed-by": "drop-operator",
                "app.kubernetes.io/component": "pull",
                "drop.corewire.io/pool": "fast",
            },
            "annotations": {
                "drop.corewire.io/node": "node-1",
                "drop.corewire.io/reference": "registry.example.com/app:v1",
            },
            "ownerReferences": [
                {
                    "apiVersion": "drop.corewire.io/v1alpha1",
                    "kind": "CachedImage",
                    "name": "app",
                    "uid": "img-uid",
                    "controller": True,
                }
            ],
            "managedFields": [{"manager": "drop-operator"}],
        },
        "spec": {
            "nodeName": kw.get("node_name", "node-1"),
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 300,
            "containers": [
                {"name": "pull", "image": "registry.example.com/app:v1", "command": ["/noop/noop"]}
            ],
            "initContainers": [{"name": "install-noop", "image": "drop-operator:0.1.0"}],
            "volumes": [{"name": "noop", "emptyDir": {}}],
        },
        "status": status,
    }
    if kw.get("deleting"):
        pod["metadata"]["deletionTimestamp"] = STAMP
    if kw.get("no_annotation"):
        del pod["metadata"]["annotations"]["drop.corewire.io/node"]
    return pod


PODS = [
    pull_pod("pending"),
    pull_pod("unannotated", no_annotation=True, node_name="node-9"),
    pull_pod(
        "succeeded",
        phase="Succeeded",
        main={"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": STAMP}},
        image_id=f"registry.example.com/app@sha256:{1:064x}",
    ),
    pull_pod("running-done", phase="Running", main={"terminated": {"exitCode": 0, "finishedAt": STAMP}}),
    pull_pod("pull-error", main={"waiting": {"reason": "ErrImagePull", "message": "401 Unauthorized"}}),
    pull_pod("backoff", main={"waiting": {"reason": "ImagePullBackOff", "message": "back-off pulling"}}),
    pull_pod("init-failed", init={"terminated": {"exitCode": 1, "reason": "Error"}}),
    pull_pod("init-pull", init={"waiting": {"reason": "ErrImagePull", "message": "no such image"}}),
    pull_pod("deadline", phase="Failed", reason="DeadlineExceeded", message="Pod was active too long"),
    pull_pod("deleting", deleting=True),
]


def prepared(obj: Obj, fields: Fields) -> Obj:
    """What the informer caches: managed fields dropped, projected, strings interned."""
    whole = copy.deepcopy(obj)
    whole["metadata"].pop("managedFields", None)
    return intern(fields(whole))


def same_on_projection(fields: Fields, objects: list[Obj], reader: Callable[[Obj], Any]) -> list[str]:
    """Names of the objects on which ``reader`` answers differently once projected."""
    return [node_name(o) for o in objects if reader(o) != reader(prepared(o, fields))]


NODE_READERS: dict[str, Callable[[Obj], Any]] = {
    "node_name": node_name,
    "readiness": readiness,
    "node_images": node_images,
    "node_fingerprint": node_fingerprint,
    "is_target": lambda n: [is_target(n, sel, tol) for sel, tol in SELECTORS],
    "runs_platform": lambda n: [runs_platform(n, p) for p in PLATFORMS],
    "image_listing": lambda n: [
        image_listing(n, names, size) for names in IMAGE_NAMES for size in (None, 1, 10**12)
    ],
    "listed_size": lambda n: [listed_size(n, names) for names in IMAGE_NAMES],
    "node_changed": lambda n: node_changed(kubelet_node("ready"), n),
}


@pytest.mark.parametrize("reader", sorted(NODE_READERS))
def test_node_caching_reads_only_what_its_node_informer_keeps(reader: str) -> None:
    assert same_on_projection(caching.NODE_FIELDS, NODES, NODE_READERS[reader]) == []


def test_warming_nodes_reads_only_what_the_node_informer_keeps() -> None:
    spec = CachedImageSpec.model_validate(
        {"image": "registry.example.com/app", "warmUp": {"taintKey": WARMING}}
    )

    def warming(nodes: list[dict[str, Any]]) -> set[str]:
        index = TargetIndex()
        for node in nodes:
            index.update(node)
        return warming_nodes({node_name(n) for n in nodes}, spec, index.tainted)

    pruned = [prepared(n, caching.NODE_FIELDS) for n in NODES]
    assert warming(NODES) == warming(pruned) == {"tainted"}


def _gates() -> list[Gate]:
    return [
        Gate(name="any", taint_key=WARMING, max_wait=600.0),
        Gate(name="gpu", taint_key=WARMING, max_wait=600.0, node_selector={"pool": "gpu"}),
        Gate(name="arm", taint_key=WARMING, max_wait=60.0, platforms=frozenset({("linux", "arm64")})),
        Gate(
            name="tolerant",
            taint_key=WARMING,
            max_wait=600.0,
            tolerations=(Toleration(key="dedicated", operator="Exists"),),
        ),
    ]


def _meta_view(obj: Obj) -> tuple[Any, ...]:
    m = meta(obj)
    return (m.name, m.uid, m.deleting, m.creation_timestamp, m.resource_version)


def _pull_pod_view(pod: Obj) -> tuple[Any, ...]:
    p = PullPod.parse(pod, now=0.0)
    return (p.name, p.namespace, p.uid, p.deleting, p.node, p.reference, p.created, p.outcome)


WARMUP_READERS: dict[str, Callable[[Obj], Any]] = {
    "warming_keys": lambda n: warming_keys(n, [WARMING, "dedicated"]),
    "gates_node": lambda n: [gates_node(g, n) for g in _gates()],
    "decide": lambda n: decide(n, _gates(), created=1000.0, now=1030.0),
    "taints_or_labels_changed": lambda n: taints_or_labels_changed(kubelet_node("ready"), n),
    "meta": _meta_view,
    # the taint-removing patch writes the other taints back as they are cached
    "taints": lambda n: (n.get("spec") or {}).get("taints"),
}


@pytest.mark.parametrize("reader", sorted(WARMUP_READERS))
def test_warm_up_reads_only_what_its_node_informer_keeps(reader: str) -> None:
    assert same_on_projection(warming.NODE_FIELDS, NODES, WARMUP_READERS[reader]) == []


POD_READERS: dict[str, Callable[[Obj], Any]] = {
    "is_pull_pod": is_pull_pod,
    "pool_label": pool_label,
    "pod_node": pod_node,
    "is_active": is_active,
    "outcome": outcome,
    "PullPod.parse": _pull_pod_view,
    "controller_uid": lambda p: controller_uid(p, "CachedImage"),
    "pull_ended": lambda p: pull_ended(pull_pod("pending"), p),
}


@pytest.mark.parametrize("reader", sorted(POD_READERS))
def test_node_caching_reads_only_what_its_pod_informer_keeps(reader: str) -> None:
    assert same_on_projection(caching.POD_FIELDS, PODS, POD_READERS[reader]) == []


def test_the_projections_do_drop_what_nobody_reads() -> None:
    node = prepared(NODES[0], caching.NODE_FIELDS | warming.NODE_FIELDS)
    assert set(node["status"]) == {"conditions", "images"}
    assert node["status"]["conditions"][0] == {"type": "MemoryPressure", "status": "False"}
    assert set(node["status"]["images"][0]) == {"names", "sizeBytes"}
    assert "annotations" not in node["metadata"] and "podCIDR" not in node["spec"]
    pod = prepared(PODS[2], caching.POD_FIELDS)
    assert set(pod["spec"]) == {"nodeName"}
    assert set(pod["status"]["containerStatuses"][0]) == {"name", "imageID", "state"}


def test_a_reader_of_a_pruned_field_is_noticed() -> None:
    """The comparison above catches a reader that needs a field the projection drops."""
    without_sizes = Fields(*(p for p in caching.NODE_FIELDS.paths if p != "status.images[].sizeBytes"))
    assert same_on_projection(without_sizes, NODES, NODE_READERS["listed_size"]) != []
    assert same_on_projection(without_sizes, NODES, NODE_READERS["image_listing"]) != []
