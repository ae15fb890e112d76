"""Indexes over the cluster's nodes, kept up to date by node events, that a pass reads instead of
scanning every node.

A CachedImage pass must not cost more on a larger cluster. Three indexes make that so:

* **targeting class -> target nodes.** Images that share a node selector and tolerations (their
  *targeting*, :func:`targeting_key`) share one member set. A node event re-checks the node
  against each class once (:func:`~.nodes.is_target`, the single rule), not once per image;
* **node -> reported images** (``status.images``, :func:`~.nodes.node_images`) and, the other way,
  **reported name -> images** that may be listed under it (registered by each image's pass), so a
  kubelet's new image list concerns only the images it added or dropped;
* **taint key -> nodes**, for the nodes still warming up (``warmUp``).

:meth:`TargetIndex.update` applies one node event and says which images it concerns: those whose
class gained or lost the node, or whose names the node's list gained or lost. Each of them also
gets the node in its *dirty* set (:meth:`TargetIndex.take_dirty`): the only nodes its next pass
has to look at again besides the ones it still waits for (:mod:`.pending`). A heartbeat, or a change
on a node no image targets, concerns nobody.

Pure bookkeeping over Node dicts (no informer, no I/O), so it is unit-tested with plain dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drop_operator.api import Toleration
from drop_operator.controllers.cachedimage.imagelist import KUBELET_MAX_IMAGES
from drop_operator.controllers.cachedimage.nodes import (
    is_target,
    node_images,
    node_name,
    targeting_fingerprint,
)
from drop_operator.controllers.common import nodecache

__all__ = ["TargetIndex", "targeting_key"]

Obj = Mapping[str, Any]


def targeting_key(node_selector: Mapping[str, str], tolerations: Sequence[Toleration]) -> str:
    """What selects an image's nodes by labels and taints, as a key: equal for equal targeting."""
    return json.dumps(
        [sorted(node_selector.items()), [t.to_json() for t in tolerations]],
        sort_keys=True,
        separators=(",", ":"),
    )


@dataclass
class _Class:
    node_selector: dict[str, str]
    tolerations: list[Toleration]
    members: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Facts:
    """What the index keeps of one node."""

    targeting: str
    names: frozenset[str]
    entries: int
    taint_keys: frozenset[str]


def _facts(node: Obj) -> _Facts:
    spec = node.get("spec") or {}
    return _Facts(
        targeting=targeting_fingerprint(node),
        names=frozenset(node_images(node)),
        entries=len((node.get("status") or {}).get("images") or ()),
        taint_keys=frozenset(str(t.get("key")) for t in spec.get("taints") or ()),
    )


