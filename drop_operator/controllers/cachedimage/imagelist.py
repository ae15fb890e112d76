"""What a kubelet's ``node.status.images`` says about one image: present, gone, or unknown.

The kubelet reports the node's images in ``status.images`` (``pkg/kubelet/nodestatus/setters.go``,
``Images``): sorted by size, largest first, cut to ``nodeStatusMaxImages`` entries (kubelet
configuration, default :data:`KUBELET_MAX_IMAGES`), each with at most
:data:`KUBELET_MAX_NAMES` names, repository digests before tags. Hence:

* **present** when any entry lists any name of the image: the reference as written, its normalized
  and short Docker Hub forms, or ``repository@digest`` once the digest is known (an image with
  many tags may be listed under its digest only). Counting a node as cached *without a pull* needs
  more: the reference's own name (:func:`reported_names` without a digest), since a node holding
  the same content under another tag still resolves this tag at the registry;
* **gone** when it is listed under none of them and the list is complete: shorter than the cap, or
  holding an image smaller than this one (the kubelet keeps the largest, so this one would have been
  kept). Kubelet image garbage collection is how cached images disappear;
* **unknown** otherwise: a truncated list, or none at all (simulated nodes, a kubelet that has not
  reported yet). Absence then means nothing.

A cluster whose kubelets set ``nodeStatusMaxImages`` below 50 defeats the length rule (a cut list
looks complete): the cost is a paced re-pull of an image that is still there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from drop_operator.imageref import InvalidReferenceError, parse

__all__ = [
    "KUBELET_MAX_IMAGES",
    "KUBELET_MAX_NAMES",
    "REPORT_GRACE",
    "Listing",
    "image_listing",
    "listed_size",
    "reported_names",
]

KUBELET_MAX_IMAGES = 50
"""The kubelet's default ``nodeStatusMaxImages``."""
KUBELET_MAX_NAMES = 5
"""``MaxNamesPerImageInNodeStatus`` in the kubelet: names reported per image."""
REPORT_GRACE = 90.0
"""Seconds after a pull during which absence from ``status.images`` is not believed: the kubelet
refreshes its image list every 30 s and posts node status every 10 s, so a fresh pull shows up
within ~40 s; the rest is margin for a loaded node. After a restart pull times come from the
image's node record, rounded down to the minute, so the grace can be up to 60 s shorter then."""

Listing = Literal["present", "gone", "unknown"]
Obj = Mapping[str, Any]


def reported_names(reference: str, digest: str | None = None) -> set[str]:
    """Every name a kubelet may list the image under (containerd reports normalized names).

    ``reference`` as written, normalized (``nginx:1.25`` -> ``docker.io/library/nginx:1.25``), its
    short Docker Hub form, and with ``digest`` (``sha256:...``) the repository digest name.
    """
    names = {reference}
    try:
        ref = parse(reference)
    except InvalidReferenceError:
        return names
    names.update((ref.name, ref.familiar))
    for d in (ref.digest, digest):
        if d:
            names.add(f"{ref.repository}@{d}")
    return names


def _entries(node: Obj) -> list[Obj]:
    return list((node.get("status") or {}).get("images") or ())


def _find(entries: Iterable[Obj], names: set[str]) -> Obj | None:
    for entry in entries:
        if names.intersection(entry.get("names") or ()):
            return entry
    return None


def _size(entry: Obj) -> int | None:
    size = entry.get("sizeBytes")
    return size if isinstance(size, int) and size > 0 else None


def image_listing(node: Obj, names: set[str], size: int | None = None) -> Listing:
    """Whether ``node`` reports the image (any of ``names``); ``size`` in bytes when known.

    See the module docstring for the rules.
    """
    entries = _entries(node)
    if _find(entries, names) is not None:
        return "present"
    if not entries:
        return "unknown"
    if len(entries) < KUBELET_MAX_IMAGES:
        return "gone"
    if size is not None and any((s := _size(e)) is not None and s < size for e in entries):
        return "gone"
    return "unknown"


def listed_size(node: Obj, names: set[str]) -> int | None:
    """The image's size in bytes as ``node`` reports it, if it lists the image."""
    entry = _find(_entries(node), names)
    return _size(entry) if entry is not None else None
