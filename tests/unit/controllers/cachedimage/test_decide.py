"""The pure core of a CachedImage pass: pods read, nodes classified, counts and rollout Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drop_operator.api import CachedImageSpec
from drop_operator.controllers.cachedimage.decide import (
    NodeClasses,
    classify_nodes,
    count_nodes,
    read_pulls,
    rollout_event,
    tolerations_of,
    warming_first,
    warming_nodes,
)
from drop_operator.controllers.cachedimage.imagelist import reported_names
from drop_operator.controllers.cachedimage.pacing import Pacing
from drop_operator.controllers.cachedimage.pullpods import ANNOTATION_NODE, ANNOTATION_REFERENCE, PullPod
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import NodeCounts
from drop_operator.controllers.common import nodecache

REF = "docker.io/library/nginx:1.25"
PACING = Pacing.default()  # pullTimeout 10m -> deadline 600 s + 10 s slack
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def pod(name: str, node: str, *, phase: str = "Pending", ref: str = REF, deleting: bool = False) -> PullPod:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "drop-system",
        "uid": f"uid-{name}",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "annotations": {ANNOTATION_NODE: node, ANNOTATION_REFERENCE: ref},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    return PullPod.parse({"metadata": meta, "status": {"phase": phase}}, now=T0)


def node(name: str, images: list[str] | None = None) -> dict[str, Any]:
    """A node whose kubelet reports ``images`` (one entry), or reports nothing (a simulated node)."""
    return {"metadata": {"name": name}, "status": {"images": [{"names": images}] if images else []}}


def test_pull_pod_is_parsed_once_with_its_node_reference_and_creation_time() -> None:
    p = pod("a", "n1")
    assert (p.name, p.namespace, p.uid, p.node, p.reference) == ("a", "drop-system", "uid-a", "n1", REF)
    assert p.created == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert p.outcome.state == "pending" and not p.deleting


def test_read_pulls_sorts_pods_into_active_finished_moot_and_timed_out() -> None:
    pods = [
        pod("active", "n1"),
        pod("done", "n2", phase="Succeeded"),
        pod("old-ref", "n3", ref="docker.io/library/nginx:1.24"),
        pod("gone", "n4", deleting=True),
    ]
    pulls = read_pulls(pods, reference=REF, pacing=PACING, now=T0 + 60)
    assert list(pulls.active) == ["n1"]
    assert pulls.wakeups == [610.0 - 60]
    assert [p.name for p in pulls.finished] == ["done"]
    assert [p.name for p in pulls.moot] == ["old-ref"]
    assert pulls.live_uids == {"uid-active", "uid-done", "uid-old-ref", "uid-gone"}

    late = read_pulls([pod("stuck", "n1")], reference=REF, pacing=PACING, now=T0 + 611)
    assert late.active == {}
    (timed_out,) = late.finished
    assert timed_out.outcome.state == "failed" and timed_out.outcome.reason == "Timeout"
    assert "pullTimeout 10m" in timed_out.outcome.message


def test_classify_orders_fresh_then_retries_then_repulls_and_trusts_reported_images() -> None:
    pacing = Pacing(**{**PACING.__dict__, "repull_interval": 3600.0})
    state = ImageState(uid="u", reference=REF)
    state.cached[nodecache.node_key("old")] = T0 - 7200  # due for a re-pull
    state.cached[nodecache.node_key("recent")] = T0 - 60
    state.record_failure(
        "failing", "ErrImagePull", "", when=datetime.fromtimestamp(T0 - 10, UTC), pacing=pacing, rand=0.5
    )
    retry_at = state.failures["failing"].retry_at
    targets = {n: node(n) for n in ("fresh", "old", "recent", "failing", "busy")}
    targets["reports"] = node("reports", ["nginx:1.25"])
    classes = classify_nodes(
        targets,
        state,
        pulling={"busy"},
        reference=REF,
        image_pull_policy="IfNotPresent",
        pacing=pacing,
        now=T0 + retry_at - (T0 - 10) + 1,  # past the failing node's retry time
    )
    assert classes.candidates == ["fresh", "failing", "old"]
    assert classes.reported == [nodecache.node_key("reports")]
    assert classes.cached == 3 and classes.failed == 1 and classes.failing_nodes == {"failing"}
    assert "busy" not in classes.candidates


def test_reported_images_are_ignored_with_pull_policy_always() -> None:
    state = ImageState(uid="u", reference=REF)
    classes = classify_nodes(
        {"n": node("n", [REF])},
        state,
        pulling=set(),
        reference=REF,
        image_pull_policy="Always",
        pacing=PACING,
        now=T0,
    )
    assert classes.candidates == ["n"] and classes.reported == [] and classes.cached == 0


def test_reported_names_include_the_short_docker_hub_form() -> None:
    assert reported_names(REF) == {REF, "nginx:1.25"}
    assert reported_names("nginx:1.25") == {REF, "nginx:1.25"}
    assert reported_names("ghcr.io/a/b:1") == {"ghcr.io/a/b:1"}
    digest = "sha256:" + "a" * 64
    assert reported_names("ghcr.io/a/b:1", digest) == {"ghcr.io/a/b:1", f"ghcr.io/a/b@{digest}"}


def test_count_nodes_moves_started_nodes_to_pulling() -> None:
    state = ImageState(uid="u", reference=REF)
    state.cached[nodecache.node_key("re")] = T0
    state.record_failure("f", "Timeout", "", when=datetime.fromtimestamp(T0, UTC), pacing=PACING, rand=0.5)
    classes = NodeClasses(cached=1, failed=1, failing_nodes={"f"})
    counts = count_nodes(
        {"re", "f", "new", "p"}, classes, state, pulling={"p", "elsewhere"}, started=["re", "f"]
    )
    assert counts == NodeCounts(target=4, cached=0, pulling=3, failed=0)
    assert classes.failing_nodes == set()


def test_rollout_events_mark_start_and_end_once() -> None:
    pulling = NodeCounts(target=3, cached=1, pulling=2, failed=0)
    assert rollout_event(False, pulling, started=True, reference=REF) == (
        True,
        "Pulling",
        f"pulling {REF} onto 2 of 3 target nodes",
    )
    assert rollout_event(True, pulling, started=True, reference=REF) == (True, None, None)
    done = NodeCounts(target=3, cached=3, pulling=0, failed=0)
    assert rollout_event(True, done, started=False, reference=REF) == (
        False,
        "Cached",
        f"{REF} cached on all 3 target nodes",
    )
    only_failing = NodeCounts(target=3, cached=2, pulling=0, failed=1)
    assert rollout_event(True, only_failing, started=False, reference=REF) == (False, None, None)
    assert rollout_event(False, done, started=False, reference=REF) == (False, None, None)


def test_gating_images_tolerate_their_warming_taint_and_pull_there_first() -> None:
    spec = CachedImageSpec.model_validate(
        {"image": "registry.test/app", "warmUp": {}, "tolerations": [{"key": "gpu", "operator": "Exists"}]}
    )
    assert [t.key for t in tolerations_of(spec)] == ["gpu", "drop.corewire.io/warming"]
    plain = spec.model_copy(update={"warm_up": None})
    assert [t.key for t in tolerations_of(plain)] == ["gpu"]
    tainted = {"drop.corewire.io/warming": {"new", "not-a-target"}, "gpu": {"old"}}

    def by_key(key: str) -> set[str]:
        return tainted.get(key, set())

    assert warming_nodes({"old", "new"}, spec, by_key) == {"new"}
    assert warming_nodes({"old", "new"}, plain, by_key) == set()
    assert warming_first(["a", "new", "b"], {"new"}) == ["new", "a", "b"]
