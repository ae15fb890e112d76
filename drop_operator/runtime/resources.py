"""Identity of a Kubernetes resource type and of the objects in it, and the built-in types used here.

Core and custom resources are described the same way so that the client builds one kind of REST path
for both; nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONFIG_MAPS",
    "CUSTOM_RESOURCE_DEFINITIONS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "SERVICE_ACCOUNTS",
    "Resource",
    "object_key",
    "split_key",
]


@dataclass(frozen=True)
class Resource:
    """A resource type as the REST API names it (``group`` is ``""`` for the core group)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """``apiVersion`` as written in objects: ``v1`` for core, ``group/version`` otherwise."""
        return self.version if not self.group else f"{self.group}/{self.version}"

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        """REST path of the collection (no name) or of one object, optionally a subresource.

        A namespaced resource without a namespace addresses the collection across all namespaces.
        """
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def object_key(obj: Mapping[str, Any]) -> str:
    """Cache and workqueue key of an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of :func:`object_key`: ``(namespace or None, name)``."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, namespace)


# Well-known built-in resources the operator, its tests and its tools read or write.
PODS = Resource("", "v1", "Pod", "pods", namespaced=True)
NODES = Resource("", "v1", "Node", "nodes", namespaced=False)
SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)
CONFIG_MAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "ServiceAccount", "serviceaccounts", namespaced=True)
LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "Event", "events", namespaced=True)
CUSTOM_RESOURCE_DEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False
)
