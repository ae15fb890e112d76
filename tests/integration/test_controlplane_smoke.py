"""The control plane the integration tests use is real: CRDs, watches, garbage collection, kwok."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devtools.localcluster import LocalCluster
from devtools.process import wait_until
from tests.infra.controlplane import started_cluster, unique_name

SMOKE_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.example.com}
spec:
  group: smoke.example.com
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""


def _api(cluster: LocalCluster, path: str, timeout: float = 10) -> Any:
    request = urllib.request.Request(cluster.url + path, headers={"Authorization": f"Bearer {cluster.token}"})
    ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
    return urllib.request.urlopen(request, timeout=timeout, context=ctx)


def test_custom_object_is_created_listed_and_watched(control_plane: LocalCluster) -> None:
    control_plane.kubectl("apply", "-f", "-", input=SMOKE_CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.smoke.example.com"
    )
    name = unique_name("w")
    listed: dict[str, Any] = {}

    def served() -> bool:
        # A new resource answers 429 while its watch cache initializes; clients retry.
        try:
            listed.update(json.loads(_api(control_plane, "/apis/smoke.example.com/v1/widgets").read()))
        except urllib.error.HTTPError as err:
            if err.code != 429:
                raise
            return False
        return True

    wait_until(served, 30, "widgets to be served")
    resource_version = listed["metadata"]["resourceVersion"]

    control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=f"apiVersion: smoke.example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\n"
        "spec: {size: 3}\n",
    )
    names = json.loads(control_plane.kubectl("get", "widgets.smoke.example.com", "-o", "json").stdout)[
        "items"
    ]
    assert name in [item["metadata"]["name"] for item in names]

    stream = _api(
        control_plane,
        f"/apis/smoke.example.com/v1/widgets?watch=1&resourceVersion={resource_version}&timeoutSeconds=10",
    )
    seen = []
    for line in stream:
        event = json.loads(line)
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if ("ADDED", name) in seen:
            break
    assert ("ADDED", name) in seen


def test_garbage_collector_removes_owned_objects(control_plane: LocalCluster) -> None:
    owner, child = unique_name("owner"), unique_name("child")
    control_plane.kubectl("create", "configmap", owner)
    uid = control_plane.kubectl("get", "configmap", owner, "-o", "jsonpath={.metadata.uid}").stdout
    control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": child,
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid}],
                },
            }
        ),
    )
    control_plane.kubectl("delete", "configmap", owner, "--wait=false")
    wait_until(
        lambda: control_plane.kubectl("get", "configmap", child, check=False).returncode != 0,
        60,
        "the garbage collector to delete the owned ConfigMap",
        interval=0.5,
    )


def test_kwok_node_becomes_ready_and_runs_a_pod(kwok: LocalCluster) -> None:
    node, pod = unique_name("node"), unique_name("pod")
    kwok.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"type": "kwok"},
                },
            }
        ),
    )

    def node_ready() -> bool:
        out = kwok.kubectl(
            "get", "node", node, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False
        )
        return out.stdout == "True"

    wait_until(node_ready, 60, f"node {node} to become Ready", interval=0.3)
    kwok.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": "default"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example.invalid/app:1"}]},
            }
        ),
    )
    wait_until(
        lambda: kwok.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}").stdout == "Running",
        60,
        f"pod {pod} to be Running",
        interval=0.3,
    )


def test_extra_user_is_authenticated_and_audited_apart(tmp_path: Path) -> None:
    """A cluster's extra users authenticate with their own kubeconfig, and per-process flags reach
    the API server: here an audit policy that records that user's requests and nobody else's (how
    the benchmarks count an operator's requests)."""
    policy = tmp_path / "audit-policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
        "rules:\n- level: Metadata\n  users: [tester]\n- level: None\n"
    )
    log = tmp_path / "audit.log"
    args = {"kube-apiserver": [f"--audit-policy-file={policy}", f"--audit-log-path={log}"]}
    with started_cluster(
        tmp_path / "cluster", controller_manager=False, users=("tester",), extra_args=args
    ) as cluster:
        whoami = cluster.kubectl(
            "--kubeconfig", str(cluster.user_kubeconfig("tester")), "auth", "whoami", "-o", "json"
        )
        assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "tester"
        cluster.kubectl("get", "namespaces")  # the admin: not audited
        events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events, "the audit log recorded nothing"
    assert {e["user"]["username"] for e in events} == {"tester"}
