"""The PullPolicy status controller alone, in-process against the session's control plane.

It only counts CachedImages, so no node-caching reconciler runs: images are created and changed
here directly, and nothing else writes them.
"""

from __future__ import annotations

from typing import Any

from drop_operator.controllers import pullpolicy
from drop_operator.controllers.pullpolicy import PullPolicyReconciler
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import KubeClient
from tests.infra.operator import InProcessOperator, running_fixture

Obj = dict[str, Any]


class Operator(InProcessOperator[PullPolicyReconciler]):
    """The PullPolicy status controller in a Manager of its own (no resyncs within a test)."""

    def __init__(self, client: KubeClient) -> None:
        super().__init__(client, pullpolicy.setup, OperatorSettings(namespace="default"))


operator = running_fixture("operator", lambda kube, crds: Operator(kube))
