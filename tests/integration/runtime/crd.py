"""Tiny cluster-scoped CRDs for runtime tests (the runtime must not depend on drop's own kinds)."""

from __future__ import annotations

import asyncio
from typing import Any

from drop_operator.runtime import ApiError, KubeClient, Resource
from drop_operator.runtime.resources import CUSTOM_RESOURCE_DEFINITIONS

TEST_RESOURCE = Resource("runtime-test.example.com", "v1", "Widget", "widgets", namespaced=False)


def crd_body(res: Resource) -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{res.plural}.{res.group}"},
        "spec": {
            "group": res.group,
            "scope": "Namespaced" if res.namespaced else "Cluster",
            "names": {"kind": res.kind, "plural": res.plural, "singular": res.kind.lower()},
            "versions": [
                {
                    "name": res.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": open_object, "status": open_object},
                        }
                    },
                }
            ],
        },
    }


async def ensure_test_crd(kube: KubeClient, res: Resource = TEST_RESOURCE, within: float = 30.0) -> None:
    """Create the CRD for ``res`` if needed and wait until the API serves it."""
    try:
        await kube.create(CUSTOM_RESOURCE_DEFINITIONS, crd_body(res))
    except ApiError as exc:
        if not exc.already_exists:
            raise
    async with asyncio.timeout(within):
        while True:
            try:
                await kube.list(res, page_size=1)
                return
            except ApiError as exc:
                if not exc.not_found:
                    raise
            await asyncio.sleep(0.2)
