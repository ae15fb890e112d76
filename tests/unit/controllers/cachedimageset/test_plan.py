"""The diff: create missing, delete undesired and duplicates, patch drift back to the template."""

from __future__ import annotations

from typing import Any

from drop_operator.api.cachedimageset import CACHED_IMAGE_SET_LABEL
from drop_operator.api.pulltemplate import PullTemplate
from drop_operator.controllers.cachedimageset.desired import compute_desired, image_key
from drop_operator.controllers.cachedimageset.naming import child_name
from drop_operator.controllers.cachedimageset.plan import (
    child_body,
    child_is_ready,
    child_labels,
    drift_patch,
    plan_children,
)

OWNER: dict[str, Any] = {"metadata": {"name": "builds", "uid": "uid-1", "generation": 1}}
TEMPLATE = PullTemplate.model_validate(
    {
        "imagePullPolicy": "Always",
        "imagePullSecrets": [{"name": "pull"}],
        "nodeSelector": {"pool": "ci"},
        "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
        "pullPolicyRef": {"name": "gentle"},
    }
)


def child(
    reference: str,
    *,
    name: str | None = None,
    template: PullTemplate = TEMPLATE,
    rank: int | None = None,
    **meta: Any,
) -> dict[str, Any]:
    key = image_key(reference)
    body = child_body(
        OWNER, key, name or child_name("uid-1", key.reference, key.repository, key.version), template, rank
    )
    body["metadata"].update({"uid": f"c-{body['metadata']['name']}", "resourceVersion": "1", **meta})
    return body


def test_creates_missing_deletes_undesired_keeps_matching() -> None:
    desired = compute_desired(["nginx:1.25", "redis:7"], []).images
    plan = plan_children(OWNER, desired, [child("nginx:1.25", rank=0), child("old:1")], TEMPLATE)
    assert [k.reference for k, _ in plan.create] == ["docker.io/library/redis:7"]
    assert plan.create[0][1]["spec"]["rank"] == 1
    assert [c["metadata"]["name"] for c in plan.delete] == [child("old:1")["metadata"]["name"]]
    assert list(plan.kept) == ["docker.io/library/nginx:1.25"]
    assert not plan.patch
    body = plan.create[0][1]
    assert body["spec"]["image"] == "docker.io/library/redis"
    assert body["spec"]["tag"] == "7"
    assert body["spec"]["nodeSelector"] == {"pool": "ci"}
    assert body["metadata"]["labels"][CACHED_IMAGE_SET_LABEL] == "builds"
    (ref,) = body["metadata"]["ownerReferences"]
    assert ref["controller"] is True
    assert ref["blockOwnerDeletion"] is True
    assert ref["uid"] == "uid-1"


def test_matching_is_by_reference_not_by_name() -> None:
    desired = compute_desired(["nginx:1.25"], []).images
    renamed = child("docker.io/library/nginx:1.25", name="hand-made", rank=0)
    plan = plan_children(OWNER, desired, [renamed], TEMPLATE)
    assert plan.empty
    assert plan.kept["docker.io/library/nginx:1.25"] is renamed


def test_duplicates_collapse_to_the_canonical_name() -> None:
    desired = compute_desired(["nginx:1.25"], []).images
    canonical = child("nginx:1.25")
    copy = child("nginx:1.25", name="aaa-copy")
    plan = plan_children(OWNER, desired, [copy, canonical], TEMPLATE)
    assert plan.kept["docker.io/library/nginx:1.25"] is canonical
    assert plan.delete == [copy]
    assert not plan.create


def test_hold_keeps_existing_children() -> None:
    plan = plan_children(OWNER, {}, [child("nginx:1.25", rank=0)], TEMPLATE, hold_existing=True)
    assert plan.empty
    assert list(plan.desired) == ["docker.io/library/nginx:1.25"]


