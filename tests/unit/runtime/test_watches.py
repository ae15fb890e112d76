"""Watch wiring without a server: shared indexes, per-event filters, key deduplication.

The informer here is never started; handlers are driven the way its watch loop drives them.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.controller import Controller
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.resources import PODS
from drop_operator.runtime.workqueue import Debounce

Obj = dict[str, Any]


def _informer() -> Informer:
    return Informer(cast(KubeClient, None), PODS)  # never started: no client call is made


def _by_node(obj: Obj) -> list[str]:
    return [obj["spec"]["nodeName"]]


def test_ensure_index_is_idempotent_for_the_same_function_and_rejects_another() -> None:
    informer = _informer()
    informer.ensure_index("by-node", _by_node)
    informer.ensure_index("by-node", _by_node)  # a second setup on the shared informer
    assert informer.by_index("by-node", "n1") == []
    with pytest.raises(ValueError, match="already exists"):
        informer.ensure_index("by-node", lambda obj: [])


def test_watch_mapped_listens_only_to_the_events_asked_for_and_dedupes_keys() -> None:
    informer = _informer()
    controller = Controller("unit-watches", lambda key: None, workers=1)  # type: ignore[arg-type,return-value]
    controller.watch_mapped(informer, lambda obj: ["a", "b", "a"], events=("update", "delete"))
    handler = informer._handlers[-1]
    assert handler.on_add is None
    assert handler.on_update is not None and handler.on_delete is not None
    handler.on_update({}, {})
    assert len(controller.queue) == 2  # a and b once, though both states map to both
    handler.on_delete({})
    assert len(controller.queue) == 2  # already queued: the queue deduplicates


async def test_a_debounced_watch_turns_a_burst_of_events_into_one_add() -> None:
    informer = _informer()
    controller = Controller("unit-debounced", lambda key: None, workers=1)  # type: ignore[arg-type,return-value]
    controller.watch_mapped(informer, lambda obj: ["owner"], debounce=Debounce(quiet=0.05, max_delay=1.0))
    handler = informer._handlers[-1]
    assert handler.on_add is not None
    for _ in range(1000):
        handler.on_add({})
    assert len(controller.queue) == 0, "not queued while the burst goes on"
    assert await controller.queue.get() == "owner"  # once the burst is 50 ms quiet
    controller.queue.done("owner")
    assert len(controller.queue) == 0
    controller.queue.shutdown()


def test_index_count_is_the_size_of_an_index_entry() -> None:
    informer = _informer()
    informer.ensure_index("by-node", _by_node)
    for i, node in enumerate(["n1", "n1", "n2"]):
        informer._upsert(
            f"ns/p{i}", {"metadata": {"name": f"p{i}", "resourceVersion": "1"}, "spec": {"nodeName": node}}
        )
    assert informer.index_count("by-node", "n1") == 2
    assert informer.index_count("by-node", "n2") == 1
    assert informer.index_count("by-node", "n3") == 0
    informer._remove("ns/p0")
    assert informer.index_count("by-node", "n1") == 1


def test_an_object_moves_between_index_values_with_none_one_or_several() -> None:
    informer = _informer()
    informer.ensure_index("by-label", lambda obj: sorted(obj["metadata"].get("labels") or {}))

    versions = iter(range(1, 100))

    def put(labels: dict[str, str]) -> None:
        version = str(next(versions))
        informer._upsert("ns/p", {"metadata": {"name": "p", "resourceVersion": version, "labels": labels}})

    def counts() -> list[int]:
        return [informer.index_count("by-label", v) for v in ("a", "b", "c")]

    put({"a": "", "b": ""})
    assert counts() == [1, 1, 0]
    put({"c": ""})
    assert counts() == [0, 0, 1]
    put({})
    assert counts() == [0, 0, 0]
    put({"b": ""})
    assert counts() == [0, 1, 0]
    informer._remove("ns/p")
    assert counts() == [0, 0, 0]
