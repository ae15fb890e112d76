"""The warm-up and node-caching controllers in-process against the session's control plane and kwok.

Nodes, namespaces and images come from the node-caching tests' :class:`Env` (same kwok lifecycle:
a pull pod succeeds for tag ``ok``, fails for ``fail`` and hangs for ``hang``).
"""

from __future__ import annotations

from drop_operator.controllers import cachedimage, warmup
from drop_operator.controllers.cachedimage import CachedImageReconciler
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import KubeClient, Manager
from tests.infra.operator import InProcessOperator, running_fixture
from tests.integration.cachedimage import conftest as caching

# The node-caching tests' fixtures, shared: kwok on the pull-pod lifecycle, one Env per test.
pull_cluster = caching.pull_cluster
env = caching.env

WARMING = "drop.corewire.io/warming"
WARMING_TAINT = {"key": WARMING, "effect": "NoSchedule"}


def setup(manager: Manager, settings: OperatorSettings) -> CachedImageReconciler:
    warmup.setup(manager, settings)
    return cachedimage.setup(manager, settings)


class Operator(InProcessOperator[CachedImageReconciler]):
    def __init__(self, client: KubeClient, namespace: str) -> None:
        super().__init__(
            client,
            setup,
            # registry.test exists nowhere: no platform lookups (they would only send DNS queries).
            OperatorSettings(
                namespace=namespace, operator_image="drop-operator:test", workers=4, platform_lookup=False
            ),
        )


operator = running_fixture("operator", lambda kube, env: Operator(kube, env.namespace))
