"""Reading the DiscoveryPolicy, and building the set's status."""

from __future__ import annotations

from typing import Any

from drop_operator.api.meta import find_condition
from drop_operator.controllers.cachedimageset.desired import InvalidImage
from drop_operator.controllers.cachedimageset.discovered import (
    DISCOVERED,
    POLICY_FAILING,
    POLICY_NOT_FOUND,
    POLICY_PENDING,
    POLICY_STALE,
    discovery_view,
)
from drop_operator.controllers.cachedimageset.status import (
    DISCOVERY_PENDING,
    DISCOVERY_POLICY_NOT_FOUND,
    IMAGES_CACHED,
    IMAGES_CACHING,
    INVALID_IMAGES,
    PULL_POLICY_NOT_FOUND,
    build_status,
)


def policy(*, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "generation": generation}, "status": status}


IMAGES = [{"image": "docker.io/library/nginx:1.25", "score": 3}, {"image": "x:1", "score": 1}]


def cond(type_: str, status: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": "R", "message": message}


def test_missing_and_never_synced_policies_hold_the_existing_children() -> None:
    view = discovery_view("p", None)
    assert (view.status, view.reason, view.hold_existing) == ("False", POLICY_NOT_FOUND, True)
    view = discovery_view("p", policy())
    assert (view.status, view.reason, view.hold_existing) == ("Unknown", POLICY_PENDING, True)


def test_healthy_policy_is_discovered() -> None:
    view = discovery_view(
        "p",
        policy(
            observedGeneration=1,
            discoveredImages=IMAGES,
            conditions=[cond("Ready", "True"), cond("SourcesHealthy", "True")],
        ),
    )
    assert (view.status, view.reason, view.hold_existing) == ("True", DISCOVERED, False)
    assert view.images == ["docker.io/library/nginx:1.25", "x:1"]


def test_failing_policy_keeps_its_last_list() -> None:
    view = discovery_view(
        "p",
        policy(
            observedGeneration=1,
            discoveredImages=IMAGES,
            conditions=[cond("Ready", "False", "every source failed"), cond("SourcesHealthy", "False")],
        ),
    )
    assert (view.status, view.reason) == ("False", POLICY_FAILING)
    assert "every source failed" in view.message
    assert len(view.images) == 2
    assert not view.hold_existing


def test_stale_policy_keeps_its_list() -> None:
    unhealthy = policy(
        observedGeneration=1,
        discoveredImages=IMAGES,
        conditions=[cond("Ready", "True"), cond("SourcesHealthy", "False", "prometheus-0: Timeout")],
    )
    view = discovery_view("p", unhealthy)
    assert (view.reason, len(view.images)) == (POLICY_STALE, 2)
    assert "prometheus-0: Timeout" in view.message
    behind = policy(
        generation=2, observedGeneration=1, discoveredImages=IMAGES, conditions=[cond("Ready", "True")]
    )
    assert discovery_view("p", behind).reason == POLICY_STALE


OWNER: dict[str, Any] = {"metadata": {"name": "s", "generation": 3}}


def test_empty_set_is_ready_zero_of_zero() -> None:
    status = build_status(OWNER, desired=0, managed=0, ready=0)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, ready.observed_generation) == ("True", IMAGES_CACHED, 3)
    assert "0/0" in ready.message
    assert status.observed_generation == 3
    assert find_condition(status.conditions, "DiscoveryReady") is None


def test_status_is_stable_when_nothing_changes() -> None:
    first = build_status(OWNER, desired=2, managed=1, ready=0, discovery=discovery_view("p", None))
    stored = {**OWNER, "status": first.to_json()}
    again = build_status(stored, desired=2, managed=1, ready=0, discovery=discovery_view("p", None))
    assert again.to_json() == first.to_json()
    ready = find_condition(again.conditions, "Ready")
    assert ready is not None
    assert ready.reason == DISCOVERY_POLICY_NOT_FOUND
    discovery = find_condition(again.conditions, "DiscoveryReady")
    assert discovery is not None
    assert discovery.reason == POLICY_NOT_FOUND


def test_a_broken_reference_is_never_ready() -> None:
    """A missing DiscoveryPolicy is not "0/0 Ready"; a missing PullPolicy is not
    "ImagesCaching" forever; a policy that never synced is not Ready either."""

    def ready_of(**kw: Any) -> tuple[str, str, str]:
        found = find_condition(build_status(OWNER, **kw).conditions, "Ready")
        assert found is not None
        return found.status, found.reason, found.message

    status, reason, message = ready_of(desired=0, managed=0, ready=0, discovery=discovery_view("gone", None))
    assert (status, reason) == ("False", DISCOVERY_POLICY_NOT_FOUND)
    assert message.startswith("DiscoveryPolicy gone not found") and "0/0 CachedImages exist" in message

    status, reason, message = ready_of(desired=2, managed=2, ready=0, missing_pull_policy="fast")
    assert (status, reason) == ("False", PULL_POLICY_NOT_FOUND)
    assert message.startswith("PullPolicy fast not found")
    # even with nothing to cache, or everything cached already
    assert ready_of(desired=0, managed=0, ready=0, missing_pull_policy="fast")[:2] == (
        "False",
        PULL_POLICY_NOT_FOUND,
    )
    assert ready_of(desired=1, managed=1, ready=1, missing_pull_policy="fast")[0] == "False"

    pending = discovery_view("new", policy())
    assert ready_of(desired=0, managed=0, ready=0, discovery=pending)[:2] == ("False", DISCOVERY_PENDING)
    # a healthy policy with a list does not hide a missing PullPolicy
    healthy = discovery_view(
        "p", policy(observedGeneration=1, discoveredImages=IMAGES, conditions=[cond("Ready", "True")])
    )
    assert (
        ready_of(desired=2, managed=2, ready=2, discovery=healthy, missing_pull_policy="x")[1]
        == PULL_POLICY_NOT_FOUND
    )
    assert ready_of(desired=2, managed=2, ready=2, discovery=healthy)[:2] == ("True", IMAGES_CACHED)


def test_invalid_static_images_make_the_set_not_ready() -> None:
    status = build_status(OWNER, desired=1, managed=1, ready=1, invalid=[InvalidImage("Bad:1", "uppercase")])
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", INVALID_IMAGES)
    assert "'Bad:1' (uppercase)" in ready.message


def test_set_is_ready_only_when_every_child_is_cached() -> None:
    caching = find_condition(build_status(OWNER, desired=2, managed=2, ready=1).conditions, "Ready")
    assert caching is not None
    assert (caching.status, caching.reason) == ("False", IMAGES_CACHING)
    assert "2/2 CachedImages exist, 1 ready" in caching.message
    cached = find_condition(build_status(OWNER, desired=2, managed=2, ready=2).conditions, "Ready")
    assert cached is not None
    assert (cached.status, cached.reason) == ("True", IMAGES_CACHED)
