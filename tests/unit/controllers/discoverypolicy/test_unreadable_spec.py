"""A spec this operator cannot read (CRD and operator versions differ) is reported, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

from drop_operator.api.discoverypolicy import DiscoveredImage, DiscoveryPolicyStatus
from drop_operator.api.meta import Condition, find_condition
from drop_operator.controllers.discoverypolicy.status import INVALID_SPEC, unreadable_spec_status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _published() -> DiscoveryPolicyStatus:
    return DiscoveryPolicyStatus(
        observed_generation=1,
        image_count=1,
        discovered_images=[DiscoveredImage(image="docker.io/library/redis:7", score=2.0, sources=["p"])],
        conditions=[
            Condition(
                type="Ready", status="True", reason="Discovered", message="1 image", observed_generation=1
            ),
            Condition(
                type="SourcesHealthy", status="True", reason="AllSourcesHealthy", observed_generation=1
            ),
        ],
    )


def test_ready_says_invalid_spec_and_the_published_images_stay() -> None:
    status = unreadable_spec_status(_published(), generation=2, error="sources.0.type: bad value", now=NOW)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, ready.observed_generation) == ("False", INVALID_SPEC, 2)
    assert "sources.0.type: bad value" in ready.message
    assert ready.last_transition_time == NOW
    assert [i.image for i in status.discovered_images] == ["docker.io/library/redis:7"]
    assert status.observed_generation == 1  # the spec of generation 2 was never acted on
    healthy = find_condition(status.conditions, "SourcesHealthy")
    assert healthy is not None and healthy.status == "True"


def test_reporting_twice_changes_nothing() -> None:
    once = unreadable_spec_status(_published(), generation=2, error="x: bad", now=NOW)
    later = datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC)
    twice = unreadable_spec_status(once, generation=2, error="x: bad", now=later)
    assert twice.to_json() == once.to_json()
