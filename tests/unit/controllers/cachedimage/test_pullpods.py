"""Pull pod spec, names and labels, and the classification of pod outcomes."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from drop_operator.api import LocalObjectReference, Toleration
from drop_operator.controllers.cachedimage.pullpods import (
    LABEL_NODE,
    PodRequest,
    build_pull_pod,
    is_active,
    outcome,
    pod_node,
    pull_pod_name,
)
from drop_operator.controllers.common import label_value

REQ = PodRequest(
    namespace="drop-system",
    image_name="registry-example-com-app-1a2b3c",
    image_uid="uid-1",
    reference="registry.example.com/group/app:v1",
    node="node-" + "x" * 80,
    pool="fast",
    image_pull_policy="Always",
    image_pull_secrets=[LocalObjectReference(name="regcred")],
    tolerations=[Toleration(key="dedicated", operator="Exists")],
    pull_timeout=5.0,
    operator_image="drop-operator:0.1.0",
    noop_path="/usr/local/bin/drop-noop",
)


def test_names_are_deterministic_and_distinct() -> None:
    a = pull_pod_name("img", "u", "r:1", "n1")
    assert a == pull_pod_name("img", "u", "r:1", "n1")
    assert (
        len(
            {
                a,
                pull_pod_name("img", "u", "r:1", "n2"),
                pull_pod_name("img", "u", "r:2", "n1"),
                pull_pod_name("im", "u", "r:1", "n1"),
                pull_pod_name("img", "v", "r:1", "n1"),
            }
        )
        == 5
    )
    long = pull_pod_name("a" * 253, "u", "r:1", "n1")
    assert len(long) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", long)


def test_label_values_stay_valid() -> None:
    assert label_value("short.name") == "short.name"
    long = label_value("x" * 100)
    assert len(long) <= 63 and long != label_value("x" * 101)
    assert label_value("") == ""


def test_pod_spec_is_restricted_pinned_and_owned() -> None:
    pod = build_pull_pod(REQ)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["namespace"] == "drop-system"
    assert all(len(v) <= 63 for v in meta["labels"].values())
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "drop-operator"
    owner = meta["ownerReferences"][0]
    assert owner["kind"] == "CachedImage" and owner["uid"] == "uid-1" and owner["controller"] is True
    assert pod_node(pod) == REQ.node
    assert meta["labels"][LABEL_NODE] != REQ.node
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    name = {"key": "metadata.name", "operator": "In", "values": [REQ.node]}
    # pinned to the node, and to Linux: labelled linux, or unlabelled (see nodes.is_target)
    assert term == [
        {
            "matchFields": [name],
            "matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
        },
        {
            "matchFields": [name],
            "matchExpressions": [{"key": "kubernetes.io/os", "operator": "DoesNotExist"}],
        },
    ]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 5
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert "priorityClassName" not in spec and "nodeName" not in spec
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    init, main = spec["initContainers"][0], spec["containers"][0]
    assert init["image"] == "drop-operator:0.1.0"
    assert init["command"] == ["/usr/local/bin/drop-noop", "--install", "/drop/noop"]
    assert main["image"] == REQ.reference and main["imagePullPolicy"] == "Always"
    assert main["command"] == ["/drop/noop"]
    for c in (init, main):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert c["resources"]["requests"] == {"cpu": "1m", "memory": "8Mi"}
        assert c["resources"]["limits"] == {"cpu": "50m", "memory": "16Mi"}


def test_pull_pods_list_the_operator_images_pull_secrets_too() -> None:
    # the init container pulls the operator image, from a private mirror
    mirrored = replace(REQ, operator_image_pull_secrets=("mirror-creds",))
    assert build_pull_pod(mirrored)["spec"]["imagePullSecrets"] == [
        {"name": "regcred"},
        {"name": "mirror-creds"},
    ]
    # a name both lists hold appears once, in the image's place; repeats within a list collapse
    both = replace(
        REQ,
        image_pull_secrets=[LocalObjectReference(name="mirror-creds"), LocalObjectReference(name="regcred")],
        operator_image_pull_secrets=("mirror-creds", "other", "other"),
    )
    names = [s["name"] for s in build_pull_pod(both)["spec"]["imagePullSecrets"]]
    assert names == ["mirror-creds", "regcred", "other"]
    only = replace(REQ, image_pull_secrets=[], operator_image_pull_secrets=("mirror-creds",))
    assert build_pull_pod(only)["spec"]["imagePullSecrets"] == [{"name": "mirror-creds"}]


def pod(
    phase: str = "Pending",
    *,
    main: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {"phase": phase, **status}
    if main is not None:
        s["containerStatuses"] = [{"name": "pull", **main}]
    if init is not None:
        s["initContainerStatuses"] = [{"name": "install-noop", **init}]
    return {"metadata": {"name": "p"}, "status": s}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"state": {"waiting": {"reason": reason, "message": message}}}


def test_success_and_digest() -> None:
    done = pod(
        "Succeeded",
        main={
            "imageID": "registry.example.com/group/app@sha256:" + "a" * 64,
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2024-05-01T10:00:00Z"}},
        },
    )
    o = outcome(done)
    assert o.state == "pulled" and o.digest == "sha256:" + "a" * 64
    assert o.finished is not None and o.finished.year == 2024
    assert outcome(pod("Succeeded")).state == "pulled"
    # a runtime that reports the config ID instead of a repo digest gives no digest
    assert outcome(pod("Succeeded", main={"imageID": "sha256:" + "b" * 64, "state": {}})).digest is None


@pytest.mark.parametrize(
    "reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"]
)
def test_pull_errors_fail_with_the_kubelet_reason(reason: str) -> None:
    o = outcome(pod("Pending", main=waiting(reason, "rpc error: not found")))
    assert (o.state, o.reason) == ("failed", reason)
    assert "not found" in o.message


def test_401_is_reported_as_unauthorized() -> None:
    msg = "failed to pull: unexpected status from HEAD request: 401 Unauthorized"
    assert outcome(pod("Pending", main=waiting("ErrImagePull", msg))).reason == "Unauthorized"


@pytest.mark.parametrize(
    "message",
    [
        # containerd 1.6 on a real node, token registry granting an anonymous caller nothing:
        'failed to pull and unpack image "127.0.0.1:5000/private/app:v1": failed to resolve reference '
        '"127.0.0.1:5000/private/app:v1": pull access denied, repository does not exist or may require '
        "authorization: server message: insufficient_scope: authorization failed",
        "unexpected status from GET request to https://ghcr.example/v2/o/app/manifests/v1: 403 Forbidden",
        "denied: requested access to the resource is denied",
    ],
)
def test_refusals_in_containerds_words_are_unauthorized(message: str) -> None:
    assert outcome(pod("Pending", main=waiting("ErrImagePull", message))).reason == "Unauthorized"


def test_errors_after_the_pull_mean_the_image_is_present() -> None:
    for reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
        assert outcome(pod("Pending", main=waiting(reason))).state == "pulled"
    exited = pod("Failed", main={"state": {"terminated": {"exitCode": 127, "reason": "StartError"}}})
    assert outcome(exited).state == "pulled"


def test_deadline_is_a_timeout_and_other_pod_failures_keep_their_reason() -> None:
    assert (
        outcome(pod("Failed", reason="DeadlineExceeded", main=waiting("ContainerCreating"))).reason
        == "Timeout"
    )
    assert outcome(pod("Failed", reason="Evicted")).reason == "Evicted"


def test_noop_install_failures_are_failures() -> None:
    o = outcome(pod("Pending", init=waiting("ErrImagePull", "operator image missing")))
    assert o.state == "failed" and "no-op" in o.message
    o = outcome(pod("Pending", init={"state": {"terminated": {"exitCode": 1}}}))
    assert (o.state, o.reason) == ("failed", "NoopInstallFailed")


def test_pending_and_running_are_in_flight() -> None:
    assert outcome(pod("Pending")).state == "pending"
    assert outcome(pod("Running", main={"state": {"running": {}}})).state == "pending"
    assert is_active(pod("Pending")) and is_active(pod("Running"))
    assert not is_active(pod("Succeeded")) and not is_active(pod("Failed"))
    deleting = pod("Running")
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not is_active(deleting)


def test_a_pull_ends_with_its_result_not_with_the_phase() -> None:
    # A real kubelet reports the container terminated while the pod is still Running.
    ran = pod("Running", main={"state": {"terminated": {"exitCode": 0}}})
    assert outcome(ran).state == "pulled" and not is_active(ran)
    refused = pod("Pending", main=waiting("ErrImagePull", "not found"))
    assert outcome(refused).state == "failed" and not is_active(refused)
