"""Conditions (KEP-1623 semantics of lastTransitionTime) and lenient object parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from drop_operator.api import CachedImage, Condition, find_condition, is_condition_true, set_condition

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 1, 1, 13, 0, 0, tzinfo=UTC)


def _cond(status: str, when: datetime, reason: str = "Synced", message: str = "") -> Condition:
    return Condition(type="Ready", status=status, reason=reason, message=message, last_transition_time=when)


def test_set_condition_keeps_transition_time_while_status_unchanged() -> None:
    out = set_condition([_cond("True", T0)], _cond("True", T1, reason="StillSynced", message="new"))
    assert len(out) == 1
    assert out[0].last_transition_time == T0
    assert out[0].reason == "StillSynced"
    assert out[0].message == "new"


def test_set_condition_takes_new_time_when_status_changes() -> None:
    out = set_condition([_cond("True", T0)], _cond("False", T1, reason="SourceFailed"))
    assert out[0].status == "False"
    assert out[0].last_transition_time == T1


def test_set_condition_appends_new_type_and_keeps_others_and_order() -> None:
    other = Condition(type="SourcesHealthy", status="True", reason="AllHealthy", last_transition_time=T0)
    start = [other]
    out = set_condition(start, _cond("Unknown", T1))
    assert [c.type for c in out] == ["SourcesHealthy", "Ready"]
    assert start == [other], "input list must not be modified"
    assert find_condition(out, "Ready") is out[1]
    assert find_condition(out, "Missing") is None
    assert not is_condition_true(out, "Ready")
    assert is_condition_true(out, "SourcesHealthy")


def test_condition_serializes_as_kubernetes_time() -> None:
    wire = _cond("True", datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)).to_json()
    assert wire == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "",
        "lastTransitionTime": "2024-01-01T12:00:00Z",
    }
    assert Condition.model_validate(wire).last_transition_time == T0


@pytest.mark.parametrize("reason", ["", "not camel", "1Bad", "Bad-Reason"])
def test_condition_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValidationError):
        _cond("True", T0, reason=reason)


def test_condition_status_is_closed() -> None:
    with pytest.raises(ValidationError):
        _cond("Maybe", T0)


def test_whole_object_parses_leniently() -> None:
    obj = {
        "apiVersion": "drop.corewire.io/v1alpha1",
        "kind": "CachedImage",
        "metadata": {
            "name": "nginx-1-25-abc",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "42",
            "creationTimestamp": "2024-01-01T12:00:00Z",
            "deletionTimestamp": "2024-01-01T13:00:00Z",
            "managedFields": [{"manager": "x"}],
            "ownerReferences": [
                {
                    "apiVersion": "drop.corewire.io/v1alpha1",
                    "kind": "CachedImageSet",
                    "name": "set",
                    "uid": "u-0",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"image": "docker.io/library/nginx", "tag": "1.25", "futureField": 1},
        "status": {"cachedNodes": 2, "unknownCounter": 5},
    }
    ci = CachedImage.from_obj(obj)
    assert ci.metadata.generation == 3
    assert ci.metadata.deleting
    assert ci.metadata.owner_references[0].controller is True
    assert ci.reference == "docker.io/library/nginx:1.25"
    assert ci.status.cached_nodes == 2
    assert ci.status.to_json()["cachedNodes"] == 2
