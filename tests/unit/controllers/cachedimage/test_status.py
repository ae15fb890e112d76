"""CachedImage status from node counts: every combination of the three conditions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drop_operator.api import NodeFailure, find_condition
from drop_operator.api.cachedimage import DEGRADED, PROGRESSING, READY, CachedImageStatus
from drop_operator.controllers.cachedimage.status import (
    NodeCounts,
    PlatformView,
    build_status,
    condition_reason,
    wire_digest,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def status(
    counts: NodeCounts,
    *,
    failures: list[NodeFailure] | None = None,
    failing: set[str] | None = None,
    previous: CachedImageStatus | None = None,
    pull_policy_problem: str | None = None,
    platforms: PlatformView | None = None,
) -> CachedImageStatus:
    return build_status(
        previous or CachedImageStatus(),
        generation=4,
        counts=counts,
        failures=failures or [],
        failing_nodes=failing or set(),
        resolved_digest=None,
        last_pulled=None,
        pull_policy_problem=pull_policy_problem,
        platforms=platforms,
    )


def conditions(s: CachedImageStatus) -> dict[str, tuple[str, str]]:
    out = {}
    for type_ in (READY, PROGRESSING, DEGRADED):
        found = find_condition(s.conditions, type_)
        assert found is not None and found.observed_generation == 4
        out[type_] = (found.status, found.reason)
    return out


@pytest.mark.parametrize(
    ("counts", "ready", "progressing"),
    [
        (NodeCounts(3, 3, 0, 0), ("True", "Cached"), ("False", "Cached")),
        (NodeCounts(0, 0, 0, 0), ("True", "NoTargetNodes"), ("False", "NoTargetNodes")),
        (NodeCounts(3, 1, 2, 0), ("False", "Pulling"), ("True", "Pulling")),
        (NodeCounts(3, 1, 0, 0), ("False", "Waiting"), ("True", "Waiting")),
        (NodeCounts(3, 1, 0, 2), ("False", "PullFailed"), ("True", "Waiting")),
        (NodeCounts(3, 0, 0, 1), ("False", "Waiting"), ("True", "Waiting")),
    ],
)
def test_ready_and_progressing_follow_the_counts(
    counts: NodeCounts, ready: tuple[str, str], progressing: tuple[str, str]
) -> None:
    s = status(counts)
    found = conditions(s)
    assert found[READY] == ready
    assert found[PROGRESSING] == progressing
    assert found[DEGRADED] == ("False", "AsExpected")
    assert (s.target_nodes, s.cached_nodes, s.pulling_nodes, s.failed_nodes) == (
        counts.target,
        counts.cached,
        counts.pulling,
        counts.failed,
    )


def test_summary_message_counts_pulling_and_failed_nodes() -> None:
    ready = find_condition(status(NodeCounts(5, 2, 1, 1)).conditions, READY)
    assert ready is not None
    assert ready.message == "cached on 2 of 5 target nodes (1 pulling, 1 failed)"


def test_degraded_names_the_latest_failure_among_nodes_still_failing() -> None:
    failures = [
        NodeFailure(node="n2", reason="Unauthorized", message="401 from registry", time=T0),
        NodeFailure(node="n1", reason="ErrImagePull", message="", time=T0),
    ]
    s = status(NodeCounts(3, 1, 0, 2), failures=failures, failing={"n1", "n2"})
    degraded = find_condition(s.conditions, DEGRADED)
    assert degraded is not None and (degraded.status, degraded.reason) == ("True", "Unauthorized")
    assert degraded.message == "2 of 3 target nodes failed; latest on n2: Unauthorized: 401 from registry"
    assert s.recent_failures == failures

    recovered = status(NodeCounts(3, 2, 0, 1), failures=failures, failing={"n1"})
    degraded = find_condition(recovered.conditions, DEGRADED)
    assert degraded is not None and degraded.reason == "ErrImagePull"
    assert degraded.message == "1 of 3 target nodes failed; latest on n1: ErrImagePull"


def test_a_missing_pull_policy_is_reported_in_every_condition() -> None:
    problem = "PullPolicy 'fast' does not exist; no pulls start until it does"
    found = conditions(status(NodeCounts(2, 0, 0, 0), pull_policy_problem=problem))
    assert found == {
        READY: ("False", "PullPolicyNotFound"),
        PROGRESSING: ("False", "PullPolicyNotFound"),
        DEGRADED: ("True", "PullPolicyNotFound"),
    }
    # never Ready about a broken reference, even with every node cached already
    cached = status(NodeCounts(2, 2, 0, 0), pull_policy_problem=problem)
    assert conditions(cached)[READY] == ("False", "PullPolicyNotFound")
    ready = find_condition(cached.conditions, READY)
    assert ready is not None and ready.message == f"{problem} (cached on 2 of 2 target nodes)"


def test_transition_times_hold_while_the_status_holds() -> None:
    first = status(NodeCounts(3, 1, 2, 0))
    old = first.model_copy(
        update={"conditions": [c.model_copy(update={"last_transition_time": T0}) for c in first.conditions]}
    )
    again = status(NodeCounts(3, 2, 1, 0), previous=old)
    ready = find_condition(again.conditions, READY)
    assert ready is not None and ready.last_transition_time == T0
    done = status(NodeCounts(3, 3, 0, 0), previous=old)
    ready = find_condition(done.conditions, READY)
    assert ready is not None and ready.last_transition_time != T0


def test_digest_and_last_pull_are_kept_when_this_pass_learned_nothing_new() -> None:
    previous = CachedImageStatus(resolved_digest="sha256:" + "a" * 64, last_pulled_time=T0)
    s = status(NodeCounts(1, 1, 0, 0), previous=previous)
    assert s.resolved_digest == previous.resolved_digest and s.last_pulled_time == T0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ErrImagePull", "ErrImagePull"),
        ("Image Pull-Back:Off!", "ImagePullBackOff"),
        ("", "PullFailed"),
        ("123", "PullFailed"),
        ("_", "PullFailed"),
    ],
)
def test_condition_reason_is_a_valid_camel_case_identifier(raw: str, expected: str) -> None:
    assert condition_reason(raw) == expected


def test_nodes_lacking_the_platform_are_counted_apart_not_as_failures() -> None:
    view = PlatformView(platforms=("linux/arm64/v8",), incompatible=2)
    s = status(NodeCounts(1, 1, 0, 0), platforms=view)
    assert (s.target_nodes, s.failed_nodes, s.incompatible_nodes) == (1, 0, 2)
    assert s.platforms == ["linux/arm64/v8"]
    found = conditions(s)
    assert found[READY] == ("True", "Cached")
    assert found[DEGRADED] == ("False", "AsExpected")
    ready = find_condition(s.conditions, READY)
    assert ready is not None
    assert (
        ready.message == "cached on 1 of 1 target nodes; 2 nodes lack the image's platforms (linux/arm64/v8)"
    )


def test_no_compatible_node_is_its_own_reason() -> None:
    s = status(NodeCounts(0, 0, 0, 0), platforms=PlatformView(("linux/arm64",), incompatible=3))
    assert conditions(s)[READY] == ("True", "NoCompatibleNodes")


def test_unknown_platforms_say_that_labels_alone_decide() -> None:
    view = PlatformView(problem="ConnectionError: cannot connect to http://127.0.0.1:1")
    s = status(NodeCounts(2, 0, 1, 0), platforms=view)
    assert (s.incompatible_nodes, s.platforms) == (0, [])
    ready = find_condition(s.conditions, READY)
    assert ready is not None
    assert ready.message == (
        "cached on 0 of 2 target nodes (1 pulling, 0 failed); platforms unknown "
        "(ConnectionError: cannot connect to http://127.0.0.1:1): nodes targeted by labels only"
    )
    assert conditions(s)[DEGRADED] == ("False", "AsExpected")


def test_the_digest_of_a_written_status_tells_statuses_apart_whatever_the_key_order() -> None:
    a = {"targetNodes": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    b = {"conditions": [{"status": "True", "type": "Ready"}], "targetNodes": 3}
    assert wire_digest(a) == wire_digest(b) and len(wire_digest(a)) == 20
    assert wire_digest(a) != wire_digest({**a, "targetNodes": 4})
    assert wire_digest(a) != wire_digest({**a, "conditions": [{"type": "Ready", "status": "False"}]})
