"""The chart's RBAC: enough for everything the operator does, and no more.

The operator itself runs with nothing but the chart's ServiceAccount (a TokenRequest token in local
mode, the pod's own in a cluster), so every other scenario proves "enough"; this one asks the API
server about what must stay out of reach.
"""

from __future__ import annotations

import pytest

from e2e.environment import Environment

ALLOWED = [
    ("get", "secrets", "{ns}"),
    ("create", "pods", "{ns}"),
    ("delete", "pods", "{ns}"),
    ("watch", "pods", "{ns}"),
    ("create", "configmaps", "{ns}"),  # the images' node records
    ("patch", "configmaps", "{ns}"),
    ("watch", "configmaps", "{ns}"),
    ("create", "leases.coordination.k8s.io", "{ns}"),
    ("create", "events.events.k8s.io", "{ns}"),
    ("watch", "nodes", ""),
    ("create", "cachedimages.drop.corewire.io", ""),
    ("delete", "cachedimages.drop.corewire.io", ""),
    ("patch", "discoverypolicies.drop.corewire.io/status", ""),
    ("watch", "pullpolicies.drop.corewire.io", ""),
    ("update", "cachedimages.drop.corewire.io/finalizers", ""),  # blockOwnerDeletion on pull pods
]
DENIED = [
    ("list", "secrets", "{ns}"),  # Secrets are read by the name a policy gives, never listed
    ("watch", "secrets", "{ns}"),
    ("get", "secrets", "default"),
    ("get", "secrets", "kube-system"),
    ("create", "pods", "default"),
    ("list", "pods", "default"),
    ("list", "configmaps", "default"),
    ("delete", "configmaps", "{ns}"),  # records go with their CachedImage (garbage collector)
    ("update", "nodes", ""),
    ("delete", "nodes", ""),
    ("update", "discoverypolicies.drop.corewire.io", ""),  # spec belongs to the user
    ("update", "discoverypolicies.drop.corewire.io/finalizers", ""),
    ("delete", "cachedimagesets.drop.corewire.io", ""),
    ("create", "deployments.apps", "{ns}"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
]


def can_i(env: Environment, verb: str, resource: str, namespace: str) -> bool:
    account = f"system:serviceaccount:{env.namespace}:{env.service_account()}"
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={account}"]
    args += [f"--subresource={subresource}"] if subresource else []
    ns = namespace.format(ns=env.namespace)
    args += [f"--namespace={ns}"] if ns else []
    return env.kubectl.run(*args, check=False).strip() == "yes"


@pytest.mark.parametrize(("verb", "resource", "namespace"), ALLOWED)
def test_operator_may(env: Environment, verb: str, resource: str, namespace: str) -> None:
    assert can_i(env, verb, resource, namespace)


@pytest.mark.parametrize(("verb", "resource", "namespace"), DENIED)
def test_operator_may_not(env: Environment, verb: str, resource: str, namespace: str) -> None:
    assert not can_i(env, verb, resource, namespace)
