"""Predicates and the secret-redacting log processor."""

from __future__ import annotations

import io
import json
import logging

import structlog

from drop_operator.runtime import predicates
from drop_operator.runtime.logging import configure_logging, redact_secrets


def obj(generation: int = 1, labels: dict[str, str] | None = None, rv: str = "1") -> dict[str, object]:
    return {"metadata": {"generation": generation, "labels": labels or {}, "resourceVersion": rv}}


def test_generation_changed_ignores_status_only_updates() -> None:
    assert predicates.generation_changed(None, obj())
    assert not predicates.generation_changed(obj(1, rv="1"), obj(1, rv="2"))
    assert predicates.generation_changed(obj(1), obj(2))


def test_label_and_combined_predicates() -> None:
    either = predicates.any_of(predicates.generation_changed, predicates.labels_changed)
    assert either(obj(1, {"a": "1"}), obj(1, {"a": "2"}))
    assert not either(obj(1, {"a": "1"}), obj(1, {"a": "1"}, rv="9"))
    assert not predicates.resource_version_changed(obj(rv="5"), obj(rv="5"))


def test_resynced_passes_only_the_replay_of_the_same_object() -> None:
    assert predicates.resynced(obj(rv="5"), obj(rv="5"))
    assert not predicates.resynced(obj(rv="5"), obj(rv="6"))
    assert not predicates.resynced(None, obj())
    spec_or_resync = predicates.any_of(predicates.generation_changed, predicates.resynced)
    assert spec_or_resync(obj(1, rv="5"), obj(1, rv="5"))
    assert not spec_or_resync(obj(1, rv="5"), obj(1, rv="6"))


def test_redaction_covers_nested_and_differently_spelled_keys() -> None:
    event = {
        "event": "connecting",
        "password": "hunter2",
        "Authorization": "Bearer abc",
        "headers": {"X-Api-Key": "k", "Accept": "json"},
        "bearer_token": "t",
        "user": "bob",
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["password"] == out["Authorization"] == out["bearer_token"] == "[redacted]"
    assert out["headers"] == {"X-Api-Key": "[redacted]", "Accept": "json"}
    assert out["user"] == "bob"


def test_json_logs_carry_bound_reconcile_context_and_no_secrets() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json", "info")
    stream = io.StringIO()
    try:
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        with structlog.contextvars.bound_contextvars(controller="c", key="ns/a", reconcile_id="r1"):
            structlog.get_logger("t").info("hello", token="s3cret")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        structlog.reset_defaults()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["controller"] == "c" and line["key"] == "ns/a" and line["reconcile_id"] == "r1"
    assert line["token"] == "[redacted]"
    assert "s3cret" not in stream.getvalue()
