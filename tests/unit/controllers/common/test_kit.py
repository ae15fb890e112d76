"""The controller kit: owner lookup, bounded listings, timestamps, conditions, hashes."""

from __future__ import annotations

from datetime import UTC, datetime

from drop_operator.controllers.common import (
    STATUS_MAX_DELAY,
    STATUS_QUIET,
    condition,
    controller_uid,
    first_and_more,
    format_time,
    parse_time,
    pull_policy_changed,
    raw_condition,
    short_hash,
    status_base,
)


def _owned(*refs: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"ownerReferences": list(refs)}}


def test_controller_uid_tells_ours_from_someone_elses_and_from_orphans() -> None:
    ours = {"kind": "CachedImageSet", "uid": "u1", "controller": True}
    other = {"kind": "Deployment", "uid": "u2", "controller": True}
    plain = {"kind": "CachedImageSet", "uid": "u3"}
    assert controller_uid(_owned(plain, ours), "CachedImageSet") == "u1"
    assert controller_uid(_owned(other), "CachedImageSet") == ""
    assert controller_uid(_owned(plain), "CachedImageSet") is None
    assert controller_uid({}, "CachedImageSet") is None
    assert controller_uid(_owned(other)) == "u2"


def test_first_and_more_counts_what_it_leaves_out() -> None:
    assert first_and_more(["a", "b"], 3) == "a, b"
    assert first_and_more(["a", "b", "c", "d", "e"], 2) == "a, b and 3 more"
    assert first_and_more([], 2) == ""


def test_times_round_trip_at_second_precision_in_utc() -> None:
    when = datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC)
    assert format_time(when) == "2024-05-01T12:30:05Z"
    assert parse_time("2024-05-01T12:30:05Z") == when
    assert format_time(datetime(2024, 5, 1, 12, 30, 5)) == "2024-05-01T12:30:05Z"  # naive is UTC
    assert format_time(None) == "never"
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


def test_condition_bounds_the_message_and_raw_condition_finds_by_type() -> None:
    built = condition("Ready", "True", "Cached", "x" * 5000, generation=3)
    assert len(built.message) == 4096 and built.observed_generation == 3
    obj = {"status": {"conditions": [{"type": "Ready", "status": "False"}, "junk"]}}
    assert raw_condition(obj, "Ready") == {"type": "Ready", "status": "False"}
    assert raw_condition(obj, "Degraded") is None
    assert raw_condition({}, "Ready") is None


def test_short_hash_is_stable_and_separates_parts() -> None:
    assert short_hash("a", "bc") == short_hash("a", "bc")
    assert short_hash("a", "bc") != short_hash("ab", "c")
    assert len(short_hash("x", length=16)) == 16


def _image(policy: str | None, rv: str = "1", status: dict[str, object] | None = None) -> dict[str, object]:
    spec = {"pullPolicyRef": {"name": policy}} if policy else {}
    return {"metadata": {"resourceVersion": rv}, "spec": spec, "status": status or {}}


def test_pull_policy_changed_passes_adds_deletes_and_moves_only() -> None:
    assert pull_policy_changed(None, _image("fast"))
    assert pull_policy_changed(_image("fast"), _image("slow", "2"))
    assert pull_policy_changed(_image(None), _image("slow", "2"))
    assert not pull_policy_changed(_image("fast"), _image("fast", "2", {"cachedNodes": 3}))


def test_status_base_is_the_last_write_while_the_cache_shows_the_object_before_it() -> None:
    cached = {"metadata": {"resourceVersion": "7"}, "status": {"imagesUsing": 1}}
    assert status_base(cached, None) == {"imagesUsing": 1}
    assert status_base(cached, ("7", {"imagesUsing": 2})) == {"imagesUsing": 2}, "cache is stale"
    assert status_base(cached, ("6", {"imagesUsing": 2})) == {"imagesUsing": 1}, "cache moved on"
    assert status_base({"metadata": {}}, None) == {}


def test_coalescing_bounds_are_seconds_with_a_quiet_period_inside_the_bound() -> None:
    assert 0 < STATUS_QUIET <= STATUS_MAX_DELAY <= 10
