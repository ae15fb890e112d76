"""The platforms (os/architecture/variant) an image reference can run on, read from its registry.

Rules, from the OCI image-index and image-manifest specs and the distribution spec:

* ``GET /v2/<repository>/manifests/<tag or digest>`` with every manifest media type in ``Accept``
  (:data:`ACCEPT`); the registry answers with the document it holds and its ``Content-Type``.
* An *index* (``application/vnd.oci.image.index.v1+json``) or Docker *manifest list*
  (``application/vnd.docker.distribution.manifest.list.v2+json``) lists its images in
  ``manifests[]``, each with ``platform.os``, ``platform.architecture`` and an optional
  ``platform.variant``. Entries without a platform, or with ``unknown/unknown`` (the attestation
  manifests BuildKit adds to every index), are not runnable images and are ignored.
* A single *image manifest* (OCI or Docker schema 2) carries no platform; its config blob does
  (``GET /v2/<repository>/blobs/<config.digest>``, JSON with ``os``, ``architecture``, ``variant``).
* The digest of the document is the registry's ``Docker-Content-Digest`` header (or the digest the
  reference names). A tag is first asked with ``HEAD``: when the caller already knows the platforms
  of the digest it answers, the manifest is not downloaded again (a ``HEAD`` is also cheaper on
  registries that rate-limit manifest ``GET``\\s).

Where to send requests: ``http://`` for loopback registries (``localhost``, ``127.0.0.0/8``,
``::1``), which container runtimes reach over plain HTTP by default; ``https://`` for every other
host. Credentials come from a ``.dockerconfigjson`` (:func:`docker_config_credentials`).

Every failure (DNS, connection, TLS, HTTP status, a document that is not a manifest) is a
:class:`~drop_operator.discovery.errors.SourceError`; callers fall back to not knowing the platforms.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from drop_operator.discovery.errors import Reason, SourceError
from drop_operator.discovery.http import DEFAULT_TIMEOUT, Credentials, HttpClient
from drop_operator.discovery.registry import RegistryConfig, RegistrySource, TokenCache
from drop_operator.imageref import InvalidReferenceError, parse, registry_name

__all__ = [
    "ACCEPT",
    "ImagePlatforms",
    "Platform",
    "docker_config_credentials",
    "platforms_of_manifest",
    "read_platforms",
    "registry_url",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
"""The ``Accept`` header of a manifest request: both index kinds and both image manifest kinds."""
_INDEXES = (OCI_INDEX, DOCKER_LIST)
_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
_UNKNOWN = "unknown"


@dataclass(frozen=True, order=True)
class Platform:
    """``os/architecture[/variant]`` as the OCI image-index spec names them (``linux/arm64/v8``)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class ImagePlatforms:
    """What a reference resolved to: the manifest's digest (``None`` when the registry sent none)
    and the platforms of its runnable images (empty when the registry names none)."""

    digest: str | None
    platforms: frozenset[Platform]


def _platform(doc: Any) -> Platform | None:
    """A platform object (index entry or config blob); ``None`` if absent or ``unknown``."""
    if not isinstance(doc, Mapping):
        return None
    os_, arch, variant = doc.get("os"), doc.get("architecture"), doc.get("variant") or ""
    if not isinstance(os_, str) or not isinstance(arch, str) or not isinstance(variant, str):
        return None
    if not os_ or not arch or _UNKNOWN in (os_, arch):
        return None
    return Platform(os_, arch, variant)


