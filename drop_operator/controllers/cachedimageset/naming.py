"""Names and labels of CachedImage children.

Children are cluster-scoped, so their names must not collide across sets, and a set must always
compute the same name for the same image (a crash between "create sent" and "create seen" is then a
409 on a known name, not a duplicate). The readable prefix (last path segment and tag) is for people;
identity comes from the hash, which covers the owning set's uid and the *full* normalized reference:
``a/tools:1`` and ``b/tools:1`` share a prefix but never a name, two sets caching ``nginx:1.25`` each
get their own child, and a set re-created under the same name never trips over the children of its
predecessor that the garbage collector has not removed yet.

Names are capped at 63 characters, so they also fit in label values (pull pods can point at their
CachedImage by label). Hashes are :func:`~drop_operator.controllers.common.short_hash`.
"""

from __future__ import annotations

import re

from drop_operator.controllers.common import short_hash

__all__ = [
    "HASH_LENGTH",
    "LONG_HASH_LENGTH",
    "MAX_NAME",
    "child_name",
    "readable_prefix",
]

MAX_NAME = 63
#: Hex digits of the hash in a child's name: 40 bits, so a set of 1000 images collides with
#: probability ~5e-7. A collision is still handled: the planner then uses :data:`LONG_HASH_LENGTH`.
HASH_LENGTH = 10
LONG_HASH_LENGTH = 20
_PREFIX_FALLBACK = "image"

_INVALID = re.compile(r"[^a-z0-9.-]+")
_SEPARATOR_RUN = re.compile(r"[.-]{2,}")


def _sanitize(text: str, limit: int) -> str:
    """Lowercase DNS-1123 subdomain characters, no empty labels, alphanumeric at both ends."""
    out = _INVALID.sub("-", text.lower())
    # "..", "-.", ".-" would make an empty or dash-edged DNS label; "--" is legal but ugly.
    out = _SEPARATOR_RUN.sub(lambda m: "." if set(m.group()) == {"."} else "-", out)
    out = out[:limit]
    return out.strip(".-")


def readable_prefix(repository: str, version: str, limit: int) -> str:
    """``nginx-1.25`` from ``docker.io/library/nginx`` and ``1.25``; never empty, at most ``limit``."""
    last = repository.rsplit("/", 1)[-1]
    if version.startswith("sha256:") or ":" in version:
        version = version.split(":", 1)[1][:12]  # a digest: its first hex digits are enough to read
    return _sanitize(f"{last}-{version}" if version else last, limit) or _PREFIX_FALLBACK


def child_name(
    owner_uid: str, reference: str, repository: str, version: str, *, hash_length: int = HASH_LENGTH
) -> str:
    """The child's name: ``<readable prefix>-<hash of owner uid and full reference>``.

    ``reference`` must be the normalized full reference (``docker.io/library/nginx:1.25``), so two
    spellings of one image get one name; ``version`` is the tag or the digest.
    """
    suffix = short_hash(f"{owner_uid}\n{reference}", length=hash_length)
    prefix = readable_prefix(repository, version, MAX_NAME - hash_length - 1)
    return f"{prefix}-{suffix}"
