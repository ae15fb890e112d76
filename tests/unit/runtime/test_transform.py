"""What an informer keeps of each object: field projections, transforms and interned strings.

The informers here are never started; objects are fed the way the list and watch loops feed them.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.resources import NODES, PODS
from drop_operator.runtime.transform import IDENTITY, Fields, intern_strings

Obj = dict[str, Any]


def node(name: str, rv: str = "1", **status: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {"kubernetes.io/os": "linux", "zone": "a"},
            "annotations": {"big": "x" * 1000},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24"},
        "status": {
            "images": [{"names": [f"registry.example.com/app:{i}"], "sizeBytes": i} for i in range(3)],
            "nodeInfo": {"architecture": "amd64"},
            **status,
        },
    }


LABELS_AND_SIZES = Fields("metadata.labels", "status.images[].sizeBytes")


def test_paths_keep_what_they_name_and_identity_always() -> None:
    kept = LABELS_AND_SIZES(node("n1"))
    assert kept == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "n1",
            "uid": "uid-n1",
            "resourceVersion": "1",
            "labels": {"kubernetes.io/os": "linux", "zone": "a"},
        },
        "status": {"images": [{"sizeBytes": 0}, {"sizeBytes": 1}, {"sizeBytes": 2}]},
    }
    assert set(IDENTITY) <= set(Fields().paths)


def test_projection_copies_and_leaves_the_object_alone() -> None:
    whole = node("n1")
    before = copy.deepcopy(whole)
    LABELS_AND_SIZES(whole)
    assert whole == before


def test_fields_join_and_a_whole_path_absorbs_the_paths_below_it() -> None:
    joined = LABELS_AND_SIZES | Fields("status.images[].names", "spec")
    assert "status.images[].names" in joined.paths and "status.images[].sizeBytes" in joined.paths
    assert (Fields("spec.taints") | Fields("spec")).paths == Fields("spec").paths
    assert (Fields("spec") | Fields("spec.taints")) == Fields("spec")
    assert LABELS_AND_SIZES | LABELS_AND_SIZES == LABELS_AND_SIZES
    assert set(Fields("a[][].b").paths) == {*Fields().paths, "a[][].b"}
    with pytest.raises(ValueError, match="empty segment"):
        Fields("metadata..labels")


def test_scalars_and_lists_where_structure_was_expected_are_kept_or_emptied() -> None:
    odd = {"metadata": {"name": "x", "labels": "not-a-dict"}, "status": {"images": {"not": "a list"}}}
    assert LABELS_AND_SIZES(odd) == {
        "metadata": {"name": "x", "labels": "not-a-dict"},
        "status": {"images": {}},
    }
    assert Fields("spec.items")({"spec": {"items": [1, 2]}}) == {"spec": {"items": [1, 2]}}
    assert Fields("spec.items.x")({"spec": {"items": [1, 2]}}) == {"spec": {"items": []}}


def test_interned_strings_are_shared_between_objects() -> None:
    a = intern_strings(json.loads('{"zone-label-key": "europe-west-1-zone", "n": 1}'))
    b = intern_strings(json.loads('{"zone-label-key": "europe-west-1-zone", "n": 1}'))
    (ka,), (kb,) = [k for k in a if k != "n"], [k for k in b if k != "n"]
    assert ka is kb and a[ka] is b[kb]
    long = "y" * 600
    assert intern_strings({"a": long})["a"] is long  # left alone, not copied


def _informer(**kw: Any) -> Informer:
    return Informer(cast(KubeClient, None), NODES, **kw)  # never started: no client call is made


def test_informer_caches_and_hands_out_projected_objects_on_list_watch_and_delete() -> None:
    informer = _informer(fields=LABELS_AND_SIZES)
    seen: list[tuple[str, Obj]] = []
    informer.add_handler(
        on_add=lambda o: seen.append(("add", o)),
        on_update=lambda old, new: seen.append(("update", new)),
        on_delete=lambda o: seen.append(("delete", o)),
    )
    informer._replace([node("n1")])
    informer._apply({"type": "ADDED", "object": node("n2")})
    informer._apply({"type": "MODIFIED", "object": node("n2", rv="2", conditions=[{"type": "Ready"}])})
    informer._apply({"type": "DELETED", "object": node("n1", rv="3")})
    assert [kind for kind, _ in seen] == ["add", "add", "update", "delete"]
    for _, obj in seen:
        assert obj == LABELS_AND_SIZES(obj)
        assert "spec" not in obj and "annotations" not in obj["metadata"]
    assert informer.keys() == ["n2"]
    assert informer.get("n2") == LABELS_AND_SIZES(node("n2", rv="2"))


def test_managed_fields_go_and_the_transform_runs_after_the_projection() -> None:
    def no_labels(obj: Obj) -> Obj:
        assert "spec" not in obj  # projected already
        obj["metadata"].pop("labels", None)
        return obj

    informer = _informer(fields=LABELS_AND_SIZES, transform=no_labels)
    informer._replace([node("n1")])
    assert informer.get("n1") == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "uid": "uid-n1", "resourceVersion": "1"},
        "status": {"images": [{"sizeBytes": 0}, {"sizeBytes": 1}, {"sizeBytes": 2}]},
    }
    whole = _informer()
    whole._replace([node("n1")])
    cached = whole.get("n1") or {}
    assert "managedFields" not in cached["metadata"] and cached["spec"]["podCIDR"] == "10.0.0.0/24"


def test_a_shared_informer_keeps_what_any_user_reads_and_whole_objects_for_one_that_says_nothing() -> None:
    manager = Manager(cast(KubeClient, None), namespace="ns", leader_election=False)
    first = manager.informer(NODES, fields=Fields("metadata.labels"))
    assert manager.informer(NODES, fields=Fields("spec.taints")) is first
    assert first.fields == Fields("metadata.labels", "spec.taints")
    manager.informer(NODES)
    assert first.fields is None
    manager.informer(NODES, fields=Fields("status"))
    assert first.fields is None  # whole stays whole
    other = manager.informer(PODS, namespace="ns", fields=Fields("spec.nodeName"))
    assert other.fields == Fields("spec.nodeName")


def test_an_informer_that_started_cannot_keep_more_fields() -> None:
    informer = _informer(fields=Fields("metadata.labels"))
    informer._synced.set()
    informer.require(Fields("metadata.labels"))  # nothing new: fine
    with pytest.raises(ValueError, match="has started"):
        informer.require(Fields("spec"))
    with pytest.raises(ValueError, match="has started"):
        informer.require(None)