def test_hash_collision_falls_back_to_a_longer_name() -> None:
    desired = compute_desired(["redis:7"], []).images
    key = image_key("redis:7")
    squatter = child("nginx:1.25", name=child_name("uid-1", key.reference, key.repository, key.version))
    plan = plan_children(
        OWNER, {**compute_desired(["nginx:1.25"], []).images, **desired}, [squatter], TEMPLATE
    )
    (created,) = plan.create
    assert created[1]["metadata"]["name"] != squatter["metadata"]["name"]
    assert created[1]["metadata"]["name"].startswith("redis-7-")


def test_no_drift_when_child_matches_including_defaults() -> None:
    bare = PullTemplate()
    c = child("nginx:1.25", template=bare)
    del c["spec"]["imagePullPolicy"]  # the schema default; not drift
    assert drift_patch(c, bare, child_labels(OWNER)) is None


def test_drift_patch_restores_every_template_field_and_removes_extras() -> None:
    c = child("nginx:1.25")
    c["spec"].update(
        {
            "imagePullPolicy": "IfNotPresent",
            "imagePullSecrets": [],
            "nodeSelector": {"pool": "ci", "extra": "x"},
            "tolerations": [],
            "pullPolicyRef": {"name": "other"},
        }
    )
    c["metadata"]["labels"] = {"unrelated": "keep"}
    patch = drift_patch(c, TEMPLATE, child_labels(OWNER))
    assert patch == {
        "spec": {
            "imagePullPolicy": "Always",
            "imagePullSecrets": [{"name": "pull"}],
            "nodeSelector": {"extra": None, "pool": "ci"},
            "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
            "pullPolicyRef": {"name": "gentle"},
        },
        "metadata": {"labels": child_labels(OWNER)},
    }


def test_drift_patch_deletes_fields_the_template_no_longer_has() -> None:
    c = child("nginx:1.25")
    patch = drift_patch(c, PullTemplate(), child_labels(OWNER))
    assert patch is not None
    assert patch["spec"]["pullPolicyRef"] is None
    assert patch["spec"]["nodeSelector"] == {"pool": None}
    assert patch["spec"]["imagePullPolicy"] == "IfNotPresent"
    assert "metadata" not in patch


def test_template_change_patches_every_child() -> None:
    desired = compute_desired(["a:1", "b:1", "c:1"], []).images
    children = [child(r, rank=i) for i, r in enumerate(("a:1", "b:1", "c:1"))]
    changed = TEMPLATE.model_copy(update={"image_pull_policy": "IfNotPresent"})
    plan = plan_children(OWNER, desired, children, changed)
    assert len(plan.patch) == 3
    assert all(p == {"spec": {"imagePullPolicy": "IfNotPresent"}} for _, p in plan.patch)


def test_child_is_ready_reads_the_ready_condition() -> None:
    c = child("nginx:1.25")
    assert not child_is_ready(c)
    c["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert child_is_ready(c)
    c["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert not child_is_ready(c)


def test_children_are_ranked_static_first_then_discovered_and_reranked_by_patch() -> None:
    desired = compute_desired(["b:1", "a:1"], ["top:1", "b:1", "second:1"]).images
    plan = plan_children(OWNER, desired, [child("a:1", rank=0), child("top:1", rank=2)], TEMPLATE)
    ranks = {k.reference: body["spec"]["rank"] for k, body in plan.create}
    assert ranks == {"docker.io/library/b:1": 0, "docker.io/library/second:1": 3}
    patches = {c["spec"]["image"]: p for c, p in plan.patch}
    assert patches == {"docker.io/library/a": {"spec": {"rank": 1}}}, "top:1 keeps rank 2, a:1 moves"


def test_held_children_are_ranked_after_the_desired_ones() -> None:
    desired = compute_desired(["new:1"], []).images
    plan = plan_children(OWNER, desired, [child("held:1", rank=0)], TEMPLATE, hold_existing=True)
    assert [p for _, p in plan.patch] == [{"spec": {"rank": 1}}]
    assert plan.create[0][1]["spec"]["rank"] == 0
