"""Per-object memory and expectations, on an injected clock."""

from __future__ import annotations

from drop_operator.runtime.memory import Expectations, KeyedMemory


def test_memory_is_kept_per_key_while_the_identity_holds() -> None:
    memory: KeyedMemory[list[str]] = KeyedMemory()
    made: list[list[str] | None] = []

    def make(previous: list[str] | None) -> list[str]:
        made.append(previous)
        return []

    first = memory.recall("a", "uid-1", make)
    first.append("x")
    assert memory.recall("a", "uid-1", make) is first
    assert made == [None]
    renewed = memory.recall("a", "uid-2", make)  # a new object under the old name
    assert renewed == [] and renewed is not first
    assert made == [None, ["x"]], "make sees the memory of the previous identity"
    assert memory.get("a") is renewed and "a" in memory and len(memory) == 1
    memory.forget("a")
    assert memory.get("a") is None and list(memory) == []


def test_a_limited_memory_drops_the_value_used_least_recently() -> None:
    memory: KeyedMemory[str] = KeyedMemory(limit=2)
    memory.recall("a", 1, lambda _: "a1")
    memory.recall("b", 1, lambda _: "b1")
    assert memory.recall("a", 1, lambda _: "again") == "a1"  # a used after b
    memory.recall("c", 1, lambda _: "c1")
    assert list(memory) == ["a", "c"]
    memory.recall("a", 2, lambda _: "a2")  # a new identity replaces, never evicts another
    assert list(memory) == ["c", "a"] and memory.get("a") == "a2"


def test_expectations_last_until_seen_or_expired() -> None:
    now = [100.0]
    expect: Expectations[str] = Expectations(ttl=60, clock=lambda: now[0])
    expect.expect("pod-a", "n1")
    now[0] = 101.0
    expect.expect("pod-b", "n2")
    assert expect.pending() == {"pod-a": "n1", "pod-b": "n2"}
    assert expect.pending(seen=lambda item: item == "pod-a") == {"pod-b": "n2"}
    assert "pod-a" not in expect and expect.get("pod-b") == "n2"
    expect.observe("pod-b")
    assert expect.pending() == {} and len(expect) == 0
    expect.expect("pod-c", "n3")
    now[0] = 162.0
    assert expect.pending() == {}, "entries older than the ttl are dropped"
