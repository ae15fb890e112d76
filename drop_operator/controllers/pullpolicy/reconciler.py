"""``PullPolicy.status``: how many CachedImages use the policy, for ``kubectl get pullpolicies``.

Keyed by policy name: the count is the size of the policy's entry in the ``IMAGES_BY_PULL_POLICY``
index of the shared CachedImage informer (no API call, no list built: the same cost for 10 images
or 10 000), and the status is patched only when it differs from the one in the cache, or from the
one this process wrote last while the cache does not show that write yet.
"""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.common import IMAGES_BY_PULL_POLICY, meta, status_base
from drop_operator.controllers.kinds import PULL_POLICIES
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.controller import Result
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.informer import Informer

__all__ = ["PullPolicyReconciler"]

Obj = dict[str, Any]


class PullPolicyReconciler:
    """Keeps ``status.imagesUsing`` and ``status.observedGeneration`` of each PullPolicy true."""

    def __init__(self, client: KubeClient, *, policies: Informer, images: Informer) -> None:
        self.client = client
        self.policies = policies
        self.images = images
        self._written: dict[str, tuple[str, dict[str, Any]]] = {}
        """Policy name -> (resourceVersion its status was written over, status written)."""

    async def reconcile(self, key: str) -> Result | None:
        policy = self.policies.get(key)
        if policy is None:
            self._written.pop(key, None)
            return None
        policy_meta = meta(policy)
        desired = {
            "observedGeneration": policy_meta.generation,
            "imagesUsing": self.images.index_count(IMAGES_BY_PULL_POLICY, key),
        }
        written = self._written.get(key)
        current = status_base(policy, written)
        if all(current.get(field) == value for field, value in desired.items()):
            return None
        try:
            await self.client.patch_status(PULL_POLICIES, key, {"status": desired})
        except ApiError as err:
            if not err.not_found:
                raise
            return None
        self._written[key] = (policy_meta.resource_version or "", {**current, **desired})
        return None
