"""The diff between what a set wants and the children it has: create, delete, patch.

Pure: it takes the set, the desired images and the children found through the owner index, and
returns the writes to make. Children are matched by their normalized reference (never by name):
several children with one reference (a hand-made copy, an older naming scheme) collapse to one, the
one with the canonical name winning, then the oldest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drop_operator.api.cachedimage import READY as CHILD_READY
from drop_operator.api.cachedimageset import CACHED_IMAGE_SET_LABEL
from drop_operator.api.groups import CACHED_IMAGE, CACHED_IMAGE_SET
from drop_operator.api.meta import ObjectMeta
from drop_operator.api.pulltemplate import PullTemplate
from drop_operator.controllers.cachedimageset.desired import ImageKey, child_key
from drop_operator.controllers.cachedimageset.naming import LONG_HASH_LENGTH, child_name
from drop_operator.controllers.common import LABEL_MANAGED_BY, MANAGED_BY, label_value, meta, raw_condition

__all__ = [
    "Plan",
    "child_body",
    "child_is_ready",
    "drift_patch",
    "owner_reference",
    "plan_children",
]

Obj = Mapping[str, Any]


@dataclass
class Plan:
    """Writes that bring the children in line with the set."""

    create: list[tuple[ImageKey, dict[str, Any]]] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    patch: list[tuple[Obj, dict[str, Any]]] = field(default_factory=list)
    kept: dict[str, Obj] = field(default_factory=dict)
    """Existing children that stay, by full reference (patched ones included)."""
    desired: dict[str, ImageKey] = field(default_factory=dict)
    """Every image the set wants, by full reference (what ``status.desired`` counts)."""

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete or self.patch)


def owner_reference(owner: Obj) -> dict[str, Any]:
    """The controller ownerReference children carry; ``blockOwnerDeletion`` so foreground deletion waits."""
    owner_meta = meta(owner)
    return {
        "apiVersion": CACHED_IMAGE_SET.api_version,
        "kind": CACHED_IMAGE_SET.kind,
        "name": owner_meta.name,
        "uid": owner_meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(owner: Obj) -> dict[str, str]:
    return {
        CACHED_IMAGE_SET_LABEL: label_value(meta(owner).name),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def child_body(
    owner: Obj, key: ImageKey, name: str, template: PullTemplate, rank: int | None = None
) -> dict[str, Any]:
    """A new CachedImage for ``key``, owned by ``owner``, carrying its template and its ``rank``."""
    return {
        "apiVersion": CACHED_IMAGE.api_version,
        "kind": CACHED_IMAGE.kind,
        "metadata": {
            "name": name,
            "labels": child_labels(owner),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {**key.spec(), **template.to_json(), **({"rank": rank} if rank is not None else {})},
    }


def _merge_value(have: Any, want: Any) -> Any:
    """A merge-patch value turning ``have`` into ``want``: nulls delete keys that must go."""
    if isinstance(have, Mapping) and isinstance(want, Mapping):
        out: dict[str, Any] = {k: None for k in have if k not in want}
        out.update(want)
        return out
    return want


def _template_of(spec: Obj) -> dict[str, Any] | None:
    try:
        return PullTemplate.model_validate(dict(spec)).to_json()
    except ValueError:
        return None


def drift_patch(
    child: Obj, template: PullTemplate, labels: Mapping[str, str], rank: int | None = None
) -> dict[str, Any] | None:
    """A merge patch bringing ``child`` back to the set's template, rank and labels; ``None`` if it matches.

    Fields are compared after parsing both sides with the same model, so schema defaults do not count
    as drift; a child whose spec no longer parses gets every template field rewritten.
    """
    want = template.to_json()
    spec: Obj = child.get("spec") or {}
    have = _template_of(spec)
    patch: dict[str, Any] = {}
    spec_patch: dict[str, Any] = {}
    for alias in (f.alias or name for name, f in PullTemplate.model_fields.items()):
        wanted = want.get(alias)
        if have is not None and have.get(alias) == wanted:
            continue
        spec_patch[alias] = _merge_value(spec.get(alias), wanted)
    if spec.get("rank") != rank:
        spec_patch["rank"] = rank  # None deletes it
    if spec_patch:
        patch["spec"] = spec_patch
    current_labels = meta(child).labels
    label_patch = {k: v for k, v in labels.items() if current_labels.get(k) != v}
    if label_patch:
        patch["metadata"] = {"labels": label_patch}
    return patch or None


def child_is_ready(child: Obj) -> bool:
    """Whether the node-caching reconciler reports the child ``Ready``."""
    ready = raw_condition(child, CHILD_READY)
    return ready is not None and ready.get("status") == "True"


def _preference(canonical: str, child: ObjectMeta) -> tuple[int, float, str]:
    """Canonical name first, then the oldest (no timestamp counts as oldest), then by name."""
    created = child.creation_timestamp.timestamp() if child.creation_timestamp else float("-inf")
    return (0 if child.name == canonical else 1, created, child.name)


def plan_children(
    owner: Obj,
    desired: Mapping[str, ImageKey],
    children: Iterable[Obj],
    template: PullTemplate,
    *,
    hold_existing: bool = False,
) -> Plan:
    """Compute the writes for ``owner`` given its ``desired`` images and current ``children``.

    ``hold_existing`` keeps every valid existing child as desired too (the policy's list is
    unavailable, see :mod:`.policy`). Each child's ``rank`` is its place in ``desired`` (static
    images first, in the order listed, then the discovered ones by score); held children come last.
    """
    uid = meta(owner).uid or ""
    labels = child_labels(owner)
    plan = Plan(desired=dict(desired))
    by_key: dict[str, list[Obj]] = {}
    names: dict[str, str] = {}
    metas: dict[int, ObjectMeta] = {}
    for child in children:
        key = child_key(child)
        if key is None:
            plan.delete.append(child)
            continue
        by_key.setdefault(key.reference, []).append(child)
        metas[id(child)] = child_meta = meta(child)
        names[child_meta.name] = key.reference
        if hold_existing:
            plan.desired.setdefault(key.reference, key)

    ranks = {reference: rank for rank, reference in enumerate(plan.desired)}
    for reference, group in by_key.items():
        if reference not in plan.desired:
            plan.delete.extend(group)
            continue
        key = plan.desired[reference]
        canonical = child_name(uid, reference, key.repository, key.version)
        group.sort(key=lambda c: _preference(canonical, metas[id(c)]))
        keep, extra = group[0], group[1:]
        plan.delete.extend(extra)
        plan.kept[reference] = keep
        patch = drift_patch(keep, template, labels, ranks[reference])
        if patch is not None:
            plan.patch.append((keep, patch))

    for reference, key in plan.desired.items():
        if reference in plan.kept:
            continue
        name = child_name(uid, reference, key.repository, key.version)
        if names.get(name, reference) != reference:  # a hash collision with another child of this set
            name = child_name(uid, reference, key.repository, key.version, hash_length=LONG_HASH_LENGTH)
        plan.create.append((key, child_body(owner, key, name, template, ranks[reference])))
    return plan
