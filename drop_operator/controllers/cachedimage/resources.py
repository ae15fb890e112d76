"""Resource descriptors of the kinds this reconciler reads and writes, from the API's kind table."""

from __future__ import annotations

from drop_operator.api.groups import CACHED_IMAGE, PULL_POLICY, KindInfo
from drop_operator.runtime.resource import Resource

__all__ = ["CACHED_IMAGES", "PULL_POLICIES"]


def _resource(kind: KindInfo) -> Resource:
    return Resource(kind.group, kind.version, kind.kind, kind.plural, namespaced=kind.namespaced)


CACHED_IMAGES = _resource(CACHED_IMAGE)
PULL_POLICIES = _resource(PULL_POLICY)
