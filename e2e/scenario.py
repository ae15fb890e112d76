"""Accessors the scenarios share: the documentation's objects as the cluster holds them."""

from __future__ import annotations

from typing import Any

from e2e.environment import Environment

SET_LABEL = "drop.corewire.io/cachedimageset"
PULL_POD_SELECTOR = "app.kubernetes.io/component=image-pull"
# Pacing is what the node-caching tests measure; here only the outcome matters, so the example's
# PullPolicy is applied with room for every pull at once.
FAST_PULLS = {
    "maxConcurrentPulls": 30,
    "maxPullsPerNode": 10,
    "maxConcurrentNodes": 3,
    "minDelayBetweenPulls": "0",
}


def policy(env: Environment, name: str) -> dict[str, Any]:
    """The DiscoveryPolicy ``name``; it must exist."""
    obj = env.kubectl.get("discoverypolicy", name)
    assert obj is not None, f"DiscoveryPolicy {name} is gone"
    return obj


def children(env: Environment, set_name: str) -> dict[str, dict[str, Any]]:
    """The CachedImages of set ``set_name``, by full image reference."""
    out = {}
    for item in env.kubectl.items("cachedimages", selector=f"{SET_LABEL}={set_name}"):
        spec = item["spec"]
        ref = spec["image"] + (
            f"@{spec['digest']}" if spec.get("digest") else f":{spec.get('tag', 'latest')}"
        )
        out[ref] = item
    return out
