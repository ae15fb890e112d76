"""What a set wants: the deduplicated union of its static images and its policy's discovered ones.

Every reference is normalized with :mod:`drop_operator.imageref` (the same rules the discovery engine
uses), so ``nginx:1.25`` and ``docker.io/library/nginx:1.25`` are one image and count once. A
reference without tag or digest means ``:latest``, as for a CachedImage. A reference with both a tag
and a digest is pinned by its digest: a CachedImage holds one or the other, and the digest names the
content that is actually pulled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drop_operator.api.cachedimage import DEFAULT_TAG
from drop_operator.imageref import InvalidReferenceError, parse

__all__ = ["Desired", "ImageKey", "InvalidImage", "child_key", "compute_desired", "image_key"]


@dataclass(frozen=True, order=True)
class ImageKey:
    """The identity of a child: normalized repository plus exactly one of tag or digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """The full normalized reference, e.g. ``docker.io/library/nginx:1.25``."""
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    @property
    def version(self) -> str:
        """The tag, or the digest when pinned by digest."""
        return self.digest if self.digest is not None else str(self.tag)

    def spec(self) -> dict[str, str]:
        """The ``image`` and ``tag``/``digest`` fields of a CachedImage spec."""
        if self.digest is not None:
            return {"image": self.repository, "digest": self.digest}
        return {"image": self.repository, "tag": str(self.tag)}


@dataclass(frozen=True)
class InvalidImage:
    """A reference that was not turned into a child, and why."""

    reference: str
    reason: str


@dataclass
class Desired:
    """The images a set wants, keyed by full normalized reference (insertion order: static first)."""

    images: dict[str, ImageKey] = field(default_factory=dict)
    invalid_static: list[InvalidImage] = field(default_factory=list)
    invalid_discovered: list[InvalidImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def image_key(reference: str) -> ImageKey:
    """Parse and normalize one reference; raise :class:`InvalidReferenceError` when it is invalid."""
    ref = parse(reference, default_tag=DEFAULT_TAG)
    if ref.digest is not None:
        return ImageKey(ref.repository, None, ref.digest)
    return ImageKey(ref.repository, ref.tag, None)


def child_key(child: Mapping[str, Any]) -> ImageKey | None:
    """The identity of an existing CachedImage from its spec; ``None`` if its spec is not a reference.

    Children are matched by this, never by name, so a child renamed by hand, created by an older
    naming scheme or spelled differently is still recognised as the same image.
    """
    spec = child.get("spec") or {}
    image = spec.get("image")
    if not isinstance(image, str) or not image:
        return None
    digest, tag = spec.get("digest"), spec.get("tag")
    reference = f"{image}@{digest}" if digest else f"{image}:{tag or DEFAULT_TAG}"
    try:
        return image_key(reference)
    except InvalidReferenceError:
        return None


def _add(out: Desired, references: Iterable[str], invalid: list[InvalidImage]) -> None:
    for reference in references:
        try:
            key = image_key(reference)
        except InvalidReferenceError as err:
            if all(i.reference != reference for i in invalid):
                invalid.append(InvalidImage(reference, err.reason))
            continue
        out.images.setdefault(key.reference, key)


def compute_desired(static: Iterable[str], discovered: Iterable[str]) -> Desired:
    """Union of ``static`` and ``discovered``, normalized and deduplicated; invalid ones set aside."""
    out = Desired()
    _add(out, static, out.invalid_static)
    _add(out, discovered, out.invalid_discovered)
    return out
