"""Credentials of a source, read from a Secret in the operator's namespace.

Secrets are read by name on every sync (``get`` is all the RBAC allows; there is no Secret watch),
so a rotated password is used at the next sync without a restart. The values are decoded here and
handed to the discovery layer's :class:`Credentials`, whose ``repr`` hides them; nothing in this
module logs or formats a value, only key names.

Supported keys: ``username``/``password`` (basic auth), ``token`` (bearer), ``ca.crt`` (extra trusted
CA), ``tls.crt``/``tls.key`` (client certificate), ``headers.<Name>`` (sent on every request, e.g.
``headers.X-Scope-OrgID`` for Mimir). A missing Secret is ``SecretNotFound``; a Secret that holds
none of these keys, or half of a pair, is ``SecretKeyMissing``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from drop_operator.discovery.errors import SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.runtime import resources
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.errors import ApiError

__all__ = [
    "SECRET_KEY_MISSING",
    "SECRET_NOT_FOUND",
    "SecretError",
    "credentials_from_secret",
    "read_credentials",
    "secret_data",
]

SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_MISSING = "SecretKeyMissing"
SECRET_UNREADABLE = "SecretUnreadable"

_KNOWN_KEYS = ("username", "password", "token", "ca.crt", "tls.crt", "tls.key")
_HEADER_PREFIX = "headers."
#: A key that needs its partner: a password without a user name cannot authenticate, nor can a
#: certificate without its key (and the other way round).
_PAIRS = (("password", "username"), ("tls.crt", "tls.key"), ("tls.key", "tls.crt"))


class SecretError(Exception):
    """A source's Secret cannot supply credentials; ``reason`` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """The decoded values of a Secret as the API returns it (``data`` base64, ``stringData`` text).

    ``stringData`` only appears in objects read from a file (the preview's ``--secret-file``); the
    API server folds it into ``data``. Where both name a key, ``stringData`` wins, as on the server.
    """
    out: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value or ""), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(SECRET_UNREADABLE, f"key {key!r} of the Secret is not valid base64") from None
    for key, value in (secret.get("stringData") or {}).items():
        out[str(key)] = str(value).encode()
    return out


def _describe(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "?")
    return f"{namespace}/{name}" if namespace else str(name)


def credentials_from_secret(secret: Mapping[str, Any]) -> Credentials:
    """Build :class:`Credentials` from a Secret object; raises :class:`SecretError`.

    Messages name the Secret and the keys involved, never a value.
    """
    where = _describe(secret)
    data = secret_data(secret)
    usable = [
        k for k in data if k in _KNOWN_KEYS or (k.startswith(_HEADER_PREFIX) and len(k) > len(_HEADER_PREFIX))
    ]
    if not usable:
        present = ", ".join(sorted(data)) or "no keys at all"
        raise SecretError(
            SECRET_KEY_MISSING,
            f"Secret {where} has none of the keys username/password, token, ca.crt, tls.crt/tls.key, "
            f"headers.<Name> (it has {present})",
        )
    for key, partner in _PAIRS:
        if key in data and partner not in data:
            raise SecretError(SECRET_KEY_MISSING, f"Secret {where} has {key} but no {partner}")
    try:
        text = {key: value.decode() for key, value in data.items() if key in usable}
    except UnicodeDecodeError:
        raise SecretError(SECRET_UNREADABLE, f"a value in Secret {where} is not UTF-8 text") from None
    try:
        return Credentials.from_secret_data(text)
    except SourceError as err:
        raise SecretError(str(err.reason), f"Secret {where}: {err.message}") from None


async def read_credentials(client: KubeClient, namespace: str, name: str) -> Credentials:
    """GET the Secret ``namespace/name`` and turn it into credentials; raises :class:`SecretError`."""
    try:
        secret = await client.get(resources.SECRETS, name, namespace)
    except ApiError as err:
        if err.not_found:
            raise SecretError(SECRET_NOT_FOUND, f"Secret {namespace}/{name} not found") from None
        raise SecretError(
            SECRET_UNREADABLE,
            f"cannot read Secret {namespace}/{name}: HTTP {err.status} {err.reason}".rstrip(),
        ) from None
    return credentials_from_secret(secret)
