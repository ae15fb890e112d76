"""``PullPolicy.status``: how many CachedImages use the policy, for ``kubectl get pullpolicies``.

A small controller of its own, keyed by policy name: it counts the CachedImages in the
``POLICY_INDEX`` of the shared CachedImage informer (no API call) and patches the status only when
the count or the observed generation changed.
"""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.cachedimage.reconciler import POLICY_INDEX
from drop_operator.controllers.kinds import PULL_POLICIES
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.controller import Result
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.informer import Informer

__all__ = ["CONTROLLER_NAME", "PullPolicyStatusReconciler"]

CONTROLLER_NAME = "pullpolicy-status"

Obj = dict[str, Any]


class PullPolicyStatusReconciler:
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
            "observedGeneration": policy["metadata"].get("generation"),
            "imagesUsing": len(self.images.by_index(POLICY_INDEX, key)),
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
