"""Throw-away X.509 material for test servers; the code lives in :mod:`devtools.tls` so the demo
and the e2e suite make certificates the same way."""

from __future__ import annotations

from devtools.tls import CertAuthority, KeyPair, self_signed_rsa

__all__ = ["CertAuthority", "KeyPair", "self_signed_rsa"]
