"""Target node selection: selector, taints vs tolerations, cordon, readiness, the image's platforms."""

from __future__ import annotations

from typing import Any

from drop_operator.api import Toleration
from drop_operator.controllers.cachedimage.nodes import (
    ARCH_LABEL,
    ARCH_VARIANT_LABEL,
    OS_LABEL,
    is_target,
    node_fingerprint,
    node_images,
    readiness,
    runs_platform,
    select_targets,
    split_by_platform,
    tolerates_taint,
)
from drop_operator.discovery.platforms import Platform


def node(
    name: str = "n1",
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str | None = "True",
    unschedulable: bool = False,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {
        "metadata": meta,
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"conditions": conditions},
    }


def tol(**kw: Any) -> Toleration:
    return Toleration.model_validate(kw)


def test_toleration_semantics_follow_kubernetes() -> None:
    taint = {"key": "gpu", "value": "a100", "effect": "NoSchedule"}
    assert tolerates_taint(tol(key="gpu", operator="Exists"), taint)
    assert tolerates_taint(tol(key="gpu", value="a100"), taint)
    assert tolerates_taint(tol(key="gpu", operator="Equal", value="a100", effect="NoSchedule"), taint)
    assert not tolerates_taint(tol(key="gpu", value="v100"), taint)
    assert not tolerates_taint(tol(key="gpu", operator="Exists", effect="NoExecute"), taint)
    assert not tolerates_taint(tol(key="other", operator="Exists"), taint)
    assert tolerates_taint(tol(operator="Exists"), taint)  # empty key + Exists tolerates everything
    assert not tolerates_taint(tol(value="a100"), taint)  # empty key with Equal matches nothing


def test_node_selector_must_match_every_label() -> None:
    n = node(labels={"pool": "build", "zone": "a"})
    assert is_target(n, {"pool": "build"}, [])
    assert is_target(n, {}, [])
    assert not is_target(n, {"pool": "build", "zone": "b"}, [])
    assert not is_target(n, {"missing": ""}, [])


def test_only_nodes_that_run_linux_or_say_nothing_are_targets() -> None:
    # lin-1 (linux) and win-1 (windows) -> one target; the helper is a Linux binary
    nodes = [
        node("lin-1", labels={"kubernetes.io/os": "linux"}),
        node("win-1", labels={"kubernetes.io/os": "windows"}),
    ]
    assert set(select_targets(nodes, {}, [])) == {"lin-1"}
    # tolerations and selectors cannot make a Windows node run the helper
    assert not is_target(nodes[1], {"kubernetes.io/os": "windows"}, [tol(operator="Exists")])
    assert not is_target(node(labels={"kubernetes.io/os": "darwin"}), {}, [])
    assert is_target(node(labels={}), {}, [])  # no label: hand-made Node objects; kubelets always set it


def test_noschedule_and_noexecute_taints_exclude_unless_tolerated() -> None:
    for effect in ("NoSchedule", "NoExecute"):
        n = node(taints=[{"key": "dedicated", "value": "ci", "effect": effect}])
        assert not is_target(n, {}, [])
        assert is_target(n, {}, [tol(key="dedicated", operator="Exists")])
    assert is_target(node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), {}, [])


def test_cordoned_and_deleting_nodes_are_never_targets() -> None:
    everything = [tol(operator="Exists")]
    assert not is_target(node(unschedulable=True), {}, everything)
    assert not is_target(node(deleting=True), {}, everything)


def test_not_ready_nodes_only_when_the_lifecycle_taint_is_tolerated() -> None:
    for n in (node(ready="False"), node(ready=None)):
        assert readiness(n) != "True"
        assert not is_target(n, {}, [])
        assert is_target(n, {}, [tol(key="node.kubernetes.io/not-ready", operator="Exists")])
    unknown = node(ready="Unknown")
    assert not is_target(unknown, {}, [tol(key="node.kubernetes.io/not-ready", operator="Exists")])
    assert is_target(unknown, {}, [tol(key="node.kubernetes.io/unreachable", operator="Exists")])


def test_select_targets_by_name() -> None:
    nodes = [node("a"), node("b", unschedulable=True), node("c", labels={"x": "1"})]
    assert set(select_targets(nodes, {}, [])) == {"a", "c"}
    assert set(select_targets(nodes, {"x": "1"}, [])) == {"c"}


def test_fingerprint_ignores_heartbeats_but_sees_relevant_changes() -> None:
    a = node()
    b = node()
    b["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    b["metadata"]["resourceVersion"] = "99"
    assert node_fingerprint(a) == node_fingerprint(b)
    assert node_fingerprint(a) != node_fingerprint(node(ready="False"))
    assert node_fingerprint(a) != node_fingerprint(node(unschedulable=True))
    assert node_fingerprint(a) != node_fingerprint(node(labels={"x": "y"}))
    assert node_fingerprint(a) != node_fingerprint(node(labels={"kubernetes.io/os": "windows"}))
    assert node_fingerprint(a) != node_fingerprint(node(taints=[{"key": "k", "effect": "NoSchedule"}]))


def test_node_images_lists_every_reported_name() -> None:
    n = node()
    n["status"]["images"] = [{"names": ["docker.io/library/nginx:1.25", "docker.io/library/nginx@sha256:ab"]}]
    assert node_images(n) == {"docker.io/library/nginx:1.25", "docker.io/library/nginx@sha256:ab"}


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARM_V7 = Platform("linux", "arm", "v7")


def arch_node(name: str, arch: str | None, os: str | None = "linux", **labels: str) -> dict[str, Any]:
    all_labels = dict(labels)
    if arch:
        all_labels[ARCH_LABEL] = arch
    if os:
        all_labels[OS_LABEL] = os
    return node(name, labels=all_labels)


def test_a_node_runs_a_platform_by_its_os_and_arch_labels() -> None:
    assert runs_platform(arch_node("a", "arm64"), [AMD64, ARM64])
    assert not runs_platform(arch_node("a", "amd64"), [ARM64])
    assert not runs_platform(arch_node("w", "amd64", os="windows"), [AMD64])
    # A label the node lacks matches anything: nothing says it cannot run the image.
    assert runs_platform(arch_node("bare", None, os=None), [ARM64])


def test_variant_counts_only_where_the_node_states_it() -> None:
    v6 = arch_node("pi", "arm", **{ARCH_VARIANT_LABEL: "v6"})
    assert not runs_platform(v6, [ARM_V7])
    assert runs_platform(v6, [Platform("linux", "arm", "v6")])
    assert runs_platform(v6, [Platform("linux", "arm")])  # the image names no variant
    assert runs_platform(arch_node("arm", "arm"), [ARM_V7])  # the node names none


def test_split_by_platform_counts_the_nodes_left_out() -> None:
    targets = {n: arch_node(n, arch) for n, arch in (("a1", "amd64"), ("r1", "arm64"), ("r2", "arm64"))}
    kept, lacking = split_by_platform(targets, frozenset({ARM64}))
    assert sorted(kept) == ["r1", "r2"]
    assert lacking == ["a1"]
    # Unknown platforms (None, or an index naming none): targeting by labels only.
    assert split_by_platform(targets, None) == (targets, [])
    assert split_by_platform(targets, frozenset()) == (targets, [])
