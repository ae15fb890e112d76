"""Uninstall, as the install guide describes it: delete the CachedImageSets, then ``helm uninstall``.

Everything the operator created goes away: the CachedImages (garbage-collected through their
owner references) and their node records (ConfigMaps they own), and every pull pod; so does
everything the chart made, the operator's own pods too where it runs in-cluster. The
leader-election Lease stays in the namespace, held by no one: local mode stops its replicas before
``helm uninstall``, and the leader clears the holder on its way out. In-cluster, ``helm uninstall``
deletes the ServiceAccount and RBAC in the same pass as the Deployment, so the pods, stopped after
that, can no longer write the Lease (``could not release lease: 403`` in their log) and it expires
15 s after the leader's last renewal. This scenario ends the session's installation, so it runs last.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drop_operator.controllers.common import nodecache
from e2e.environment import Environment
from e2e.kube import eventually
from e2e.scenario import PULL_POD_SELECTOR


def test_uninstall_removes_what_the_operator_created(env: Environment, applied: None) -> None:
    assert env.kubectl.items("cachedimages"), "nothing to uninstall: the earlier scenarios created no images"
    lease = env.kubectl.get("lease", env.lease_name, namespace=env.namespace)
    assert lease is not None and lease["spec"].get("holderIdentity"), f"no leader before uninstall: {lease}"

    env.kubectl.delete("cachedimagesets", "--all")
    eventually(
        lambda: not env.kubectl.items("cachedimages"),
        within=60 * env.patience,
        what=lambda: (
            f"CachedImages left: {[i['metadata']['name'] for i in env.kubectl.items('cachedimages')]}"
        ),
    )
    env.uninstall()

    eventually(
        lambda: not env.kubectl.items("pods", namespace=env.namespace, selector=PULL_POD_SELECTOR),
        within=60 * env.patience,
        what="pull pods to be gone",
    )
    eventually(
        lambda: (
            not env.kubectl.items("configmaps", namespace=env.namespace, selector=nodecache.RECORD_SELECTOR)
        ),
        within=60 * env.patience,
        what="the images' node records to be gone",
    )

    def release_objects() -> str:
        # ReplicaSets and the operator's pods (in-cluster modes) go by garbage collection.
        return env.kubectl.run(
            "get",
            "deployments,replicasets,pods,serviceaccounts,roles,rolebindings,services",
            f"--namespace={env.namespace}",
            f"--selector=app.kubernetes.io/instance={env.release}",
            "--output=name",
        ).strip()

    eventually(
        lambda: release_objects() == "",
        within=60 * env.patience,
        what=lambda: f"the release's objects to be gone: {release_objects()}",
    )
    # No replica is left, so none holds the Lease.
    lease = env.kubectl.get("lease", env.lease_name, namespace=env.namespace)
    if env.releases_lease_on_uninstall:
        assert lease is None or not lease["spec"].get("holderIdentity"), f"Lease still held: {lease}"
    else:
        eventually(
            lambda: _expired(env.kubectl.get("lease", env.lease_name, namespace=env.namespace)),
            within=30,
            what=lambda: (
                f"the Lease to expire: {env.kubectl.get('lease', env.lease_name, namespace=env.namespace)}"
            ),
        )
    cluster_objects = env.kubectl.run(
        "get",
        "clusterroles,clusterrolebindings",
        f"--selector=app.kubernetes.io/instance={env.release}",
        "--output=name",
    )
    assert cluster_objects.strip() == ""


def _expired(lease: dict[str, Any] | None) -> bool:
    """Released, gone, or not renewed within its duration."""
    spec = (lease or {}).get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    renewed = dt.datetime.fromisoformat(spec["renewTime"])
    return dt.datetime.now(dt.UTC) > renewed + dt.timedelta(seconds=spec["leaseDurationSeconds"])
