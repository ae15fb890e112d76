"""Which nodes hold an image, as stored in the API server: one owned ConfigMap per CachedImage.

Status must stay bounded whatever the cluster size, so it only carries counts. The per-node facts
the operator needs after a restart ("node X pulled this reference at minute M") live in a ConfigMap
in the operator's namespace, the image's *record*: named :func:`record_name` (``drop-nodes-<uid of
the CachedImage>``), owned by the CachedImage (deleted with it by the garbage collector), labelled
:data:`RECORD_SELECTOR`, with the reference in ``data.reference`` for people and the node set in
``binaryData.nodes`` in this binary form (version 2)::

    0x02  sha1(reference)[:4]  { uvarint minute  uvarint count  count x 5-byte node key }...

Groups hold the nodes pulled in one minute (minutes since the epoch), newest first; a group's
minute is given as the distance to the previous group's (the first one in full); keys are sorted,
so an unchanged set encodes to unchanged bytes and is not rewritten. A node key is 40 bits of the
SHA-1 of its name (:func:`node_key`; the chance of any collision among 10 000 nodes is about 5e-5,
and a collision only means one node is believed cached when it is not). A rollout pulls many nodes
per minute, so a node costs 5 bytes and a little: 10 000 nodes are ~50 KB. ConfigMaps are stored
in etcd as protobuf, so binaryData costs its raw bytes there (base64 only on the wire).

The bound: a payload is at most :data:`MAX_RECORD_BYTES` (768 KiB, under the 1 MiB ConfigMap limit
and etcd's 1.5 MiB request limit): about 150 000 nodes when pulls share minutes, and never fewer
than 95 000 (every node pulled in a minute of its own: 5 bytes of key, 1 of count, 2 of distance;
a distance needs 3 bytes only from 2^14 minutes on, which fits at most 4 096 times into the minutes
up to 2097). Beyond it the oldest minutes are
left out of the record (never out of memory): after a restart those nodes are pulled once more,
which with ``IfNotPresent`` costs a pod start and no registry traffic.

The reference hash ties the set to ``spec.image`` + tag/digest: when the reference changes the set
starts empty, because nodes holding the old tag do not hold the new one. Anything unreadable reads
as an empty set, never as an error.

Version 1 (the migration): before records existed the set lived in the annotation
:data:`ANNOTATION` of the CachedImage, as text (``v1;<8-hex reference hash>;<node key>:<base-36
minutes>,...``, at most 5 000 nodes written). :func:`stored` still reads it while an image has no
record; the node-caching reconciler writes the record on its next flush and removes the annotation.

Records are how the warm-up controller learns which nodes hold a gating image (through the API
server, as reconcilers meet), hence this module lives in the controller kit.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from drop_operator.controllers.common.labels import LABEL_MANAGED_BY, MANAGED_BY
from drop_operator.controllers.common.nodeset import CachedNodes, key_of

__all__ = [
    "ANNOTATION",
    "LABEL_COMPONENT",
    "LABEL_IMAGE",
    "MAX_RECORD_BYTES",
    "RECORD_COMPONENT",
    "RECORD_KEY",
    "RECORD_SELECTOR",
    "decode",
    "encode",
    "node_key",
    "pairs",
    "record_name",
    "record_payload",
    "stored",
]

ANNOTATION = "drop.corewire.io/cached-nodes"
"""Where version 1 kept the set (read for the migration, then removed)."""
LABEL_COMPONENT = "app.kubernetes.io/component"
RECORD_COMPONENT = "cached-nodes"
LABEL_IMAGE = "drop.corewire.io/cached-image"
"""On a record: the (label form of the) name of its CachedImage, for people and ``kubectl -l``."""
RECORD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={RECORD_COMPONENT}"
RECORD_KEY = "nodes"
"""The ``binaryData`` key of a record that holds the encoded set."""
MAX_RECORD_BYTES = 768 * 1024

_VERSION = 2
_KEY_BYTES = 5
_HEADER_BYTES = 5  # version + 4 bytes of reference hash
_V1 = "v1"


@functools.lru_cache(maxsize=65536)
def node_key(node: str) -> str:
    """The 10-hex-digit (40-bit) key of a node name."""
    return hashlib.sha1(node.encode(), usedforsecurity=False).hexdigest()[:10]


def _reference_hash(reference: str) -> bytes:
    return hashlib.sha1(reference.encode(), usedforsecurity=False).digest()[:4]


def record_name(image_uid: str) -> str:
    """The name of the record of the CachedImage with this uid (a new object gets a new record)."""
    return f"drop-nodes-{image_uid}"


# -- encoding --------------------------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode(
    reference: str,
    pulled: Mapping[str, float],
    *,
    limit: int = MAX_RECORD_BYTES,
) -> bytes:
    """The version-2 payload of ``{node key: unix time pulled}`` (a dict or a :class:`CachedNodes`).

    At most ``limit`` bytes: the most recent minutes are kept, and of the minute that does not fit
    whole, the nodes with the lowest keys.
    """
    items: Iterable[tuple[int, float]] = (
        pulled.pairs() if isinstance(pulled, CachedNodes) else ((key_of(k), t) for k, t in pulled.items())
    )
    groups: dict[int, list[int]] = {}
    for key, when in items:
        groups.setdefault(max(0, int(when) // 60), []).append(key)
    out = bytearray((_VERSION,))
    out += _reference_hash(reference)
    previous: int | None = None
    for minute in sorted(groups, reverse=True):
        keys = sorted(groups[minute])
        step = _uvarint(minute if previous is None else previous - minute)
        # A shorter count takes no more bytes than the full one, so what fits of it stays in bounds.
        fits = min(len(keys), (limit - len(out) - len(step) - len(_uvarint(len(keys)))) // _KEY_BYTES)
        if fits <= 0:
            break
        out += step
        out += _uvarint(fits)
        out += b"".join(k.to_bytes(_KEY_BYTES, "big") for k in keys[:fits])
        previous = minute
        if fits < len(keys):
            break
    return bytes(out)


# -- decoding --------------------------------------------------------------------------------------


class _CorruptError(ValueError):
    pass


def _read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise _CorruptError
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _pairs_v2(reference: str, data: bytes) -> list[tuple[int, int]]:
    if (
        len(data) < _HEADER_BYTES
        or data[0] != _VERSION
        or data[1:_HEADER_BYTES] != _reference_hash(reference)
    ):
        return []
    out: list[tuple[int, int]] = []
    at, minute = _HEADER_BYTES, None
    try:
        while at < len(data):
            step, at = _read_uvarint(data, at)
            if minute is not None and step == 0:
                raise _CorruptError  # groups are strictly newest first
            minute = step if minute is None else minute - step
            count, at = _read_uvarint(data, at)
            end = at + count * _KEY_BYTES
            if minute < 0 or not count or end > len(data):
                raise _CorruptError
            second = minute * 60
            view = memoryview(data)
            out.extend(
                (int.from_bytes(view[i : i + _KEY_BYTES], "big"), second) for i in range(at, end, _KEY_BYTES)
            )
            at = end
    except _CorruptError:
        return []  # all or nothing: half a record is not more trustworthy than none
    return out


def _pairs_v1(reference: str, text: str) -> Iterator[tuple[int, int]]:
    parts = text.split(";", 2)
    ref_key = hashlib.sha1(reference.encode(), usedforsecurity=False).hexdigest()[:8]
    if len(parts) != 3 or parts[0] != _V1 or parts[1] != ref_key:
        return
    for entry in parts[2].split(","):
        key, sep, stamp = entry.partition(":")
        if not sep:
            continue
        try:
            yield key_of(key), int(stamp, 36) * 60
        except ValueError:
            continue


def pairs(reference: str, data: bytes | str | None) -> list[tuple[int, int]]:
    """``(integer node key, unix second)`` of a stored set: a version-2 payload (bytes) or a
    version-1 annotation (text). Another reference, or anything unreadable, yields nothing."""
    if not data:
        return []
    if isinstance(data, str):
        return list(_pairs_v1(reference, data))
    return _pairs_v2(reference, data)


def decode(reference: str, data: bytes | str | None) -> dict[str, float]:
    """:func:`pairs` as ``{node key: unix time}``."""
    return {f"{key:010x}": float(second) for key, second in pairs(reference, data)}


# -- where the set is stored ----------------------------------------------------------------------


def record_payload(record: Mapping[str, Any]) -> bytes:
    """The encoded set of a record (a ConfigMap as the API server returns it); ``b""`` if unreadable."""
    text = (record.get("binaryData") or {}).get(RECORD_KEY)
    if not isinstance(text, str):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def stored(record: Mapping[str, Any] | None, annotations: Mapping[str, str]) -> bytes | str | None:
    """What holds an image's set: its record once it has one, else the version-1 annotation (if any).

    A record that exists is the truth even when unreadable: an old annotation left beside it (a
    write that was cut between the two) is never read again.
    """
    if record is not None:
        return record_payload(record)
    return annotations.get(ANNOTATION)
