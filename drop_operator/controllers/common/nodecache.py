"""Which nodes hold an image, kept compact enough to live in one annotation.

Status must stay bounded whatever the cluster size, so it only carries counts. The per-node facts
the operator needs after a restart ("node X pulled this reference at time T") are kept in the
annotation ``drop.corewire.io/cached-nodes`` of the CachedImage, in this form::

    v1;<reference hash>;<node hash>:<minutes since epoch, base 36>,<node hash>:<...>,...

A node is a 10-hex-digit hash of its name (40 bits: the chance of any collision among 10 000 nodes
is about 5e-5, and a collision only means one node is believed cached when it is not), a time is
five base-36 digits (minute precision, enough for ``repullInterval`` >= 1m, valid until 2084). One
entry is 17 bytes; :data:`MAX_ENTRIES` caps the annotation at ~85 KiB, far below the 256 KiB limit
on all annotations of an object. Entries for deleted nodes are pruned; beyond the cap the oldest
entries are dropped, which costs at most a re-pull with ``IfNotPresent`` after a restart (a pod
start, no registry traffic) on very large clusters.

The annotation is how the warm-up controller learns which nodes hold a gating image (through the
API server, as reconcilers meet), hence this module lives in the controller kit.

The reference hash ties the set to ``spec.image`` + tag/digest: when the reference changes the set
starts empty, because nodes holding the old tag do not hold the new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = [
    "ANNOTATION",
    "MAX_ENTRIES",
    "decode",
    "encode",
    "node_key",
    "reference_key",
]

ANNOTATION = "drop.corewire.io/cached-nodes"
MAX_ENTRIES = 5000
_VERSION = "v1"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def node_key(node: str) -> str:
    """The 10-hex-digit key of a node name."""
    return hashlib.sha1(node.encode(), usedforsecurity=False).hexdigest()[:10]


def reference_key(reference: str) -> str:
    return hashlib.sha1(reference.encode(), usedforsecurity=False).hexdigest()[:8]


def _b36(value: int) -> str:
    value = max(0, value)
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if not value:
            return out


def encode(reference: str, pulled: Mapping[str, float], keep: Iterable[str] | None = None) -> str:
    """Serialize ``{node key: unix time pulled}``.

    ``keep`` (node keys of existing nodes), when given, prunes every other entry. Beyond
    :data:`MAX_ENTRIES` the most recently pulled entries are kept. Output is sorted, so an unchanged
    set encodes to an unchanged string and is not rewritten.
    """
    allowed = set(keep) if keep is not None else None
    items = [(k, t) for k, t in pulled.items() if allowed is None or k in allowed]
    if len(items) > MAX_ENTRIES:
        items = sorted(items, key=lambda kv: kv[1], reverse=True)[:MAX_ENTRIES]
    body = ",".join(f"{k}:{_b36(int(t // 60))}" for k, t in sorted(items))
    return f"{_VERSION};{reference_key(reference)};{body}"


def decode(reference: str, text: str | None) -> dict[str, float]:
    """Parse the annotation; anything unreadable, or for another reference, yields an empty set."""
    if not text:
        return {}
    parts = text.split(";", 2)
    if len(parts) != 3 or parts[0] != _VERSION or parts[1] != reference_key(reference):
        return {}
    out: dict[str, float] = {}
    for entry in parts[2].split(","):
        key, sep, stamp = entry.partition(":")
        if not sep or len(key) != 10:
            continue
        try:
            out[key] = int(stamp, 36) * 60.0
        except ValueError:
            continue
    return out
