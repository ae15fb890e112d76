"""Pacing arithmetic: backoff, admission against every limit, the ledger of unseen pods."""

from __future__ import annotations

import dataclasses

import pytest

from drop_operator.api import PullPolicySpec
from drop_operator.controllers.cachedimage.pacing import (
    DEMAND_TTL,
    LEDGER_TTL,
    Demand,
    Pacing,
    PendingPull,
    PoolGates,
    backoff_delay,
    decide_admission,
    priority,
    repull_due,
    reserved_slots,
)

BASE = Pacing(
    max_concurrent_nodes=2,
    max_concurrent_pulls=3,
    max_pulls_per_node=1,
    min_delay=0.0,
    backoff_initial=1.0,
    backoff_max=4.0,
    backoff_jitter=0.0,
    pull_timeout=5.0,
    repull_interval=None,
)


def test_from_spec_reads_the_documented_defaults() -> None:
    p = Pacing.default()
    assert (p.max_concurrent_nodes, p.max_concurrent_pulls, p.max_pulls_per_node) == (2, 5, 1)
    assert (p.min_delay, p.backoff_initial, p.backoff_max, p.pull_timeout) == (2.0, 30.0, 1800.0, 600.0)
    assert p.repull_interval is None
    custom = Pacing.from_spec(PullPolicySpec.model_validate({"repullInterval": "1h", "pullTimeout": "5s"}))
    assert custom.repull_interval == 3600.0
    assert custom.pull_timeout == 5.0


def test_backoff_doubles_and_is_capped() -> None:
    delays = [backoff_delay(n, BASE, 0.5) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.5, 0.999])
def test_backoff_jitter_stays_within_bounds_and_below_the_cap(rand: float) -> None:
    p = dataclasses.replace(BASE, backoff_jitter=0.5)
    assert 0.5 <= backoff_delay(1, p, rand) <= 1.5
    assert backoff_delay(10, p, rand) <= 4.0
    assert backoff_delay(10, p, rand) >= 2.0


def test_admission_fills_the_image_limit() -> None:
    a = decide_admission(
        ["a", "b", "c"],
        BASE,
        image_in_flight=0,
        pool_in_flight=0,
        node_in_flight={},
        last_start=None,
        now=0,
    )
    assert a.start == ["a", "b"]
    a = decide_admission(
        ["a", "b"], BASE, image_in_flight=2, pool_in_flight=2, node_in_flight={}, last_start=None, now=0
    )
    assert a.start == [] and a.blocked_by == "maxConcurrentNodes"


def test_admission_respects_the_policy_limit() -> None:
    a = decide_admission(
        ["a", "b"], BASE, image_in_flight=0, pool_in_flight=2, node_in_flight={}, last_start=None, now=0
    )
    assert a.start == ["a"]
    a = decide_admission(
        ["a"], BASE, image_in_flight=0, pool_in_flight=3, node_in_flight={}, last_start=None, now=0
    )
    assert a.start == [] and a.blocked_by == "maxConcurrentPulls"


def test_admission_skips_busy_nodes_without_stalling_the_others() -> None:
    a = decide_admission(
        ["busy", "free"],
        BASE,
        image_in_flight=0,
        pool_in_flight=0,
        node_in_flight={"busy": 1},
        last_start=None,
        now=0,
    )
    assert a.start == ["free"]
    a = decide_admission(
        ["busy"],
        BASE,
        image_in_flight=0,
        pool_in_flight=0,
        node_in_flight={"busy": 1},
        last_start=None,
        now=0,
    )
    assert a.start == [] and a.blocked_by == "maxPullsPerNode"


def test_min_delay_starts_one_at_a_time_and_says_when_to_come_back() -> None:
    p = dataclasses.replace(BASE, min_delay=2.0)
    a = decide_admission(
        ["a", "b"], p, image_in_flight=0, pool_in_flight=0, node_in_flight={}, last_start=None, now=10
    )
    assert a.start == ["a"] and a.retry_after == 2.0
    a = decide_admission(
        ["b"], p, image_in_flight=1, pool_in_flight=1, node_in_flight={}, last_start=10, now=10.5
    )
    assert a.start == [] and a.retry_after == pytest.approx(1.5)
    a = decide_admission(
        ["b"], p, image_in_flight=1, pool_in_flight=1, node_in_flight={}, last_start=10, now=12
    )
    assert a.start == ["b"] and a.retry_after is None


def test_repull_due_spreads_nodes_by_up_to_ten_percent() -> None:
    assert repull_due(0, 100, 0) == 100
    assert 100 < repull_due(0, 100, 999) <= 110


def test_ledger_counts_pods_until_the_cache_has_seen_them() -> None:
    now = [100.0]
    gates = PoolGates(lambda: now[0])
    gate = gates.gate("p")
    gate.record(PendingPull("pod-a", "img", "n1", created=100.0))
    now[0] = 101.0
    gate.record(PendingPull("pod-b", "img", "n2", created=101.0))
    assert gate.last_start == 101.0
    now[0] = 102.0
    assert [p.name for p in gate.unseen(lambda name: False)] == ["pod-a", "pod-b"]
    assert [p.name for p in gate.unseen(lambda name: name == "pod-a")] == ["pod-b"]
    gates.observe("pod-b")
    assert gate.unseen(lambda name: False) == []


def test_ledger_entries_expire() -> None:
    now = [0.0]
    gate = PoolGates(lambda: now[0]).gate("p")
    gate.record(PendingPull("pod-a", "img", "n1", created=0.0))
    now[0] = LEDGER_TTL + 1.0
    assert gate.unseen(lambda name: False) == []
    assert len(gate.pending) == 0


def test_priority_puts_warming_first_then_rank_then_unranked_then_name() -> None:
    order = [
        priority("z", 5, warming=True),
        priority("b", 0),
        priority("a", 1),
        priority("c", 1),
        priority("a", None),
    ]
    assert sorted(order) == order


def test_only_better_ranked_fresh_demands_are_reserved() -> None:
    demands = {
        "top": Demand(priority("top", 0), 2, since=100.0),
        "old": Demand(priority("old", 0), 5, since=100.0 - DEMAND_TTL),
        "worse": Demand(priority("worse", 9), 4, since=100.0),
    }
    assert reserved_slots(priority("me", 3), demands, now=100.0) == 2
    assert reserved_slots(priority("top", 0), demands, now=100.0) == 0


def test_reserved_slots_count_against_the_pool_limit() -> None:
    nodes = ["n1", "n2", "n3"]
    common = {"image_in_flight": 0, "node_in_flight": {}, "last_start": None, "now": 0.0}
    assert decide_admission(nodes, BASE, pool_in_flight=1, reserved=1, **common).start == ["n1"]
    blocked = decide_admission(nodes, BASE, pool_in_flight=1, reserved=2, **common)
    assert blocked.start == [] and blocked.blocked_by == "maxConcurrentPulls"
