"""Runtime resource descriptors of drop's four kinds, built once from the API's kind table.

Every reconciler and its tests take their ``Resource`` from here, so the group, version and plural
of a kind are written in exactly one place (``drop_operator.api.groups``).
"""

from __future__ import annotations

from drop_operator.api.groups import CACHED_IMAGE, CACHED_IMAGE_SET, DISCOVERY_POLICY, PULL_POLICY, KindInfo
from drop_operator.runtime.resources import Resource

__all__ = ["CACHED_IMAGES", "CACHED_IMAGE_SETS", "DISCOVERY_POLICIES", "PULL_POLICIES"]


def _resource(kind: KindInfo) -> Resource:
    return Resource(kind.group, kind.version, kind.kind, kind.plural, namespaced=kind.namespaced)


DISCOVERY_POLICIES = _resource(DISCOVERY_POLICY)
CACHED_IMAGE_SETS = _resource(CACHED_IMAGE_SET)
CACHED_IMAGES = _resource(CACHED_IMAGE)
PULL_POLICIES = _resource(PULL_POLICY)