class TargetIndex:
    """The indexes described in the module docstring; fed every node event, read by passes."""

    def __init__(self) -> None:
        self.nodes: dict[str, Obj] = {}
        """Node name -> the node as last seen."""
        self.names: set[str] = set()
        """Names of the nodes that exist."""
        self.keys: dict[str, str] = {}
        """Node name -> :func:`~drop_operator.controllers.common.nodecache.node_key` (computed once)."""
        self._facts: dict[str, _Facts] = {}
        self._classes: dict[str, _Class] = {}
        self._class_of: dict[str, str] = {}
        self._images_named: dict[str, str | set[str]] = {}
        """Reported name -> the image (most names are one image's), or the set of them."""
        self._names_of: dict[str, tuple[str, ...]] = {}
        """Image -> the names it may be listed under: a tuple (a frozenset is 216 bytes), the
        caller's own when it passes one (so one per image is kept, not two)."""
        self._tainted: dict[str, set[str]] = {}
        self._dirty: dict[str, set[str]] = {}

    # -- node events -------------------------------------------------------------------------------

    def update(self, node: Obj, *, deleted: bool = False) -> set[str]:
        """Apply an add, update (``node`` is the new state) or delete; returns the image keys it
        concerns (see the module docstring)."""
        name = node_name(node)
        before = self._facts.get(name)
        if deleted:
            if before is None:
                return set()
            return self._remove(name, before)
        after = _facts(node)
        self.nodes[name] = node
        self._facts[name] = after
        if before is None:
            self.names.add(name)
            self.keys[name] = nodecache.node_key(name)
        affected: dict[str, set[str]] = {}  # image -> nodes (here: this one)

        def touch(images: Iterable[str]) -> None:
            for image in images:
                affected.setdefault(image, set()).add(name)

        before_taints = before.taint_keys if before is not None else frozenset()
        for key in before_taints - after.taint_keys:
            self._discard(self._tainted, key, name)
        for key in after.taint_keys - before_taints:
            self._tainted.setdefault(key, set()).add(name)
        if before is None or before.targeting != after.targeting:
            for cls in self._classes.values():
                was = name in cls.members
                now = is_target(node, cls.node_selector, cls.tolerations)
                if now:
                    cls.members.add(name)
                elif was:
                    cls.members.discard(name)
                if was or now:
                    touch(cls.images)  # membership, platform labels or warming taint may differ
        old_names = before.names if before is not None else frozenset()
        if old_names != after.names:
            old_entries = before.entries if before is not None else 0
            if (old_entries >= KUBELET_MAX_IMAGES) != (after.entries >= KUBELET_MAX_IMAGES):
                # The list became complete or cut: absence means something else now for every image.
                concerned: set[str] = set()
                for cls in self._classes.values():
                    if name in cls.members:
                        concerned |= cls.images
            else:
                concerned = set()
                for listed in old_names ^ after.names:
                    concerned.update(self._named(listed))
            touch(image for image in concerned if name in self._members_of(image))
        for image, nodes in affected.items():
            self._dirty.setdefault(image, set()).update(nodes)
        return set(affected)

    def _remove(self, name: str, before: _Facts) -> set[str]:
        affected: set[str] = set()
        for cls in self._classes.values():
            if name in cls.members:
                cls.members.discard(name)
                affected |= cls.images
        for key in before.taint_keys:
            self._discard(self._tainted, key, name)
        del self._facts[name]
        self.nodes.pop(name, None)
        self.names.discard(name)
        self.keys.pop(name, None)
        for image in affected:
            self._dirty.setdefault(image, set()).add(name)
        return affected

    # -- images ------------------------------------------------------------------------------------

    def register(
        self,
        image: str,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Toleration],
        names: Iterable[str],
    ) -> tuple[str, set[str]]:
        """Image ``image`` targets by these rules and may be listed under ``names``: returns its
        targeting key and the class's member set (live: read it, never change it).

        A targeting no image used before is computed once over every node; images that share it
        (the common case) reuse it.
        """
        key = targeting_key(node_selector, tolerations)
        current = self._class_of.get(image)
        if current != key:
            if current is not None:
                self._leave_class(image, current)
            cls = self._classes.get(key)
            if cls is None:
                cls = self._classes[key] = _Class(dict(node_selector), list(tolerations))
                cls.members = {
                    n for n, node in self.nodes.items() if is_target(node, node_selector, tolerations)
                }
            cls.images.add(image)
            self._class_of[image] = key
        listed_names = names if isinstance(names, tuple) else tuple(dict.fromkeys(names))
        previous = self._names_of.get(image)
        if previous is not listed_names and (previous is None or set(previous) != set(listed_names)):
            for listed in previous or ():
                self._unname(listed, image)
            for listed in listed_names:
                self._name(listed, image)
            self._names_of[image] = listed_names
        return key, self._classes[key].members

    def take_dirty(self, image: str) -> set[str]:
        """Nodes that changed for ``image`` since the last call (see the module docstring)."""
        return self._dirty.pop(image, set())

    def tainted(self, key: str) -> set[str]:
        """Nodes carrying a taint with this key (live: read it, never change it)."""
        return self._tainted.get(key, set())

    def forget(self, image: str) -> None:
        """The image is gone: it uses no class and no name any more."""
        current = self._class_of.pop(image, None)
        if current is not None:
            self._leave_class(image, current)
        for listed in self._names_of.pop(image, ()):
            self._unname(listed, image)
        self._dirty.pop(image, None)

    def classes(self) -> int:
        """Targeting classes in use (for tests and metrics)."""
        return len(self._classes)

    # -- helpers -----------------------------------------------------------------------------------

    def _members_of(self, image: str) -> set[str]:
        key = self._class_of.get(image)
        return self._classes[key].members if key is not None else set()

    def _leave_class(self, image: str, key: str) -> None:
        cls = self._classes.get(key)
        if cls is None:
            return
        cls.images.discard(image)
        if not cls.images:
            del self._classes[key]

    def _named(self, listed: str) -> Iterable[str]:
        images = self._images_named.get(listed, ())
        return (images,) if isinstance(images, str) else images

    def _name(self, listed: str, image: str) -> None:
        images = self._images_named.get(listed)
        if images is None:
            self._images_named[listed] = image
        elif isinstance(images, str):
            if images != image:
                self._images_named[listed] = {images, image}
        else:
            images.add(image)

    def _unname(self, listed: str, image: str) -> None:
        images = self._images_named.get(listed)
        if images == image:
            del self._images_named[listed]
        elif isinstance(images, set):
            images.discard(image)
            if len(images) == 1:
                self._images_named[listed] = images.pop()

    @staticmethod
    def _discard(index: dict[str, set[str]], key: str, value: str) -> None:
        values = index.get(key)
        if values is not None:
            values.discard(value)
            if not values:
                del index[key]
