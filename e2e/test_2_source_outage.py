"""A source outage: Prometheus goes away.

The operator keeps the last good ranking, so the CachedImageSet and every CachedImage stay exactly
as they were (an empty ranking would delete every child and re-pull everything later), and the
DiscoveryPolicy's conditions name the broken source. When Prometheus is back, the next sync is
healthy again.
"""

from __future__ import annotations

import time
from typing import Any

from e2e.environment import Environment
from e2e.kube import condition, eventually, status
from e2e.scenario import children, policy

POLICY = "popular-build-images"
SOURCE = "prometheus-0"  # the default name of the policy's first (and only) source


def _snapshot(env: Environment) -> dict[str, str]:
    """The set's children: reference -> uid (a recreated child would have a new uid)."""
    return {ref: child["metadata"]["uid"] for ref, child in children(env, POLICY).items()}


def _set_interval(env: Environment, interval: str) -> None:
    """Edit the policy; a spec change syncs at once instead of after the 1h interval."""
    env.kubectl.run(
        "patch",
        "discoverypolicy",
        POLICY,
        "--type=merge",
        "--patch",
        f'{{"spec":{{"interval":"{interval}"}}}}',
    )


def _ready_set(env: Environment) -> dict[str, Any] | None:
    image_set = env.kubectl.get("cachedimageset", POLICY)
    desired = status(image_set).get("desired")
    if (
        desired
        and status(image_set).get("ready") == desired
        and condition(image_set, "Ready").get("status") == "True"
    ):
        return image_set
    return None


def test_outage_keeps_the_cached_set_and_names_the_source(env: Environment, applied: None) -> None:
    eventually(
        lambda: _ready_set(env), within=180 * env.patience, what="the set to be Ready before the outage"
    )
    before = _snapshot(env)
    ranking = status(policy(env, POLICY))["discoveredImages"]
    assert len(before) == len(ranking) > 0

    env.stop_prometheus()
    try:
        _set_interval(env, "30m")

        def broken() -> dict[str, Any] | None:
            obj = policy(env, POLICY)
            healthy = condition(obj, "SourcesHealthy")
            synced = status(obj).get("observedGeneration") == obj["metadata"]["generation"]
            return healthy if synced and healthy.get("status") == "False" else None

        healthy = eventually(
            broken,
            within=60 * env.patience,
            what=lambda: f"SourcesHealthy False: {status(policy(env, POLICY))}",
        )
        assert SOURCE in healthy["message"], healthy
        failing = [s for s in status(policy(env, POLICY)).get("sources") or [] if s.get("name") == SOURCE]
        assert failing, status(policy(env, POLICY))
        # Last known good: the ranking and every child are untouched, for as long as we look.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert status(policy(env, POLICY))["discoveredImages"] == ranking
            assert _snapshot(env) == before
            time.sleep(0.5)
        assert _ready_set(env) is not None
    finally:
        env.start_prometheus()

    _set_interval(env, "1h")

    def recovered() -> bool:
        obj = policy(env, POLICY)
        synced = status(obj).get("observedGeneration") == obj["metadata"]["generation"]
        return synced and condition(obj, "SourcesHealthy").get("status") == "True"

    eventually(recovered, within=60 * env.patience, what=lambda: f"recovery: {status(policy(env, POLICY))}")
    assert status(policy(env, POLICY))["discoveredImages"] == ranking
    assert _snapshot(env) == before
