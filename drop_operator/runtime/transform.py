"""What an informer keeps of each object: controller-runtime's cache transforms, for plain dicts.

An informer's cache holds every object of its kind for the life of the process, so what it keeps
is most of the operator's memory (see docs/scale.md). Three steps, in this order, run on every
object before it is cached or handed to a handler (listed, added, modified and deleted alike):

1. ``metadata.managedFields`` is dropped (server-side apply bookkeeping; controller-runtime's
   ``TransformStripManagedFields``);
2. a projection (:class:`Fields`) keeps only the paths the controllers read, when every controller
   sharing the informer declared its paths; one that did not gets whole objects for everybody;
3. strings are interned (:func:`intern_strings`): the JSON decoder makes new key strings for
   every watch event, and label keys and values, kinds, image names, condition reasons and
   timestamps repeat across thousands of objects.

A controller that reads a path outside its informer's projection sees it as absent: declare the
paths next to the code that reads them, and test the code on projected objects (see the tests of
each controller's ``cachefields``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["IDENTITY", "Fields", "TransformFunc", "intern_strings"]

Obj = dict[str, Any]
TransformFunc = Callable[[Obj], Obj]
"""A function from a decoded object to what the cache keeps of it (``cache.TransformFunc``)."""

_EACH = "[]"
_Tree = dict[str, Any]  # path segment -> True (keep whole) or a subtree

#: Paths every projection keeps: the informer's own (key, resourceVersion), the predicates'
#: (generation, deletion) and what an Event's ``regarding`` names.
IDENTITY = (
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.deletionTimestamp",
)

_MAX_INTERNED = 512
"""Longer strings (a cached-nodes annotation, a last-applied configuration) are left alone: they
are rarely shared, and interning costs a hash of the whole string."""


def _parse(path: str) -> list[str]:
    """``status.images[].names`` -> ``["status", "images", "[]", "names"]``."""
    out: list[str] = []
    for part in path.split("."):
        name, each = part, 0
        while name.endswith(_EACH):
            name, each = name[: -len(_EACH)], each + 1
        if not name:
            raise ValueError(f"empty segment in field path {path!r}")
        out.append(name)
        out.extend([_EACH] * each)
    return out


def _add(tree: _Tree, segments: list[str]) -> None:
    node = tree
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        current = node.get(seg)
        if current is True:
            return  # an ancestor is kept whole already
        if last:
            node[seg] = True
            return
        if current is None:
            current = node[seg] = {}
        node = current


def _merge(into: _Tree, other: Mapping[str, Any]) -> None:
    for seg, sub in other.items():
        current = into.get(seg)
        if sub is True or current is True:
            into[seg] = True
        elif current is None:
            into[seg] = _copy(sub)
        else:
            _merge(current, sub)


def _copy(tree: Mapping[str, Any]) -> _Tree:
    return {k: (True if v is True else _copy(v)) for k, v in tree.items()}


def _paths(tree: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for seg, sub in sorted(tree.items()):
        path = prefix + _EACH if seg == _EACH else (f"{prefix}.{seg}" if prefix else seg)
        if sub is True:
            yield path
        else:
            yield from _paths(sub, path)


def _project(value: Any, tree: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        out = {}
        for seg, sub in tree.items():
            if seg in value:
                out[seg] = value[seg] if sub is True else _project(value[seg], sub)
        return out
    if isinstance(value, list):
        each = tree.get(_EACH)
        if each is None:
            return []
        return value if each is True else [_project(item, each) for item in value]
    return value  # a scalar where the projection expected structure: keep what is there


class Fields:
    """A set of field paths to keep, such as ``metadata.labels`` or ``status.images[].names``.

    ``a[]`` means every element of the list ``a``; a path keeps everything below it. Fields join
    with ``|`` (a shared informer keeps what any of its controllers reads) and always include
    :data:`IDENTITY`. Calling a ``Fields`` projects an object onto it (a new dict; the object
    is not changed; missing paths stay missing).
    """

    def __init__(self, *paths: str) -> None:
        self._tree: _Tree = {}
        for path in (*IDENTITY, *paths):
            _add(self._tree, _parse(path))

    @classmethod
    def _of(cls, tree: _Tree) -> Fields:
        fields = cls()
        fields._tree = tree
        return fields

    def __or__(self, other: Fields) -> Fields:
        tree = _copy(self._tree)
        _merge(tree, other._tree)
        return Fields._of(tree)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fields) and self._tree == other._tree

    def __hash__(self) -> int:
        return hash(tuple(self.paths))

    @property
    def paths(self) -> list[str]:
        """The kept paths, sorted and minimal (a path below a kept path is not listed)."""
        return list(_paths(self._tree))

    def __call__(self, obj: Obj) -> Obj:
        projected: Obj = _project(obj, self._tree)
        return projected

    def __repr__(self) -> str:
        return f"Fields({', '.join(map(repr, self.paths))})"


def intern_strings(value: Any) -> Any:
    """``value`` rebuilt with every dict key, and every string value up to 512 characters, interned.

    ``sys.intern`` does not keep a string alive: one no object uses any more is freed as usual.
    """
    if isinstance(value, dict):
        return {sys.intern(k) if type(k) is str else k: intern_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [intern_strings(v) for v in value]
    if type(value) is str and len(value) <= _MAX_INTERNED:
        return sys.intern(value)
    return value
