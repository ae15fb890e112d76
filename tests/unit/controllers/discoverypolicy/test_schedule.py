"""The sync gate: spec edits apply now, jittered interval otherwise, failing sources retried with a floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drop_operator.controllers.discoverypolicy.schedule import (
    JITTER,
    MIN_WAIT,
    RETRY_FLOOR,
    SourceState,
    SyncDecision,
    decide_sync,
    jitter_factor,
    jittered_interval,
    retry_delay,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR = 3600.0


def test_jitter_is_deterministic_per_name_and_within_ten_percent() -> None:
    names = [f"policy-{i}" for i in range(2000)]
    factors = [jitter_factor(n) for n in names]
    assert factors == [jitter_factor(n) for n in names]
    assert all(1 - JITTER <= f <= 1 + JITTER for f in factors)
    # Spread over the whole window, not clustered: policies applied together do not fire together.
    assert min(factors) < 1 - 0.9 * JITTER
    assert max(factors) > 1 + 0.9 * JITTER
    assert len({round(f, 6) for f in factors}) > 1900


def test_jittered_interval_scales_the_interval() -> None:
    assert jittered_interval("a", HOUR) == pytest.approx(HOUR * jitter_factor("a"))
    assert 0.9 * 30 <= jittered_interval("b", 30) <= 1.1 * 30


def test_retry_delay_doubles_from_the_floor_and_stops_at_the_interval() -> None:
    delays = [retry_delay(n, HOUR) for n in range(1, 12)]
    assert delays[0] == RETRY_FLOOR
    assert delays[1] == 2 * RETRY_FLOOR
    assert delays == sorted(delays)
    assert delays[-1] == HOUR
    assert retry_delay(0, HOUR) == RETRY_FLOOR
    assert retry_delay(10_000, HOUR) == HOUR
    # An interval below the floor caps the floor itself: never slower than the interval.
    assert retry_delay(1, 20.0) == 20.0


def gate(**overrides: Any) -> SyncDecision:
    args: dict[str, Any] = {
        "name": "p",
        "now": NOW,
        "generation": 3,
        "observed_generation": 3,
        "last_sync_time": NOW - timedelta(minutes=10),
        "interval": HOUR,
        "sources": ["prometheus-0", "registry-1"],
        "states": {"prometheus-0": SourceState(healthy=True), "registry-1": SourceState(healthy=True)},
    }
    args.update(overrides)
    return decide_sync(**args)


def test_nothing_due_waits_for_the_jittered_interval() -> None:
    result = gate()
    assert result.run == ()
    assert not result.full
    assert result.reason == "not-due"
    assert result.wait == pytest.approx(jittered_interval("p", HOUR) - 600)


def test_spec_change_runs_everything_at_once_even_right_after_a_sync() -> None:
    result = gate(generation=4, last_sync_time=NOW)
    assert result.full
    assert result.reason == "spec-changed"
    assert result.run == ("prometheus-0", "registry-1")


def test_first_sync_runs_everything() -> None:
    result = gate(observed_generation=3, last_sync_time=None, states={})
    assert result.full and result.reason == "first-sync"


def test_interval_passed_runs_a_full_sync_and_jitter_decides_the_edge() -> None:
    period = jittered_interval("p", HOUR)
    before = gate(last_sync_time=NOW - timedelta(seconds=period - 5))
    after = gate(last_sync_time=NOW - timedelta(seconds=period + 1))
    assert before.run == () and before.wait == pytest.approx(5)
    assert after.full and after.reason == "interval"


def test_failing_source_is_retried_alone_once_its_retry_time_passed() -> None:
    states = {
        "prometheus-0": SourceState(healthy=True),
        "registry-1": SourceState(healthy=False, retry_at=NOW - timedelta(seconds=1)),
    }
    result = gate(states=states)
    assert result.run == ("registry-1",)
    assert not result.full
    assert result.reason == "retry"


def test_failing_source_not_yet_due_sets_the_wait() -> None:
    states = {
        "prometheus-0": SourceState(healthy=True),
        "registry-1": SourceState(healthy=False, retry_at=NOW + timedelta(seconds=45)),
    }
    result = gate(states=states)
    assert result.run == ()
    assert result.wait == pytest.approx(45)


def test_wait_is_never_below_the_minimum() -> None:
    states = {
        "prometheus-0": SourceState(healthy=True),
        "registry-1": SourceState(healthy=False, retry_at=NOW + timedelta(milliseconds=5)),
    }
    assert gate(states=states).wait == MIN_WAIT


def test_source_without_state_is_due() -> None:
    result = gate(states={"prometheus-0": SourceState(healthy=True)})
    assert result.run == ("registry-1",)
