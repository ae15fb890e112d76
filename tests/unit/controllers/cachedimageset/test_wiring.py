"""Which child events reach a set, and which of them make its next pass diff the children again."""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.cachedimageset.wiring import child_readiness_changed, child_restructured

Obj = dict[str, Any]


def child(rv: str = "1", *, generation: int = 1, ready: str | None = None, **metadata: Any) -> Obj:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    return {
        "metadata": {"resourceVersion": rv, "generation": generation, "labels": {"a": "1"}, **metadata},
        "status": {"conditions": conditions, "cachedNodes": int(rv)},
    }


def test_adds_deletes_and_changes_the_diff_reads_restructure_a_set() -> None:
    assert child_restructured(None, child())
    assert child_restructured(child(), child("2", generation=2))
    assert child_restructured(child(), child("2", labels={"a": "2"}))
    assert child_restructured(child(), child("2", ownerReferences=[{"uid": "u"}]))
    assert child_restructured(child(), child("2", deletionTimestamp="2026-01-01T00:00:00Z"))


def test_status_writes_and_resyncs_do_not_restructure_a_set() -> None:
    assert not child_restructured(child(), child("2", ready="True"))
    same = child("5")
    assert not child_restructured(same, same)


def test_only_a_readiness_flip_is_counted_among_status_writes() -> None:
    assert child_readiness_changed(child(), child("2", ready="True"))
    assert child_readiness_changed(child(ready="True"), child("2", ready="False"))
    assert not child_readiness_changed(child(ready="False"), child("2"))  # not Ready either way
    assert not child_readiness_changed(child(ready="True"), child("3", ready="True"))
    assert not child_readiness_changed(None, child(ready="True")), "adds restructure instead"
