"""WarmUp: images that must be on a new node before the node takes workloads.

A node pool registers new nodes with a taint (``drop.corewire.io/warming:NoSchedule`` by default;
Karpenter ``startupTaints``, the kubelet's ``--register-with-taints``...). Pull pods of images with
``warmUp`` tolerate that taint, and the operator removes it from a node once every such image that
targets the node is cached there, or once ``maxWait`` has passed since the node was created.
"""

from __future__ import annotations

from pydantic import Field

from drop_operator.api.duration import Duration, positive_duration
from drop_operator.api.meta import KubeModel

__all__ = ["DEFAULT_WARMING_TAINT", "TAINT_KEY_PATTERN", "WarmUp"]

DEFAULT_WARMING_TAINT = "drop.corewire.io/warming"
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: A qualified name (optional DNS-subdomain prefix, then a name of up to 63 characters), as for
#: label keys and taint keys.
TAINT_KEY_PATTERN = rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"


class WarmUp(KubeModel):
    """Hold new nodes with the taint ``taintKey`` until these images are cached on them."""

    taint_key: str = Field(DEFAULT_WARMING_TAINT, max_length=316, pattern=TAINT_KEY_PATTERN)
    """Key of the warming taint (any value, any effect). Only this taint is ever removed, and the
    operator never adds it: a node without it, or whose taint was removed by hand, is left alone."""
    max_wait: Duration = Field("15m", json_schema_extra=positive_duration("warmUp.maxWait"))
    """How long after the node's creation these images may hold it. Past it they stop holding the
    node even if they are not cached there (a registry outage must not stop a cluster from scaling)."""
