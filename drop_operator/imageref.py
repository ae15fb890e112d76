"""Container image references: parsing, validation and normalization.

Follows the grammar of the distribution project (`distribution/reference`), which is what
container runtimes accept::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]
    path       := component ( "/" component )*        (lowercase alphanumerics joined by . _ __ -)
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex

Normalization is Docker's: a first component that looks like a host (contains "." or ":", is
"localhost", or has uppercase letters) is the domain, otherwise the domain is `docker.io`; single-segment Docker Hub paths
get `library/`; `index.docker.io` is `docker.io` (the only alias runtimes rewrite in a reference: see
*Registry hosts* below). So `nginx:1.25` and
`docker.io/library/nginx:1.25` are one image. The domain is lowercased (host names are
case-insensitive); an uppercase path is rejected as runtimes do, because silently lowercasing it
would name a different repository. A default tag is added only when the caller asks for one.

An image *ID* (`sha256:<hex>` or 64 bare hex characters, as cAdvisor reports for images whose
name is unknown) is grammatically a name with a tag, but it is not something a node can pull;
it is rejected with a message that says so.

Registry hosts. The host a registry's API answers on is not always the name its images carry:
Docker Hub's API is at `registry-1.docker.io` (containerd and Docker send every `docker.io` pull
there) and is also reachable as `index.docker.io` and `registry.hub.docker.com`, but pods, the
kubelet and the runtimes' image stores name those images `docker.io/...`. This module keeps the one
table of such aliases: `registry_name(api_host)` is the name images get when their tags were listed
on `api_host`, `registry_api_host(name)` is where to list the tags of images named `name`.

Tags that are not runnable images. Supply-chain tools store signatures, attestations and SBOMs as
tags derived from the digest of the image they describe (cosign: `sha256-<hex>.sig`, `.att`,
`.sbom`), and registries without the OCI referrers API hold referrers indexes under
`sha256-<hex>` (the referrers tag schema, used by cosign, notation and oras). `is_artifact_tag`
recognizes them: `<algorithm>-<hex digest>` with an optional `.<suffix>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DOMAIN",
    "ImageReference",
    "InvalidReferenceError",
    "is_artifact_tag",
    "is_valid_path",
    "normalize",
    "parse",
    "registry_api_host",
    "registry_name",
]

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
#: API hosts whose images are named under another registry name (API host -> image registry name).
#: Only `_LEGACY_DEFAULT_DOMAIN` is also rewritten inside references, as runtimes do; a pod that
#: names `registry-1.docker.io/...` really gets an image stored under that name.
_REGISTRY_NAMES = {
    _LEGACY_DEFAULT_DOMAIN: DEFAULT_DOMAIN,
    "registry-1.docker.io": DEFAULT_DOMAIN,
    "registry.hub.docker.com": DEFAULT_DOMAIN,
}
#: Registry names whose API is served elsewhere (name -> API host), as containerd resolves them.
_API_HOSTS = {DEFAULT_DOMAIN: "registry-1.docker.io"}
_ARTIFACT_TAG_RE = re.compile(
    r"(?:sha256|sha384|sha512|blake3)-[a-f0-9]{64,128}(?:\.[A-Za-z0-9_][A-Za-z0-9_.-]*)?"
)
_OFFICIAL_PREFIX = "library/"
_NAME_TOTAL_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}")
_WHITESPACE = re.compile(r"\s")


class InvalidReferenceError(ValueError):
    """A string that is not a valid image reference; `reason` says what is wrong with it."""

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"invalid image reference {reference!r}: {reason}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A normalized reference. Equal references name the same image."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, reference: str, *, default_tag: str | None = None) -> ImageReference:
        """Parse and normalize; add `default_tag` only when there is neither tag nor digest."""
        return parse(reference, default_tag=default_tag)

    @property
    def repository(self) -> str:
        """`domain/path`, the image without tag or digest (a CachedImage's `spec.image`)."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The full normalized reference: `domain/path[:tag][@digest]`."""
        out = self.repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """The short form people type (`nginx:1.25`), for display only."""
        repo = self.repository
        if self.domain == DEFAULT_DOMAIN:
            repo = self.path.removeprefix(_OFFICIAL_PREFIX)
        return repo + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> ImageReference:
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"{self.repository}:{tag}", f"invalid tag {tag!r}")
        return ImageReference(self.domain, self.path, tag, self.digest)

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DEFAULT_DOMAIN, name


def parse(reference: str, *, default_tag: str | None = None) -> ImageReference:
    """Parse and normalize `reference`; raise InvalidReferenceError with the reason."""
    if not isinstance(reference, str):
        raise InvalidReferenceError(repr(reference), "not a string")
    ref = reference.strip()
    if not ref:
        raise InvalidReferenceError(reference, "empty")
    if ref != reference or _WHITESPACE.search(ref):
        raise InvalidReferenceError(reference, "contains whitespace")
    if _IMAGE_ID_RE.fullmatch(ref):
        raise InvalidReferenceError(reference, "this is an image ID, not a pullable reference")
    if "://" in ref:
        raise InvalidReferenceError(reference, "a reference has no URL scheme")

    name, at, digest = ref.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        raise InvalidReferenceError(
            reference, "digest must be sha256:<64 hex> or sha512:<128 hex> (lowercase)"
        )
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a colon after the last slash separates the tag (before it: a port)
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(
                reference,
                f"invalid tag {tag!r} (letters, digits, _ . -; at most 128; not starting with . or -)",
            )
    if not name:
        raise InvalidReferenceError(reference, "missing repository name")

    domain, path = _split_domain(name)
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReferenceError(reference, f"invalid registry host {domain!r}")
    domain = domain.lower()
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if path != path.lower() and _PATH_RE.fullmatch(path.lower()):
        raise InvalidReferenceError(reference, "repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise InvalidReferenceError(
            reference,
            "invalid repository path (lowercase letters and digits, separated by '.', '_', '__', '-' or '/')",
        )
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > _NAME_TOTAL_MAX:
        raise InvalidReferenceError(reference, f"repository name longer than {_NAME_TOTAL_MAX} characters")
    if tag is None and not digest and default_tag is not None:
        tag = default_tag
    return ImageReference(domain, path, tag, digest or None)


def registry_name(api_host: str) -> str:
    """The registry name images listed on `api_host` (host[:port]) carry: `registry-1.docker.io` → `docker.io`.

    Hosts are compared case-insensitively; a host with a non-default port is never an alias.
    """
    host = api_host.lower()
    return _REGISTRY_NAMES.get(host, host)


def registry_api_host(name: str) -> str:
    """Where the API of the registry named `name` lives: `docker.io` → `registry-1.docker.io`."""
    host = name.lower()
    return _API_HOSTS.get(host, host)


def is_artifact_tag(tag: str) -> bool:
    """Whether `tag` names a signature, attestation, SBOM or referrers index, not a runnable image."""
    return _ARTIFACT_TAG_RE.fullmatch(tag) is not None


def is_valid_path(path: str) -> bool:
    """Whether `path` is a valid repository path (`group/project/image`), as a registry API expects."""
    return bool(_PATH_RE.fullmatch(path))


def normalize(reference: str, *, default_tag: str | None = None) -> str:
    """The normalized string form of `reference` (see `parse`)."""
    return parse(reference, default_tag=default_tag).name
