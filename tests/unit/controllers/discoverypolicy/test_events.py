"""The ImagesDiscovered note: what changed, briefly."""

from __future__ import annotations

from drop_operator.controllers.discoverypolicy.reconciler import images_changed_note


def test_note_lists_added_and_removed_in_order() -> None:
    note = images_changed_note(["a:1", "d:1", "b:1"], ["a:1", "b:1", "c:1", "e:1", "f:1"])
    assert note == "+3 -1: added c:1, e:1, f:1; removed d:1"


def test_same_set_in_another_order_or_with_other_scores_is_no_change() -> None:
    assert images_changed_note(["a:1", "b:1"], ["b:1", "a:1"]) is None


def test_long_lists_are_shortened() -> None:
    note = images_changed_note([], [f"img-{i}:1" for i in range(25)])
    assert note is not None
    assert note.startswith("+25 -0: added img-0:1, ")
    assert note.endswith("img-9:1 and 15 more")


def test_only_removals() -> None:
    assert images_changed_note(["x:1"], []) == "+0 -1: removed x:1"
