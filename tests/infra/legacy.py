"""Writers of formats the operator only reads now, for the tests and benchmarks of that reading."""

from __future__ import annotations

import hashlib

__all__ = ["v1_text"]


def v1_text(reference: str, pulled: dict[str, float]) -> str:
    """What version 1 wrote into the ``drop.corewire.io/cached-nodes`` annotation, uncapped:
    ``v1;<ref hash>;<key>:<base-36 minutes>,...`` (17 bytes a node plus the header)."""

    def b36(value: int) -> str:
        digits, out = "0123456789abcdefghijklmnopqrstuvwxyz", ""
        while True:
            value, digit = divmod(value, 36)
            out = digits[digit] + out
            if not value:
                return out

    ref = hashlib.sha1(reference.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"v1;{ref};" + ",".join(f"{k}:{b36(int(t // 60))}" for k, t in sorted(pulled.items()))