def platforms_of_manifest(media_type: str, body: bytes) -> frozenset[Platform] | str:
    """The platforms an index lists, or the config digest of an image manifest (to be read next).

    ``media_type`` is the response's ``Content-Type``; when it is missing or generic, the
    document's own ``mediaType`` (or the presence of ``manifests``) decides. Raises
    :class:`SourceError` (``InvalidResponse``) for anything that is neither.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        raise SourceError(Reason.INVALID_RESPONSE, "the manifest is not JSON") from None
    if not isinstance(doc, Mapping):
        raise SourceError(Reason.INVALID_RESPONSE, "the manifest is not a JSON object")
    kind = media_type.split(";", maxsplit=1)[0].strip()
    if kind not in _INDEXES + _MANIFESTS:
        declared = doc.get("mediaType")
        kind = declared if isinstance(declared, str) else ""
        if not kind:
            kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "config" in doc else ""
    if kind in _INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise SourceError(Reason.INVALID_RESPONSE, "the index has no manifests list")
        found = (_platform(e.get("platform")) for e in entries if isinstance(e, Mapping))
        return frozenset(p for p in found if p is not None)
    if kind in _MANIFESTS:
        config = doc.get("config")
        digest = config.get("digest") if isinstance(config, Mapping) else None
        if not isinstance(digest, str) or ":" not in digest:
            raise SourceError(Reason.INVALID_RESPONSE, "the image manifest has no config digest")
        return digest
    raise SourceError(Reason.INVALID_RESPONSE, f"not an image manifest or index (media type {kind!r})")


def _is_loopback(domain: str) -> bool:
    host = URL(f"http://{domain}").host or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_url(domain: str) -> str:
    """The API base URL of the registry that serves images named ``domain/...``."""
    return f"{'http' if _is_loopback(domain) else 'https'}://{domain}"


def docker_config_credentials(config: bytes, domain: str) -> Credentials | None:
    """The credentials a ``.dockerconfigjson`` holds for the registry ``domain``, if any.

    Keys of ``auths`` may be a bare host (``registry.example:5000``), a URL
    (``https://registry.example/v1/``), or Docker Hub's legacy ``https://index.docker.io/v1/``; an
    entry gives ``username``/``password`` or ``auth`` (base64 of ``user:password``), as the kubelet
    reads them. Raises :class:`SourceError` (``InvalidCredentials``) for a file that is not JSON.
    """
    try:
        doc = json.loads(config)
    except ValueError:
        raise SourceError(Reason.INVALID_CREDENTIALS, ".dockerconfigjson is not JSON") from None
    auths = doc.get("auths") if isinstance(doc, Mapping) else None
    if not isinstance(auths, Mapping):
        return None
    for key, entry in auths.items():
        host = str(key).split("://", 1)[-1].split("/", 1)[0].lower()
        if registry_name(host) != domain or not isinstance(entry, Mapping):
            continue
        username, password = entry.get("username"), entry.get("password")
        if not username and isinstance(entry.get("auth"), str):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
        if isinstance(username, str) and username:
            return Credentials(username=username, password=str(password or ""))
    return None


async def read_platforms(
    reference: str,
    credentials: Credentials | None = None,
    *,
    token_cache: TokenCache | None = None,
    known: Mapping[str, frozenset[Platform]] | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> ImagePlatforms:
    """Resolve ``reference`` (``host/repo:tag`` or ``...@sha256:...``) to its digest and platforms.

    ``known`` maps digests to platforms already read: a tag whose ``HEAD`` answers one of them costs
    no ``GET``. Raises :class:`SourceError` on any failure (see the module docstring).
    """
    try:
        ref = parse(reference, default_tag="latest")
    except InvalidReferenceError as err:
        raise SourceError(Reason.INVALID_CONFIG, str(err)) from None
    source = RegistrySource(
        RegistryConfig(url=registry_url(ref.domain), repositories=[ref.path], timeout=request_timeout),
        credentials,
        token_cache=token_cache,
    )
    known = known or {}
    async with HttpClient(
        source.credentials, timeout=request_timeout, max_body_bytes=4 * 1024 * 1024
    ) as client:
        target = ref.digest or ref.tag or "latest"
        digest = ref.digest
        if digest is None:
            head = await source.read(client, ref.path, f"manifests/{target}", method="HEAD", accept=ACCEPT)
            digest = head.headers.get("Docker-Content-Digest") or None
        if digest is not None and digest in known:
            return ImagePlatforms(digest, known[digest])
        resp = await source.read(client, ref.path, f"manifests/{digest or target}", accept=ACCEPT)
        digest = digest or resp.headers.get("Docker-Content-Digest") or None
        found = platforms_of_manifest(resp.headers.get("Content-Type", ""), resp.body)
        if isinstance(found, str):  # an image manifest: the platform is in its config blob
            blob = await source.read(client, ref.path, f"blobs/{found}")
            try:
                config = json.loads(blob.body)
            except ValueError:
                raise SourceError(Reason.INVALID_RESPONSE, f"config blob {found} is not JSON") from None
            platform = _platform(config)
            found = frozenset({platform} if platform else ())
        return ImagePlatforms(digest, found)
