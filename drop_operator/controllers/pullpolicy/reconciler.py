"""``PullPolicy.status``: how many CachedImages use the policy, for ``kubectl get pullpolicies``.

Keyed by policy name: it counts the CachedImages in the ``IMAGES_BY_PULL_POLICY`` index of the
shared CachedImage informer (no API call) and patches the status only when the count or the
observed generation changed.
"""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.common import IMAGES_BY_PULL_POLICY, meta
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

    async def reconcile(self, key: str) -> Result | None:
        policy = self.policies.get(key)
        if policy is None:
            return None
        desired = {
            "observedGeneration": meta(policy).generation,
            "imagesUsing": len(self.images.by_index(IMAGES_BY_PULL_POLICY, key)),
        }
        current = policy.get("status") or {}
        if all(current.get(field) == value for field, value in desired.items()):
            return None
        try:
            await self.client.patch_status(PULL_POLICIES, key, {"status": desired})
        except ApiError as err:
            if not err.not_found:
                raise
        return None
