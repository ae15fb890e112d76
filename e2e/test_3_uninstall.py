"""Uninstall, as the install guide describes it: delete the CachedImageSets, then ``helm uninstall``.

Everything the operator created goes away: the CachedImages (garbage-collected through their
owner references) and their node records (ConfigMaps they own), every pull pod, and the
leader-election Lease is released (its holder cleared
by the operator on its way out). This scenario ends the session's installation, so it runs last.
"""

from __future__ import annotations

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
    lease = env.kubectl.get("lease", env.lease_name, namespace=env.namespace)
    assert lease is None or not lease["spec"].get("holderIdentity"), f"Lease still held: {lease}"
    release_objects = env.kubectl.run(
        "get",
        "deployments,serviceaccounts,roles,rolebindings,services",
        f"--namespace={env.namespace}",
        f"--selector=app.kubernetes.io/instance={env.release}",
        "--output=name",
    )
    assert release_objects.strip() == ""
    cluster_objects = env.kubectl.run(
        "get",
        "clusterroles,clusterrolebindings",
        f"--selector=app.kubernetes.io/instance={env.release}",
        "--output=name",
    )
    assert cluster_objects.strip() == ""
