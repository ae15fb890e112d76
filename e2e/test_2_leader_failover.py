"""Two replicas and leader election: the leader is killed, the standby takes the Lease over and
reconciles; and pull pods, admitted under Pod Security "restricted", run drop-noop from the
operator's own image.

Local mode kills the leading process with SIGKILL (it cannot release its Lease, so the standby
waits for the Lease to expire); cluster mode force-deletes the leading pod and waits for the
Deployment to replace it.
"""

from __future__ import annotations

from typing import Any

from e2e.environment import Environment
from e2e.kube import PodWatch, condition, eventually, status
from e2e.scenario import children

SET_NAME = "after-failover"


def _leader_changed(env: Environment, old: str) -> str | None:
    holder = env.leader()
    return holder if holder and holder != old else None


def test_standby_takes_over_when_the_leader_is_killed(env: Environment, applied: None) -> None:
    old = eventually(env.leader, within=60, what="a replica to hold the Lease")
    assert env.kill_leader() == old
    # The killed leader never renewed again: the standby waits out the Lease (15 s) and takes it.
    new = eventually(
        lambda: _leader_changed(env, old),
        within=60 * env.patience,
        what=lambda: f"another replica to take the Lease from {old} (holder now {env.leader()!r})",
    )
    assert new != old

    # The new leader reconciles: a new set gets its child, cached on every node.
    env.kubectl.apply(
        [
            {
                "apiVersion": "drop.corewire.io/v1alpha1",
                "kind": "CachedImageSet",
                "metadata": {"name": SET_NAME},
                "spec": {"images": [env.operator_image], "pullPolicyRef": {"name": "gentle"}},
            }
        ]
    )

    def cached() -> bool:
        items = children(env, SET_NAME)
        return len(items) == 1 and all(
            condition(c, "Ready").get("status") == "True" and status(c).get("cachedNodes") == len(env.nodes)
            for c in items.values()
        )

    eventually(
        cached,
        within=120 * env.patience,
        what=lambda: f"{SET_NAME} children: {[status(c) for c in children(env, SET_NAME).values()]}",
    )
    env.kubectl.delete("cachedimageset", SET_NAME, wait=True)
    eventually(
        lambda: not children(env, SET_NAME), within=60 * env.patience, what=f"{SET_NAME} children gone"
    )


def _install_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["initContainers"]
    return dict(container)


def test_pull_pods_run_drop_noop_from_the_operator_image(
    env: Environment, applied: None, pull_pods: PodWatch
) -> None:
    # The namespace enforces Pod Security "restricted", so every pull pod seen was admitted under it.
    namespace = env.kubectl.get("namespace", env.namespace) or {}
    assert namespace["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"
    seen = pull_pods.pods
    assert seen, "the earlier scenarios ran no pull pod"
    for name, pod in seen.items():
        install = _install_container(pod)
        assert install["image"] == env.operator_image, name
        assert install["command"] == ["/usr/local/bin/drop-noop", "--install", "/drop/noop"], name
        (pull,) = pod["spec"]["containers"]
        assert pull["command"] == ["/drop/noop"], name
    succeeded = [pod for pod in seen.values() if (pod.get("status") or {}).get("phase") == "Succeeded"]
    assert succeeded, "no pull pod succeeded"
    # Real nodes (local mode) really pulled the operator image to run its drop-noop.
    for node in env.real_nodes:
        assert env.operator_image in node.images(), f"{node.name}: {sorted(node.images())}"
