"""Label values, short hashes, and the managed-by label every object the operator creates carries."""

from __future__ import annotations

import hashlib
import re

__all__ = ["LABEL_MANAGED_BY", "MANAGED_BY", "MAX_LABEL_VALUE", "label_value", "short_hash"]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "drop-operator"
#: Kubernetes limits label values to 63 characters (object names may have 253).
MAX_LABEL_VALUE = 63
_HASH_LENGTH = 10
_VALID = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def short_hash(*parts: str, length: int = _HASH_LENGTH) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``parts`` joined by NUL; the same in every process."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def label_value(value: str) -> str:
    """``value`` itself when it is a valid label value, else a readable head plus a hash (<= 63 chars).

    The hash covers the whole value, so two long names sharing their first 52 characters still get
    different values; the head is trimmed so the result starts and ends alphanumeric.
    """
    if len(value) <= MAX_LABEL_VALUE and _VALID.fullmatch(value):
        return value
    head = re.sub(r"[^-A-Za-z0-9_.]", "-", value)[: MAX_LABEL_VALUE - _HASH_LENGTH - 1].strip("-_.")
    return f"{head}-{short_hash(value)}" if head else short_hash(value)
