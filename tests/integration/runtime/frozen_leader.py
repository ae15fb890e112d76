"""A leader that writes as fast as it can, for the frozen-leader test (run as a subprocess).

``python -m tests.integration.runtime.frozen_leader KUBECONFIG NAMESPACE LEASE IDENTITY``: one
controller keyed on ConfigMap ``tick`` patches its own key of ConfigMap ``writes``
(``data[IDENTITY]`` = a counter) twice per pass, 50 ms apart, and requeues at once; so whenever the
process is stopped a pass is in flight with a write still to come. Exits 1 when leadership is lost,
0 on SIGTERM, as ``drop-operator run`` does.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from drop_operator.runtime import KubeClient, LeadershipLostError, Manager, Result
from drop_operator.runtime.resources import CONFIG_MAPS

LEASE = {"lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


async def main(kubeconfig: str, namespace: str, lease: str, identity: str) -> int:
    client = await KubeClient.connect(kubeconfig, None)
    manager = Manager(
        client,
        namespace=namespace,
        lease_name=lease,
        identity=identity,
        metrics_addr="0",
        probe_addr="0",
        grace_period=30,
        **LEASE,
    )
    count = 0

    async def reconcile(key: str) -> Result | None:
        nonlocal count
        for _ in range(2):
            count += 1
            await manager.client.patch(CONFIG_MAPS, "writes", {"data": {identity: str(count)}}, namespace)
            await asyncio.sleep(0.05)
        return Result(requeue_after=0.01)

    ticks = manager.informer(CONFIG_MAPS, namespace=namespace, field_selector="metadata.name=tick")
    manager.controller("writer", reconcile, workers=1).watch_for(ticks)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, manager.stop)
    try:
        await manager.run()
    except LeadershipLostError as exc:
        print(f"leadership lost: {exc}", flush=True)
        return 1
    finally:
        await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
